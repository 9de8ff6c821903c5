"""Hostile and odd bodies: every JSON object becomes a row, mapping is bounded and never crashes.

Hand-picked cases for each defect, then generated bodies (hypothesis): deep, wide, huge strings,
odd numbers, every Unicode line break and control character, in JSON and NDJSON form.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.intake.events import ParseError
from shared.intake.parse import UNRECOGNIZED, parse_body
from shared.intake.raw_data import FIELD_LIMIT_BYTES, ORIGINAL_BYTES_KEY, TRUNCATED_KEY, raw_data
from shared.intake.rows import to_rows
from shared.intake.selection import Selection
from shared.schema import COLUMNS

RECEIVED = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
HIT: dict[str, Any] = {
    "summary": "[Wallarm] New hit detected",
    "details": {
        "notification_type": "new_hits",
        "client_name": "TestCompany",
        "hit": {
            "id": ["hits_production_1_202611", "AXyz"],
            "request_id": "req-1",
            "remote_addr4": "203.0.113.9",
            "host": "api.example.com",
            "path": "/login",
            "type": "sqli",
        },
    },
}
LINE_BREAKS = ["\u2028", "\u2029", "\u0085", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\r"]


def rows_for(body: bytes) -> list[dict[str, str]]:
    rows, _filtered, _rejected = to_rows(parse_body(body), Selection(), RECEIVED)
    return rows


def strict_json(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(f"non-standard constant {name}")

    return json.loads(text, parse_constant=refuse)


# --- the body decides ------------------------------------------------------------------------


@pytest.mark.parametrize("separator", LINE_BREAKS)
def test_ndjson_lines_end_only_at_lf(separator: str) -> None:
    first = dict(HIT, summary=f"before{separator}after")
    body = (json.dumps(first, ensure_ascii=False) + "\n" + json.dumps(HIT) + "\n").encode()
    result = parse_body(body)
    assert [e.summary for e in result.events] == [f"before{separator}after", HIT["summary"]]
    assert result.rejected == []


def test_ndjson_line_holding_an_array_contributes_each_object() -> None:
    body = (json.dumps([HIT, HIT | {"summary": "2"}]) + "\n" + json.dumps(HIT | {"summary": "3"})).encode()
    assert [e.summary for e in parse_body(body).events] == [HIT["summary"], "2", "3"]


@pytest.mark.parametrize(
    "notification_type", [None, 7, 1.5, True, ["new_hits"], {"a": 1}, "", "   ", "x" * 500, "bad type\n"]
)
def test_unusable_notification_type_still_becomes_a_row(notification_type: Any) -> None:
    obj = {"summary": "s", "details": {"notification_type": notification_type, "client_name": "c"}}
    rows = rows_for(json.dumps([obj]).encode())
    assert [(r["EventType"], r["Severity"], r["ClientName"]) for r in rows] == [(UNRECOGNIZED, "info", "c")]
    assert strict_json(rows[0]["RawData"]) == obj


@pytest.mark.parametrize(
    "obj", [{}, {"hello": "world"}, {"details": "x"}, {"details": [1, 2]}, {"summary": {"nested": 1}}]
)
def test_objects_that_are_not_notifications_become_unrecognized_rows(obj: dict[str, Any]) -> None:
    rows = rows_for(json.dumps(obj).encode())
    assert [r["EventType"] for r in rows] == [UNRECOGNIZED]
    assert strict_json(rows[0]["RawData"]) == obj


@pytest.mark.parametrize(
    ("literal", "kept"),
    [
        ("1e400", "1e400"),
        ("-1e400", "-1e400"),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("9" * 5000, "9" * 5000),
    ],
)
def test_numbers_json_cannot_carry_are_kept_as_text(literal: str, kept: str) -> None:
    body = ('[{"summary":"n","details":{"notification_type":"x","v":' + literal + "}}]").encode()
    row = rows_for(body)[0]
    assert strict_json(row["RawData"])["details"]["v"] == kept


def test_deep_event_needing_trimming_is_valid_bounded_json_with_identity() -> None:
    deep: Any = "x" * 70_000
    for _ in range(600):
        deep = {"d": deep}
    obj = {
        "summary": "deep one",
        "details": {"notification_type": "new_hits", "hit": HIT["details"]["hit"], "x": deep},
    }
    rows = rows_for(json.dumps([obj]).encode())
    raw = strict_json(rows[0]["RawData"])
    assert len(rows[0]["RawData"].encode()) <= FIELD_LIMIT_BYTES
    assert raw[TRUNCATED_KEY] is True
    assert raw["summary"] == "deep one"
    assert raw["details"]["hit"]["request_id"] == "req-1"
    assert raw["details"]["hit"]["id"] == HIT["details"]["hit"]["id"]


def test_element_too_deep_to_parse_is_rejected_alone() -> None:
    too_deep = '{"a":' * 5000 + "1" + "}" * 5000
    body = ("[" + json.dumps(HIT) + "," + too_deep + "," + json.dumps(HIT) + "]").encode()
    result = parse_body(body)
    assert len(result.events) == 2
    assert [(r.index, r.reason.split(":")[0]) for r in result.rejected] == [(1, "nesting_too_deep")]


def test_wide_event_keeps_identity_fields() -> None:
    hit = dict(HIT["details"]["hit"], **{f"k{i:06d}": f"value-{i}" for i in range(300_000)})
    obj = {"summary": "wide one", "details": {"notification_type": "new_hits", "hit": hit}}
    row = rows_for(json.dumps([obj]).encode())[0]
    raw = strict_json(row["RawData"])
    assert len(row["RawData"].encode()) <= FIELD_LIMIT_BYTES
    assert raw[TRUNCATED_KEY] is True and raw[ORIGINAL_BYTES_KEY] > 5_000_000
    assert raw["summary"] == "wide one"
    assert raw["details"]["notification_type"] == "new_hits"
    for key in ("request_id", "remote_addr4", "host", "path", "id"):
        assert raw["details"]["hit"][key] == HIT["details"]["hit"][key]
    assert (row["RequestId"], row["RemoteAddr"], row["Url"]) == (
        "req-1",
        "203.0.113.9",
        "api.example.com/login",
    )


def test_raw_data_is_strict_json_for_non_finite_floats() -> None:
    text = raw_data({"a": float("inf"), "b": [float("nan")], "c": 1.5})
    assert strict_json(text)["c"] == 1.5
    assert strict_json(text)["a"] == "inf"


# --- generated bodies ------------------------------------------------------------------------


class RawJson(str):
    """JSON text to be inserted verbatim (odd number literals; deep nesting is built as text)."""


ODD_TEXT = st.text(
    alphabet=st.characters(codec=None, exclude_categories=()),  # every code point, surrogates too
    max_size=200,
) | st.sampled_from(["\u2028", "\u2029", "\u0085", "\ufeff", "\x00", "\ud800", "𝔘𝔫𝔦", "\u202e"])
ODD_NUMBERS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    # Literals Python's json.dumps never writes, inserted verbatim into the body.
    st.sampled_from(["1e400", "-1e400", "1e-400", "NaN", "Infinity", "-Infinity", "9" * 4500]).map(
        lambda text: RawJson(text)
    ),
)
SCALARS = st.one_of(st.none(), st.booleans(), ODD_NUMBERS, ODD_TEXT)


def _json_number_or_scalar(value: Any) -> str:
    return str(value) if isinstance(value, RawJson) else json.dumps(value)


def _to_json(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_to_json(v) for v in value) + "]"
    return _json_number_or_scalar(value)


VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(ODD_TEXT, children, max_size=6),
    max_leaves=60,
)
NOTIFICATION_TYPES = st.one_of(
    st.sampled_from(
        ["new_hits", "vuln", "security_issue", "ip_blocked", "create_user", "api_structure_changed"]
    ),
    VALUES,
)


@st.composite
def notifications(draw: st.DrawFn) -> dict[str, Any]:
    details = draw(st.dictionaries(ODD_TEXT, VALUES, max_size=5))
    if draw(st.booleans()):
        details["notification_type"] = draw(NOTIFICATION_TYPES)
    if draw(st.booleans()):
        details["hit"] = draw(st.dictionaries(ODD_TEXT, VALUES, max_size=8))
    obj: dict[str, Any] = {"summary": draw(ODD_TEXT), "details": details}
    if draw(st.booleans()):
        obj["description"] = draw(VALUES)
    if draw(st.integers(0, 5)) == 0:
        obj["details"] = draw(VALUES)  # not an object: still a row
    if draw(st.integers(0, 8)) == 0:
        levels = draw(st.lists(st.booleans(), min_size=100, max_size=700))
        inner = _to_json(draw(SCALARS))
        obj["deep"] = RawJson(
            "".join("[" if arr else '{"n":' for arr in levels)
            + inner
            + "".join("]" if arr else "}" for arr in reversed(levels))
        )
    if draw(st.integers(0, 8)) == 0:
        obj["huge"] = draw(ODD_TEXT) * draw(st.integers(1, 2000)) + "x" * 70_000
    return obj


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(objects=st.lists(notifications(), min_size=1, max_size=4), ndjson=st.booleans())
def test_generated_bodies_every_object_becomes_one_valid_row(
    objects: list[dict[str, Any]], ndjson: bool
) -> None:
    texts = [_to_json(o) for o in objects]
    body = ("\n".join(texts) if ndjson else "[" + ",".join(texts) + "]").encode("utf-8", "surrogatepass")
    try:
        parsed = parse_body(body)
    except ParseError as err:
        # Only a lone surrogate written raw (not escaped) makes a body invalid UTF-8.
        assert err.code == "invalid_encoding"
        return
    rows, filtered, rejected = to_rows(parsed, Selection(), RECEIVED)
    assert rejected == [] and not filtered
    assert len(rows) == len(objects)
    for row in rows:
        assert tuple(row) == COLUMNS
        for value in row.values():
            assert len(value.encode("utf-8")) <= FIELD_LIMIT_BYTES
        raw = strict_json(row["RawData"])
        assert isinstance(raw, dict)
        if not raw.get(TRUNCATED_KEY):
            assert "summary" not in raw or isinstance(raw["summary"], str)
