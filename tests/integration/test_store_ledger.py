"""AttemptLedger against a real Azurite: bucket counts (in the hourly counters), the 12 h window
boundary, races, failed-attempt records, purge."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from store_fixtures import T0, FakeClock, own_client, race

from local.standins.azurite import Azurite
from shared.store import AttemptLedger, AttemptRecord, HourlyCounters, StoreTables, WindowCounts

OK = AttemptRecord(ok=True, status=204, error="", request_id="r-ok", rows=3, source="webhook", entry_id="")
# The same rows, failed on a retry.
FAIL = replace(
    OK, ok=False, status=503, error="ServiceUnavailable", request_id="r-fail", source="retry", entry_id="e1"
)


WINDOW = timedelta(hours=12)  # the window these tests count over (the rule passes its own)


@pytest.fixture
def ledger(tables: StoreTables, clock: FakeClock) -> AttemptLedger:
    return AttemptLedger(tables.ledger, clock, HourlyCounters(tables.counters, clock))


def test_record_counts_attempts_and_failures(ledger: AttemptLedger, tables: StoreTables) -> None:
    ledger.record(OK)
    ledger.record(FAIL)
    ledger.record(FAIL)
    counts = ledger.failure_window(WINDOW)
    assert counts == WindowCounts(attempts=3, failures=2)
    assert counts.failure_ratio == pytest.approx(2 / 3)
    failed = list(tables.ledger.query_entities("PartitionKey eq '2026030112'"))
    assert len(failed) == 2  # failures are kept one by one; successes are only counted
    assert {(a["request_id"], a["status"], a["error"]) for a in failed} == {
        ("r-fail", 503, "ServiceUnavailable")
    }


def test_attempt_counts_share_the_callers_counter_write(
    ledger: AttemptLedger, tables: StoreTables, clock: FakeClock
) -> None:
    ledger.record_all([OK, FAIL], {"received": 1, "delivered": 3})
    totals = HourlyCounters(tables.counters, clock).read(T0)
    assert totals == {"received": 1, "delivered": 3, "attempts_m00": 2, "failures_m00": 1}


def test_window_boundary_exactly_12h_ago_is_in(ledger: AttemptLedger, clock: FakeClock) -> None:
    """Documented choice: whole buckets from the one containing now-12h; now-12h itself is IN."""
    now = T0  # 12:00:00, on a bucket boundary
    clock.set(now - timedelta(hours=12, microseconds=1))  # 23:59:59.999999 the day before: OUT
    ledger.record(FAIL)
    clock.set(now - timedelta(hours=12))  # exactly 00:00:00: IN
    ledger.record(FAIL)
    clock.set(now - timedelta(hours=1))
    ledger.record(OK)
    clock.set(now)
    assert ledger.failure_window(WINDOW) == WindowCounts(attempts=2, failures=1)
    # One second later the 00:00 bucket still counts (granularity: up to one bucket extra)...
    clock.set(now + timedelta(minutes=9, seconds=59))
    assert ledger.failure_window(WINDOW) == WindowCounts(attempts=2, failures=1)
    # ...until the window start moves into the next bucket.
    clock.set(now + timedelta(minutes=10))
    assert ledger.failure_window(WINDOW) == WindowCounts(attempts=1, failures=0)


def test_concurrent_records_lose_no_increment(
    ledger: AttemptLedger, tables: StoreTables, clock: FakeClock, azurite: Azurite
) -> None:

    def worker(slot: int) -> None:
        client = own_client(azurite.connection_string, tables.ledger)
        counters_client = own_client(azurite.connection_string, tables.counters)
        mine = AttemptLedger(client, clock, HourlyCounters(counters_client, clock))
        try:
            for index in range(50):
                mine.record(FAIL if (slot + index) % 5 == 0 else OK)
        finally:
            client.close()
            counters_client.close()

    assert not race(worker)
    expected_failures = sum(1 for slot in range(8) for index in range(50) if (slot + index) % 5 == 0)
    assert ledger.failure_window(WINDOW) == WindowCounts(attempts=400, failures=expected_failures)


def test_purge_removes_old_failed_attempts(
    ledger: AttemptLedger, tables: StoreTables, clock: FakeClock
) -> None:
    clock.set(T0 - timedelta(days=3))
    ledger.record(FAIL)
    ledger.record(FAIL)
    clock.set(T0)
    ledger.record(FAIL)
    assert ledger.purge(timedelta(days=2)) == 2
    remaining = list(tables.ledger.list_entities(select=["PartitionKey", "RowKey"]))
    assert {e["PartitionKey"] for e in remaining} == {"2026030112"}
    assert ledger.purge(timedelta(days=2)) == 0


def test_bucket_must_divide_an_hour(tables: StoreTables, clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="bucket"):
        AttemptLedger(
            tables.ledger, clock, HourlyCounters(tables.counters, clock), bucket=timedelta(minutes=7)
        )
