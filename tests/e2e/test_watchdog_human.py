"""Issue 19, findings 7 and 8: the watchdog never fights a person, and a malformed answer never
stops the timer.

Real parts: the relay from the composition root, Azurite, the HTTPS ingestion and query stand-ins,
and the Wallarm Cloud stand-in delivering to the relay's webhook handler (a wrong secret makes the
relay refuse, which Wallarm's rule counts and which then disables the integration).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from local.standins.logs_ingestion import LogsIngestionStandIn
from local.standins.wallarm_api import Fault, Hit, WallarmApiStandIn, WebhookIntegration
from shared.ops.services import Services

from .conftest import ADMIN_TOKEN, INDEX, SECRET, WRONG, FakeClock, WallarmRelay

Start = Callable[..., Services]


@pytest.fixture
def start(wallarm_relay: WallarmRelay) -> Start:
    # One look adds missing hits here: the second look (RECONCILE_CONFIRM_MINUTES) has its own tests.
    return lambda **extra: wallarm_relay(flush=True, **{"RECONCILE_CONFIRM_MINUTES": "0", **extra})


@pytest.fixture
def integration(integration: WebhookIntegration, wallarm: WallarmApiStandIn) -> WebhookIntegration:
    """The shared integration, under Wallarm's real disable rule (ten failed attempts)."""
    wallarm.disable_min_attempts = 10
    return integration


def traffic(clock: FakeClock, wallarm: WallarmApiStandIn, n: int, tag: str) -> None:
    """`n` hits delivered one by one, a minute apart."""
    now = int(clock().timestamp())
    for i in range(n):
        wallarm.add_hit(Hit(INDEX, f"{tag}{i}", f"req-{tag}{i}", now + 60 * i))
    clock.advance(60 * n)
    wallarm.deliver()


def broken_secret(clock: FakeClock, wallarm: WallarmApiStandIn, integration: WebhookIntegration) -> None:
    """The relay's secret rotated without Wallarm being told: Wallarm's rule disables it."""
    integration.headers = {"X-Wallarm-Relay-Secret": WRONG}
    now = int(clock().timestamp())
    for i in range(8):
        wallarm.add_hit(Hit(INDEX, f"lost{now}-{i}", f"req-lost{now}-{i}", now + i))
    clock.advance(60)
    for _ in range(3):
        wallarm.deliver()
        clock.advance(60)
    assert not integration.active, "the stand-in's 60 % rule should have disabled it"


def hourly(svc: Services, clock: FakeClock) -> dict[str, object]:
    clock.advance(3600)
    result: dict[str, object] = svc.completeness.watchdog.run()["integration"]
    return result


def puts(wallarm: WallarmApiStandIn) -> int:
    return sum(1 for method, path, _ in wallarm.requests if method == "PUT")


# -- finding 7 ----------------------------------------------------------------------------------
def healthy_then_broken(
    start: Start, clock: FakeClock, wallarm: WallarmApiStandIn, integration: WebhookIntegration
) -> Services:
    """The relay with WATCHDOG_REENABLE on, seen healthy; then Wallarm's rule disables the integration."""
    svc = start(WATCHDOG_REENABLE="true")
    assert hourly(svc, clock)["problem"] is None
    broken_secret(clock, wallarm, integration)
    return svc


def test_a_person_disabling_it_every_hour_is_never_undone(
    start: Start, clock: FakeClock, wallarm: WallarmApiStandIn, integration: WebhookIntegration
) -> None:
    svc = start(WATCHDOG_REENABLE="true")
    assert hourly(svc, clock)["problem"] is None  # seen healthy, pointing here
    for hour in range(3):
        traffic(clock, wallarm, 3, f"h{hour}-")  # the relay answers Wallarm normally
        integration.active = False  # a person disables it
        result = hourly(svc, clock)
        assert str(result["reenabled"]).startswith("skipped: disabled while the relay answered Wallarm")
        assert not integration.active
        integration.active = True  # ... and turns it on again by hand later
        assert hourly(svc, clock)["problem"] is None
    assert puts(wallarm) == 0


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"url": "https://other-siem.example.com/ingest"}, "it does not point at this relay"),
        ({"events": {"siem": False, "system": True}}, "events"),
        ({"name": "Splunk"}, "name"),
        ({"format": "jsonl"}, "format"),
    ],
)
def test_an_integration_edited_while_disabled_is_left_alone_even_after_failures(
    start: Start,
    clock: FakeClock,
    wallarm: WallarmApiStandIn,
    integration: WebhookIntegration,
    change: dict[str, object],
    named: str,
) -> None:
    """An admin pointed it at another SIEM (or changed what it sends) and disabled it: found by
    its old id, it is reported, never re-enabled, even though the relay saw failures before."""
    svc = healthy_then_broken(start, clock, wallarm, integration)
    for name, value in change.items():
        setattr(integration, name, value)
    for _ in range(2):
        result = hourly(svc, clock)
        assert result["integration_id"] == integration.id and named in str(result["reenabled"])
    assert not integration.active and puts(wallarm) == 0


def test_an_automatic_disable_is_undone_once_and_a_person_undoing_that_is_held(
    start: Start,
    clock: FakeClock,
    wallarm: WallarmApiStandIn,
    integration: WebhookIntegration,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    svc = healthy_then_broken(start, clock, wallarm, integration)
    integration.headers = {"X-Wallarm-Relay-Secret": SECRET}  # the cause is fixed
    assert hourly(svc, clock)["reenabled"] == "reenabled" and integration.active
    traffic(clock, wallarm, 2, "after-")  # answered normally
    integration.active = False  # a person undoes the re-enable
    assert str(hourly(svc, clock)["reenabled"]).startswith("skipped: disabled again after the relay")
    for _ in range(2):
        assert str(hourly(svc, clock)["reenabled"]).startswith("skipped: held since")
    # Held: even new failures (Wallarm's rule in a later episode) do not start a fight.
    integration.active = True
    broken_secret(clock, wallarm, integration)
    integration.headers = {"X-Wallarm-Relay-Secret": SECRET}
    assert str(hourly(svc, clock)["reenabled"]).startswith("skipped: held since")
    assert puts(wallarm) == 1

    # A setting says otherwise: one run with WATCHDOG_REENABLE off lifts the hold.
    off = start(WATCHDOG_REENABLE="false")
    off.completeness.watchdog.run()
    svc = start(WATCHDOG_REENABLE="true")
    assert hourly(svc, clock)["reenabled"] == "reenabled" and puts(wallarm) == 2

    messages = [r.getMessage() for r in caplog.records if r.name == "shared.completeness.watchdog"]
    assert any("held" in m for m in messages) and any("lifted" in m for m in messages)
    for secret in (SECRET, WRONG, ADMIN_TOKEN, "function-key", "relay.example.net"):
        assert not any(secret in m for m in messages)


def test_an_operators_enable_after_the_hold_lifts_it(
    start: Start, clock: FakeClock, wallarm: WallarmApiStandIn, integration: WebhookIntegration
) -> None:
    svc = healthy_then_broken(start, clock, wallarm, integration)
    integration.headers = {"X-Wallarm-Relay-Secret": SECRET}
    assert hourly(svc, clock)["reenabled"] == "reenabled"
    integration.active = False
    assert str(hourly(svc, clock)["reenabled"]).startswith("skipped: disabled again")
    clock.advance(60)
    svc.admin.disable("operator@example.com", "checking the integration")
    svc.admin.enable("operator@example.com")
    integration.active = True
    broken_secret(clock, wallarm, integration)  # a new automatic disable, judged afresh
    assert hourly(svc, clock)["reenabled"] == "reenabled" and puts(wallarm) == 2


def test_a_repeated_automatic_disable_is_undone_at_most_hourly(
    start: Start, clock: FakeClock, wallarm: WallarmApiStandIn, integration: WebhookIntegration
) -> None:
    svc = healthy_then_broken(start, clock, wallarm, integration)
    assert hourly(svc, clock)["reenabled"] == "reenabled"
    broken_secret(clock, wallarm, integration)  # not fixed: Wallarm's rule again, failures seen
    clock.advance(600)
    result = svc.completeness.watchdog.run()["integration"]
    assert result["reenabled"] == "skipped: re-enabled less than an hour ago"
    assert hourly(svc, clock)["reenabled"] == "reenabled" and puts(wallarm) == 2


def test_silence_is_not_evidence_of_an_automatic_disable(
    start: Start, clock: FakeClock, wallarm: WallarmApiStandIn, integration: WebhookIntegration
) -> None:
    """Disabled with no request reaching the relay: an outage the relay never saw and a person on
    a quiet night look the same, so it is left alone (and reported)."""
    svc = start(WATCHDOG_REENABLE="true")
    assert hourly(svc, clock)["problem"] is None
    integration.active = False
    result = hourly(svc, clock)
    assert result["problem"] == "disabled" and "0 of 0 requests" in str(result["reenabled"])
    assert puts(wallarm) == 0


# -- finding 8 ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "malformed",
    [{"id": "abc"}, {"id": 99, "events": 5}, {"id": 98, "target": [1]}, {"id": 97, "active": "true"}],
)
def test_one_malformed_integration_does_not_stop_the_timer(
    start: Start,
    clock: FakeClock,
    wallarm: WallarmApiStandIn,
    integration: WebhookIntegration,
    malformed: dict[str, object],
) -> None:
    svc = start()
    good = integration.api_view()
    wallarm.extra_integrations = [{**good, **malformed}]
    wallarm.add_hit(Hit(INDEX, "missed", "req-missed", int(clock().timestamp()) + 60), notify=False)
    clock.now = clock().replace(hour=13, minute=40)
    out = svc.completeness.run_timer()
    assert out["watchdog"]["integration"]["checked"] is True
    assert out["watchdog"]["integration"]["integration_id"] == integration.id
    window = next(w for w in out["reconciled"] if w["start"] == "2026-11-25T12:00:00.000Z")
    assert window["added"] == 1


@pytest.mark.parametrize("body", [b"not json", b"[" * 100_000, b'{"status":200,"body":{"object":5}}'])
@pytest.mark.usefixtures("integration")
def test_a_malformed_integration_list_skips_the_check_and_reconciliation_still_runs(
    start: Start, clock: FakeClock, wallarm: WallarmApiStandIn, body: bytes
) -> None:
    svc = start()
    wallarm.inject_fault(Fault("raw", body=body, path="/v2/integration"))
    clock.now = clock().replace(hour=13, minute=40)
    out = svc.completeness.run_timer()
    assert out["watchdog"]["integration"]["checked"] is False
    assert out["reconciled"] and all(w["status"] == "ok" for w in out["reconciled"])


def test_only_malformed_integrations_are_not_reported_missing(
    start: Start, wallarm: WallarmApiStandIn, integration: WebhookIntegration, ingestion: LogsIngestionStandIn
) -> None:
    svc = start()
    assert svc.completeness.watchdog.run()["integration"]["problem"] is None
    wallarm.integrations.clear()
    wallarm.extra_integrations = [{**integration.api_view(), "id": "abc"}]
    result = svc.completeness.watchdog.run()["integration"]
    assert result["checked"] is False and "malformed" in result["error"]
    assert not [r for r in ingestion.accepted if r["EventType"] == "relay_integration_changed"]


@pytest.mark.usefixtures("integration")
def test_malformed_hits_in_a_page_are_skipped_and_the_rest_reconciled(
    start: Start, clock: FakeClock, wallarm: WallarmApiStandIn, ingestion: LogsIngestionStandIn
) -> None:
    import json

    svc = start()
    assert svc.completeness.reconciler is not None
    good = Hit(INDEX, "good", "req-good", int(clock().timestamp()) + 60).api_view(wallarm.client_id)
    typed = {"id": [INDEX, "typed"], "time": "abc", "ip": 5, "poolid": {"x": 1}, "request_id": ["x"]}
    page = [5, None, "x", {"id": "abc"}, typed, good]
    body = json.dumps({"status": 200, "body": page}).encode()
    wallarm.inject_fault(Fault("raw", body=body, path="/v1/objects/hit"))
    clock.now = clock().replace(hour=13, minute=40)
    windows = svc.completeness.reconciler.run_due()
    assert windows and all(w.status == "ok" for w in windows)
    assert sum(w.added for w in windows) == 2  # the good hit and the wrongly typed one with an id
    added = {json.loads(r["RawData"])["details"]["hit"]["id"][1] for r in ingestion.accepted}
    assert {"good", "typed"} <= added
