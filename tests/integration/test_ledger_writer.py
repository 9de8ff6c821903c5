"""LedgerWriter against a real Azurite: a tally is one write of attempts and counts together; the rule
is asked only after a failure; a Table outage never fails the caller."""

from __future__ import annotations

import threading

import pytest
from store_fixtures import AskedSwitch, FakeClock

from shared.delivery.ingestion import Attempt, DeliveryReport
from shared.health.ledger_writer import LedgerWriter
from shared.health.request_tally import RequestTally
from shared.store import AttemptLedger, HourlyCounters, StoreTables
from shared.telemetry import Telemetry

OK = Attempt(ok=True, rows=3, status=204, request_id="r1")
FAIL = Attempt(ok=False, rows=2, status=503, error="ServiceUnavailable", request_id="r2")


def _books(tables: StoreTables, clock: FakeClock, asked: list[int]) -> tuple[LedgerWriter, HourlyCounters]:
    counters = HourlyCounters(tables.counters, clock)
    ledger = AttemptLedger(tables.ledger, clock, counters)
    return LedgerWriter(ledger, Telemetry(), switch=AskedSwitch(asked)), counters


def test_attempts_and_counts_land_in_the_same_hour_row(tables: StoreTables) -> None:
    clock = FakeClock()
    asked: list[int] = []
    books, counters = _books(tables, clock, asked)
    tally = RequestTally.of(DeliveryReport(attempts=[OK]), source="webhook")
    tally.add({"received": 1, "delivered": 3})
    books.write(tally)
    hour = counters.read(clock().replace(minute=0, second=0, microsecond=0))
    assert hour["received"] == 1 and hour["delivered"] == 3
    assert sum(v for k, v in hour.items() if k.startswith("attempts_m")) == 1
    assert sum(v for k, v in hour.items() if k.startswith("failures_m")) == 0
    assert asked == []  # a success never re-evaluates the auto-disable rule


def test_a_failure_is_recorded_then_the_rule_is_asked(tables: StoreTables) -> None:
    clock = FakeClock()
    asked: list[int] = []
    books, counters = _books(tables, clock, asked)
    books.write(RequestTally.of(DeliveryReport(attempts=[OK, FAIL]), source="retry", entry_id="e1"))
    hour = counters.read(clock().replace(minute=0, second=0, microsecond=0))
    assert sum(v for k, v in hour.items() if k.startswith("failures_m")) == 1
    assert asked == [1]
    failed = list(tables.ledger.list_entities())
    assert [(e["status"], e["source"], e["entry_id"]) for e in failed] == [(503, "retry", "e1")]


def test_an_empty_tally_writes_nothing(tables: StoreTables) -> None:
    clock = FakeClock()
    books, _ = _books(tables, clock, [])
    books.write(RequestTally("hourly"))
    assert list(tables.counters.list_entities()) == []


def test_a_table_outage_is_logged_not_raised(tables: StoreTables, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    asked: list[int] = []
    books, _ = _books(tables, clock, asked)
    tables.counters.delete_table()  # every write now fails as a lost table does in Azure
    tables.ledger.delete_table()
    books.write(RequestTally.of(DeliveryReport(attempts=[FAIL]), source="webhook"))
    assert "Ledger and hourly counters not updated" in caplog.text
    assert asked == []  # no rule check on counts that were not written


def _attempts_and_failures(counters: HourlyCounters, clock: FakeClock) -> tuple[int, int]:
    hour = counters.read(clock().replace(minute=0, second=0, microsecond=0))
    return (
        sum(v for k, v in hour.items() if k.startswith("attempts_m")),
        sum(v for k, v in hour.items() if k.startswith("failures_m")),
    )


def test_each_write_is_stored_when_it_returns_also_when_32_run_at_once(tables: StoreTables) -> None:
    """Nothing is deferred past the caller's answer (issue 19): a write that returned is in the
    counters, so a SIGKILL right after an answer loses no count; concurrent writes share the
    counter upserts (group commit) and none is lost."""
    clock = FakeClock()
    books, counters = _books(tables, clock, [])
    seen: list[tuple[int, int]] = []
    lock = threading.Lock()

    def one() -> None:
        books.write(RequestTally.of(DeliveryReport(attempts=[OK]), source="webhook"))
        with lock:
            seen.append(_attempts_and_failures(counters, clock))

    threads = [threading.Thread(target=one) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    # Each read follows its own write: the k-th smallest count seen is at least k.
    assert all(a >= rank + 1 for rank, (a, _f) in enumerate(sorted(seen)))
    assert _attempts_and_failures(counters, clock) == (32, 0)
