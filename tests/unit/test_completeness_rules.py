"""Pure parts of completeness: the watchdog's integration rules and the query stand-in's KQL subset."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from local.standins.log_query import QueryError, run_query
from shared.completeness.wallarm_api import Integration
from shared.completeness.watchdog import integration_problems
from shared.completeness.workspace_hits import HIT_IDS_QUERY

OURS = "https://relay.azurewebsites.net/api/wallarm"
HOOK = Integration(
    id=7,
    type="web_hooks",
    name="Sentinel",
    active=True,
    url=OURS + "?code=key-1",
    http_method="POST",
    format="json",
    events={"siem": True, "system": True},
)


def test_a_healthy_integration_has_no_problem_even_after_a_key_rotation() -> None:
    assert integration_problems(HOOK, OURS, {}) == []
    rotated = replace(HOOK, url=OURS + "?code=key-2")  # the function key is not compared
    assert integration_problems(rotated, OURS, HOOK.snapshot()) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"active": False}, ["disabled"]),
        ({"url": "https://other.example.net/hook"}, ["url"]),
        ({"format": "xml"}, ["format"]),
        ({"events": {"siem": False, "system": True}}, ["events"]),
        ({"format": "jsonl"}, ["format"]),  # allowed, but changed since last seen
        ({"http_method": "PUT"}, ["method"]),
    ],
)
def test_disabled_or_changed(change: dict[str, object], expected: list[str]) -> None:
    assert integration_problems(replace(HOOK, **change), OURS, HOOK.snapshot()) == expected  # type: ignore[arg-type]


def test_integration_from_the_api_shape() -> None:
    obj = {
        "id": 7,
        "active": False,
        "name": "n",
        "type": "web_hooks",
        "target": {"url": OURS, "http_method": "POST", "format": "jsonl", "headers": {"X": "secret"}},
        "events": [
            {"event": "siem", "active": True, "with_headers": False},
            {"event": "system", "active": False},
        ],
    }
    hook = Integration.from_api(obj)
    assert (hook.active, hook.format, hook.events) == (False, "jsonl", {"siem": True, "system": False})
    assert "secret" not in json.dumps(hook.snapshot())


def row(event_type: str, raw: object, when: str = "2026-11-25T12:00:00Z") -> dict[str, str]:
    return {"TimeGenerated": when, "EventType": event_type, "RawData": json.dumps(raw)}


def test_the_relays_hit_query_on_the_stand_in() -> None:
    rows = [
        row("new_hits", {"details": {"hit": {"id": ["i", "a"]}}}),
        row("new_hits", {"details": {"hit": {"id": ["i", "a"]}}}),  # a duplicate row
        row("new_hits", {"details": {"hit": {"id": ["i", "b"]}}}),
        row("new_hits", {"details": {"hit": {}}}),  # no id: left out
        row("create_user", {"details": {"hit": {"id": ["i", "c"]}}}),
    ]
    columns, result = run_query(HIT_IDS_QUERY, rows)
    assert columns == [{"name": "HitId", "type": "string"}, {"name": "RequestId", "type": "string"}]
    assert result == [['["i","a"]', None], ['["i","b"]', None], ["", None]]
    where = run_query("WallarmSentinel_CL | where isnotempty(RawData) | distinct EventType", rows)[1]
    assert where == [["new_hits"], ["create_user"]]
    assert run_query("WallarmSentinel_CL | count", rows)[1] == [[5]]


@pytest.mark.parametrize("query", ["Other_CL | count", "WallarmSentinel_CL | summarize count() by EventType"])
def test_what_the_stand_in_cannot_answer_is_an_error(query: str) -> None:
    with pytest.raises(QueryError):
        run_query(query, [])


def test_the_stored_snapshot_holds_no_function_key() -> None:
    assert HOOK.snapshot()["url"] == OURS
