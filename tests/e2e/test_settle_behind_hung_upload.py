"""Issue 24, the 60-minute soak on the fixed code (seed 24): 153 duplicate rows. A retry-worker
run uploaded 16 entries at t=332 s (their rows landed) while two other uploads of the same run hung
(the stand-in held them 40 s). The landed entries waited, unsettled, for the hung ones (the run's
last settle group), the instance was sent SIGTERM at 344 s and its run was abandoned: the 16
entries stayed leased and were sent again when the lease ended (t=512 s).

A landed upload must settle without waiting for a slow sibling.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import timedelta

from wallarm_fixtures import load_fixture

from local.standins.logs_ingestion import LogsIngestionStandIn
from shared.delivery.ingestion import DeliveryReport
from shared.intake.webhook import WebhookHandler, WebhookRequest
from shared.ops.services import Services
from shared.store.queue import QueueEntry

from .conftest import FakeClock, MakeServices


def _queue_hits(svc: Services, ingestion: LogsIngestionStandIn, count: int) -> None:
    assert isinstance(svc.webhook, WebhookHandler)
    ingestion.set_outage(503)
    for n in range(count):
        body = json.loads(load_fixture("new_hits"))[:1]
        body[0]["details"]["hit"]["request_id"] = f"hung-{n:03d}"
        request = WebhookRequest(
            body=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
            source_ip="127.0.0.1",
        )
        assert svc.webhook.handle(request).status == 202
    ingestion.set_outage(None)


def test_landed_uploads_settle_while_a_sibling_upload_hangs(
    make_services: MakeServices, clock: FakeClock, ingestion: LogsIngestionStandIn
) -> None:
    svc = make_services(clock, AUTO_DISABLE_MIN_ATTEMPTS="100000")
    _queue_hits(svc, ingestion, 5)
    clock.advance(2)  # past the first retry step
    release = threading.Event()
    hung: list[str] = []
    upload = svc.worker.relay.attempt

    def attempt(entry: QueueEntry) -> DeliveryReport:
        if not hung:  # the first upload started hangs (a held connection) until released
            hung.append(entry.row_key)
            release.wait(30)
        return upload(entry)

    svc.worker.relay.attempt = attempt  # type: ignore[method-assign]
    worker = threading.Thread(target=svc.worker.run, args=(timedelta(seconds=5),), daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and svc.worker.queue.stats().pending > 1:
            time.sleep(0.2)
        # While one upload hangs, the four that landed are settled (gone from the queue): a
        # process ended now would resend nothing but the hung one.
        assert len(ingestion.accepted) == 4
        assert svc.worker.queue.stats().pending == 1
    finally:
        release.set()
        worker.join(30)
    landed = Counter(row["RequestId"] for row in ingestion.accepted)
    assert landed == Counter({f"hung-{n:03d}": 1 for n in range(5)})
    assert svc.worker.queue.stats().pending == 0
