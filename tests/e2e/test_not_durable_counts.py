"""Issue 24, the 60-minute soak on the fixed code (seed 24): the hourly counters held 43,092 events
for 38,215 acknowledged (+4,877). Every one of the sender's 525 answers 503 (`not_durable`) fell in
an Azurite stop: the webhook's counts stored ahead stayed in the counters' memory and were written
once the store was back, while the correction (the plan undone) was dropped: the ledger wrote the
failed attempt's record first, that write failed, and the counters never received the correction.

A webhook answered 503 counts its request, never its events.
"""

from __future__ import annotations

import json

from wallarm_fixtures import load_fixture

from local.standins.logs_ingestion import LogsIngestionStandIn
from shared.intake.webhook import WebhookHandler, WebhookRequest

from .conftest import FakeClock, MakeServices
from .test_settle_outage import OutageWindow


def _webhook(n: int, events: int) -> WebhookRequest:
    body = json.loads(load_fixture("new_hits"))[:1] * events
    body = [json.loads(json.dumps(item)) for item in body]
    for k, item in enumerate(body):
        item["details"]["hit"]["request_id"] = f"nd-{n:03d}-{k:02d}"
    return WebhookRequest(
        body=json.dumps(body).encode(), headers={"content-type": "application/json"}, source_ip="127.0.0.1"
    )


def test_a_not_durable_answer_leaves_no_events_in_the_hourly_counters(
    make_services: MakeServices, clock: FakeClock, ingestion: LogsIngestionStandIn
) -> None:
    svc = make_services(clock, AUTO_DISABLE_MIN_ATTEMPTS="100000")
    webhook = svc.webhook
    assert isinstance(webhook, WebhookHandler)
    queue, ledger = webhook.relay.queue, webhook.ledger_writer.ledger
    counters = ledger._counters
    windows = [OutageWindow(queue._table, clock), OutageWindow(ledger._table, clock)]
    windows.append(OutageWindow(counters._table, clock))
    queue._table, ledger._table, counters._table = windows  # type: ignore[assignment]
    ingestion.set_outage(503)
    for window in windows:
        window.open_for(60)

    answer = webhook.handle(_webhook(0, 7))  # Azure refuses, the queue is down: not durable

    assert answer.status == 503
    assert answer.body["error"]["code"] == "not_durable"
    clock.advance(120)  # the store is back; Azure too
    ingestion.set_outage(None)
    assert webhook.handle(_webhook(1, 3)).status == 200  # its write carries what was kept
    webhook.flush(5.0)
    hour = counters.read(clock())
    assert hour.get("events") == 3, hour
    assert hour.get("received") == 2, hour
