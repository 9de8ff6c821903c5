"""Red team on the landed check (issue 24): the query API answering what the relay did not ask
for (not JSON, a redirect, no table, another shape), answering a byte at a time, and an upload
of several chunks failing with one clear and one doubtful answer. Each must end in a resend
(counted as a possible duplicate when it may be one), within the check's budget, never in an
entry that stays stuck or rows taken as "not in the table" on an unread answer."""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from typing import Any, cast

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from wallarm_fixtures import load_fixture

from local.standins.log_query import LogQueryStandIn
from local.standins.logs_ingestion import LogsIngestionStandIn
from shared.delivery import landed_check
from shared.delivery.deliver_or_queue import UNCERTAIN_ERROR
from shared.health.attempts import ChunkFailure, DeliveryReport
from shared.intake.webhook import WebhookHandler, WebhookRequest
from shared.ops.services import Services
from shared.schema import Row

from .conftest import FakeClock, MakeServices
from .test_timed_out_but_landed import DELAY, _events, _relay


@pytest.fixture(autouse=True)
def no_patience(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the fallback once a check cannot be made: no retries of the check
    first (``CHECK_PATIENCE``; its own tests are in test_timed_out_but_landed.py)."""
    monkeypatch.setattr("shared.delivery.deliver_or_queue.CHECK_PATIENCE", timedelta(0))


def _landed_in_doubt(svc: Services, ingestion: LogsIngestionStandIn, request_id: str) -> None:
    """A webhook whose rows land but whose answer comes after the read timeout: queued in doubt."""
    assert isinstance(svc.webhook, WebhookHandler)
    body = json.loads(load_fixture("new_hits"))[:1]
    body[0]["details"]["hit"]["request_id"] = request_id
    ingestion.inject_delay(6, land=True)
    request = WebhookRequest(json.dumps(body).encode(), {"content-type": "application/json"}, "127.0.0.1")
    assert svc.webhook.handle(request).status == 202
    assert [r["RequestId"] for r in ingestion.accepted] == [request_id]


def _resent_and_counted(
    svc: Services,
    reader: InMemoryMetricReader,
    ingestion: LogsIngestionStandIn,
    caplog: pytest.LogCaptureFixture,
    request_id: str,
    warning: str,
) -> None:
    """The worker's run delivers the doubtful entry again, in full, counted as a possible
    duplicate, with ``warning`` logged (and no caller-supplied value)."""
    with caplog.at_level(logging.WARNING):
        run = svc.worker.run(timedelta(seconds=1))
    assert run.delivered == 1 and svc.worker.queue.stats().pending == 0
    assert [r["RequestId"] for r in ingestion.accepted] == [request_id] * 2  # at-least-once, never lost
    assert _events(reader).get("possible_duplicate") == 1.0
    assert warning in caplog.text
    assert request_id not in caplog.text


UNREADABLE = [
    pytest.param(200, b"not json", {}, id="not-json"),
    pytest.param(200, b"[]", {}, id="a-json-array"),
    pytest.param(200, b'{"tables":[{"name":"P","rows":[["x",1]]}]}', {}, id="no-columns"),
    pytest.param(302, b"", {"Location": "https://example.invalid/query"}, id="redirect-302"),
]


@pytest.mark.parametrize(("status", "body", "headers"), UNREADABLE)
def test_an_answer_the_sdk_cannot_read_means_a_counted_resend_not_a_stuck_entry(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
    log_query: LogQueryStandIn,
    caplog: pytest.LogCaptureFixture,
    status: int,
    body: bytes,
    headers: dict[str, str],
) -> None:
    """Before: the SDK's JSONDecodeError / AttributeError / IndexError left ``found``, the attempt
    raised, the entry stayed leased, its next claim put it in doubt again and the same check
    raised again: never delivered while the answer stayed so."""
    svc, reader, meters = _relay(make_services, clock, log_query)
    _landed_in_doubt(svc, ingestion, "unreadable-answer")
    log_query.inject(status, body=body, headers=headers, times=5)

    clock.advance(DELAY + 1)
    _resent_and_counted(svc, reader, ingestion, caplog, "unreadable-answer", "Landed check: ")
    meters.shutdown()


SHAPES = [
    pytest.param(b'{"tables":[]}', id="no-table"),
    pytest.param(
        b'{"tables":[{"name":"PrimaryResult","columns":[{"name":"Copies","type":"long"},'
        b'{"name":"RawHash","type":"string"}],"rows":[]}]}',
        id="columns-swapped-empty",
    ),
    pytest.param(
        b'{"tables":[{"name":"PrimaryResult","columns":[{"name":"Count","type":"long"}],"rows":[[0]]}]}',
        id="another-query's-answer",
    ),
]


@pytest.mark.parametrize("body", SHAPES)
def test_an_answer_of_another_shape_is_not_read_as_nothing_found(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
    log_query: LogQueryStandIn,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
) -> None:
    """Before: no table (or no rows under other columns) read as "none of the rows is in the
    table": all resent as checked, so a landed upload was written twice, uncounted."""
    svc, reader, meters = _relay(make_services, clock, log_query)
    _landed_in_doubt(svc, ingestion, "odd-shape")
    log_query.inject(200, body=body, times=5)

    clock.advance(DELAY + 1)  # the workspace did not say: a counted resend
    _resent_and_counted(svc, reader, ingestion, caplog, "odd-shape", "unexpected answer shape")
    meters.shutdown()


def test_a_trickling_answer_ends_the_check_within_its_budget(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
    log_query: LogQueryStandIn,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A byte every 0.2 s never trips the 20 s read timeout (it is per read): before, the ~200
    bytes of one answer held the check, the upload slot and the timer run for ~40 s (a 200-hash
    answer: hours). Now the check gives up at its budget and the rows are resent, counted."""
    monkeypatch.setattr(landed_check, "CHECK_BUDGET_SECONDS", 2.0)
    svc, reader, meters = _relay(make_services, clock, log_query)
    _landed_in_doubt(svc, ingestion, "trickled")
    log_query.inject_trickle(0.2)

    clock.advance(DELAY + 1)
    started = time.monotonic()
    _resent_and_counted(svc, reader, ingestion, caplog, "trickled", "Log Analytics too slow for this entry")
    assert time.monotonic() - started < 15
    meters.shutdown()


def test_a_doubtful_chunk_after_a_clear_failure_keeps_the_entry_in_doubt(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
    log_query: LogQueryStandIn,
) -> None:
    """A resend of several chunks: the first gets a 503 (not landed), the second times out (may
    have landed). Before, only the first failure was read: the entry lost its doubt and its next
    attempt resent the second chunk's rows blindly, uncounted."""
    svc, _reader, meters = _relay(make_services, clock, log_query)
    queue = svc.worker.queue
    rows = [
        {"TimeGenerated": "2026-11-25T12:00:00Z", "RawData": f'{{"n":{n}}}', "EventType": "hit"}
        for n in range(4)
    ]
    [entry] = queue.enqueue(rows, due_at=clock(), reason="test", attempt=1)
    [entry] = queue.claim_due(10, timedelta(seconds=180))

    def failed(part: list[dict[str, str]], status: int | None, error: str) -> ChunkFailure:
        return ChunkFailure(part, status, error, "req", None, False, "failed")

    report = DeliveryReport(
        failures=[failed(rows[:2], 503, "ServiceUnavailable"), failed(rows[2:], None, UNCERTAIN_ERROR)]
    )
    svc.relay.settle(entry, report)
    [stored] = queue.entries(10)
    assert stored.doubt_since == clock() and stored.row_count == 4
    meters.shutdown()


def test_a_count_that_is_not_a_number_never_marks_a_row_found(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
    log_query: LogQueryStandIn,
) -> None:
    """The upload was lost; the answer names the row's hash with ``true`` as its count. Before,
    ``isinstance(True, int)`` held: the row was taken as landed and never sent (lost)."""
    svc, reader, meters = _relay(make_services, clock, log_query)
    assert isinstance(svc.webhook, WebhookHandler)
    body = json.loads(load_fixture("new_hits"))[:1]
    body[0]["details"]["hit"]["request_id"] = "lost-bool-count"
    ingestion.inject_delay(6, land=False)
    request = WebhookRequest(json.dumps(body).encode(), {"content-type": "application/json"}, "127.0.0.1")
    assert svc.webhook.handle(request).status == 202
    assert ingestion.accepted == []
    [entry] = svc.worker.queue.entries(10)
    digest = landed_check.raw_hash(entry.rows[0])
    answer = {
        "tables": [
            {
                "name": "PrimaryResult",
                "columns": [{"name": "RawHash", "type": "string"}, {"name": "Copies", "type": "long"}],
                "rows": [[digest, True]],
            }
        ]
    }
    log_query.inject(200, body=json.dumps(answer).encode(), times=5)

    clock.advance(DELAY + 1)
    run = svc.worker.run(timedelta(seconds=1))
    assert run.delivered == 1
    assert [r["RequestId"] for r in ingestion.accepted] == ["lost-bool-count"]  # sent, not lost
    assert "landed_confirmed" not in _events(reader)
    meters.shutdown()


def test_a_row_without_a_rawdata_string_is_resent_and_counted(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
    log_query: LogQueryStandIn,
) -> None:
    """Rows in doubt, one without RawData and one whose RawData is not a string: the workspace
    cannot be asked about them, so they are resent blindly. Before, the whole report counted as
    checked and their possible duplicates went uncounted; the row with RawData is still checked."""
    svc, reader, meters = _relay(make_services, clock, log_query)
    when = "2026-11-25T12:00:00Z"
    rows: list[dict[str, Any]] = [
        {"TimeGenerated": when, "EventType": "hit", "RawData": '{"n":1}'},
        {"TimeGenerated": when, "EventType": "system"},
        {"TimeGenerated": when, "EventType": "vuln_high", "RawData": 7},
    ]
    stored = cast("list[Row]", rows)  # rows of another shape, as an older version may have left
    queue = svc.worker.queue
    queue.enqueue(stored, due_at=clock(), reason="t", attempt=1, error=UNCERTAIN_ERROR, doubt_since=clock())
    clock.advance(DELAY + 1)
    run = svc.worker.run(timedelta(seconds=1))
    assert run.delivered == 1 and svc.worker.queue.stats().pending == 0
    assert any("hash_sha256(RawData)" in q for q in log_query.queries)  # the hashable row was asked
    assert _events(reader).get("possible_duplicate") == 2.0
    meters.shutdown()
