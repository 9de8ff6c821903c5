"""The integration form's choices, applied to parsed events. Pure.

Wallarm's form (and its API, see terraform-provider-wallarm's `event_type`s: `siem`
with `with_headers`, `system`, `rules_and_triggers`, `number_of_requests_per_hour`,
`security_issue_<risk>`) decides what Wallarm sends; this repeats the choice on our side so
an operator can narrow what lands in Sentinel without touching Wallarm.

Families not named here (`ip_blocked`, `attacks_exceeded`, `api_structure_changed`, unknown
types) come from triggers the customer set up on purpose, so they always pass.
Rule and trigger changes count as system events (`system_events`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from shared.intake.events import WallarmEvent
from shared.intake.mapping import SECURITY_ISSUE_RISKS, family_of, hit_of, security_issue_risk

ALL_RISKS: Final[frozenset[str]] = frozenset(SECURITY_ISSUE_RISKS)

# Wallarm documents that experimental hits (custom-regex based) and hits not saved in the
# sample are not sent, but not how such a hit would be marked. These markers are guesses
# modelled on Wallarm API hit fields; a hit carrying any of them is dropped.
_EXPERIMENTAL_FLAGS: Final[tuple[str, ...]] = ("experimental", "is_experimental")
_NOT_SAMPLED_FLAGS: Final[tuple[str, ...]] = ("not_sampled", "sample_dropped")
_SAMPLED_FLAGS: Final[tuple[str, ...]] = ("sampled", "in_sample", "saved_in_sample")


@dataclass(frozen=True)
class Selection:
    hits: bool = True
    hit_headers: bool = False
    system_events: bool = True
    vulnerabilities: bool = True
    security_issue_risks: frozenset[str] = ALL_RISKS
    hourly_count: bool = True


def select(event: WallarmEvent, selection: Selection) -> WallarmEvent | None:
    """The event to forward (possibly without hit headers), or None if configured out."""
    family = family_of(event).name
    if family == "hits":
        return _select_hit(event, selection)
    if family == "system":
        return event if selection.system_events else None
    if family == "vulnerabilities":
        return event if selection.vulnerabilities else None
    if family == "security_issues":
        return event if security_issue_risk(event) in selection.security_issue_risks else None
    if family == "hourly_count":
        return event if selection.hourly_count else None
    return event


def _select_hit(event: WallarmEvent, selection: Selection) -> WallarmEvent | None:
    hit = hit_of(event)
    if not selection.hits or is_experimental(hit) or is_unsampled(hit):
        return None
    if selection.hit_headers or "headers" not in hit:
        return event
    return _without_headers(event)


def is_experimental(hit: Mapping[str, Any]) -> bool:
    return any(hit.get(flag) is True for flag in _EXPERIMENTAL_FLAGS)


def is_unsampled(hit: Mapping[str, Any]) -> bool:
    return any(hit.get(flag) is True for flag in _NOT_SAMPLED_FLAGS) or any(
        hit.get(flag) is False for flag in _SAMPLED_FLAGS
    )


def _drop(obj: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != key}


def _without_headers(event: WallarmEvent) -> WallarmEvent:
    """New event with `headers` removed from the hit in both `details` and `raw`."""
    hit = _drop(hit_of(event), "headers")
    details = {**event.details, "hit": hit}
    if event.legacy:  # raw is the flat hit itself
        raw: dict[str, Any] = _drop(event.raw, "headers")
    else:
        raw_details = event.raw.get("details")
        raw_hit = raw_details.get("hit") if isinstance(raw_details, Mapping) else None
        raw = dict(event.raw)
        if isinstance(raw_details, Mapping) and isinstance(raw_hit, Mapping):
            raw["details"] = {**raw_details, "hit": _drop(raw_hit, "headers")}
    return replace(event, details=details, raw=raw)
