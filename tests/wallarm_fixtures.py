"""Wallarm webhook bodies for tests, built from Wallarm's public docs (tests/fixtures/wallarm/).

Each fixture file is `{"source", "_fixture_note"?, "format": "json"|"ndjson", "body"}`;
`source` is the doc page (pinned commit) or "constructed ...", and the note says what was
changed or invented. `load_fixture(name)` returns the bytes Wallarm would POST.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIXTURE_DIR = Path(__file__).parent / "fixtures" / "wallarm"
JSON = "application/json"
NDJSON = "application/x-ndjson"


@dataclass(frozen=True)
class Fixture:
    """A fixture name, the EventType every row of it must get, and how many rows."""

    name: str
    event_type: str
    count: int = 1
    content_type: str = JSON


ALL_FIXTURES: tuple[Fixture, ...] = (
    Fixture("new_hits", "new_hits", 2),
    Fixture("new_hits_ndjson", "new_hits", 2, NDJSON),
    Fixture("new_hits_domain", "new_hits"),
    Fixture("new_hits_headers", "new_hits"),
    Fixture("new_hits_blocked", "new_hits"),
    Fixture("new_hits_legacy", "new_hits"),
    Fixture("create_user", "create_user"),
    Fixture("delete_user", "delete_user"),
    Fixture("update_user", "update_user"),
    Fixture("delete_integration", "delete_integration"),
    Fixture("disable_integration", "disable_integration"),
    Fixture("integration_broken", "integration_broken"),
    Fixture("create_application", "create_application"),
    Fixture("delete_application", "delete_application"),
    Fixture("update_application", "update_application"),
    Fixture("vuln_high", "vuln_high"),
    Fixture("vuln_medium", "vuln_medium"),
    Fixture("vuln_low", "vuln_low"),
    Fixture("vuln_legacy", "vuln_low"),
    Fixture("rule_create", "rule_create"),
    Fixture("rule_delete", "rule_delete"),
    Fixture("rule_update", "rule_update"),
    Fixture("trigger_create", "trigger_create"),
    Fixture("trigger_delete", "trigger_delete"),
    Fixture("trigger_update", "trigger_update"),
    Fixture("api_structure_changed", "api_structure_changed"),
    Fixture("attacks_exceeded", "attacks_exceeded"),
    Fixture("ip_blocked", "ip_blocked"),
    Fixture("bare_object", "ip_blocked"),
    Fixture("security_issue_critical", "security_issue"),
    Fixture("security_issue_high", "security_issue"),
    Fixture("security_issue_medium", "security_issue"),
    Fixture("security_issue_low", "security_issue"),
    Fixture("security_issue_info", "security_issue"),
    Fixture("number_of_requests_per_hour", "number_of_requests_per_hour"),
    Fixture("unknown_type", "future_event_type"),
)
FIXTURES_BY_NAME: dict[str, Fixture] = {f.name: f for f in ALL_FIXTURES}


def fixture_document(name: str) -> dict[str, Any]:
    """The whole fixture file (source, note, format, body)."""
    data: dict[str, Any] = json.loads((FIXTURE_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return data


def fixture_body(name: str) -> Any:
    """The webhook body as Python data (a list of objects, or one object)."""
    return fixture_document(name)["body"]


def load_fixture(name: str) -> bytes:
    """The bytes Wallarm would send: a JSON document, or one object per line for NDJSON."""
    doc = fixture_document(name)
    body = doc["body"]
    if doc.get("format") == "ndjson":
        return "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in body).encode("utf-8")
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def oversized_hit_body(payload_bytes: int = 200_000) -> bytes:
    """A documented hit whose payload alone is `payload_bytes` long (RawData must be trimmed)."""
    hit_event = json.loads(json.dumps(fixture_body("new_hits")[0]))
    hit_event["details"]["hit"]["payloads"] = ["A" * payload_bytes, "1' select version();"]
    return json.dumps([hit_event]).encode("utf-8")
