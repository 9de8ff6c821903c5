"""Durable delivery end to end: Azurite for state, the HTTPS stand-ins for Azure, a fake clock.

Each test drives the same objects Azure runs (build_services), injecting faults on the stand-ins.
"""

from __future__ import annotations

import gzip
import json
import threading
from datetime import timedelta

import pytest
from azure.data.tables import TableServiceClient
from wallarm_fixtures import load_fixture

from local.standins.logs_ingestion import LogsIngestionStandIn
from shared.delivery.policy import DEFAULT_SCHEDULE
from shared.intake.webhook import WebhookRequest, WebhookResponse
from shared.store.dedup import DedupKeys

from .conftest import FakeClock, MakeServices

JSON_HEADERS = {"content-type": "application/json"}


def hit_body(n: int) -> bytes:
    """A distinct one-hit webhook body; RequestId carries n so order and uniqueness are checkable."""
    body = json.loads(load_fixture("new_hits"))[:1]
    body[0]["details"]["hit"]["request_id"] = f"req-{n:04d}"
    return json.dumps(body).encode()


def post(svc_webhook: object, body: bytes) -> WebhookResponse:
    from shared.intake.webhook import WebhookHandler

    assert isinstance(svc_webhook, WebhookHandler)
    return svc_webhook.handle(WebhookRequest(body=body, headers=JSON_HEADERS, source_ip="127.0.0.1"))


def request_ids(ingestion: LogsIngestionStandIn) -> list[str]:
    return [r["RequestId"] for r in ingestion.accepted]


def test_outage_every_event_arrives_once_in_order_on_schedule(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
    table_service: TableServiceClient,
    unique_prefix: str,
) -> None:
    # A long poll keeps the test fast; the worker still wakes exactly at each due time.
    svc = make_services(clock, AUTO_DISABLE_MIN_ATTEMPTS="100000", RETRY_POLL_SECONDS="60")
    svc.worker.uploads = 1  # one upload at a time: the rows land strictly in arrival order
    ingestion.set_outage(503)
    for n in range(5):
        assert post(svc.webhook, hit_body(n)).status == 202
        clock.advance(0.001)  # distinct arrival times
    # 30 minutes of outage: the worker follows the schedule on the fake clock.
    svc.worker.run(timedelta(minutes=30))
    assert ingestion.accepted == []
    ingestion.set_outage(None)
    svc.worker.run(timedelta(minutes=31))
    assert request_ids(ingestion) == [f"req-{n:04d}" for n in range(5)]
    assert svc.worker.queue.stats().pending == 0

    # Every entry's failed retries followed Wallarm's cycles to the second: +1, +3, +5, +10, +10, +0, +1…
    table = table_service.get_table_client(f"{unique_prefix}ledger")
    attempts = list(table.query_entities("PartitionKey ne 'buckets'"))
    webhook_at = min(e["at"] for e in attempts if e["source"] == "webhook")
    by_entry: dict[str, list[float]] = {}
    for e in attempts:
        if e["source"] == "retry":
            by_entry.setdefault(e["entry_id"], []).append((e["at"] - webhook_at).total_seconds())
    assert len(by_entry) == 5
    cumulative, total = [], 0.0
    for step in DEFAULT_SCHEDULE.steps:
        total += step.total_seconds()
        cumulative.append(total)
    # The ledger keeps failed attempts one by one: all but the last step (at 3068 s, after the
    # outage ended at 1800 s), which succeeded and is only counted.
    expected = cumulative[:-1]
    for offsets in by_entry.values():
        assert [round(t) for t in sorted(offsets)] == [round(t) for t in expected]


@pytest.mark.parametrize("uploads", [1, 4])
def test_drain_starts_uploads_oldest_first_up_to_n_at_a_time(
    make_services: MakeServices, clock: FakeClock, ingestion: LogsIngestionStandIn, uploads: int
) -> None:
    svc = make_services(clock, AUTO_DISABLE_MIN_ATTEMPTS="100000")
    svc.worker.uploads = uploads
    ingestion.set_outage(503)
    for n in range(8):
        assert post(svc.webhook, hit_body(n)).status == 202
        clock.advance(0.001)
    ingestion.set_outage(None)
    clock.advance(2)  # every entry's first retry is due
    ingestion.inject_delay(3.0, land=True)  # the oldest lands, its answer waits 3 s (a loaded machine too)
    run = svc.worker.run_once()
    assert (run.attempted, run.delivered) == (8, 8)
    assert svc.worker.queue.stats().pending == 0
    expected = [f"req-{n:04d}" for n in range(8)]
    # The oldest started in the first wave (arrival order within a wave is the threads' to decide).
    assert request_ids(ingestion)[0] in expected[:uploads]
    assert sorted(request_ids(ingestion)) == expected  # every event once
    answered = [
        json.loads(gzip.decompress(r.body))[0]["RequestId"] for r in ingestion.requests if r.status < 300
    ]
    assert svc.switch.failure_window() == (len(ingestion.requests), 8)  # each request counted once
    if uploads == 1:
        assert answered == expected  # strictly one after another
    else:
        assert answered[0] != expected[0]  # newer uploads finished while the oldest was held
        assert sorted(answered) == expected


def test_a_failure_mid_drain_is_settled_before_more_uploads_start_so_auto_disable_stops_them(
    make_services: MakeServices, clock: FakeClock, ingestion: LogsIngestionStandIn
) -> None:
    svc = make_services(clock, AUTO_DISABLE_MIN_ATTEMPTS="3", AUTO_DISABLE_GRACE_MINUTES="0")
    for n in range(20):
        svc.worker.queue.enqueue([{"RequestId": f"req-{n:04d}"}], due_at=clock(), reason="test")
        clock.advance(0.001)
    ingestion.set_outage(503)
    run = svc.worker.run_once()
    assert svc.admin.status()["state"] == "auto_disabled"
    # The third failure trips the rule; at most the uploads already running (4) go after it.
    assert 3 <= run.attempted <= 3 + svc.worker.uploads - 1
    assert svc.worker.queue.stats().pending == 20  # rescheduled or still leased: nothing lost
    attempts, _failures = svc.switch.failure_window()
    assert attempts == len(ingestion.requests)  # each request counted once (announce included)


def test_worker_attempts_happen_within_a_second_of_due(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
) -> None:
    svc = make_services(clock, AUTO_DISABLE_MIN_ATTEMPTS="100000")
    ingestion.set_outage(503)
    post(svc.webhook, hit_body(1))
    svc.worker.run(timedelta(seconds=40))
    # The worker slept until each due time (capped by the 1 s poll), never a blind minute.
    assert max(clock.slept) <= 1.0
    assert sum(clock.slept) == pytest.approx(40, abs=1.0)


def test_crash_between_claim_and_delivery_loses_nothing(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
) -> None:
    svc = make_services(clock)
    ingestion.set_outage(503)
    assert post(svc.webhook, hit_body(7)).status == 202
    ingestion.set_outage(None)
    clock.advance(2)
    # A worker claims the entry and dies before delivering or completing it.
    claimed = svc.worker.queue.claim_due(10, svc.settings.claim_lease)
    assert len(claimed) == 1
    other = make_services(clock)
    assert other.worker.run_once().attempted == 0  # the claim holds while the lease runs
    clock.advance(svc.settings.claim_lease.total_seconds() + 1)
    assert other.worker.run_once().delivered == 1
    assert request_ids(ingestion) == ["req-0007"]


def test_retry_after_is_honoured(
    make_services: MakeServices, clock: FakeClock, ingestion: LogsIngestionStandIn
) -> None:
    svc = make_services(clock)
    ingestion.inject(429, retry_after=120)
    assert post(svc.webhook, hit_body(1)).status == 202
    clock.advance(60)
    assert svc.worker.run_once().attempted == 0
    clock.advance(61)
    assert svc.worker.run_once().delivered == 1


@pytest.mark.parametrize("status", [408, 502, 500, 503, 504, 401, 403, 404])
def test_transient_and_config_statuses_are_retried(
    make_services: MakeServices, clock: FakeClock, ingestion: LogsIngestionStandIn, status: int
) -> None:
    svc = make_services(clock)
    ingestion.inject(status)
    assert post(svc.webhook, hit_body(1)).status == 202
    clock.advance(1)
    assert svc.worker.run_once().delivered == 1
    assert request_ids(ingestion) == ["req-0001"]


def test_dropped_connection_and_read_timeout_are_retried(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
) -> None:
    svc = make_services(clock)
    ingestion.inject_drop()
    assert post(svc.webhook, hit_body(1)).status == 202
    ingestion.inject_delay(3, land=False)  # longer than the webhook's 2 s read timeout
    assert post(svc.webhook, hit_body(2)).status == 202
    clock.advance(1)
    assert svc.worker.run_once().delivered == 2
    assert sorted(request_ids(ingestion)) == ["req-0001", "req-0002"]


def test_413_splits_the_batch_and_loses_nothing(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
) -> None:
    svc = make_services(clock)
    body = json.dumps([json.loads(hit_body(n))[0] for n in range(6)]).encode()
    ingestion.inject(413)
    resp = post(svc.webhook, body)
    assert resp.status == 200
    assert sorted(request_ids(ingestion)) == [f"req-{n:04d}" for n in range(6)]


def test_poison_is_quarantined_with_its_request_id_and_replayable(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
) -> None:
    svc = make_services(clock)
    ingestion.inject(400, code="InvalidPayload")
    resp = post(svc.webhook, hit_body(3))
    assert resp.status == 202 and resp.body["quarantined"] == 1
    status = svc.admin.status()
    assert status["queue"]["quarantined_entries"] == 1
    quarantined = status["quarantined"][0]
    assert quarantined["status"] == 400 and quarantined["error"] == "InvalidPayload"
    assert quarantined["x_ms_request_id"]
    clock.advance(3600)
    assert svc.worker.run_once().attempted == 0  # never retried on its own
    assert svc.admin.replay_quarantined()["replayed"] == 1
    assert svc.worker.run_once().delivered == 1
    assert request_ids(ingestion) == ["req-0003"]


def test_resent_body_is_not_duplicated_but_a_failed_one_is_processed(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
) -> None:
    svc = make_services(clock)
    body = hit_body(9)
    assert post(svc.webhook, body).status == 200
    again = post(svc.webhook, body)
    assert (again.status, again.body["status"]) == (200, "duplicate")
    assert request_ids(ingestion) == ["req-0009"]
    assert svc.webhook.flush(timeout=30)  # the "done" mark follows the answer; then time jumps
    clock.advance(svc.settings.dedup_window.total_seconds() + 1)
    assert post(svc.webhook, body).body["status"] == "delivered"  # outside the window: new


def test_auto_disable_at_60_percent_parks_and_enable_replays(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
) -> None:
    # Grace 0: Wallarm's bare 60 %/12 h rule (the grace period has its own tests).
    svc = make_services(clock, AUTO_DISABLE_MIN_ATTEMPTS="10", AUTO_DISABLE_GRACE_MINUTES="0")
    for n in range(4):  # 4 successes
        post(svc.webhook, hit_body(n))
    ingestion.set_outage(503)
    for n in range(4, 9):  # 5 failures: 5/9 = 55 %, below the rule
        post(svc.webhook, hit_body(n))
    assert svc.admin.status()["state"] == "enabled"
    post(svc.webhook, hit_body(9))  # 6/10 = 60 %: disabled
    status = svc.admin.status()
    assert status["state"] == "auto_disabled"
    # 6 of 10, plus the failed attempt to announce integration_broken right away.
    assert (status["failure_window"]["attempts"], status["failure_window"]["failures"]) == (11, 7)
    # While disabled: new events are parked (kept, counted), the worker only probes.
    parked = post(svc.webhook, hit_body(10))
    assert (parked.status, parked.body["status"]) == (202, "parked")
    clock.advance(60)
    run = svc.worker.run(timedelta(seconds=1))
    assert (run.skipped_disabled, run.recovered, run.probes) == (True, False, 1)
    assert request_ids(ingestion) == [f"req-{n:04d}" for n in range(4)]
    assert svc.admin.status()["last_probe"]["ok"] is False
    # The API heals: the next probe re-enables the integration without anyone pressing a button,
    # and queued entries, the parked event and the integration_broken event all arrive, once.
    ingestion.set_outage(None)
    clock.advance(60)
    run = svc.worker.run(timedelta(seconds=1))
    assert run.recovered
    status = svc.admin.status()
    assert (status["state"], status["changed_by"], status["last_probe"]["ok"]) == ("enabled", "relay", True)
    types = [r["EventType"] for r in ingestion.accepted]
    assert (types.count("integration_broken"), types.count("integration_recovered")) == (1, 1)
    assert sorted(r for r in request_ids(ingestion) if r) == [f"req-{n:04d}" for n in range(11)]
    assert len([r for r in request_ids(ingestion) if r]) == 11


def test_window_forgets_failures_older_than_12_hours(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
) -> None:
    svc = make_services(clock, AUTO_DISABLE_MIN_ATTEMPTS="5")
    ingestion.set_outage(503)
    for n in range(4):
        post(svc.webhook, hit_body(n))
    ingestion.set_outage(None)
    clock.advance(timedelta(hours=12, minutes=11).total_seconds())  # past the window and its bucket
    for n in range(4, 7):
        post(svc.webhook, hit_body(n))
    ingestion.set_outage(503)
    post(svc.webhook, hit_body(7))  # 1 failure of 4 recent attempts: not 5/8
    assert svc.admin.status()["state"] == "enabled"
    assert svc.switch.failure_window() == (4, 1)


def test_manual_disable_raises_disable_integration_and_enable_replays_in_order(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
) -> None:
    svc = make_services(clock)
    svc.admin.disable("alice", "maintenance")
    assert [r["EventType"] for r in ingestion.accepted] == ["disable_integration"]
    for n in range(3):
        assert post(svc.webhook, hit_body(n)).body["status"] == "parked"
        clock.advance(0.01)
    assert svc.admin.status()["queue"]["parked_entries"] == 3
    svc.admin.enable("alice")
    svc.worker.uploads = 1  # one upload at a time: strictly in arrival order
    svc.worker.run_once()
    assert request_ids(ingestion)[1:] == ["req-0000", "req-0001", "req-0002"]


def test_hourly_row_counts_the_previous_hour_once(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
) -> None:
    svc = make_services(clock)
    post(svc.webhook, hit_body(1))
    post(svc.webhook, load_fixture("create_user"))
    post(svc.webhook, b"not json")
    clock.advance(3600)
    other = make_services(clock)
    assert svc.hourly.report_previous_hour() is True
    assert other.hourly.report_previous_hour() is False  # the timer fired twice
    rows = [r for r in ingestion.accepted if r["EventType"] == "relay_hourly_stats"]
    assert len(rows) == 1
    counts = json.loads(rows[0]["RawData"])["counts"]
    assert counts["received"] == 3
    assert counts["delivered"] == 2
    assert counts["rejected_requests"] == 1
    assert counts["type_new_hits"] == 1 and counts["type_create_user"] == 1


def test_concurrent_instances_deliver_each_event_once_and_count_every_request(
    make_services: MakeServices,
    ingestion: LogsIngestionStandIn,
) -> None:
    """Three "instances" (own clients) run webhooks and workers at once against one Azurite."""
    import threading
    from collections import Counter
    from datetime import UTC, datetime

    fast = {
        "RETRY_SCHEDULE": "0.1s,0.1s,0.2s; every 0.2s",
        "RETRY_POLL_SECONDS": "0.05",
        "AUTO_DISABLE_MIN_ATTEMPTS": "100000",
    }
    instances = [make_services(**fast) for _ in range(3)]
    ingestion.inject(503, times=25)  # the first 25 requests fail, whoever sends them
    errors: list[BaseException] = []

    def webhooks(i: int) -> None:
        try:
            for n in range(i * 10, i * 10 + 10):
                assert post(instances[i].webhook, hit_body(n)).status in (200, 202)
        except BaseException as err:  # surfaced below: a thread's assert must fail the test
            errors.append(err)

    def worker(i: int) -> None:
        try:
            instances[i].worker.run(timedelta(seconds=4))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=webhooks, args=(i,)) for i in range(3)]
    threads += [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    instances[0].worker.run_once()  # anything that became due just as the workers stopped
    delivered = Counter(request_ids(ingestion))
    assert sorted(delivered) == [f"req-{n:04d}" for n in range(30)]
    assert set(delivered.values()) == {1}, "an event was delivered twice"
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    counts: Counter[str] = Counter()
    for h in (hour - timedelta(hours=1), hour):  # the test may straddle an hour
        counts.update(instances[0].counters.read(h))
    assert counts["received"] == 30
    assert counts["delivered"] + counts["queued"] == 30


def test_storage_down_acks_only_what_azure_accepted(
    relay_env: dict[str, str], ingestion: LogsIngestionStandIn
) -> None:
    """With Table Storage gone: delivered rows are still acked; undeliverable ones get 503, in time."""
    import time as _time

    from local.standins.azurite import Azurite
    from shared.ops.services import build_services

    own = Azurite()
    own.start()
    svc = build_services({**relay_env, "RELAY_STORAGE_CONNECTION_STRING": own.connection_string})
    own.stop()
    assert post(svc.webhook, hit_body(1)).status == 200  # Azure has it: durable there
    ingestion.set_outage(503)
    started = _time.monotonic()
    resp = post(svc.webhook, hit_body(2))
    elapsed = _time.monotonic() - started
    assert (resp.status, resp.body["error"]["code"]) == (503, "not_durable")
    assert elapsed < 15, "Wallarm's timeout"
    assert request_ids(ingestion) == ["req-0001"]


def test_hanging_api_is_answered_inside_wallarms_timeout_with_default_budget(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
) -> None:
    """Defaults (6 s budget, 4 s read timeout): a multi-chunk body while every request hangs."""
    import time as _time

    svc = make_services(clock, WEBHOOK_DELIVERY_BUDGET_SECONDS="6", WEBHOOK_READ_TIMEOUT_SECONDS="4")
    big = json.loads(hit_body(0))[0]
    big["details"]["hit"]["payloads"] = ["x" * 60_000]
    batch = []
    for n in range(40):  # ~2.4 MB of rows: three SDK chunks
        event = json.loads(json.dumps(big))
        event["details"]["hit"]["request_id"] = f"req-{n:04d}"
        batch.append(event)
    ingestion.inject_delay(30, times=5, land=False)
    started = _time.monotonic()
    resp = post(svc.webhook, json.dumps(batch).encode())
    elapsed = _time.monotonic() - started
    assert resp.status == 202 and resp.body["queued"] == 40
    assert elapsed < 8, f"answered after {elapsed:.1f} s"
    ingestion.clear()


def test_worker_process_killed_mid_delivery_loses_nothing(
    relay_env: dict[str, str], ingestion: LogsIngestionStandIn
) -> None:
    """SIGKILL a real worker process while its upload hangs; another instance delivers after the lease."""
    import os
    import signal
    import subprocess
    import sys
    import time as _time
    from pathlib import Path

    from shared.ops.services import build_services

    env = {
        **relay_env,
        "RETRY_CLAIM_LEASE_SECONDS": "16",  # the least the settings take for a 5 s read timeout
        "RETRY_SCHEDULE": "0s; every 1m",
        "WORKER_READ_TIMEOUT_SECONDS": "5",  # the kill comes about 1 s into the hanging upload
    }
    svc = build_services(env)
    ingestion.inject(503)
    assert post(svc.webhook, hit_body(42)).status == 202
    ingestion.inject_delay(60, land=False)  # the doomed worker's upload hangs
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from datetime import timedelta; from shared.ops.services import build_services; "
            "build_services().worker.run(timedelta(seconds=60))",
        ],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, **env},
    )
    from datetime import UTC, datetime

    deadline = _time.monotonic() + 30
    while _time.monotonic() < deadline:  # wait until the worker has claimed the entry
        due = svc.worker.queue.next_due_at()
        if due is not None and due > datetime.now(UTC):
            break
        _time.sleep(0.1)
    _time.sleep(1.0)  # and is inside its (hanging) upload
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    ingestion.clear()
    assert svc.worker.run_once().attempted == 0  # still leased to the dead worker
    _time.sleep(16.5)
    assert svc.worker.run_once().delivered == 1
    assert request_ids(ingestion) == ["req-0042"]


def test_a_healthy_webhooks_counts_are_stored_when_it_is_answered_and_a_resend_meanwhile_is_a_duplicate(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
) -> None:
    """Issue 19: the counts and the 60 %/12 h rule's attempts are stored when the answer goes
    (an instance may be recycled right then); only the dedup "done" mark follows the answer, and
    the same body meanwhile is a duplicate."""
    svc = make_services(clock)
    gate = threading.Event()
    real = svc.webhook.dedup.keys

    class SlowDone(DedupKeys):
        """The same store, with the "done" mark held until the test lets it go."""

        def finish(self, key: str, ttl: timedelta | None = None) -> None:
            gate.wait(10)
            super().finish(key, ttl)

    slow = SlowDone.__new__(SlowDone)
    slow.__dict__.update(real.__dict__)
    svc.webhook.dedup.keys = slow
    body = hit_body(3)
    hour = clock().replace(minute=0, second=0, microsecond=0)
    try:
        assert post(svc.webhook, body).body["status"] == "delivered"  # answered before "done"
        counts = svc.counters.read(hour)  # no flush: stored before the answer
        assert (counts["received"], counts["delivered"], counts["events"]) == (1, 1, 1)
        assert sum(v for k, v in counts.items() if k.startswith("attempts_m")) == 1
        assert svc.webhook.flush(timeout=0.1) is False  # the "done" mark is still held
        again = post(svc.webhook, body)
        assert (again.status, again.body["status"]) == (200, "duplicate")
    finally:
        gate.set()
    assert svc.webhook.flush(timeout=10)
    assert post(svc.webhook, body).body["status"] == "duplicate"  # now from Table Storage
    assert request_ids(ingestion) == ["req-0003"]
    counts = svc.counters.read(hour)
    assert (counts["received"], counts["delivered"], counts["duplicates"]) == (3, 1, 2)
    assert sum(v for k, v in counts.items() if k.startswith("attempts_m")) == 1


def test_a_webhook_that_goes_otherwise_than_planned_stores_the_difference_before_its_answer(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
) -> None:
    """Counted ahead as delivered, then queued after a 503: the answer carries the truth."""
    svc = make_services(clock, AUTO_DISABLE_MIN_ATTEMPTS="100000")
    ingestion.inject(503)
    assert post(svc.webhook, hit_body(4)).body["status"] == "queued"
    counts = svc.counters.read(clock().replace(minute=0, second=0, microsecond=0))
    assert (counts["received"], counts.get("delivered", 0), counts["queued"]) == (1, 0, 1)
    attempts = sum(v for k, v in counts.items() if k.startswith("attempts_m"))
    failures = sum(v for k, v in counts.items() if k.startswith("failures_m"))
    assert (attempts, failures) == (1, 1)


def test_an_entry_whose_lease_is_nearly_over_is_not_started_but_released_for_the_next_claim(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
) -> None:
    """A claimed entry waiting behind slow uploads must not start once its lease could run out
    mid-upload: another instance would claim and deliver it too."""
    svc = make_services(clock, AUTO_DISABLE_MIN_ATTEMPTS="100000")
    ingestion.set_outage(503)
    assert post(svc.webhook, hit_body(5)).body["status"] == "queued"
    ingestion.set_outage(None)
    clock.advance(5)
    svc.worker.start_margin = svc.worker.lease + timedelta(seconds=1)  # as if claimed long ago
    run = svc.worker.run_once()
    assert (run.attempted, run.lease_short, run.released) == (0, 1, 1)
    assert request_ids(ingestion) == []
    svc.worker.start_margin = svc.worker.lease / 2
    assert svc.worker.run_once().delivered == 1  # released: due now, not after the lease
    assert request_ids(ingestion) == ["req-0005"]


def test_after_ten_idle_minutes_a_run_ends_at_once_and_a_new_entry_brings_polling_back(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
) -> None:
    """An idle relay's bill is its timer's run time: polling stops once the queue stays empty."""
    svc = make_services(clock, AUTO_DISABLE_MIN_ATTEMPTS="100000")
    started = clock()
    run = svc.worker.run(timedelta(minutes=15))  # a fresh process polls for 10 idle minutes
    assert run.idle_exit and clock() - started == timedelta(minutes=10)
    started = clock()
    assert svc.worker.run(timedelta(seconds=50)).idle_exit and clock() == started  # next ticks: one pass
    ingestion.set_outage(503)
    assert post(svc.webhook, hit_body(1)).body["status"] == "queued"
    ingestion.set_outage(None)
    started = clock()
    run = svc.worker.run(timedelta(seconds=50))  # the next tick delivers and polls again
    assert run.delivered == 1 and not run.idle_exit and clock() - started == timedelta(seconds=50)
    assert request_ids(ingestion) == ["req-0001"]


def test_entries_claimed_when_a_disable_stops_the_run_are_released_not_left_leased(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
) -> None:
    """A disable mid-run must not strand claimed entries for the lease (180 s): after the
    re-enable they are delivered at once."""
    svc = make_services(clock, AUTO_DISABLE_MIN_ATTEMPTS="100000")
    ingestion.set_outage(503)
    for n in range(3):
        assert post(svc.webhook, hit_body(n)).body["status"] == "queued"
    ingestion.set_outage(None)
    clock.advance(5)
    svc.admin.disable("alice", "maintenance")
    run = svc.worker.run_once()  # claims, then finds the integration disabled before any start
    assert (run.attempted, run.released) == (0, 3)
    svc.admin.enable("alice")
    assert svc.worker.run_once().delivered == 3  # due now, not after the lease
    assert sorted(request_ids(ingestion)[-3:]) == ["req-0000", "req-0001", "req-0002"]  # parallel uploads
