"""RetryQueue.renew and the LeaseKeeper against Azurite (issue 19, finding 10): a lease renewed
while its upload runs keeps other claimers off, and the settle uses the renewed version."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from store_fixtures import FakeClock

from shared.delivery.lease_keeper import LeaseKeeper
from shared.schema import Row
from shared.store import QueueEntry, RetryQueue, StoreTables, StoreUnavailable

LEASE = timedelta(seconds=60)


@pytest.fixture
def queue(tables: StoreTables, clock: FakeClock) -> RetryQueue:
    return RetryQueue(tables.queue, clock)


def rows(tag: str) -> list[Row]:
    return [{"Id": f"{tag}-{i}", "EventType": "hit"} for i in range(3)]


def claimed(queue: RetryQueue, clock: FakeClock) -> QueueEntry:
    queue.enqueue(rows("a"), due_at=clock(), reason="test")
    [entry] = queue.claim_due(10, LEASE)
    return entry


def test_a_renewed_lease_keeps_other_claimers_off_and_the_renewed_version_settles(
    queue: RetryQueue, clock: FakeClock
) -> None:
    entry = claimed(queue, clock)
    clock.advance(timedelta(seconds=40))
    renewed = queue.renew(entry, LEASE)
    assert renewed is not None and renewed.due_at == clock() + LEASE and renewed.etag != entry.etag
    assert renewed.rows == entry.rows and renewed.claims == entry.claims
    clock.advance(timedelta(seconds=30))  # past the first lease, inside the renewed one
    assert queue.claim_due(10, LEASE) == []
    assert queue.pull_forward(10) == 0  # still marked leased
    assert queue.complete(entry) is False  # the old version is gone
    assert queue.complete(renewed) is True
    assert queue.next_due_at() is None


def test_renewing_a_lease_another_worker_took_over_fails(queue: RetryQueue, clock: FakeClock) -> None:
    entry = claimed(queue, clock)
    clock.advance(LEASE + timedelta(seconds=1))
    [other] = queue.claim_due(10, LEASE)  # the lease ran out: another worker has it
    assert other.id == entry.id
    assert queue.renew(entry, LEASE) is None


def test_the_keeper_renews_past_half_the_lease_and_release_gives_the_newest_version(
    queue: RetryQueue, clock: FakeClock
) -> None:
    keeper = LeaseKeeper(queue.renew, lease=LEASE, clock=clock, background=False)
    entry = claimed(queue, clock)
    keeper.hold(entry)
    clock.advance(timedelta(seconds=20))
    keeper.renew_due()
    assert keeper.renewed == 0  # 40 s of 60 left: nothing to do yet
    clock.advance(timedelta(seconds=15))
    keeper.renew_due()
    assert keeper.renewed == 1
    newest = keeper.release(entry)
    assert newest.due_at == clock() + LEASE
    clock.advance(timedelta(seconds=50))
    keeper.renew_due()
    assert keeper.renewed == 1  # released: no longer renewed
    assert queue.complete(newest) is True


def test_a_hung_upload_is_not_held_past_max_hold_and_a_lost_lease_is_not_retried(
    queue: RetryQueue, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    keeper = LeaseKeeper(
        queue.renew, lease=LEASE, clock=clock, max_hold=timedelta(seconds=100), background=False
    )
    entry = claimed(queue, clock)
    keeper.hold(entry)
    for _ in range(3):
        clock.advance(timedelta(seconds=35))
        keeper.renew_due()
    assert keeper.renewed == 2  # at 35 s and 70 s; at 105 s it has been held too long
    assert "no longer renewed" in caplog.text
    clock.advance(LEASE)
    assert [e.id for e in queue.claim_due(10, LEASE)] == [entry.id]  # another worker may take it


def test_a_table_outage_during_renewal_is_retried_on_the_next_pass(
    queue: RetryQueue, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    def flaky(entry: QueueEntry, lease: timedelta) -> QueueEntry | None:
        calls.append(1)
        if len(calls) == 1:
            raise StoreUnavailable("queue.renew", status=503)
        return queue.renew(entry, lease)

    keeper = LeaseKeeper(flaky, lease=LEASE, clock=clock, background=False)
    entry = claimed(queue, clock)
    keeper.hold(entry)
    clock.advance(timedelta(seconds=45))
    keeper.renew_due()
    assert "Lease not renewed, will retry" in caplog.text
    keeper.renew_due()
    assert (len(calls), keeper.renewed) == (2, 1)
    assert queue.complete(keeper.release(entry)) is True


def test_the_background_thread_renews_without_being_asked(queue: RetryQueue, clock: FakeClock) -> None:
    short = timedelta(seconds=0.8)
    keeper = LeaseKeeper(queue.renew, lease=short, clock=clock)
    queue.enqueue(rows("b"), due_at=clock(), reason="test")
    [entry] = queue.claim_due(10, short)
    keeper.hold(entry)
    clock.advance(timedelta(seconds=0.5))
    for _ in range(400):  # the thread looks every 0.1 s; bounded wait, no fixed sleep
        if keeper.renewed:
            break
        threading.Event().wait(0.05)
    assert keeper.renewed >= 1
    assert queue.complete(keeper.release(entry)) is True
