"""Issue 24, defects 1-2: Table Storage goes down after the worker uploaded claimed entries and
before it settled them. The rows are in Azure; the settle must be retried (never the upload) while
the leases last, and the run must end cleanly, so no later claim sends the rows a second time.

The outage is injected on the queue's table client (Azurite itself runs in memory: stopping it
would lose the queue), failing every call as a dropped connection would, for a window of the
fake clock in which the worker's backoff sleeps pass.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from azure.core.exceptions import ServiceRequestError
from wallarm_fixtures import load_fixture

from local.standins.logs_ingestion import LogsIngestionStandIn
from shared.delivery.ingestion import DeliveryReport
from shared.intake.webhook import WebhookHandler, WebhookRequest
from shared.ops.services import Services
from shared.store.queue import QueueEntry

from .conftest import FakeClock, MakeServices


class OutageWindow:
    """A TableClient whose every call fails like a dropped connection while the window is open."""

    def __init__(self, table: Any, clock: FakeClock) -> None:
        self._table = table
        self._clock = clock
        self.opened_at: datetime | None = None
        self.length = timedelta(0)
        self.refused = 0

    def open_for(self, seconds: float) -> None:
        self.opened_at, self.length = self._clock(), timedelta(seconds=seconds)

    def _down(self) -> bool:
        return self.opened_at is not None and self._clock() < self.opened_at + self.length

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._table, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._down():
                self.refused += 1
                raise ServiceRequestError("injected: Table Storage unreachable")
            return target(*args, **kwargs)

        return call


def _queue_hits(svc: Services, ingestion: LogsIngestionStandIn, count: int) -> None:
    """Webhooks during an ingestion outage: each is queued (202)."""
    assert isinstance(svc.webhook, WebhookHandler)
    ingestion.set_outage(503)
    for n in range(count):
        body = json.loads(load_fixture("new_hits"))[:1]
        body[0]["details"]["hit"]["request_id"] = f"settle-{n:03d}"
        request = WebhookRequest(
            body=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
            source_ip="127.0.0.1",
        )
        assert svc.webhook.handle(request).status == 202
    ingestion.set_outage(None)


def _outage_after_upload(svc: Services, clock: FakeClock, seconds: float) -> OutageWindow:
    """Open the outage as soon as the first upload of the worker has landed."""
    window = OutageWindow(svc.worker.queue._table, clock)
    svc.worker.queue._table = window  # type: ignore[assignment]
    assert svc.worker.relay.queue is svc.worker.queue
    upload = svc.worker.relay.attempt

    def attempt(entry: QueueEntry) -> DeliveryReport:
        report = upload(entry)
        if window.opened_at is None:
            window.open_for(seconds)
        return report

    svc.worker.relay.attempt = attempt  # type: ignore[method-assign]
    return window


def test_storage_outage_between_upload_and_settle_sends_each_row_once(
    make_services: MakeServices, clock: FakeClock, ingestion: LogsIngestionStandIn
) -> None:
    svc = make_services(clock, AUTO_DISABLE_MIN_ATTEMPTS="100000")
    svc.worker.uploads = 1  # the outage opens after the first upload, before any settle
    _queue_hits(svc, ingestion, 5)
    clock.advance(2)  # past the first retry step
    window = _outage_after_upload(svc, clock, seconds=40)

    run = svc.worker.run(timedelta(seconds=30))  # never raises on the outage

    assert window.refused > 0, "the outage must have met the settle"
    # Long after every lease would have ended, another run finds nothing to send again.
    clock.advance(svc.settings.claim_lease.total_seconds() * 2)
    svc.worker.run(timedelta(seconds=5))
    landed = Counter(row["RequestId"] for row in ingestion.accepted)
    assert landed == Counter({f"settle-{n:03d}": 1 for n in range(5)})
    assert run.delivered == 5
    assert svc.worker.queue.stats().pending == 0


def test_storage_outage_past_the_lease_ends_the_run_cleanly_and_counts_it(
    make_services: MakeServices, clock: FakeClock, ingestion: LogsIngestionStandIn
) -> None:
    """An outage longer than the lease: the settle gives up before another instance could claim
    the entries (at-least-once: they come due again), and the run ends without raising."""
    svc = make_services(clock, AUTO_DISABLE_MIN_ATTEMPTS="100000")
    svc.worker.uploads = 1
    _queue_hits(svc, ingestion, 2)
    clock.advance(2)
    window = _outage_after_upload(svc, clock, seconds=svc.settings.claim_lease.total_seconds() * 3)

    run = svc.worker.run(timedelta(seconds=30))

    assert window.refused > 0
    assert run.storage_errors >= 1
    assert clock() < window.opened_at + window.length if window.opened_at else False  # still down


def test_completeness_timer_ends_cleanly_on_a_storage_outage_and_the_next_firing_works(
    make_services: MakeServices, clock: FakeClock, completeness_env: dict[str, str]
) -> None:
    """Issue 24, defect 3: the watchdog's state read (`get_watch`) met an Azurite stop and the
    timer run failed; it logs and ends, and the next firing works."""
    svc = make_services(clock, **completeness_env, WATCHDOG_QUIET_HOURS="1")
    assert svc.completeness is not None
    window = OutageWindow(svc.completeness.log._table, clock)
    svc.completeness.log._table = window  # type: ignore[assignment]
    svc.completeness.watchdog.log._table = window  # type: ignore[assignment]
    window.open_for(60)

    out = svc.completeness.run_timer()  # raised StoreUnavailable before

    assert window.refused > 0
    assert out["reconciled"] == {"error": "storage unavailable"}
    clock.advance(120)
    again = svc.completeness.run_timer()
    assert isinstance(again["reconciled"], list)
    assert again["watchdog"]["integration"].get("error") is None


def test_an_uploaded_entry_waiting_for_its_settle_group_keeps_its_lease(
    make_services: MakeServices, clock: FakeClock, ingestion: LogsIngestionStandIn
) -> None:
    """Delivered entries settle in groups: one uploaded early waits for the uploads after it. Its
    lease is renewed until its settle starts, so another instance never claims and resends it."""
    svc = make_services(clock, AUTO_DISABLE_MIN_ATTEMPTS="100000")
    other = make_services(clock, AUTO_DISABLE_MIN_ATTEMPTS="100000")
    svc.worker.uploads = 1
    svc.worker.settle_batch = 25  # the first entry waits for the second upload to settle with it
    _queue_hits(svc, ingestion, 2)
    clock.advance(2)
    lease = svc.settings.claim_lease.total_seconds()
    upload = svc.worker.relay.attempt
    seen: list[str] = []
    resent: list[int] = []

    def slow_second(entry: QueueEntry) -> DeliveryReport:
        seen.append(entry.id)
        if len(seen) == 2:  # the second upload outlives the first entry's lease (renewed on time)
            for _ in range(2):
                clock.advance(lease * 0.55)
                svc.worker.leases.renew_due()
            resent.append(other.worker.run_once().attempted)
        return upload(entry)

    svc.worker.relay.attempt = slow_second  # type: ignore[method-assign]
    run = svc.worker.run_once()

    assert resent == [0], "another instance claimed an uploaded entry"
    assert run.delivered == 2
    landed = Counter(row["RequestId"] for row in ingestion.accepted)
    assert landed == Counter({"settle-000": 1, "settle-001": 1})
