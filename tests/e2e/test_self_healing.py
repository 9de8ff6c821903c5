"""Self-healing: auto-disable lifts itself, a blip is not an outage, a backlog on a long step
lands once the API is healthy, and idle costs nothing. Azurite and the HTTPS stand-ins throughout;
the last test runs the real worker timing (no fake clock) through a mix of outages."""

from __future__ import annotations

import logging
import statistics
import threading
import time
from datetime import timedelta

import pytest

from local.standins.azurite import Azurite
from local.standins.identity import ManagedIdentityStandIn, TokenIssuer
from local.standins.logs_ingestion import LogsIngestionStandIn

from .conftest import FakeClock, MakeServices
from .test_durable_delivery import hit_body, post, request_ids


def test_blip_of_30_minutes_never_disables_but_a_sustained_outage_does_within_the_hour(
    make_services: MakeServices, clock: FakeClock, ingestion: LogsIngestionStandIn
) -> None:
    # Defaults: 60 %, 12 h, 20 attempts, 40 min grace. One webhook a minute, like a busy tenant.
    # (A long poll keeps the test fast; the worker still wakes at each due time and probe.)
    svc = make_services(clock, RETRY_POLL_SECONDS="60")
    ingestion.set_outage(403)  # role assignment still propagating after a deploy
    for n in range(6):  # a webhook every 5 minutes; failed probes every 30 s in between
        post(svc.webhook, hit_body(n))
        svc.worker.run(timedelta(seconds=299))
        clock.advance(1)
    assert svc.admin.status()["state"] == "enabled"  # 30 min of 403: a blip, nobody paged
    ingestion.set_outage(None)
    svc.worker.run(timedelta(seconds=60))
    assert sorted(request_ids(ingestion)) == [f"req-{n:04d}" for n in range(6)]

    clock.advance(3600 * 13)  # a fresh window
    ingestion.set_outage(503)
    disabled_after = None
    for block in range(14):
        post(svc.webhook, hit_body(100 + block))
        svc.worker.run(timedelta(seconds=299))
        clock.advance(1)
        if svc.admin.status()["state"] == "auto_disabled":
            disabled_after = (block + 1) * 5
            break
    assert disabled_after is not None and 40 <= disabled_after <= 60


def test_manual_disable_is_not_lifted_by_a_healthy_probe(
    make_services: MakeServices, clock: FakeClock, ingestion: LogsIngestionStandIn
) -> None:
    svc = make_services(clock)
    svc.admin.disable("operator", "maintenance")
    post(svc.webhook, hit_body(1))
    run = svc.worker.run(timedelta(seconds=50))
    assert (run.skipped_disabled, run.probes, run.recovered) == (True, 0, False)
    assert clock.slept == []  # returns at once: the next timer run checks again
    assert svc.admin.status()["state"] == "disabled"
    assert request_ids(ingestion) == [""]  # only the disable_integration row


def test_backlog_on_a_long_step_lands_within_a_minute_of_the_api_healing(
    make_services: MakeServices, clock: FakeClock, ingestion: LogsIngestionStandIn
) -> None:
    svc = make_services(clock, AUTO_DISABLE_MIN_ATTEMPTS="100000", RETRY_POLL_SECONDS="60")
    ingestion.set_outage(503)
    for n in range(5):
        post(svc.webhook, hit_body(n))
        clock.advance(0.001)
    svc.worker.run(timedelta(minutes=40))  # entries now wait 30 min between attempts
    assert ingestion.accepted == []
    healed_at = clock()
    ingestion.set_outage(None)
    svc.worker.run(timedelta(seconds=50))
    assert sorted(request_ids(ingestion)) == [f"req-{n:04d}" for n in range(5)]  # each once
    assert clock() - healed_at <= timedelta(seconds=50)
    assert svc.worker.queue.stats().pending == 0


def test_auto_disabled_worker_probes_on_schedule_without_spinning(
    make_services: MakeServices, clock: FakeClock, ingestion: LogsIngestionStandIn
) -> None:
    svc = make_services(clock, AUTO_DISABLE_MIN_ATTEMPTS="2", AUTO_DISABLE_GRACE_MINUTES="0")
    ingestion.set_outage(503)
    post(svc.webhook, hit_body(1))
    post(svc.webhook, hit_body(2))
    assert svc.admin.status()["state"] == "auto_disabled"
    requests_before = len(ingestion.requests)
    run = svc.worker.run(timedelta(seconds=50))
    assert run.probes == 2  # at 0 s and 30 s (RECOVERY_PROBE_SECONDS)
    assert len(clock.slept) <= 3  # slept until each probe, no polling loop
    assert len(ingestion.requests) - requests_before == 2
    status = svc.admin.status()
    assert status["auto_disabled"] is True
    assert status["last_probe"]["ok"] is False and status["last_probe"]["status"] == 503
    assert status["next_probe_at"] is not None


def test_every_request_to_the_api_is_counted_successful_probes_too(
    make_services: MakeServices, clock: FakeClock, ingestion: LogsIngestionStandIn
) -> None:
    """Wallarm's rule counts requests; a successful probe is one. Before, only failed probes
    were counted, so the relay's ratio ran above the truth (found by the soak's books)."""
    svc = make_services(clock, AUTO_DISABLE_MIN_ATTEMPTS="2", AUTO_DISABLE_GRACE_MINUTES="0")
    ingestion.set_outage(503)
    post(svc.webhook, hit_body(1))
    post(svc.webhook, hit_body(2))
    assert svc.admin.status()["state"] == "auto_disabled"
    attempts_before = svc.admin.status()["failure_window"]["attempts"]
    requests_before = len(ingestion.requests)
    svc.worker.run(timedelta(seconds=40))  # two failed probes (0 s and 30 s)
    ingestion.set_outage(None)
    clock.advance(31)
    run = svc.worker.run(timedelta(seconds=5))  # a successful probe, then the queue drains
    assert run.recovered and svc.admin.status()["state"] == "enabled"
    sent = len(ingestion.requests) - requests_before
    assert svc.admin.status()["failure_window"]["attempts"] - attempts_before == sent


def test_storage_outage_backs_off_and_logs_once(
    relay_env: dict[str, str], clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    from shared.ops.services import build_services

    with Azurite() as own:
        env = {**relay_env, "RELAY_STORAGE_CONNECTION_STRING": own.connection_string}
        svc = build_services(env, clock=clock, sleep=clock.sleep)
    # Azurite is gone now: every Table call fails fast.
    with caplog.at_level(logging.WARNING, logger="shared.delivery.retry_worker"):
        run = svc.worker.run(timedelta(seconds=120))
    assert run.storage_errors >= 3
    assert clock.slept[:5] == [1.0, 2.0, 4.0, 8.0, 16.0]  # backoff, no busy loop
    storage_lines = [r for r in caplog.records if "Table Storage unavailable" in r.getMessage()]
    assert len(storage_lines) == 1  # summarised, not once per attempt


def test_outages_of_every_kind_trip_auto_disable_and_every_event_lands_once_after(
    make_services: MakeServices,
    ingestion: LogsIngestionStandIn,
    identity: ManagedIdentityStandIn,
    token_issuer: TokenIssuer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Real clock, real worker loop (as the timer runs it), webhooks arriving throughout."""
    svc = make_services(
        None,
        AUTO_DISABLE_MIN_ATTEMPTS="10",
        # Wallarm's bare ratio rule: the grace is counted in 10-minute buckets, longer than this test.
        AUTO_DISABLE_GRACE_MINUTES="0",
        RECOVERY_PROBE_SECONDS="2",
        WEBHOOK_READ_TIMEOUT_SECONDS="1",
        WEBHOOK_DELIVERY_BUDGET_SECONDS="2",
        WORKER_READ_TIMEOUT_SECONDS="1",
    )
    monkeypatch.setattr(token_issuer, "lifetime_seconds", 3)  # so a token endpoint outage bites
    stop = threading.Event()

    def timer() -> None:
        while not stop.is_set():
            svc.worker.run(timedelta(seconds=3))

    worker = threading.Thread(target=timer, daemon=True)
    worker.start()
    acked: list[str] = []
    modes: set[str] = set()
    n = 0

    def send_for(seconds: float, until_mode: str | None = None) -> None:
        nonlocal n
        end = time.monotonic() + seconds
        while time.monotonic() < end and svc.state.get().mode != until_mode:
            response = post(svc.webhook, hit_body(n))
            assert response.status in (200, 202), response.body
            acked.append(f"req-{n:04d}")
            n += 1
            modes.add(svc.state.get().mode)
            time.sleep(0.3)

    try:
        send_for(1)
        for outage, seconds in (
            (lambda: ingestion.set_outage(429, retry_after=1), 3),
            (lambda: ingestion.inject_delay(1.5, times=40, land=False), 3),
            (lambda: identity.inject(503, times=1000), 4),
            (lambda: ingestion.set_outage(403), 4),
            (lambda: ingestion.set_outage(503), 4),
            (lambda: ingestion.inject_drop(times=1000), 3),
        ):
            outage()
            send_for(seconds)
            ingestion.clear()
            identity.clear()
        ingestion.set_outage(503)
        send_for(60, until_mode="auto_disabled")  # the last outage lasts until it trips the rule
        send_for(3)  # and a little longer: these are parked
        assert svc.state.get().mode == "auto_disabled"
        waiting = set(acked) - set(request_ids(ingestion))
        healed = time.monotonic()
        ingestion.clear()
        landed_at: dict[str, float] = {}
        while time.monotonic() - healed < 120 and len(landed_at) < len(acked):
            for rid in request_ids(ingestion):
                if rid and rid not in landed_at:
                    landed_at[rid] = time.monotonic() - healed
            time.sleep(0.1)
    finally:
        stop.set()
        worker.join(timeout=30)
    delivered = [r for r in request_ids(ingestion) if r]
    assert "auto_disabled" in modes
    assert sorted(delivered) == sorted(acked)  # every acknowledged event, exactly once
    assert svc.state.get().mode == "enabled"
    types = [r["EventType"] for r in ingestion.accepted]
    assert types.count("integration_broken") >= 1 and types.count("integration_recovered") >= 1
    after_heal = [landed_at[r] for r in waiting]
    print(
        f"\nrecovery after the last outage: {len(acked)} events acked, {len(waiting)} waiting at heal, "
        f"p50 {statistics.median(after_heal):.1f} s, max {max(after_heal):.1f} s"
    )
    assert max(after_heal) < 120
