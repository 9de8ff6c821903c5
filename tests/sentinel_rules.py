"""Python models of the analytic rules in sentinel/Analytic Rules, run over rows the relay builds.

No KQL engine runs offline, so each rule's logic is written here a second time, as small Python,
and kept honest three ways (tests/sentinel/test_rule_logic.py):
- thresholds, windows, type lists and regexes are read from the YAML query's `let` statements;
- every filter the model applies is listed in FRAGMENTS and must appear verbatim in the query;
- every entity column the YAML maps must be produced by the model, non-empty on the fixture rows.
KQL semantics copied: `startswith` ignores case, `==`/`in` do not, `matches regex`/`extract` search,
`ago(x)` is `now - x`, `coalesce` skips null (dynamic) or empty (string) values.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sentinel_schema import RULES_DIR, duration, load_yaml
from wallarm_fixtures import fixture_body

from shared.health.relay_rows import hourly_stats_row
from shared.intake.mapping import map_event
from shared.intake.parse import parse_body

KqlRow = dict[str, Any]
Model = Callable[[Sequence[KqlRow], datetime, str], list[KqlRow]]
DAY = timedelta(days=1)
ACTOR = r"\bby ([^<\n]+?) <([^>\s]+)>"
TARGET_USER = r"\buser ([^<\n]+?) <([^>\s]+)>"
INTEGRATION = r'integration "([^"]+)"'
EVENTS_LINK = r"(https://[^\s]+)"
BLOCKED = ("blocked", "blocked_by_acl")


# ---- rows --------------------------------------------------------------------------------------


# WallarmEvents completes RemoteAddr and Url from RawData (native-integration rows carry the path
# only); these fragments of its query are what `normalized` models (tests check they are there).
NORMALIZE_FRAGMENTS = (
    "RemoteAddr = iff(isnotempty(RemoteAddr), RemoteAddr,",
    "tostring(coalesce(NormDetails.hit.remote_addr4, NormDetails.hit.remote_addr6, NormDetails.ip))),",
    'Url = iff(Url startswith "/" and isnotempty(NormHost), strcat(NormHost, Url), Url)',
    'Url = iff(isempty(Url) and EventType == "api_structure_changed",',
    'EventType in ("security_issue_low", "update_user", "ip_blocked"), "low",',
    'EventType == "new_hits" and isnotempty(tostring(parse_json(RawData).details.hit.block_status)),',
    'iff(EventType == "new_hits", "high", "info"))',
    '"trigger_create", "trigger_update", "api_structure_changed"), "info",',
    "strcat(tostring(coalesce(NormDetails.domain, NormDetails.api_host, NormDetails.host)),",
    "tostring(NormDetails.endpoint_path)), Url)",
)


def normalized(row: KqlRow) -> KqlRow:
    """WallarmEvents' RemoteAddr/Url completion (a no-op on relay rows)."""
    try:
        details = json.loads(row.get("RawData") or "{}").get("details") or {}
    except (ValueError, AttributeError):
        details = {}
    details = details if isinstance(details, dict) else {}

    def sub(name: str) -> dict[str, Any]:
        value = details.get(name)
        return value if isinstance(value, dict) else {}

    hit, vuln, issue = sub("hit"), sub("vuln"), sub("security_issue")
    host = coalesce(
        hit.get("host"),
        hit.get("domain"),
        vuln.get("domain"),
        vuln.get("host"),
        issue.get("host"),
        issue.get("domain"),
    )
    out = dict(row)
    if not out.get("RemoteAddr"):
        out["RemoteAddr"] = tostring(
            coalesce(hit.get("remote_addr4"), hit.get("remote_addr6"), details.get("ip"))
        )
    url = str(out.get("Url") or "")
    if url.startswith("/") and tostring(host):
        out["Url"] = tostring(host) + url
    fallback = "high" if out.get("EventType") == "new_hits" else "info"
    out["Severity"] = (
        derived_severity(str(out.get("EventType")), hit, issue) or out.get("Severity") or fallback
    )
    if not url and out.get("EventType") == "api_structure_changed":
        api_host = coalesce(details.get("domain"), details.get("api_host"), details.get("host"))
        out["Url"] = tostring(api_host) + tostring(details.get("endpoint_path"))
    return out


SEVERITY_BY_TYPE: dict[str, str] = {
    **dict.fromkeys(("security_issue_critical", "security_issue_high", "integration_broken"), "high"),
    **dict.fromkeys(
        ("security_issue_medium", "attacks_exceeded", "delete_user", "delete_integration",
         "disable_integration", "delete_application", "rule_delete", "trigger_delete"),
        "medium",
    ),
    **dict.fromkeys(("security_issue_low", "update_user", "ip_blocked"), "low"),
    **dict.fromkeys(
        ("create_user", "create_application", "update_application", "rule_create", "rule_update",
         "trigger_create", "trigger_update", "api_structure_changed"),
        "info",
    ),
}  # fmt: skip


def derived_severity(event_type: str, hit: Mapping[str, Any], issue: Mapping[str, Any]) -> str:
    """WallarmEvents' Severity case ("" for types it does not know: the row keeps its own)."""
    if event_type == "new_hits":  # without a block status (legacy 2.x, trimmed RawData) the row's own
        status = tostring(hit.get("block_status"))
        return ("medium" if status == "blocked" else "high") if status else ""
    if event_type in ("vuln_high", "vuln_medium", "vuln_low"):
        return event_type.removeprefix("vuln_")
    if event_type == "vuln":
        return "medium"
    if event_type == "security_issue":
        risk = tostring(issue.get("risk")).lower()
        return "high" if risk in ("critical", "high") else risk if risk in ("medium", "low") else "info"
    return SEVERITY_BY_TYPE.get(event_type, "")


def kql_row(row: Mapping[str, Any], ingested_at: datetime) -> KqlRow:
    """A row as WallarmEvents returns it: TimeGenerated typed, IngestedAt added, RemoteAddr/Url completed."""
    out: KqlRow = dict(row)
    out["TimeGenerated"] = datetime.fromisoformat(str(row["TimeGenerated"]).replace("Z", "+00:00"))
    out["IngestedAt"] = ingested_at
    return normalized(out)


def fixture_rows(
    name: str,
    *,
    received_at: datetime,
    ingested_at: datetime,
    edit: Callable[[Any], Any] | None = None,
) -> list[KqlRow]:
    """The rows the relay writes for fixture `name` (optionally edited first), as the rules see them."""
    body = copy.deepcopy(fixture_body(name))
    if edit is not None:
        body = edit(body)
    result = parse_body(json.dumps(body).encode("utf-8"))
    return [kql_row(map_event(event, received_at), ingested_at) for event in result.events]


def epoch(when: datetime) -> int:
    return int(when.timestamp())


def hits_from(addr: str, count: int, at: datetime, *, fixture: str = "new_hits") -> list[KqlRow]:
    """`count` copies of the fixture's first hit from `addr`, hit time `at`, ingested a minute later."""

    def edit(body: Any) -> Any:
        event = body[0]
        copies = []
        for i in range(count):
            clone = {**event, "details": {**event["details"], "hit": dict(event["details"]["hit"])}}
            clone["details"]["hit"].update(
                remote_addr4=addr, request_time=epoch(at), request_id=f"req-{addr}-{i}"
            )
            copies.append(clone)
        return copies

    return fixture_rows(fixture, received_at=at, ingested_at=at + timedelta(minutes=1), edit=edit)


def firing_rows(now: datetime) -> list[KqlRow]:
    """One workspace in which every rule fires at `now` (built from the fixtures and relay rows)."""
    minute = timedelta(minutes=1)
    rows = hits_from("8.8.8.8", 100, now - 10 * minute)
    rows += fixture_rows("ip_blocked", received_at=now - 50 * minute, ingested_at=now - 49 * minute)
    rows += hits_from("1.1.1.1", 3, now - 30 * minute)
    names = ["attacks_exceeded", "vuln_high", "security_issue_critical", "api_structure_changed"]
    names += ["create_user", "update_user", "delete_integration", "integration_broken"]
    for name in names:
        rows += fixture_rows(name, received_at=now - 10 * minute, ingested_at=now - 9 * minute)
    hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    rows.append(kql_row(hourly_stats_row(hour, {"received": 1}), hour + timedelta(hours=1)))
    return rows


# ---- KQL helpers -------------------------------------------------------------------------------


def let_value(query: str, name: str) -> str:
    match = re.search(rf"^\s*let {name} = (.+);\s*$", query, re.MULTILINE)
    assert match, f"query has no `let {name} = ...;`"
    return match[1].strip()


def let_duration(query: str, name: str) -> timedelta:
    value = duration(let_value(query, name))
    assert value is not None, name
    return value


def let_list(query: str, name: str) -> list[str]:
    text = let_value(query, name)
    assert text.startswith("dynamic(") and text.endswith(")"), name
    items: list[str] = json.loads(text[len("dynamic(") : -1])
    return items


def let_string(query: str, name: str) -> str:
    text = let_value(query, name)
    match = re.fullmatch(r'@"(.*)"|"(.*)"', text)
    assert match, name
    return match[1] if match[1] is not None else match[2]


def raw(row: Mapping[str, Any]) -> dict[str, Any]:
    try:
        value = json.loads(row["RawData"])
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def details(row: Mapping[str, Any]) -> dict[str, Any]:
    value = raw(row).get("details")
    return value if isinstance(value, dict) else {}


def hit(row: Mapping[str, Any]) -> dict[str, Any]:
    value = details(row).get("hit")
    return value if isinstance(value, dict) and value else raw(row)


def extract(pattern: str, group: int, text: str) -> str:
    match = re.search(pattern, text)
    return match[group] if match else ""


def tostring(value: Any) -> str:
    return "" if value is None else str(value)


def coalesce(*values: Any) -> Any:
    return next((v for v in values if v is not None and v != ""), None)


def recent(rows: Iterable[KqlRow], now: datetime, ingested_within: timedelta | None = None) -> list[KqlRow]:
    """`where TimeGenerated > ago(1d)` (the queryPeriod), then `where IngestedAt > ago(window)`."""
    out = [r for r in rows if r["TimeGenerated"] > now - DAY]
    if ingested_within is not None:
        out = [r for r in out if r["IngestedAt"] > now - ingested_within]
    return out


# ---- one model per rule ------------------------------------------------------------------------


def burst(rows: Sequence[KqlRow], now: datetime, query: str) -> list[KqlRow]:
    threshold, run = int(let_value(query, "threshold")), let_duration(query, "runWindow")
    groups: dict[tuple[str, str], list[KqlRow]] = {}
    for r in recent(rows, now, 2 * run):
        if r["EventType"] == "new_hits" and r["RemoteAddr"]:
            groups.setdefault((r["RemoteAddr"], r["ClientName"]), []).append(r)
    out = []
    for (addr, client), members in groups.items():
        this_run = [r for r in members if r["IngestedAt"] > now - run]
        previous = len(members) - len(this_run)
        blocked = sum(tostring(hit(r).get("block_status")) in BLOCKED for r in this_run)
        if len(this_run) >= threshold and previous < threshold:
            hosts = [tostring(coalesce(hit(r).get("host"), hit(r).get("domain"))) for r in this_run]
            out.append(
                {
                    "RemoteAddr": addr,
                    "ClientName": client,
                    "Hits": len(this_run),
                    "BlockedHits": blocked,
                    "UnblockedHits": len(this_run) - blocked,
                    "TopUrl": this_run[0]["Url"],
                    "HostName": hosts[0],
                }
            )
    return out


def attacks_exceeded(rows: Sequence[KqlRow], now: datetime, query: str) -> list[KqlRow]:
    run = let_duration(query, "runWindow")
    return [
        {
            "TimeGenerated": r["TimeGenerated"],
            "TriggerName": tostring(details(r).get("trigger_name")),
            "EventsLink": extract(EVENTS_LINK, 1, r["Description"]),
        }
        for r in recent(rows, now, run)
        if r["EventType"] == "attacks_exceeded"
    ]


def denylisted_ip_keeps_attacking(rows: Sequence[KqlRow], now: datetime, query: str) -> list[KqlRow]:
    run = let_duration(query, "runWindow")
    window = recent(rows, now)
    denylisted: dict[tuple[str, str], datetime] = {}
    for r in window:
        if r["EventType"] == "ip_blocked" and r["RemoteAddr"]:
            key = (r["RemoteAddr"], r["ClientName"])
            denylisted[key] = min(denylisted.get(key, r["TimeGenerated"]), r["TimeGenerated"])
    hits = [r for r in window if r["EventType"] == "new_hits" and r["RemoteAddr"]]
    out = []
    for (addr, client), since in denylisted.items():
        after = [h for h in hits if h["RemoteAddr"] == addr and h["TimeGenerated"] > since]
        if after and min(h["IngestedAt"] for h in after) > now - run:
            out.append(
                {
                    "RemoteAddr": addr,
                    "ClientName": client,
                    "HitsAfterDenylisting": len(after),
                    "TopUrl": after[0]["Url"],
                }
            )
    return out


def new_high_risk_finding(rows: Sequence[KqlRow], now: datetime, query: str) -> list[KqlRow]:
    run = let_duration(query, "runWindow")
    out = []
    for r in recent(rows, now, run):
        kind = r["EventType"].lower()
        if not kind.startswith(("vuln", "security_issue")) or r["Severity"] != "high":
            continue
        d = details(r)
        finding = d.get("security_issue") or d.get("vuln") or {}
        out.append(
            {
                "EventType": r["EventType"],
                "Url": r["Url"],
                "HostName": tostring(coalesce(finding.get("host"), finding.get("domain"))),
                "Risk": tostring(coalesce(finding.get("risk"), finding.get("threat"))),
            }
        )
    return out


def api_change_on_sensitive_endpoint(rows: Sequence[KqlRow], now: datetime, query: str) -> list[KqlRow]:
    run, sensitive = let_duration(query, "runWindow"), let_string(query, "sensitivePath")
    out = []
    for r in recent(rows, now, run):
        d = details(r)
        path = tostring(d.get("endpoint_path"))
        if r["EventType"] == "api_structure_changed" and re.search(sensitive, path):
            host = coalesce(d.get("domain"), d.get("api_host"), d.get("host"))
            out.append({"EndpointPath": path, "Url": r["Url"], "HostName": tostring(host)})
    return out


def user_or_integration_change(rows: Sequence[KqlRow], now: datetime, query: str) -> list[KqlRow]:
    run, watched = let_duration(query, "runWindow"), let_list(query, "watchedTypes")
    return [
        {
            "EventType": r["EventType"],
            "Actor": extract(ACTOR, 2, r["Description"]),
            "TargetUser": extract(TARGET_USER, 2, r["Description"]),
            "Integration": extract(INTEGRATION, 1, r["Description"]),
        }
        for r in recent(rows, now, run)
        if r["EventType"] in watched
    ]


def integration_broken(rows: Sequence[KqlRow], now: datetime, query: str) -> list[KqlRow]:
    run, relay = let_duration(query, "runWindow"), let_string(query, "relaySource")
    out = []
    for r in recent(rows, now, run):
        if r["EventType"] not in ("integration_broken", "disable_integration"):
            continue
        from_relay = tostring(raw(r).get("source")) == relay
        out.append(
            {
                "EventType": r["EventType"],
                "ReportedBy": relay if from_relay else "Wallarm",
                "Integration": relay if from_relay else extract(INTEGRATION, 1, r["Description"]),
                "Actor": tostring(raw(r).get("changed_by"))
                if from_relay
                else extract(ACTOR, 2, r["Description"]),
            }
        )
    return out


def hourly_count_missing(rows: Sequence[KqlRow], now: datetime, query: str) -> list[KqlRow]:
    run, silent = let_duration(query, "runWindow"), let_duration(query, "silentFor")
    hourly = let_list(query, "hourlyTypes")
    last: dict[tuple[str, str], datetime] = {}
    for r in recent(rows, now):
        if r["EventType"] in hourly:
            key = (r["EventType"], r["ClientName"])
            last[key] = max(last.get(key, r["TimeGenerated"]), r["TimeGenerated"])
    return [
        {
            "EventType": kind,
            "Source": "wallarm-sentinel-relay" if kind == "relay_hourly_stats" else "Wallarm",
            "LastHourlyCount": at,
        }
        for (kind, _client), at in last.items()
        if now - silent - run < at <= now - silent
    ]


@dataclass(frozen=True)
class RuleModel:
    file: str
    model: Model
    fragments: tuple[str, ...]

    @property
    def path(self) -> Path:
        return RULES_DIR / self.file

    def yaml(self) -> dict[str, Any]:
        return load_yaml(self.path)

    def run(self, rows: Sequence[KqlRow], now: datetime) -> list[KqlRow]:
        return self.model(rows, now, self.yaml()["query"])


PERIOD = "| where TimeGenerated > ago(1d)"
THIS_RUN = "| where IngestedAt > ago(runWindow)"
MODELS: tuple[RuleModel, ...] = (
    RuleModel(
        "WallarmHitBurstFromOneSource.yaml",
        burst,
        (
            PERIOD,
            '| where EventType == "new_hits" and isnotempty(RemoteAddr)',
            "| where IngestedAt > ago(2 * runWindow)",
            "InThisRun = IngestedAt > ago(runWindow)",
            'tostring(Hit.block_status) in ("blocked", "blocked_by_acl")',
            "by RemoteAddr, ClientName",
            "| where Hits >= threshold and PreviousRunHits < threshold",
        ),
    ),
    RuleModel(
        "WallarmAttacksExceeded.yaml",
        attacks_exceeded,
        (
            PERIOD,
            THIS_RUN,
            '| where EventType == "attacks_exceeded"',
            f'extract(@"{EVENTS_LINK}", 1, Description)',
        ),
    ),
    RuleModel(
        "WallarmDenylistedIpKeepsAttacking.yaml",
        denylisted_ip_keeps_attacking,
        (
            PERIOD,
            '| where EventType == "ip_blocked" and isnotempty(RemoteAddr)',
            "DenylistedAt = min(TimeGenerated)",
            '| where EventType == "new_hits" and isnotempty(RemoteAddr)',
            ") on RemoteAddr",
            "| where HitTime > DenylistedAt",
            "FirstHitIngestedAt = min(HitIngestedAt)",
            "| where FirstHitIngestedAt > ago(runWindow)",
        ),
    ),
    RuleModel(
        "WallarmNewHighRiskFinding.yaml",
        new_high_risk_finding,
        (
            PERIOD,
            THIS_RUN,
            '| where EventType startswith "vuln" or EventType startswith "security_issue"',
            '| where Severity == "high"',
            "HostName = tostring(coalesce(Finding.host, Finding.domain))",
        ),
    ),
    RuleModel(
        "WallarmApiChangeOnSensitiveEndpoint.yaml",
        api_change_on_sensitive_endpoint,
        (
            PERIOD,
            THIS_RUN,
            '| where EventType == "api_structure_changed"',
            "EndpointPath = tostring(Details.endpoint_path)",
            "| where EndpointPath matches regex sensitivePath",
        ),
    ),
    RuleModel(
        "WallarmUserOrIntegrationChange.yaml",
        user_or_integration_change,
        (
            PERIOD,
            THIS_RUN,
            "| where EventType in (watchedTypes)",
            f'Actor = extract(@"{ACTOR}", 2, Description)',
            f'TargetUser = extract(@"{TARGET_USER}", 2, Description)',
            f"Integration = extract(@'{INTEGRATION}', 1, Description)",
        ),
    ),
    RuleModel(
        "WallarmIntegrationBroken.yaml",
        integration_broken,
        (
            PERIOD,
            THIS_RUN,
            '| where EventType in ("integration_broken", "disable_integration")',
            "FromRelay = tostring(Raw.source) == relaySource",
            f"extract(@'{INTEGRATION}', 1, Description)",
            f'Actor = iff(FromRelay, tostring(Raw.changed_by), extract(@"{ACTOR}", 2, Description))',
        ),
    ),
    RuleModel(
        "WallarmHourlyCountMissing.yaml",
        hourly_count_missing,
        (
            PERIOD,
            "| where EventType in (hourlyTypes)",
            "| summarize LastHourlyCount = max(TimeGenerated) by EventType, ClientName",
            "| where LastHourlyCount <= ago(silentFor) and LastHourlyCount > ago(silentFor + runWindow)",
        ),
    ),
)
MODELS_BY_FILE: dict[str, RuleModel] = {m.file: m for m in MODELS}
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
