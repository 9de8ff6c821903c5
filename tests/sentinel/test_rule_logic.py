"""Every analytic rule over rows the relay itself produced from the Wallarm fixtures.

The rule logic runs as the Python models of tests/sentinel_rules.py (tied to the YAML there);
each test says which fixture rows fire, which do not, and that a second run stays silent.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sentinel_rules import MODELS, MODELS_BY_FILE, NOW, KqlRow, firing_rows, fixture_rows, hits_from, kql_row
from sentinel_schema import duration, rule_files
from wallarm_fixtures import ALL_FIXTURES

from shared.health.relay_rows import disable_integration_row, hourly_stats_row, integration_broken_row
from shared.intake.mapping import SYSTEM_SEVERITY

MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def fired(file: str, rows: list[KqlRow], now: datetime = NOW) -> list[KqlRow]:
    return MODELS_BY_FILE[file].run(rows, now)


def rows_of(*names: str, at: datetime = NOW - 10 * MIN) -> list[KqlRow]:
    """Fixture rows received at `at` and ingested a minute later."""
    return [r for n in names for r in fixture_rows(n, received_at=at, ingested_at=at + MIN)]


# ---- every rule is modelled, and the model is tied to the YAML -----------------------------------


def test_every_rule_has_a_model() -> None:
    assert sorted(MODELS_BY_FILE) == sorted(p.name for p in rule_files())


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.path.stem)
def test_every_rule_fires_once_in_the_firing_workspace(model: Any) -> None:
    rows = firing_rows(NOW)
    frequency = duration(model.yaml()["queryFrequency"])
    assert frequency is not None
    assert len(model.run(rows, NOW)) >= 1
    assert model.run(rows, NOW + frequency) == []


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.path.stem)
def test_model_filters_appear_in_the_query(model: Any) -> None:
    query = model.yaml()["query"]
    missing = [f for f in model.fragments if f not in query]
    assert missing == []


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.path.stem)
def test_run_window_is_the_query_frequency(model: Any) -> None:
    """Windows aligned to queryFrequency are what makes each row alert in exactly one run."""
    doc = model.yaml()
    assert duration(doc["queryFrequency"]) == duration(
        model.yaml()["query"].split("let runWindow = ")[1].split(";")[0]
    )
    assert duration(doc["queryPeriod"]) == timedelta(days=1)
    assert doc["eventGroupingSettings"]["aggregationKind"] == "AlertPerResult"


def entity_columns(file: str) -> set[str]:
    doc = MODELS_BY_FILE[file].yaml()
    return {f["columnName"] for m in doc["entityMappings"] for f in m["fieldMappings"]}


def assert_entities(file: str, results: list[KqlRow], *, may_be_empty: frozenset[str] = frozenset()) -> None:
    """The model yields every column the YAML maps to an entity, filled on these rows."""
    for result in results:
        for column in entity_columns(file):
            assert column in result, (file, column)
            assert result[column] or column in may_be_empty, (file, column, result)


# ---- a burst of hits from one source ------------------------------------------------------------

BURST = "WallarmHitBurstFromOneSource.yaml"


def test_burst_fires_once_per_burst_with_blocked_split() -> None:
    rows = hits_from("8.8.8.8", 60, NOW - 10 * MIN) + hits_from(
        "8.8.8.8", 40, NOW - 8 * MIN, fixture="new_hits_blocked"
    )
    (alert,) = fired(BURST, rows)
    assert (alert["RemoteAddr"], alert["Hits"], alert["BlockedHits"], alert["UnblockedHits"]) == (
        "8.8.8.8",
        100,
        40,
        60,
    )
    assert alert["TopUrl"].startswith("example.com/") and alert["HostName"] == "example.com"
    assert_entities(BURST, [alert])
    # The burst goes on through the next run: the source was over the threshold last run, no new alert.
    later = rows + hits_from("8.8.8.8", 150, NOW + 5 * MIN)
    assert fired(BURST, later, NOW + 15 * MIN) == []
    # A run later with no new hits: nothing; after a quiet run, a new burst alerts again.
    assert fired(BURST, later, NOW + 30 * MIN) == []
    again = later + hits_from("8.8.8.8", 100, NOW + 50 * MIN)
    assert len(fired(BURST, again, NOW + 60 * MIN)) == 1


def test_burst_needs_the_threshold_from_one_source() -> None:
    rows = hits_from("8.8.8.8", 99, NOW - 10 * MIN) + hits_from("9.9.9.9", 99, NOW - 10 * MIN)
    assert fired(BURST, rows) == []
    assert fired(BURST, rows_of("new_hits", "new_hits_blocked", "new_hits_legacy")) == []


def test_burst_counts_late_rows_by_ingestion_time() -> None:
    """Hits retried from the relay's queue arrive late: counted in the run that ingests them."""
    late = [{**r, "IngestedAt": NOW - 2 * MIN} for r in hits_from("8.8.8.8", 100, NOW - 5 * HOUR)]
    assert len(fired(BURST, late)) == 1
    assert fired(BURST, late, NOW + 15 * MIN) == []


# ---- attacks_exceeded ---------------------------------------------------------------------------

EXCEEDED = "WallarmAttacksExceeded.yaml"


def test_attacks_exceeded_fires_once_per_notification() -> None:
    rows = rows_of("attacks_exceeded", "new_hits", "ip_blocked", "vuln_high")
    (alert,) = fired(EXCEEDED, rows)
    assert alert["TriggerName"] == "Notification about SQLi hits"
    assert alert["EventsLink"].startswith("https://my.wallarm.com/attacks?q=attacks")
    assert_entities(EXCEEDED, [alert])
    assert fired(EXCEEDED, rows, NOW + HOUR) == []


# ---- denylisted IP keeps attacking -------------------------------------------------------------

DENYLISTED = "WallarmDenylistedIpKeepsAttacking.yaml"


def test_denylisted_ip_with_later_hits_fires_once() -> None:
    blocked = rows_of("ip_blocked", at=NOW - 50 * MIN)
    assert blocked[0]["RemoteAddr"] == "1.1.1.1"
    before = hits_from("1.1.1.1", 5, NOW - 55 * MIN)
    assert fired(DENYLISTED, blocked + before) == []
    after = hits_from("1.1.1.1", 3, NOW - 30 * MIN)
    (alert,) = fired(DENYLISTED, blocked + before + after)
    assert (alert["RemoteAddr"], alert["HitsAfterDenylisting"]) == ("1.1.1.1", 3)
    assert_entities(DENYLISTED, [alert])
    more = blocked + before + after + hits_from("1.1.1.1", 10, NOW + 20 * MIN)
    assert fired(DENYLISTED, more, NOW + HOUR) == []


def test_denylisted_ip_without_hits_or_other_sources_stays_silent() -> None:
    rows = rows_of("ip_blocked", "bare_object", at=NOW - 50 * MIN) + hits_from("8.8.8.8", 5, NOW - 20 * MIN)
    assert fired(DENYLISTED, rows) == []


# ---- high or critical findings ------------------------------------------------------------------

FINDING = "WallarmNewHighRiskFinding.yaml"
FINDING_FIXTURES = (
    "vuln_high",
    "vuln_medium",
    "vuln_low",
    "vuln_legacy",
    "security_issue_critical",
    "security_issue_high",
    "security_issue_medium",
    "security_issue_low",
    "security_issue_info",
)


def test_new_high_risk_findings_fire_on_high_and_critical_only() -> None:
    alerts = fired(FINDING, rows_of(*FINDING_FIXTURES, "new_hits", "integration_broken"))
    assert sorted(a["Risk"] for a in alerts) == ["Critical", "High", "High"]
    assert_entities(FINDING, alerts)
    assert fired(FINDING, rows_of(*FINDING_FIXTURES), NOW + HOUR) == []


def test_finding_rule_reads_security_issue_rows_whatever_their_event_type_name() -> None:
    """Security issues are `security_issue` (FACTS.md) or `security_issue_<risk>`: both match."""
    rows = rows_of("security_issue_critical", "security_issue_medium")
    renamed = [{**r, "EventType": "security_issue"} for r in rows]
    assert [a["Risk"] for a in fired(FINDING, renamed)] == ["Critical"]


# ---- API structure changes on sensitive endpoints ----------------------------------------------

API = "WallarmApiChangeOnSensitiveEndpoint.yaml"


def test_api_change_fires_on_sensitive_endpoint_only() -> None:
    (alert,) = fired(API, rows_of("api_structure_changed"))
    assert alert["EndpointPath"] == "/users" and alert["HostName"] == "example.com"
    assert_entities(API, [alert])

    def static(body: Any) -> Any:
        body[0]["details"]["endpoint_path"] = "/static/logo.png"
        return body

    rows = fixture_rows(
        "api_structure_changed", received_at=NOW - 5 * MIN, ingested_at=NOW - 4 * MIN, edit=static
    )
    assert fired(API, rows) == []
    assert fired(API, rows_of("api_structure_changed"), NOW + HOUR) == []


# ---- user or integration change ----------------------------------------------------------------

CHANGE = "WallarmUserOrIntegrationChange.yaml"
SYSTEM_FIXTURES = tuple(f.name for f in ALL_FIXTURES if f.event_type in SYSTEM_SEVERITY)


def test_user_and_integration_changes_fire_with_actor_and_user() -> None:
    alerts = {a["EventType"]: a for a in fired(CHANGE, rows_of(*SYSTEM_FIXTURES))}
    assert sorted(alerts) == ["create_user", "delete_integration", "delete_user", "update_user"]
    assert {a["Actor"] for a in alerts.values()} == {"johndoe@example.com"}
    for kind in ("create_user", "update_user", "delete_user"):
        assert alerts[kind]["TargetUser"] == "johnsmith@example.com"
    assert alerts["delete_integration"]["Integration"] == "Sentinel relay"
    assert_entities(CHANGE, list(alerts.values()), may_be_empty=frozenset({"TargetUser", "Integration"}))
    assert fired(CHANGE, rows_of(*SYSTEM_FIXTURES), NOW + HOUR) == []


# ---- integration broken or disabled (Wallarm's and the relay's own) ----------------------------

BROKEN = "WallarmIntegrationBroken.yaml"


def test_integration_broken_fires_for_wallarm_and_relay_rows() -> None:
    at = NOW - 20 * MIN
    relay = [
        kql_row(integration_broken_row(at, attempts=40, failures=30, window_hours=12), at + MIN),
        kql_row(disable_integration_row(at, by="admin@example.com", reason="maintenance"), at + MIN),
    ]
    rows = rows_of(*SYSTEM_FIXTURES) + relay
    alerts = sorted(fired(BROKEN, rows), key=lambda a: (a["ReportedBy"], a["EventType"]))
    assert [(a["ReportedBy"], a["EventType"]) for a in alerts] == [
        ("Wallarm", "disable_integration"),
        ("Wallarm", "integration_broken"),
        ("wallarm-sentinel-relay", "disable_integration"),
        ("wallarm-sentinel-relay", "integration_broken"),
    ]
    assert alerts[0]["Actor"] == "johndoe@example.com" and alerts[0]["Integration"] == "Sentinel relay"
    assert alerts[2]["Actor"] == "admin@example.com"
    assert_entities(BROKEN, alerts, may_be_empty=frozenset({"Actor"}))
    assert fired(BROKEN, rows, NOW + HOUR) == []


# ---- the hourly count is missing: data has stopped ----------------------------------------------

HOURLY = "WallarmHourlyCountMissing.yaml"


def hourly_rows(last_hour: datetime, hours: int) -> list[KqlRow]:
    """The relay's hourly rows for `hours` hours up to `last_hour`, each sent just after its hour."""
    counts = {"received": 10, "delivered": 10}
    starts = [last_hour - i * HOUR for i in range(hours)]
    return [kql_row(hourly_stats_row(s, counts), s + HOUR + 2 * MIN) for s in starts]


def test_missing_hourly_count_fires_once_per_outage() -> None:
    rows = hourly_rows(NOW.replace(hour=8), 6)  # last row: the 08:00 hour, sent ~09:02
    runs = [NOW.replace(hour=h, minute=30) for h in range(9, 15)]
    alerts = {run.hour: fired(HOURLY, rows, run) for run in runs}
    assert {h: len(a) for h, a in alerts.items()} == {9: 0, 10: 0, 11: 1, 12: 0, 13: 0, 14: 0}
    (alert,) = alerts[11]
    assert alert["Source"] == "wallarm-sentinel-relay"
    assert_entities(HOURLY, [alert])


def test_hourly_count_arriving_keeps_the_rule_silent() -> None:
    run = NOW.replace(minute=59)
    rows = hourly_rows(run.replace(minute=0) - 2 * HOUR, 12)  # worst case: the 10:00 row at 11:59
    assert fired(HOURLY, rows, run) == []


def test_missing_wallarm_hourly_notification_fires_too() -> None:
    rows = rows_of("number_of_requests_per_hour", at=NOW - 3 * HOUR - 20 * MIN)
    rows += hourly_rows(NOW.replace(hour=10), 3)
    (alert,) = fired(HOURLY, rows)
    assert (alert["EventType"], alert["Source"]) == ("number_of_requests_per_hour", "Wallarm")
