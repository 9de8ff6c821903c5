"""What the soak's Wallarm sends: batches of mixed notifications, each event with an identity.

Identity is what the books count by, never the row: a hit is its Wallarm id pair (its `doc`
is `soakhNNNNNNNN`), any other event carries `[soak-eNNNNNNNN]` in its summary. Both survive
the relay's mapping into RawData, so the books read them back from the rows with one regex.
"""

from __future__ import annotations

import copy
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.standins.wallarm_api import Hit

# The documented bodies tests/wallarm_fixtures.py serves (read here directly: importing the test
# helper as `tests.wallarm_fixtures` would give mypy the same file under two module names).
FIXTURE_DIR = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "wallarm"

HIT_INDEX = "hits_soak_4242_v_1"
IDENTITY = re.compile(r"soak(?:h|-e)[0-9]{8}")
OTHER_TYPES: tuple[str, ...] = (
    "create_user",
    "delete_user",
    "update_user",
    "integration_broken",
    "create_application",
    "vuln_high",
    "vuln_medium",
    "vuln_low",
    "rule_create",
    "trigger_update",
    "api_structure_changed",
    "attacks_exceeded",
    "ip_blocked",
    "security_issue_critical",
    "security_issue_low",
    "unknown_type",
)
_ATTACKS = ("sqli", "xss", "rce", "ptrav", "scanner", "crlf", "xxe")


@dataclass
class Notification:
    """One webhook request body as Wallarm would POST it, and the identities of its events."""

    number: int
    body: bytes
    ndjson: bool
    hits: list[Hit] = field(default_factory=list)
    others: list[str] = field(default_factory=list)

    @property
    def identities(self) -> list[str]:
        return [h.doc for h in self.hits] + self.others


def _first_object(name: str) -> dict[str, Any]:
    body = json.loads((FIXTURE_DIR / f"{name}.json").read_text(encoding="utf-8"))["body"]
    obj = body[0] if isinstance(body, list) else body
    return dict(copy.deepcopy(obj))


_TEMPLATES: dict[str, dict[str, Any]] = {}


def _template(name: str) -> dict[str, Any]:
    if name not in _TEMPLATES:
        _TEMPLATES[name] = _first_object(name)
    return copy.deepcopy(_TEMPLATES[name])


class EventFactory:
    """Seeded: the same seed gives the same bodies in the same order."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.hits = 0
        self.others = 0
        self.notifications = 0

    def hit(self, now: int, payload_bytes: int = 0) -> Hit:
        self.hits += 1
        doc = f"soakh{self.hits:08d}"
        hit = Hit(
            HIT_INDEX,
            doc,
            f"req-{doc}",
            now,
            type=self.rng.choice(_ATTACKS),
            ip=f"198.51.100.{self.rng.randint(1, 254)}",
            path=self.rng.choice(("/login", "/api/v1/orders", "/search", "/")),
            value="A" * payload_bytes if payload_bytes else "' or 1=1 --",
        )
        return hit

    def other(self) -> tuple[dict[str, Any], str]:
        self.others += 1
        ident = f"soak-e{self.others:08d}"
        event = _template(self.rng.choice(OTHER_TYPES))
        event["summary"] = f"{event.get('summary') or 'event'} [{ident}]"
        return event, ident

    def notification(self, now: int, *, size: int | None = None, payload_bytes: int = 0) -> Notification:
        """A batch of 1-20 events (60 % hits), array or NDJSON at random."""
        self.notifications += 1
        count = size if size is not None else self.rng.randint(1, 20)
        objects: list[dict[str, Any]] = []
        note = Notification(self.notifications, b"", self.rng.random() < 0.3)
        for _ in range(count):
            if size is not None or self.rng.random() < 0.6:
                hit = self.hit(now, payload_bytes)
                note.hits.append(hit)
                objects.append(
                    {
                        "summary": "[Wallarm] New hit detected",
                        "details": {
                            "client_name": "Example Corp",
                            "cloud": "EU",
                            "notification_type": "new_hits",
                            "hit": hit.webhook_view(),
                        },
                    }
                )
            else:
                event, ident = self.other()
                note.others.append(ident)
                objects.append(event)
        if note.ndjson:
            note.body = "".join(json.dumps(o) + "\n" for o in objects).encode("utf-8")
        else:
            note.body = json.dumps(objects).encode("utf-8")
        return note


def identities_in(row: dict[str, Any]) -> set[str]:
    """The soak identities a table row holds (a row is one event: one identity, or none)."""
    return set(IDENTITY.findall(json.dumps(row)))
