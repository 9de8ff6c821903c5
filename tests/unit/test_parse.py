"""parse_body: every fixture, every body shape, every whole-body error."""

from __future__ import annotations

import json

import pytest
from wallarm_fixtures import ALL_FIXTURES, Fixture, fixture_body, load_fixture

from shared.intake.events import ParseError
from shared.intake.parse import parse_body

HIT = fixture_body("new_hits")[0]
IP_BLOCKED = fixture_body("ip_blocked")[0]


@pytest.mark.parametrize("fixture", ALL_FIXTURES, ids=lambda f: f.name)
def test_every_fixture_parses_without_rejections(fixture: Fixture) -> None:
    result = parse_body(load_fixture(fixture.name))
    assert len(result.events) == fixture.count
    assert result.rejected == []


def test_array_keeps_raw_and_envelope() -> None:
    result = parse_body(load_fixture("security_issue_medium"))
    event = result.events[0]
    assert event.notification_type == "security_issue"
    assert event.client_name == "TestCompany"
    assert event.summary == "[Wallarm] New security issue detected"
    assert event.description.startswith("Notification type: security_issue")
    assert event.raw == fixture_body("security_issue_medium")[0]
    assert not event.legacy


def test_missing_description_and_null_client_name_become_empty() -> None:
    obj = {"summary": "s", "details": {"notification_type": "new_hits", "client_name": None, "hit": {}}}
    event = parse_body(json.dumps(obj).encode()).events[0]
    assert (event.description, event.client_name) == ("", "")


def test_bare_object() -> None:
    result = parse_body(json.dumps(IP_BLOCKED).encode())
    assert [e.notification_type for e in result.events] == ["ip_blocked"]


@pytest.mark.parametrize(
    "content_type", [None, "application/json", "application/x-ndjson; charset=UTF-8", "application/jsonl"]
)
def test_ndjson_detected_by_header_or_content(content_type: str | None) -> None:
    body = f"{json.dumps(HIT)}\n\n{json.dumps(IP_BLOCKED)}\n".encode()
    result = parse_body(body)
    assert [e.notification_type for e in result.events] == ["new_hits", "ip_blocked"]


def test_ndjson_header_with_array_body_still_parses() -> None:
    # Test notifications are always a JSON array, even on an NDJSON integration.
    result = parse_body(json.dumps([HIT, IP_BLOCKED], indent=2).encode())
    assert len(result.events) == 2


def test_ndjson_broken_line_is_a_rejection_not_an_error() -> None:
    body = f"{json.dumps(HIT)}\n{{not json\n{json.dumps(IP_BLOCKED)}\n".encode()
    result = parse_body(body)
    assert len(result.events) == 2
    assert [r.index for r in result.rejected] == [1]
    assert "line 2" in result.rejected[0].reason


def test_crlf_ndjson() -> None:
    body = f"{json.dumps(HIT)}\r\n{json.dumps(IP_BLOCKED)}\r\n".encode()
    assert len(parse_body(body).events) == 2


def test_legacy_flat_hit() -> None:
    event = parse_body(load_fixture("new_hits_legacy")).events[0]
    assert event.legacy
    assert event.notification_type == "new_hits"
    assert event.details["hit"]["remote_addr4"] == "111.17.1.1"
    assert event.raw == fixture_body("new_hits_legacy")[0]


def test_legacy_flat_vuln() -> None:
    event = parse_body(load_fixture("vuln_legacy")).events[0]
    assert event.legacy
    assert event.notification_type == "vuln"
    assert event.details["vuln"]["threat"] == "Low"
    assert event.summary == "New vulnerability identified"


def test_details_without_type_is_inferred_from_sub_object() -> None:
    obj = {"summary": "s", "details": {"hit": {"request_id": "r"}}}
    assert parse_body(json.dumps(obj).encode()).events[0].notification_type == "new_hits"


def test_bom_is_tolerated() -> None:
    assert len(parse_body(b"\xef\xbb\xbf" + load_fixture("ip_blocked")).events) == 1


def test_mixed_array_rejects_non_objects_and_keeps_every_object() -> None:
    body = json.dumps([HIT, 42, {"no": "type"}, None, IP_BLOCKED, {"details": "x"}]).encode()
    result = parse_body(body)
    assert [e.notification_type for e in result.events] == [
        "new_hits",
        "unrecognized",
        "ip_blocked",
        "unrecognized",
    ]
    assert [(r.index, r.reason.split(":")[0]) for r in result.rejected] == [
        (1, "not_an_object"),
        (3, "not_an_object"),
    ]


SECRET = "s3cr3t-payload-text"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"", 400, "empty_body"),
        (b"  \n\t ", 400, "empty_body"),
        (b"\xff\xfe{}", 400, "invalid_encoding"),
        (b'[{"summary": "' + SECRET.encode() + b'"', 400, "invalid_json"),
        (SECRET.encode(), 400, "invalid_json"),
        (b"[" * 100_000 + b"]" * 100_000, 422, "invalid_shape"),
        (b"[]", 422, "empty_batch"),
        (b"42", 422, "invalid_shape"),
        (b'"text"', 422, "invalid_shape"),
        (b"null", 422, "invalid_shape"),
        (b"[1, 2, [3]]", 422, "invalid_shape"),
        (b"1\n2\n", 422, "invalid_shape"),
        (b"{bad\n{worse\n", 400, "invalid_json"),
    ],
)
def test_whole_body_errors(body: bytes, status: int, code: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_body(body)
    assert (info.value.status, info.value.code) == (status, code)
    assert SECRET not in info.value.message


def test_invalid_json_message_has_position() -> None:
    with pytest.raises(ParseError) as info:
        parse_body(b'[\n  {"a": }\n]')
    assert "line 2" in info.value.message and "column" in info.value.message
