"""RetryQueue against a real Azurite: payload chunking, ordering, leases, races, moves."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from datetime import timedelta

import pytest
from azure.core.pipeline import PipelineRequest
from azure.data.tables import TableClient, TableServiceClient
from store_fixtures import FakeClock, own_client, race

from local.standins.azurite import Azurite
from shared.schema import Row
from shared.store import QueueEntry, RetryQueue, StoreTables, StoreUnavailable
from shared.store.queue import CHUNK_BYTES, MAX_ENTRY_PAYLOAD, PARKED, PENDING, compress_rows

LEASE = timedelta(minutes=5)


@pytest.fixture
def queue(tables: StoreTables, clock: FakeClock) -> RetryQueue:
    return RetryQueue(tables.queue, clock)


def noisy_rows(count: int, size: int, tag: str = "r") -> list[Row]:
    """Rows whose RawData barely compresses (random base64), so sizes are predictable."""
    return [
        {
            "TimeGenerated": "2026-03-01T12:00:00Z",
            "EventType": "hit",
            "Id": f"{tag}{index}",
            "RawData": base64.b64encode(os.urandom(size * 3 // 4)).decode(),
        }
        for index in range(count)
    ]


def small_rows(tag: str, count: int = 2) -> list[Row]:
    return [{"Id": f"{tag}-{i}", "EventType": "hit"} for i in range(count)]


def test_round_trip_with_payload_over_64k_compressed(queue: RetryQueue, clock: FakeClock) -> None:
    rows = noisy_rows(4, 40_000)  # ~120 KB compressed: several 64 KiB chunks
    assert len(compress_rows(rows)) > CHUNK_BYTES
    [entry] = queue.enqueue(rows, due_at=clock(), attempt=1, reason="ingestion_failed", status=503)
    assert entry.row_count == 4 and entry.attempt == 1 and entry.first_failed_at == clock()

    [claimed] = queue.claim_due(10, LEASE)
    assert claimed.id == entry.id
    assert claimed.rows == rows
    assert claimed.last_status == 503 and claimed.claims == 1
    assert claimed.due_at == clock() + LEASE
    assert queue.claim_due(10, LEASE) == []  # leased: not due again yet

    assert queue.complete(claimed) is True
    stats = queue.stats()
    assert (stats.pending, stats.pending_rows, stats.parked, stats.quarantined) == (0, 0, 0, 0)


def test_payload_over_1mib_is_split_into_entries_in_order(queue: RetryQueue, clock: FakeClock) -> None:
    rows = noisy_rows(40, 40_000)  # ~1.2 MB compressed
    assert len(compress_rows(rows)) > 1024 * 1024
    entries = queue.enqueue(rows, due_at=clock(), reason="too_big")
    assert len(entries) >= 2
    assert [e.id for e in entries] == sorted(e.id for e in entries)
    assert all(len(e.payload) <= MAX_ENTRY_PAYLOAD for e in entries)
    assert queue.stats().pending_rows == 40

    claimed = queue.claim_due(100, LEASE)
    assert [e.id for e in claimed] == [e.id for e in entries]
    assert [row for e in claimed for row in e.rows] == rows


def test_due_order_then_arrival_order(queue: RetryQueue, clock: FakeClock) -> None:
    now = clock()
    late = queue.enqueue(small_rows("late"), due_at=now - timedelta(seconds=1), reason="x")[0]
    first = queue.enqueue(small_rows("first"), due_at=now - timedelta(minutes=5), reason="x")[0]
    tie_a = queue.enqueue(small_rows("tie_a"), due_at=now - timedelta(minutes=2), reason="x")[0]
    tie_b = queue.enqueue(small_rows("tie_b"), due_at=now - timedelta(minutes=2), reason="x")[0]
    future = queue.enqueue(small_rows("future"), due_at=now + timedelta(minutes=1), reason="x")[0]

    assert queue.next_due_at() == first.due_at
    claimed = queue.claim_due(10, LEASE)
    assert [e.id for e in claimed] == [first.id, tie_a.id, tie_b.id, late.id]
    assert queue.next_due_at() == future.due_at

    clock.advance(timedelta(minutes=1))
    assert [e.id for e in queue.claim_due(10, LEASE)] == [future.id]
    assert queue.claim_due(10, LEASE) == []


def test_limit_is_respected(queue: RetryQueue, clock: FakeClock) -> None:
    for index in range(5):
        queue.enqueue(small_rows(f"e{index}"), due_at=clock(), reason="x")
    assert len(queue.claim_due(2, LEASE)) == 2
    assert len(queue.claim_due(10, LEASE)) == 3


def test_concurrent_claimers_each_entry_exactly_once(
    queue: RetryQueue, tables: StoreTables, clock: FakeClock, azurite: Azurite
) -> None:
    ids = {
        e.id for i in range(200) for e in queue.enqueue(small_rows(f"n{i}", 1), due_at=clock(), reason="x")
    }
    assert len(ids) == 200

    claims: list[list[QueueEntry]] = [[] for _ in range(8)]

    def worker(slot: int) -> None:
        client = own_client(azurite.connection_string, tables.queue)
        mine = RetryQueue(client, clock)
        try:
            while True:
                got = mine.claim_due(7, LEASE)
                if not got:
                    return
                claims[slot].extend(got)
        finally:
            client.close()

    assert not race(worker)
    claimed_ids = [e.id for per_thread in claims for e in per_thread]
    assert len(claimed_ids) == 200
    assert set(claimed_ids) == ids
    assert sum(1 for per_thread in claims if per_thread) >= 2  # they really competed
    assert queue.stats().pending == 200  # all leased, none lost


def counting_client(
    azurite: Azurite, table: TableClient, before_batch: Callable[[], None] | None = None
) -> tuple[TableClient, list[str]]:
    """A client of the same table that notes each request (method and last path part) and may
    act just before its first transaction is sent (another worker's move at the worst moment)."""
    seen: list[str] = []

    def hook(request: PipelineRequest) -> None:
        url = request.http_request.url.split("?")[0]
        seen.append(f"{request.http_request.method} {url.rsplit('/', 1)[-1]}")
        if before_batch is not None and url.endswith("$batch") and seen.count(seen[-1]) == 1:
            before_batch()

    client = TableClient.from_connection_string(
        azurite.connection_string, table_name=table.table_name, raw_request_hook=hook
    )
    return client, seen


def test_claims_found_by_one_query_take_one_transaction(
    queue: RetryQueue, tables: StoreTables, clock: FakeClock, azurite: Azurite
) -> None:
    ids = [queue.enqueue(small_rows(f"b{i}"), due_at=clock(), reason="x")[0].id for i in range(30)]
    client, seen = counting_client(azurite, tables.queue)
    with client:
        claimed = RetryQueue(client, clock).claim_due(30, LEASE)
    assert [e.id for e in claimed] == ids  # oldest due first
    assert [e.claims for e in claimed] == [1] * 30 and claimed[0].rows == small_rows("b0")
    assert seen == [f"GET {tables.queue.table_name}()", "POST $batch"]
    assert queue.claim_due(30, LEASE) == []  # all leased
    assert queue.complete_all(claimed) == [True] * 30
    assert queue.stats().pending == 0


def test_a_claim_transaction_that_lost_one_entry_claims_the_rest_one_by_one(
    queue: RetryQueue, tables: StoreTables, clock: FakeClock, azurite: Azurite
) -> None:
    ids = [queue.enqueue(small_rows(f"r{i}"), due_at=clock(), reason="x")[0].id for i in range(5)]
    rival: list[QueueEntry] = []
    client, seen = counting_client(
        azurite, tables.queue, before_batch=lambda: rival.extend(queue.claim_due(1, LEASE))
    )
    with client:
        mine = RetryQueue(client, clock).claim_due(5, LEASE)
    assert [e.id for e in rival] == ids[:1]  # the rival took the oldest while we were deciding
    assert [e.id for e in mine] == ids[1:]  # in due order, each exactly once
    assert seen.count("POST $batch") == 1 + 5  # the failed transaction, then one per entry
    assert queue.stats().pending == 5


def test_complete_all_after_a_lost_lease_removes_only_what_we_still_hold(
    queue: RetryQueue, clock: FakeClock
) -> None:
    for i in range(4):
        queue.enqueue(small_rows(f"c{i}"), due_at=clock(), reason="x")
    first = queue.claim_due(4, LEASE)
    clock.advance(LEASE)  # our worker stalled: the lease ran out
    [again] = queue.claim_due(1, LEASE)  # another worker re-claimed the oldest
    assert again.id == first[0].id
    assert queue.complete_all(first) == [False, True, True, True]
    assert queue.stats().pending == 1  # the re-claimed one stays with its new owner
    assert queue.complete_all([again]) == [True]
    assert queue.complete_all([]) == []
    assert queue.stats().pending == 0


def test_lease_expiry_redelivers_after_a_crash(queue: RetryQueue, clock: FakeClock) -> None:
    [entry] = queue.enqueue(small_rows("crash"), due_at=clock(), reason="x")
    [first] = queue.claim_due(1, LEASE)  # the worker "crashes" here: no complete/reschedule

    clock.advance(LEASE - timedelta(seconds=1))
    assert queue.claim_due(1, LEASE) == []
    clock.advance(timedelta(seconds=1))
    [second] = queue.claim_due(1, LEASE)
    assert second.id == entry.id and second.claims == 2 and second.rows == first.rows

    # The crashed worker wakes up late: its stale claim must not remove the live one.
    assert queue.complete(first) is False
    assert queue.reschedule(first, due_at=clock(), attempt=9, status=500, error="x", request_id="") is None
    assert queue.stats().pending == 1
    assert queue.complete(second) is True
    assert queue.stats().pending == 0


def test_a_lease_that_ran_out_leaves_the_entry_in_doubt_until_an_answer(
    queue: RetryQueue, clock: FakeClock
) -> None:
    """The crashed worker may have uploaded: the next claim marks the entry in doubt since the
    lease's end; a release keeps the doubt, a clear answer (a 503) ends it."""
    queue.enqueue(small_rows("doubt"), due_at=clock(), reason="x")
    [first] = queue.claim_due(1, LEASE)
    assert first.doubt_since is None
    clock.advance(LEASE)
    [second] = queue.claim_due(1, LEASE)
    assert second.doubt_since == first.due_at  # the end of the lease that ran out

    later = clock() + timedelta(seconds=90)
    assert queue.release([second], due_at=later) == 1
    assert queue.next_due_at() == later
    clock.set(later)
    [third] = queue.claim_due(1, LEASE)  # released, not run out: no new doubt, the old one kept
    assert third.doubt_since == first.due_at
    answered = queue.reschedule(third, due_at=clock(), attempt=2, status=503, error="x", request_id="")
    assert answered is not None and answered.doubt_since is None
    [fourth] = queue.claim_due(1, LEASE)
    assert fourth.doubt_since is None


def test_a_released_entry_is_not_in_doubt(queue: RetryQueue, clock: FakeClock) -> None:
    queue.enqueue(small_rows("unstarted"), due_at=clock(), reason="x")
    [claimed] = queue.claim_due(1, LEASE)
    assert queue.release([claimed]) == 1
    [again] = queue.claim_due(1, LEASE)
    assert again.doubt_since is None and again.claims == 2


def test_reschedule_keeps_id_and_records_failure(queue: RetryQueue, clock: FakeClock) -> None:
    rows = small_rows("r", 3)
    [entry] = queue.enqueue(rows, due_at=clock(), attempt=1, reason="x", status=503)
    [claimed] = queue.claim_due(1, LEASE)
    later = clock() + timedelta(minutes=3)
    moved = queue.reschedule(
        claimed,
        due_at=later,
        attempt=2,
        status=429,
        error="TooManyRequests",
        request_id="req-1",
        rows=rows[1:],
    )
    assert moved is not None
    assert (moved.id, moved.attempt, moved.last_status, moved.last_error) == (
        entry.id,
        2,
        429,
        "TooManyRequests",
    )
    assert moved.first_failed_at == entry.first_failed_at
    assert queue.next_due_at() == later

    clock.set(later)
    [again] = queue.claim_due(1, LEASE)
    assert again.rows == rows[1:] and again.last_request_id == "req-1" and again.attempt == 2
    assert queue.stats().pending_rows == 2


def test_quarantine_list_and_replay(queue: RetryQueue, clock: FakeClock) -> None:
    rows = small_rows("poison")
    queue.enqueue(rows, due_at=clock(), reason="x")
    [claimed] = queue.claim_due(1, LEASE)
    assert queue.quarantine(claimed, status=400, error="InvalidStream", request_id="req-9") is True

    stats = queue.stats()
    assert (stats.pending, stats.quarantined, stats.quarantined_rows) == (0, 1, 2)
    [listed] = queue.list_quarantined()
    assert (listed.id, listed.last_status, listed.last_error, listed.last_request_id) == (
        claimed.id,
        400,
        "InvalidStream",
        "req-9",
    )
    assert listed.rows == [] and listed.row_count == 2

    assert queue.replay_quarantined(clock(), ids=[claimed.id, "000000000000000-missing"]) == 1
    assert queue.stats().quarantined == 0
    [replayed] = queue.claim_due(1, LEASE)
    assert replayed.id == claimed.id and replayed.rows == rows


def test_quarantine_after_lost_lease_leaves_no_copy(queue: RetryQueue, clock: FakeClock) -> None:
    queue.enqueue(small_rows("q"), due_at=clock(), reason="x")
    [stale] = queue.claim_due(1, LEASE)
    clock.advance(LEASE)
    [live] = queue.claim_due(1, LEASE)
    assert queue.quarantine(stale, status=400, error="Bad", request_id="") is False
    stats = queue.stats()
    assert (stats.pending, stats.quarantined) == (1, 0)
    assert queue.quarantine(live, status=400, error="Bad", request_id="") is True


def test_park_and_unpark_in_id_order(queue: RetryQueue, clock: FakeClock) -> None:
    parked = [queue.park(small_rows(f"p{i}"), reason="integration_disabled")[0] for i in range(3)]
    assert queue.stats().parked == 3
    assert queue.claim_due(10, LEASE) == []  # parked rows are never due

    clock.advance(timedelta(hours=1))
    assert queue.unpark_all(clock()) == 3
    assert queue.unpark_all(clock()) == 0
    stats = queue.stats()
    assert (stats.parked, stats.pending, stats.pending_rows) == (0, 3, 6)
    assert [e.id for e in queue.claim_due(10, LEASE)] == [p.id for p in parked]


def test_unpark_resumes_after_a_crash_without_duplicates(
    queue: RetryQueue, tables: StoreTables, clock: FakeClock
) -> None:
    [entry] = queue.park(small_rows("crash"), reason="integration_disabled")
    # Simulate an unpark that crashed after marking the source and creating the pending copy.
    source = tables.queue.get_entity(PARKED, entry.id)
    target = f"{int(clock().timestamp() * 1000):015d}_{entry.id}"
    tables.queue.update_entity({"PartitionKey": PARKED, "RowKey": entry.id, "moving_to": target})
    copy = {k: v for k, v in source.items() if k != "moving_to"}
    copy.update({"PartitionKey": PENDING, "RowKey": target})
    tables.queue.create_entity(copy)

    clock.advance(timedelta(minutes=10))  # the retry passes a different due time
    assert queue.unpark_all(clock()) == 1
    stats = queue.stats()
    assert (stats.parked, stats.pending) == (0, 1)


def test_replay_all_quarantined(queue: RetryQueue, clock: FakeClock) -> None:
    for index in range(3):
        queue.enqueue(small_rows(f"z{index}"), due_at=clock(), reason="x")
    for claimed in queue.claim_due(10, LEASE):
        queue.quarantine(claimed, status=413, error="ContentLengthLimitExceeded", request_id="")
    assert len(queue.list_quarantined(limit=2)) == 2
    assert queue.replay_quarantined(clock()) == 3
    assert queue.stats().pending == 3


def test_empty_enqueue_and_empty_queue(queue: RetryQueue, clock: FakeClock) -> None:
    assert queue.enqueue([], due_at=clock(), reason="x") == []
    assert queue.next_due_at() is None
    assert queue.claim_due(5, LEASE) == []
    stats = queue.stats()
    assert stats.oldest_pending_created_at is None and stats.pending == 0


def test_unreachable_storage_raises_store_unavailable(clock: FakeClock) -> None:
    client = TableClient.from_connection_string(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
        "TableEndpoint=http://127.0.0.1:9/devstoreaccount1;",
        table_name="nowhere",
        retry_total=0,
        connection_timeout=1,
    )
    with pytest.raises(StoreUnavailable) as caught:
        RetryQueue(client, clock).enqueue(small_rows("x"), due_at=clock(), reason="x")
    assert "queue.enqueue" in str(caught.value)


def test_missing_table_raises_store_unavailable_with_status(
    table_service: TableServiceClient, clock: FakeClock
) -> None:
    client = table_service.get_table_client("doesnotexist0queue")
    with pytest.raises(StoreUnavailable) as caught:
        RetryQueue(client, clock).stats()
    assert caught.value.status == 404
