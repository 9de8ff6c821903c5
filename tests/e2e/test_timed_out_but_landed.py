"""Issue 24, defect "timed out but landed": the webhook's upload read-times-out after Azure
accepted the rows; the relay queues them (202), in doubt. With a workspace (``LOGS_WORKSPACE_ID``)
the worker asks it after ``LANDED_CHECK_DELAY_SECONDS`` and resends only the rows not found
(``landed_confirmed``); without one, or when the query fails, the resend is at-least-once
(FACTS.md) and counted as ``possible_duplicate`` (telemetry, a log line), never silent. A worker
that died mid-upload leaves its entry in doubt the same way."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import timedelta

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from wallarm_fixtures import load_fixture

from local.standins.log_query import LogQueryStandIn
from local.standins.logs_ingestion import LogsIngestionStandIn
from shared.delivery.landed_check import CHECK_PATIENCE, CHECK_RETRY, CHECK_UNAVAILABLE
from shared.intake.dedup import PROCESSING_TIMEOUT
from shared.intake.rows import read_rows
from shared.intake.webhook import WebhookHandler, WebhookRequest
from shared.ops.services import Services
from shared.telemetry import Telemetry

from .conftest import WORKSPACE_ID, FakeClock, MakeServices

DELAY = 30  # LANDED_CHECK_DELAY_SECONDS in these tests


def _events(reader: InMemoryMetricReader) -> dict[str, float]:
    data = reader.get_metrics_data()
    out: dict[str, float] = {}
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "relay.events":
                    for point in metric.data.data_points:
                        outcome = str(dict(point.attributes or {}).get("outcome"))
                        out[outcome] = out.get(outcome, 0.0) + float(getattr(point, "value", 0))
    return out


def test_rows_resent_after_a_timed_out_upload_that_landed_are_counted_as_possible_duplicates(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    svc = make_services(clock, Telemetry(meters, TracerProvider()), AUTO_DISABLE_MIN_ATTEMPTS="100000")
    assert isinstance(svc.webhook, WebhookHandler)
    body = json.loads(load_fixture("new_hits"))[:1]
    body[0]["details"]["hit"]["request_id"] = "landed-then-hung"
    # The rows land, then the answer waits past the webhook's read timeout (2 s in e2e).
    ingestion.inject_delay(6, land=True)
    request = WebhookRequest(json.dumps(body).encode(), {"content-type": "application/json"}, "127.0.0.1")
    assert svc.webhook.handle(request).status == 202  # queued: the relay could not tell
    assert [r["RequestId"] for r in ingestion.accepted] == ["landed-then-hung"]

    clock.advance(5)
    with caplog.at_level(logging.WARNING):
        run = svc.worker.run(timedelta(seconds=5))

    assert run.delivered == 1
    assert [r["RequestId"] for r in ingestion.accepted] == ["landed-then-hung"] * 2  # at-least-once
    assert _events(reader).get("possible_duplicate") == 1.0
    assert "may be in the table twice" in caplog.text
    meters.shutdown()


def _relay(
    make_services: MakeServices, clock: FakeClock, log_query: LogQueryStandIn
) -> tuple[Services, InMemoryMetricReader, MeterProvider]:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    svc = make_services(
        clock,
        Telemetry(meters, TracerProvider()),
        AUTO_DISABLE_MIN_ATTEMPTS="100000",
        LOGS_WORKSPACE_ID=WORKSPACE_ID,
        LOGS_QUERY_ENDPOINT=log_query.endpoint,
        LANDED_CHECK_DELAY_SECONDS=str(DELAY),
    )
    return svc, reader, meters


def _hung_webhook(
    svc: Services,
    ingestion: LogsIngestionStandIn,
    *,
    land: bool,
    ids: list[str],
    request_times: list[int] | None = None,
) -> None:
    """A webhook whose upload is held past the read timeout; its rows land first if ``land``."""
    assert isinstance(svc.webhook, WebhookHandler)
    hits = json.loads(load_fixture("new_hits"))
    body = [dict(hits[0], details=dict(hits[0]["details"], hit=dict(hits[0]["details"]["hit"]))) for _ in ids]
    for n, (event, request_id) in enumerate(zip(body, ids, strict=True)):
        event["details"]["hit"]["request_id"] = request_id
        event["details"]["hit"]["id"] = ["hits_x", request_id]
        if request_times is not None:
            event["details"]["hit"]["request_time"] = request_times[n]
    ingestion.inject_delay(6, land=land)
    request = WebhookRequest(json.dumps(body).encode(), {"content-type": "application/json"}, "127.0.0.1")
    assert svc.webhook.handle(request).status == 202  # queued: the relay could not tell


def test_a_landed_upload_is_found_in_the_workspace_and_not_sent_again(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
    log_query: LogQueryStandIn,
) -> None:
    svc, reader, meters = _relay(make_services, clock, log_query)
    _hung_webhook(svc, ingestion, land=True, ids=["landed-a", "landed-b"])
    assert sorted(r["RequestId"] for r in ingestion.accepted) == ["landed-a", "landed-b"]

    clock.advance(5)  # the schedule's first step, but the rows may still be on their way
    early = svc.worker.run(timedelta(seconds=1))
    assert early.attempted == 0 and log_query.queries == []
    assert svc.worker.queue.stats().pending == 1

    clock.advance(DELAY)
    run = svc.worker.run(timedelta(seconds=1))
    assert run.delivered == 1
    assert svc.worker.queue.stats().pending == 0
    assert sorted(r["RequestId"] for r in ingestion.accepted) == ["landed-a", "landed-b"]  # once each
    assert any("hash_sha256(RawData)" in q for q in log_query.queries)
    events = _events(reader)
    assert events.get("landed_confirmed") == 2.0
    assert "possible_duplicate" not in events
    meters.shutdown()


def test_hits_timed_at_the_calendars_edges_are_still_checked_not_resent(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
    log_query: LogQueryStandIn,
) -> None:
    """An attacker sets a hit's request_time: in milliseconds, 9999-12-31T23:59:59 maps (Azure
    retimes it to the receive time); the check's range must not step past the calendar."""
    svc, reader, meters = _relay(make_services, clock, log_query)
    log_query.retime_like_azure(lambda: clock().timestamp())
    ids = ["edge-9999", "edge-1970"]
    _hung_webhook(svc, ingestion, land=True, ids=ids, request_times=[253_402_300_799_999, 1])
    assert sorted(r["TimeGenerated"][:4] for r in ingestion.accepted) == ["1970", "9999"]

    clock.advance(DELAY + 5)
    run = svc.worker.run(timedelta(seconds=1))
    assert run.delivered == 1
    assert svc.worker.queue.stats().pending == 0
    assert sorted(r["RequestId"] for r in ingestion.accepted) == sorted(ids)  # once each
    assert _events(reader).get("landed_confirmed") == 2.0
    meters.shutdown()


def test_a_lost_upload_is_not_found_and_is_sent_once(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
    log_query: LogQueryStandIn,
) -> None:
    svc, reader, meters = _relay(make_services, clock, log_query)
    _hung_webhook(svc, ingestion, land=False, ids=["lost-a"])
    assert ingestion.accepted == []

    clock.advance(DELAY + 1)
    run = svc.worker.run(timedelta(seconds=1))
    assert run.delivered == 1
    assert [r["RequestId"] for r in ingestion.accepted] == ["lost-a"]
    assert "landed_confirmed" not in _events(reader)
    assert "possible_duplicate" not in _events(reader)  # the workspace was asked: not a blind resend
    meters.shutdown()


def test_a_failed_query_falls_back_to_a_counted_resend(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
    log_query: LogQueryStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    svc, reader, meters = _relay(make_services, clock, log_query)
    _hung_webhook(svc, ingestion, land=True, ids=["denied-a"])
    log_query.deny(True)  # Log Analytics Reader withdrawn

    clock.advance(DELAY + 1)
    with caplog.at_level(logging.WARNING):
        runs = [svc.worker.run(timedelta(seconds=1))]
        [entry] = svc.worker.queue.entries(1)
        assert entry.doubt_since is not None
        patience_ends = entry.doubt_since + timedelta(seconds=DELAY) + CHECK_PATIENCE
        # Tried again every CHECK_RETRY for CHECK_PATIENCE, no request to the API meanwhile.
        while clock() < patience_ends:
            assert [r["RequestId"] for r in ingestion.accepted] == ["denied-a"]
            clock.advance(CHECK_RETRY.total_seconds())
            runs.append(svc.worker.run(timedelta(seconds=1)))
        runs.append(svc.worker.run(timedelta(seconds=1)))
    assert sum(run.delivered for run in runs) == 1 and 10 <= len(runs) <= 13
    assert [r["RequestId"] for r in ingestion.accepted] == ["denied-a"] * 2  # at-least-once, never lost
    assert _events(reader).get("possible_duplicate") == 1.0
    assert "Landed check: Log Analytics query failed (403)" in caplog.text
    meters.shutdown()


def test_a_check_that_fails_for_a_while_is_tried_again_before_any_resend(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
    log_query: LogQueryStandIn,
) -> None:
    """The soak's case: the landed check fell inside a token outage. The workspace cannot say for
    a few minutes; the entry waits, keeps its doubt and its place in the schedule, and once the
    workspace answers, the landed rows are found: nothing is written twice."""
    svc, reader, meters = _relay(make_services, clock, log_query)
    _hung_webhook(svc, ingestion, land=True, ids=["outage-a", "outage-b"])
    log_query.deny(True)
    clock.advance(DELAY + 1)
    for _minute in range(3):
        run = svc.worker.run(timedelta(seconds=1))
        assert run.delivered == 0
        [entry] = svc.worker.queue.entries(1)
        assert entry.doubt_since is not None and entry.attempt == 1 and entry.last_error == CHECK_UNAVAILABLE
        clock.advance(CHECK_RETRY.total_seconds())
    log_query.deny(False)
    run = svc.worker.run(timedelta(seconds=1))
    assert run.delivered == 1 and svc.worker.queue.stats().pending == 0
    assert sorted(r["RequestId"] for r in ingestion.accepted) == ["outage-a", "outage-b"]  # once each
    assert _events(reader).get("landed_confirmed") == 2.0
    assert "possible_duplicate" not in _events(reader)
    meters.shutdown()


def test_a_worker_that_died_mid_upload_leaves_its_entry_in_doubt(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
    log_query: LogQueryStandIn,
) -> None:
    """Claimed, uploaded (the rows landed), never settled: the process was killed. After the
    lease the next claim finds the entry still marked leased and checks before resending."""
    svc, reader, meters = _relay(make_services, clock, log_query)
    queue = svc.worker.queue
    hits = json.loads(load_fixture("new_hits"))[:1]
    hits[0]["details"]["hit"]["request_id"] = "killed-mid-upload"
    ingestion.inject(503, times=10)
    assert isinstance(svc.webhook, WebhookHandler)
    request = WebhookRequest(json.dumps(hits).encode(), {"content-type": "application/json"}, "127.0.0.1")
    assert svc.webhook.handle(request).status == 202
    ingestion.clear()
    clock.advance(5)
    [entry] = queue.claim_due(10, timedelta(seconds=180))
    assert entry.doubt_since is None  # a 503 is a clear answer: not in doubt
    assert svc.relay.deliverer.deliver(entry.rows).all_accepted  # the dead worker's upload landed
    # ... and the process died here: no settle, no release.

    clock.advance(181)  # the lease ran out
    run = svc.worker.run(timedelta(seconds=1))
    assert run.deferred == 1 and run.attempted == 0  # in doubt since the lease's end: ask later
    clock.advance(DELAY)
    run = svc.worker.run(timedelta(seconds=1))
    assert run.delivered == 1 and queue.stats().pending == 0
    assert [r["RequestId"] for r in ingestion.accepted] == ["killed-mid-upload"]
    assert _events(reader).get("landed_confirmed") == 1.0
    meters.shutdown()


def _killed_before_answer(svc: Services, clock: FakeClock, request_id: str) -> WebhookRequest:
    """A body's first processing claimed it and uploaded its rows (they landed), then died
    before it answered; returns the body as Wallarm will resend it."""
    hits = json.loads(load_fixture("new_hits"))[:1]
    hits[0]["details"]["hit"]["request_id"] = request_id
    raw = json.dumps(hits).encode()
    keys = svc.webhook.dedup.keys
    assert keys.begin(hashlib.sha256(raw).hexdigest(), timedelta(hours=24), PROCESSING_TIMEOUT) == "new"
    svc.relay.deliverer.deliver(read_rows(raw, svc.settings.selection, clock()).rows)
    return WebhookRequest(raw, {"content-type": "application/json"}, "127.0.0.1")


def test_a_body_resent_after_its_first_processing_was_killed_is_checked_not_uploaded_again(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
    log_query: LogQueryStandIn,
) -> None:
    """The instance was killed after its upload landed but before it answered: Wallarm resends
    the same body; once the first claim on it is stale, the relay takes it over in doubt."""
    svc, reader, meters = _relay(make_services, clock, log_query)
    assert isinstance(svc.webhook, WebhookHandler)
    request = _killed_before_answer(svc, clock, "killed-before-answer")
    assert [r["RequestId"] for r in ingestion.accepted] == ["killed-before-answer"]

    assert svc.webhook.handle(request).status == 409  # still "processing": Wallarm retries later
    clock.advance(PROCESSING_TIMEOUT.total_seconds() + 1)
    answer = svc.webhook.handle(request)
    assert answer.status == 202  # durable, in doubt
    assert [r["RequestId"] for r in ingestion.accepted] == ["killed-before-answer"]  # not uploaded

    clock.advance(DELAY)
    run = svc.worker.run(timedelta(seconds=1))
    assert run.delivered == 1 and svc.worker.queue.stats().pending == 0
    assert [r["RequestId"] for r in ingestion.accepted] == ["killed-before-answer"]
    assert _events(reader).get("landed_confirmed") == 1.0
    meters.shutdown()


def test_a_resent_body_taken_over_while_disabled_is_still_checked_once_enabled(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
    log_query: LogQueryStandIn,
) -> None:
    """As above, but the integration is disabled when the resend arrives: the rows are parked with
    their doubt, and re-enabling checks them instead of resending them blind."""
    svc, reader, meters = _relay(make_services, clock, log_query)
    assert isinstance(svc.webhook, WebhookHandler)
    request = _killed_before_answer(svc, clock, "killed-then-disabled")
    svc.admin.disable("alice", "maintenance")

    clock.advance(PROCESSING_TIMEOUT.total_seconds() + 1)
    assert svc.webhook.handle(request).status == 202  # durable: parked, in doubt
    parked = svc.worker.queue.stats()
    assert parked.parked == 1 and parked.pending == 0

    svc.admin.enable("alice")
    clock.advance(DELAY)
    run = svc.worker.run(timedelta(seconds=1))
    assert run.delivered == 1 and svc.worker.queue.stats().pending == 0
    hits_sent = [r["RequestId"] for r in ingestion.accepted if r["RequestId"]]  # not the relay's own rows
    assert hits_sent == ["killed-then-disabled"]  # not resent
    assert _events(reader).get("landed_confirmed") == 1.0
    assert _events(reader).get("possible_duplicate") is None
    meters.shutdown()
