"""One WallarmEvent -> one row of the 11 WallarmSentinel_CL columns. Pure.

Where is type X mapped? Look up X in `EVENT_FAMILIES` below: each family is one small
function returning the columns that differ per family (EventType, Severity, RequestId,
RemoteAddr, Url, event time). Everything else (envelope columns, RawData, limits) is shared.

Severity choices (Wallarm documents only the column's values, high/medium/low/info, and a
sample row with a `new_hits` at `high`):
- hits: `high`, or `medium` when `block_status` is `blocked` (stopped at the node; a
  monitored hit reached the application).
- vulnerabilities: the threat level (High/Medium/Low); unknown level -> `vuln`, `medium`.
- security issues: EventType `security_issue` for every risk (as Wallarm's native integration
  writes it); Severity is the risk, with `critical` -> `high`; unknown risk -> `info`.
- system: `integration_broken` `high` (Wallarm stopped sending: data loss), integration
  disabling and every `delete_*` `medium`, `update_user` (role change) `low`, the rest `info`.
- `attacks_exceeded` `medium`; `ip_blocked` `low` (already mitigated);
  `api_structure_changed` and the hourly count `info`; unknown types `info`.
- an object that is no Wallarm notification: EventType `unrecognized`, `info`, object in RawData.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from shared.clock import iso_utc
from shared.intake.events import WallarmEvent
from shared.intake.parse import UNRECOGNIZED
from shared.intake.raw_data import FIELD_LIMIT_BYTES, cut_utf8, raw_data
from shared.schema import COLUMNS, Row

VENDOR: Final[str] = "Wallarm"

SECURITY_ISSUE_RISKS: Final[tuple[str, ...]] = ("critical", "high", "medium", "low", "info")
VULN_LEVELS: Final[tuple[str, ...]] = ("high", "medium", "low")
# The hourly request count's notification_type is undocumented. `number_of_requests_per_hour`
# is the integration form's event name (Wallarm API / terraform-provider-wallarm); the others
# are tolerated guesses.
HOURLY_COUNT_TYPES: Final[frozenset[str]] = frozenset(
    {"number_of_requests_per_hour", "requests_per_hour", "hourly_requests", "request_count"}
)


@dataclass(frozen=True)
class Fields:
    """The per-family columns; `event_time` None means "use received_at"."""

    event_type: str
    severity: str
    request_id: str = ""
    remote_addr: str = ""
    url: str = ""
    event_time: datetime | None = None


Mapper = Callable[[WallarmEvent], Fields]


@dataclass(frozen=True)
class Family:
    name: str
    types: frozenset[str]
    mapper: Mapper


# --- small readers ---------------------------------------------------------------------------


def _obj(value: Any) -> Mapping[str, Any]:
    if type(value) is dict:  # what the parser builds: skip the slower ABC check
        return value
    return value if isinstance(value, Mapping) else {}


def _str(value: Any) -> str:
    if type(value) is str:
        return value.strip()
    if value is None or isinstance(value, (dict, list)):
        return ""
    return str(value).strip()


def _url(host: Any, path: Any) -> str:
    host_s, path_s = _str(host), _str(path)
    if host_s and path_s and not path_s.startswith("/"):
        path_s = "/" + path_s
    return host_s + path_s


_LARGEST_TIME: Final[int] = 10**15  # milliseconds: past year 9999, beyond any datetime


def unix_time(value: Any) -> datetime | None:
    """Unix seconds (int, float or numeric string) -> aware UTC datetime; junk -> None.

    Values that look like milliseconds (> 1e11, i.e. after year 5138 in seconds) are divided.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int) and not 0 < value <= _LARGEST_TIME:
        return None  # JSON keeps 400-digit integers: float() of one raises OverflowError
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        return None
    seconds = float(value) / 1000 if value > 1e11 else float(value)
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def hit_of(event: WallarmEvent) -> Mapping[str, Any]:
    return _obj(event.details.get("hit"))


def _suffix_level(notification_type: str, prefix: str, levels: tuple[str, ...]) -> str | None:
    if notification_type.startswith(prefix):
        level = notification_type[len(prefix) :].lower()
        if level in levels:
            return level
    return None


def vuln_level(event: WallarmEvent) -> str | None:
    """high/medium/low from `vuln_<level>` or `details.vuln.threat`; None when unknown."""
    level = _suffix_level(event.notification_type, "vuln_", VULN_LEVELS)
    if level is None:
        threat = _str(_obj(event.details.get("vuln")).get("threat")).lower()
        level = "high" if threat == "critical" else threat
    return level if level in VULN_LEVELS else None


def security_issue_risk(event: WallarmEvent) -> str:
    """critical..info from `security_issue_<risk>` or `details.security_issue.risk`; else info."""
    risk = _suffix_level(event.notification_type, "security_issue_", SECURITY_ISSUE_RISKS)
    if risk is None:
        risk = _str(_obj(event.details.get("security_issue")).get("risk")).lower()
    return risk if risk in SECURITY_ISSUE_RISKS else "info"


# --- one mapper per family -------------------------------------------------------------------


def _map_hit(event: WallarmEvent) -> Fields:
    hit = hit_of(event)
    blocked = _str(hit.get("block_status")).lower() == "blocked"
    return Fields(
        event_type="new_hits",
        severity="medium" if blocked else "high",
        request_id=_str(hit.get("request_id")),
        remote_addr=_str(hit.get("remote_addr4")) or _str(hit.get("remote_addr6")),
        url=_url(hit.get("host") or hit.get("domain"), hit.get("path")),
        event_time=unix_time(hit.get("request_time")) or unix_time(hit.get("create_time")),
    )


def _map_vuln(event: WallarmEvent) -> Fields:
    vuln = _obj(event.details.get("vuln"))
    level = vuln_level(event)
    return Fields(
        event_type=f"vuln_{level}" if level else "vuln",
        severity=level or "medium",
        url=_url(vuln.get("domain") or vuln.get("host"), vuln.get("path")),
    )


def _map_security_issue(event: WallarmEvent) -> Fields:
    issue = _obj(event.details.get("security_issue"))
    risk = security_issue_risk(event)
    # One EventType for every risk, as Wallarm's native integration writes it; the risk is Severity.
    return Fields(
        event_type="security_issue",
        severity="high" if risk == "critical" else risk,
        url=_url(issue.get("host") or issue.get("domain"), issue.get("path")),
    )


SYSTEM_SEVERITY: Final[Mapping[str, str]] = {
    "create_user": "info",
    "delete_user": "medium",
    "update_user": "low",
    "delete_integration": "medium",
    "disable_integration": "medium",
    "integration_broken": "high",
    "create_application": "info",
    "delete_application": "medium",
    "update_application": "info",
    "rule_create": "info",
    "rule_delete": "medium",
    "rule_update": "info",
    "trigger_create": "info",
    "trigger_delete": "medium",
    "trigger_update": "info",
}


def _map_system(event: WallarmEvent) -> Fields:
    return Fields(event.notification_type, SYSTEM_SEVERITY.get(event.notification_type, "info"))


def _map_api_change(event: WallarmEvent) -> Fields:
    d = event.details
    host = d.get("domain") or d.get("api_host") or d.get("host")
    return Fields("api_structure_changed", "info", url=_url(host, d.get("endpoint_path")))


def _map_attacks_exceeded(event: WallarmEvent) -> Fields:
    return Fields("attacks_exceeded", "medium")


def _map_ip_blocked(event: WallarmEvent) -> Fields:
    # expire_at is when the block ends, not when the event happened: never TimeGenerated.
    return Fields("ip_blocked", "low", remote_addr=_str(event.details.get("ip")))


def _map_hourly_count(event: WallarmEvent) -> Fields:
    return Fields(event.notification_type, "info")


def _map_unknown(event: WallarmEvent) -> Fields:
    return Fields(event.notification_type, "info")


def _map_unrecognized(event: WallarmEvent) -> Fields:
    return Fields(UNRECOGNIZED, "info")


EVENT_FAMILIES: Final[Mapping[str, Family]] = {
    f.name: f
    for f in (
        Family("hits", frozenset({"new_hits", "hit", "hits"}), _map_hit),
        Family("vulnerabilities", frozenset({"vuln", *(f"vuln_{v}" for v in VULN_LEVELS)}), _map_vuln),
        Family(
            "security_issues",
            frozenset({"security_issue", *(f"security_issue_{r}" for r in SECURITY_ISSUE_RISKS)}),
            _map_security_issue,
        ),
        Family("system", frozenset(SYSTEM_SEVERITY), _map_system),
        Family("api_structure_changed", frozenset({"api_structure_changed"}), _map_api_change),
        Family("attacks_exceeded", frozenset({"attacks_exceeded"}), _map_attacks_exceeded),
        Family("ip_blocked", frozenset({"ip_blocked"}), _map_ip_blocked),
        Family("hourly_count", HOURLY_COUNT_TYPES, _map_hourly_count),
        Family("unrecognized", frozenset({UNRECOGNIZED}), _map_unrecognized),
    )
}
UNKNOWN_FAMILY: Final[Family] = Family("unknown", frozenset(), _map_unknown)
_FAMILY_BY_TYPE: Final[Mapping[str, Family]] = {t: f for f in EVENT_FAMILIES.values() for t in f.types}


def family_of(event: WallarmEvent) -> Family:
    return _FAMILY_BY_TYPE.get(event.notification_type, UNKNOWN_FAMILY)


# --- the row ---------------------------------------------------------------------------------


def map_event(event: WallarmEvent, received_at: datetime) -> Row:
    """Build the 11-column row; every value a string, each under FIELD_LIMIT_BYTES.

    `received_at` is used when the event carries no time of its own; a naive value is taken
    as UTC.
    """
    fields = family_of(event).mapper(event)
    when = fields.event_time or received_at
    row: Row = {
        "TimeGenerated": iso_utc(when),
        "Vendor": VENDOR,
        "EventType": fields.event_type,
        "Severity": fields.severity,
        "ClientName": event.client_name,
        "Summary": event.summary,
        "Description": event.description,
        "RequestId": fields.request_id,
        "RemoteAddr": fields.remote_addr,
        "Url": fields.url,
        "RawData": raw_data(event.raw),
    }
    out = {name: cut_utf8(_clean(row[name]), FIELD_LIMIT_BYTES) for name in COLUMNS}
    return out


def _clean(text: str) -> str:
    """Lone surrogates (legal as JSON escapes, not in UTF-8) become '?'."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text
