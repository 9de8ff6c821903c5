"""select: the integration form's choices, per family, and header stripping without mutation."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any

import pytest
from wallarm_fixtures import ALL_FIXTURES, Fixture, load_fixture

from shared.intake.events import WallarmEvent
from shared.intake.parse import parse_body
from shared.intake.selection import ALL_RISKS, Selection, select


def events_of(name: str) -> list[WallarmEvent]:
    return parse_body(load_fixture(name)).events


def one(name: str) -> WallarmEvent:
    return events_of(name)[0]


@pytest.mark.parametrize("fixture", ALL_FIXTURES, ids=lambda f: f.name)
def test_default_selection_keeps_every_fixture(fixture: Fixture) -> None:
    assert all(select(e, Selection()) is not None for e in events_of(fixture.name))


# fixture -> the Selection that drops it
DROPPED_BY: dict[str, Selection] = {
    "new_hits": Selection(hits=False),
    "new_hits_legacy": Selection(hits=False),
    "vuln_high": Selection(vulnerabilities=False),
    "vuln_legacy": Selection(vulnerabilities=False),
    "number_of_requests_per_hour": Selection(hourly_count=False),
    **{
        name: Selection(system_events=False)
        for name in (
            "create_user",
            "delete_user",
            "update_user",
            "delete_integration",
            "disable_integration",
            "integration_broken",
            "create_application",
            "delete_application",
            "update_application",
            "rule_create",
            "rule_delete",
            "rule_update",
            "trigger_create",
            "trigger_delete",
            "trigger_update",
        )
    },
    **{f"security_issue_{risk}": Selection(security_issue_risks=ALL_RISKS - {risk}) for risk in ALL_RISKS},
}


@pytest.mark.parametrize(("name", "selection"), DROPPED_BY.items())
def test_each_family_can_be_switched_off(name: str, selection: Selection) -> None:
    assert all(select(e, selection) is None for e in events_of(name))


@pytest.mark.parametrize("name", ["ip_blocked", "attacks_exceeded", "api_structure_changed", "unknown_type"])
def test_trigger_driven_and_unknown_types_always_pass(name: str) -> None:
    nothing = Selection(False, False, False, False, frozenset(), False)
    assert select(one(name), nothing) is not None


def test_security_issue_filter_keeps_selected_risk() -> None:
    only_critical = Selection(security_issue_risks=frozenset({"critical"}))
    assert select(one("security_issue_critical"), only_critical) is not None
    assert select(one("security_issue_medium"), only_critical) is None


def test_headers_stripped_from_details_and_raw_without_mutation() -> None:
    event = one("new_hits_headers")
    before = copy.deepcopy(event.raw)
    out = select(event, Selection())
    assert out is not None and out is not event
    assert "headers" not in out.details["hit"]
    assert "headers" not in out.raw["details"]["hit"]
    assert "headers" not in json.dumps(out.raw)
    assert out.raw["details"]["hit"]["request_id"] == "xxxxxxxxxxxxxxxx"
    assert event.raw == before and "headers" in event.details["hit"]


def test_headers_kept_when_selected() -> None:
    event = one("new_hits_headers")
    assert select(event, Selection(hit_headers=True)) is event


def test_hit_without_headers_is_returned_as_is() -> None:
    event = one("new_hits")
    assert select(event, Selection()) is event


def test_legacy_flat_hit_headers_stripped() -> None:
    flat: dict[str, Any] = json.loads(load_fixture("new_hits_legacy"))[0]
    flat["headers"] = {"HOST": ["example.com"]}
    event = parse_body(json.dumps(flat).encode()).events[0]
    out = select(event, Selection())
    assert out is not None
    assert "headers" not in out.raw and "headers" not in out.details["hit"]
    assert "headers" in event.raw


@pytest.mark.parametrize(
    "marker",
    [
        {"experimental": True},
        {"is_experimental": True},
        {"not_sampled": True},
        {"sampled": False},
        {"in_sample": False},
    ],
)
def test_experimental_and_unsampled_hits_dropped(marker: dict[str, Any]) -> None:
    event = one("new_hits")
    hit = {**event.details["hit"], **marker}
    marked = replace(event, details={**event.details, "hit": hit})
    assert select(marked, Selection()) is None


@pytest.mark.parametrize("marker", [{"experimental": False}, {"sampled": True}, {"experimental": "yes"}])
def test_non_markers_keep_hit(marker: dict[str, Any]) -> None:
    event = one("new_hits")
    marked = replace(event, details={**event.details, "hit": {**event.details["hit"], **marker}})
    assert select(marked, Selection()) is not None
