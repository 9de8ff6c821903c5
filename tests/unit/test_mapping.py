"""map_event: the 11 columns for every fixture and family, time rules, and field limits."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wallarm_fixtures import ALL_FIXTURES, Fixture, fixture_body, load_fixture, oversized_hit_body

from shared.intake.events import WallarmEvent
from shared.intake.mapping import EVENT_FAMILIES, family_of, map_event
from shared.intake.parse import parse_body
from shared.intake.raw_data import (
    FIELD_LIMIT_BYTES,
    ORIGINAL_BYTES_KEY,
    TRUNCATED_KEY,
    cut_utf8,
    dump,
    dump_sized,
    raw_data,
)
from shared.schema import COLUMNS, SEVERITIES

RECEIVED = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
RECEIVED_ISO = "2026-03-01T12:00:00Z"


def rows_of(name: str) -> list[dict[str, str]]:
    result = parse_body(load_fixture(name))
    return [map_event(e, RECEIVED) for e in result.events]


def event(notification_type: str, **details: Any) -> WallarmEvent:
    full = {"notification_type": notification_type, **details}
    raw = {"summary": "s", "details": full}
    return WallarmEvent(notification_type, "s", "", "", full, raw)


@pytest.mark.parametrize("fixture", ALL_FIXTURES, ids=lambda f: f.name)
def test_every_fixture_maps_to_its_event_type(fixture: Fixture) -> None:
    for row in rows_of(fixture.name):
        assert tuple(row) == COLUMNS
        assert all(isinstance(v, str) for v in row.values())
        assert row["EventType"] == fixture.event_type
        assert row["Vendor"] == "Wallarm"
        assert row["Severity"] in SEVERITIES
        assert row["TimeGenerated"].endswith("Z")
        assert json.loads(row["RawData"]) is not None
        assert all(len(v.encode()) <= FIELD_LIMIT_BYTES for v in row.values())


# EventType -> Severity, one line per type Wallarm's Sentinel table lists (+ issues, count).
EXPECTED_SEVERITY = {
    "new_hits": "high",
    "new_hits_blocked": "medium",
    "create_user": "info",
    "delete_user": "medium",
    "update_user": "low",
    "delete_integration": "medium",
    "disable_integration": "medium",
    "integration_broken": "high",
    "create_application": "info",
    "delete_application": "medium",
    "update_application": "info",
    "vuln_high": "high",
    "vuln_medium": "medium",
    "vuln_low": "low",
    "rule_create": "info",
    "rule_delete": "medium",
    "rule_update": "info",
    "trigger_create": "info",
    "trigger_delete": "medium",
    "trigger_update": "info",
    "api_structure_changed": "info",
    "attacks_exceeded": "medium",
    "ip_blocked": "low",
    "security_issue_critical": "high",
    "security_issue_high": "high",
    "security_issue_medium": "medium",
    "security_issue_low": "low",
    "security_issue_info": "info",
    "number_of_requests_per_hour": "info",
    "unknown_type": "info",
}


@pytest.mark.parametrize(("name", "severity"), EXPECTED_SEVERITY.items())
def test_severity_per_type(name: str, severity: str) -> None:
    assert {r["Severity"] for r in rows_of(name)} == {severity}


def test_documented_hit_columns() -> None:
    row = rows_of("new_hits")[1]
    assert row["RequestId"] == "xxxxxxxxxxxxxxxx"
    assert row["RemoteAddr"] == "8.8.8.8"
    assert row["Url"] == "example.com/etc/passwd"
    assert row["ClientName"] == "Test Company"
    assert row["Summary"] == "[Wallarm] New hit detected"
    assert row["Description"] == ""
    assert row["TimeGenerated"] == "2023-12-25T15:57:06Z"  # request_time 1703519826
    assert json.loads(row["RawData"]) == fixture_body("new_hits")[1]


def test_hit_with_domain_and_ipv6_and_create_time_only() -> None:
    hit = {"domain": "d.example", "path": "x", "remote_addr4": "", "remote_addr6": "2001:db8::1"}
    row = map_event(event("new_hits", hit={**hit, "create_time": "1703519829"}), RECEIVED)
    assert row["Url"] == "d.example/x"
    assert row["RemoteAddr"] == "2001:db8::1"
    assert row["TimeGenerated"] == "2023-12-25T15:57:09Z"


@pytest.mark.parametrize("bad_time", [None, "soon", True, -5, 0, float("inf"), 10**30, [1]])
def test_hit_without_usable_time_uses_received_at(bad_time: Any) -> None:
    row = map_event(event("new_hits", hit={"request_time": bad_time}), RECEIVED)
    assert row["TimeGenerated"] == RECEIVED_ISO


def test_millisecond_time_is_tolerated() -> None:
    row = map_event(event("new_hits", hit={"request_time": 1703519823000}), RECEIVED)
    assert row["TimeGenerated"] == "2023-12-25T15:57:03Z"


def test_received_at_is_converted_to_utc() -> None:
    plus3 = RECEIVED.astimezone(timezone(timedelta(hours=3)))
    assert map_event(event("create_user"), plus3)["TimeGenerated"] == RECEIVED_ISO
    naive = datetime(2026, 3, 1, 12, 0, 0, 250000)
    assert map_event(event("create_user"), naive)["TimeGenerated"] == "2026-03-01T12:00:00.250000Z"


def test_ip_blocked_uses_received_at_not_expire_at() -> None:
    row = rows_of("ip_blocked")[0]
    assert row["RemoteAddr"] == "1.1.1.1"
    assert row["TimeGenerated"] == RECEIVED_ISO


def test_api_structure_changed_url() -> None:
    assert rows_of("api_structure_changed")[0]["Url"] == "example.com/users"


@pytest.mark.parametrize(
    ("notification_type", "threat", "expected"),
    [
        ("vuln", "High", "vuln_high"),
        ("vuln", "critical", "vuln_high"),
        ("vuln_low", None, "vuln_low"),
        ("vuln_medium", "High", "vuln_medium"),
        ("vuln", "Weird", "vuln"),
    ],
)
def test_vuln_levels(notification_type: str, threat: str | None, expected: str) -> None:
    vuln = {"threat": threat, "domain": "v.example", "path": "/p"}
    row = map_event(event(notification_type, vuln=vuln), RECEIVED)
    assert (row["EventType"], row["Url"]) == (expected, "v.example/p")


@pytest.mark.parametrize(
    ("notification_type", "risk", "severity"),
    [
        ("security_issue", "CRITICAL", "high"),
        ("security_issue", "High", "high"),
        ("security_issue", "medium", "medium"),
        ("security_issue", "Low", "low"),
        ("security_issue_low", None, "low"),
        ("security_issue", None, "info"),
        ("security_issue", "bogus", "info"),
    ],
)
def test_security_issue_is_one_event_type_with_severity_from_risk(
    notification_type: str, risk: str | None, severity: str
) -> None:
    # Wallarm's native integration writes EventType `security_issue` for every risk level.
    row = map_event(event(notification_type, security_issue={"risk": risk}), RECEIVED)
    assert (row["EventType"], row["Severity"]) == ("security_issue", severity)


def test_unknown_type_passes_through_with_full_raw() -> None:
    row = rows_of("unknown_type")[0]
    assert row["EventType"] == "future_event_type"
    assert json.loads(row["RawData"]) == fixture_body("unknown_type")[0]
    assert family_of(parse_body(load_fixture("unknown_type")).events[0]).name == "unknown"


def test_every_documented_type_has_a_family() -> None:
    mapped = {t for f in EVENT_FAMILIES.values() for t in f.types}
    expected = {f.event_type for f in ALL_FIXTURES} - {"future_event_type"}
    assert expected <= mapped


def test_oversized_hit_raw_data_is_valid_json_under_limit() -> None:
    e = parse_body(oversized_hit_body()).events[0]
    row = map_event(e, RECEIVED)
    raw = row["RawData"]
    assert len(raw.encode()) <= FIELD_LIMIT_BYTES
    data = json.loads(raw)
    assert data[TRUNCATED_KEY] is True
    assert data[ORIGINAL_BYTES_KEY] > FIELD_LIMIT_BYTES
    hit = data["details"]["hit"]
    assert hit["request_id"] == "xxxxxxxxxxxxxxxx"  # small fields survive intact
    assert hit["payloads"][1] == "1' select version();"
    assert hit["payloads"][0].endswith("…[truncated]")
    assert row["RequestId"] == "xxxxxxxxxxxxxxxx"


def test_structure_too_big_falls_back_to_summary_object() -> None:
    e = event("new_hits", hit={"request_id": "r1", "stamps": list(range(30_000))})
    data = json.loads(map_event(e, RECEIVED)["RawData"])
    assert data[TRUNCATED_KEY] is True
    assert data["details"]["hit"] == {"request_id": "r1"}
    assert data["details"]["notification_type"] == "new_hits"


def test_raw_data_small_is_compact_and_unmarked() -> None:
    text = raw_data({"a": [1, "é"]})
    assert text == '{"a":[1,"é"]}'


def test_raw_data_with_multibyte_strings_stays_under_limit() -> None:
    raw = {"details": {"hit": {"payloads": ["😀" * 40_000, "ж" * 40_000]}}}
    text = raw_data(raw)
    assert len(text.encode()) <= FIELD_LIMIT_BYTES
    assert json.loads(text)[TRUNCATED_KEY] is True


def test_lone_surrogate_does_not_break_mapping() -> None:
    body = b'[{"summary": "bad \\ud800 here", "details": {"notification_type": "x", "p": "\\udc00"}}]'
    row = map_event(parse_body(body).events[0], RECEIVED)
    assert row["Summary"] == "bad ? here"
    assert json.loads(row["RawData"])["details"]["p"] == "\udc00"
    row["RawData"].encode("utf-8")


@pytest.mark.parametrize("char", ["é", "€", "😀"])
def test_long_description_is_cut_on_a_utf8_boundary(char: str) -> None:
    details = {"notification_type": "create_user"}
    raw = {"summary": "s", "description": "a" + char * 40_000, "details": details}
    row = map_event(parse_body(json.dumps(raw).encode()).events[0], RECEIVED)
    data = row["Description"].encode("utf-8")
    assert FIELD_LIMIT_BYTES - len(char.encode()) < len(data) <= FIELD_LIMIT_BYTES
    assert row["Description"].endswith(char)


def test_cut_utf8() -> None:
    assert cut_utf8("aé", 2) == "a"
    assert cut_utf8("aé", 3) == "aé"
    assert cut_utf8("", 0) == ""


def _cut_reference(text: str, limit: int) -> str:
    """cut_utf8 as it was before its fast paths: always through the bytes."""
    data = text.encode("utf-8", "surrogatepass")
    return text if len(data) <= limit else data[:limit].decode("utf-8", "ignore")


@given(text=st.text(alphabet=st.characters(codec=None, exclude_categories=())), limit=st.integers(0, 80))
def test_cut_utf8_fast_paths_agree_with_cutting_the_bytes(text: str, limit: int) -> None:
    """Short and ASCII text skip the encoding; the result is what cutting the bytes gives."""
    for candidate in (text, text.encode("ascii", "replace").decode("ascii"), text * 30):
        assert cut_utf8(candidate, limit) == _cut_reference(candidate, limit)


@pytest.mark.parametrize(
    "value",
    [
        {"a": "plain ascii", "n": [1, 2.5, None, True]},
        {"é": "€😀", "line": "\u2028"},
        {"lone": "\ud800 and \udfff"},  # not UTF-8: escaped as ASCII
        '\x00\x1f"\\',
    ],
)
def test_dump_sized_is_dump_and_its_utf8_size(value: Any) -> None:
    text, size = dump_sized(value)
    assert text.encode("utf-8") == dump(value)
    assert size == len(dump(value))
    assert json.loads(text) == json.loads(dump(value))
