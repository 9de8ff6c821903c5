"""Content works on rows from Wallarm's native integration: the same notifications, written the
native way (tests/wallarm_native.py) or by the relay (shared.intake.mapping), give the same alerts from
every analytic rule, the same hunting results and the same ASIM rows, through WallarmEvents.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sentinel_checks import asim
from sentinel_rules import MODELS, NOW, KqlRow, epoch, fixture_rows, kql_row
from wallarm_native import native_rows

MIN = timedelta(minutes=1)
Builder = Callable[..., list[KqlRow]]


def relay(name: str, at: datetime, edit: Any = None) -> list[KqlRow]:
    return fixture_rows(name, received_at=at, ingested_at=at + MIN, edit=edit)


def native(name: str, at: datetime, edit: Any = None) -> list[KqlRow]:
    return [kql_row(r, at + MIN) for r in native_rows(name, at, edit)]


def hits(build: Builder, addr: str, count: int, at: datetime) -> list[KqlRow]:
    def edit(body: Any) -> Any:
        event = body[0]
        out = []
        for i in range(count):
            clone = json.loads(json.dumps(event))
            clone["details"]["hit"].update(
                remote_addr4=addr, request_time=epoch(at), request_id=f"req-{addr}-{i}"
            )
            out.append(clone)
        return out

    return build("new_hits", at, edit)


def workspace(build: Builder) -> list[KqlRow]:
    """The firing workspace of test_rule_logic, with Wallarm's own hourly notification (the
    native path has no relay_hourly_stats rows)."""
    rows = hits(build, "8.8.8.8", 100, NOW - 10 * MIN)
    rows += build("ip_blocked", NOW - 50 * MIN)
    rows += hits(build, "1.1.1.1", 3, NOW - 30 * MIN)
    for name in (
        "attacks_exceeded",
        "vuln_high",
        "vuln_low",
        "security_issue_critical",
        "security_issue_low",
    ):
        rows += build(name, NOW - 10 * MIN)
    for name in (
        "api_structure_changed",
        "create_user",
        "update_user",
        "delete_integration",
        "integration_broken",
    ):
        rows += build(name, NOW - 10 * MIN)
    rows += build(
        "number_of_requests_per_hour", NOW.replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    )
    return rows


def comparable(alerts: list[KqlRow]) -> list[dict[str, Any]]:
    """Alerts with their times dropped (native rows carry the send time, relay rows the event time)."""
    times = {"TimeGenerated", "FirstHit", "LastHit", "DenylistedAt", "FirstHitIngestedAt", "IngestedAt"}
    return sorted(({k: v for k, v in a.items() if k not in times} for a in alerts), key=repr)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.path.stem)
def test_every_rule_gives_the_same_alerts_on_native_rows(model: Any) -> None:
    relay_alerts = model.run(workspace(relay), NOW)
    native_alerts = model.run(workspace(native), NOW)
    assert relay_alerts, "the rule must fire in this workspace"
    assert comparable(native_alerts) == comparable(relay_alerts)


def test_native_rows_have_the_eleven_columns_and_wallarm_event_types() -> None:
    from shared.schema import COLUMNS

    rows = [
        r
        for name in ("new_hits", "vuln_medium", "security_issue_info", "ip_blocked")
        for r in native_rows(name, NOW)
    ]
    assert all(list(r) == list(COLUMNS) for r in rows)
    assert {r["EventType"] for r in rows} == {"new_hits", "vuln_medium", "security_issue", "ip_blocked"}
    hit = native_rows("new_hits", NOW)[0]
    assert hit["Url"].startswith("/") and hit["RemoteAddr"] and json.loads(hit["RawData"])["details"]["hit"]


def test_wallarm_events_completes_native_url_and_address() -> None:
    """The completion the models apply is in WallarmEvents' query."""
    from sentinel_rules import NORMALIZE_FRAGMENTS
    from sentinel_schema import PARSERS_DIR, load_yaml

    query = load_yaml(PARSERS_DIR / "WallarmEvents.yaml")["FunctionQuery"]
    assert [f for f in NORMALIZE_FRAGMENTS if f not in query] == []
    hit = native(("new_hits"), NOW)[0]
    assert hit["Url"] == relay("new_hits", NOW)[0]["Url"]
    blocked = native("ip_blocked", NOW)[0]
    assert blocked["RemoteAddr"] == relay("ip_blocked", NOW)[0]["RemoteAddr"] != ""


# ---- hunting queries (Python models, tied to the YAML by their filter fragments) ----------------

WEEK = timedelta(days=7)
BLOCKED = ("blocked", "blocked_by_acl")


def hit_of(row: KqlRow) -> dict[str, Any]:
    raw = json.loads(row["RawData"] or "{}")
    hit = (raw.get("details") or {}).get("hit")
    return hit if isinstance(hit, dict) and hit else raw


def high_severity(rows: list[KqlRow]) -> list[dict[str, Any]]:
    keep = ("EventType", "ClientName", "Summary", "Url", "RemoteAddr", "RequestId")
    return [
        {k: r[k] for k in keep} for r in rows if r["TimeGenerated"] > NOW - WEEK and r["Severity"] == "high"
    ]


def hits_by_source(rows: list[KqlRow]) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["EventType"] == "new_hits" and r["RemoteAddr"] and r["TimeGenerated"] > NOW - WEEK:
            g = out.setdefault(
                r["RemoteAddr"], {"Hits": 0, "BlockedHits": 0, "AttackTypes": set(), "Urls": set()}
            )
            g["Hits"] += 1
            g["BlockedHits"] += str(hit_of(r).get("block_status")) in BLOCKED
            g["AttackTypes"].add(str(hit_of(r).get("type")))
            g["Urls"].add(r["Url"])
    return out


def unblocked_by_target(rows: list[KqlRow]) -> dict[tuple[str, str], Any]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        hit = hit_of(r)
        if (
            r["EventType"] == "new_hits"
            and r["TimeGenerated"] > NOW - WEEK
            and str(hit.get("block_status")) not in BLOCKED
        ):
            g = out.setdefault(
                (r["Url"], str(hit.get("type"))), {"Hits": 0, "Sources": set(), "Statuses": set()}
            )
            g["Hits"] += 1
            g["Sources"].add(r["RemoteAddr"])
            g["Statuses"].add(str(hit.get("response_status")))
    return out


HUNTING = {
    "WallarmHighSeverityEvents.yaml": (high_severity, ['| where Severity == "high"']),
    "WallarmHitsBySourceIp.yaml": (
        hits_by_source,
        ['EventType == "new_hits" and isnotempty(RemoteAddr)', "by RemoteAddr"],
    ),
    "WallarmUnblockedHitsByTarget.yaml": (
        unblocked_by_target,
        ['| where tostring(Hit.block_status) !in ("blocked", "blocked_by_acl")', "by Url, AttackType"],
    ),
}


@pytest.mark.parametrize("name", sorted(HUNTING))
def test_every_hunting_query_gives_the_same_results_on_native_rows(name: str) -> None:
    from sentinel_schema import HUNTING_DIR, load_yaml

    model, fragments = HUNTING[name]
    query = load_yaml(HUNTING_DIR / name)["query"]
    assert [f for f in fragments if f not in query] == []
    relay_result, native_result = model(workspace(relay)), model(workspace(native))
    assert relay_result
    if isinstance(relay_result, list):
        relay_result, native_result = sorted(relay_result, key=repr), sorted(native_result, key=repr)
    assert native_result == relay_result


# ---- the ASIM parser, and Microsoft's ASIM data tester on its rows ------------------------------


SEVERITY = {"high": "High", "medium": "Medium", "low": "Low"}


def web_session(row: KqlRow) -> dict[str, Any]:
    """vimWebSessionWallarm's output columns the data tester reads (model tied by PARSER_FRAGMENTS)."""
    hit = hit_of(row)
    host = str(hit.get("host") or hit.get("domain") or "")
    blocked = str(hit.get("block_status")) in BLOCKED
    url = row["Url"] if not host or row["Url"].startswith(host) else host + row["Url"]
    host_only = host.split(":")[0]
    is_ip = asim._ip(host_only)
    status = str(hit.get("response_status") or "")
    return {
        "EventVendor": "Wallarm", "EventProduct": "Wallarm", "EventSchema": "WebSession",
        "EventSchemaVersion": "0.2.7",
        "EventType": "HTTPsession", "EventCount": 1, "EventResult": "Failure" if blocked else "Success",
        "EventResultDetails": status, "HttpStatusCode": status,
        "EventSeverity": SEVERITY.get(row["Severity"], "Informational"),
        "SrcIpAddr": row["RemoteAddr"], "IpAddr": row["RemoteAddr"], "Src": row["RemoteAddr"],
        "SrcPortNumber": hit.get("remote_port"), "SrcGeoCountry": str(hit.get("remote_country") or ""),
        "HttpRequestMethod": str(hit.get("method") or "").upper(), "Url": url,
        "DvcAction": "Deny" if blocked else "Allow",
        "Dvc": "Wallarm", "ThreatCategory": str(hit.get("type") or ""), "Rule": str(hit.get("type") or ""),
        "Dst": host_only, "DstIpAddr": host_only if is_ip else "",
        "DstFQDN": host_only if not is_ip and "." in host_only else "",
        "DstHostname": "" if is_ip else host_only.split(".")[0],
        "DstDomain": host_only.split(".", 1)[1] if not is_ip and "." in host_only else "",
        "Hostname": "" if is_ip else host_only.split(".")[0],
        "DstDomainType": "FQDN" if not is_ip and "." in host_only else "",
    }  # fmt: skip


PARSER_FRAGMENTS = (
    'EventSchemaVersion = "0.2.7"',
    'EventType = "HTTPsession"',
    'DvcAction = iff(BlockStatus in ("blocked", "blocked_by_acl"), "Deny", "Allow")',
    'EventResult = iff(BlockStatus in ("blocked", "blocked_by_acl"), "Failure", "Success")',
    "Dst = HostOnly",
    "Hostname = DstHostname",
    'DstDomainType = iff(isnotempty(DstDomain), "FQDN", "")',
    "Url = iff(isnotempty(HttpHost) and not(Url startswith HttpHost), strcat(HttpHost, Url), Url)",
)


def asim_rows(build: Builder) -> list[dict[str, Any]]:
    return [web_session(r) for r in workspace(build) if r["EventType"] == "new_hits"]


def test_asim_parser_rows_pass_microsofts_data_tester_on_both_paths() -> None:
    from sentinel_checks.core import ADDITIONS, Solution
    from sentinel_checks.kql import FROM_KQL, KQL_TESTS
    from sentinel_schema import PARSERS_DIR, SENTINEL, load_yaml

    query = load_yaml(PARSERS_DIR / "vimWebSessionWallarm.yaml")["FunctionQuery"]
    assert [f for f in PARSER_FRAGMENTS if f not in query] == []
    declared = json.loads(
        (ADDITIONS / KQL_TESTS / "CustomFunctions" / "vimWebSessionWallarm.json").read_text()
    )
    to_kql = {v: k for k, v in FROM_KQL.items()}
    columns = {c["Name"]: to_kql[c["Type"]] for c in declared["FunctionResultColumns"]}
    assert set(web_session(workspace(relay)[0])) <= set(columns)
    table = asim.fields("WebSession", asim.additions_csv(Solution(SENTINEL)))
    typed = {k: "int" if k in ("EventCount", "SrcPortNumber") else "string" for k in columns}
    relay_rows, native_rows_ = asim_rows(relay), asim_rows(native)
    assert native_rows_ == relay_rows
    errors = [r for r in asim.data_results(relay_rows, typed, table) if r.startswith("(0)")]
    assert errors == []
    assert all(columns[k] == typed[k] for k in web_session(workspace(relay)[0]))
