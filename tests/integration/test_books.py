"""Books against a real Azurite: a tally is one write of attempts and counts together; the rule
is asked only after a failure; a Table outage never fails the caller."""

from __future__ import annotations

import threading

import pytest
from store_fixtures import FakeClock

from shared.books import Books
from shared.ingestion import Attempt, DeliveryReport
from shared.store import AttemptLedger, HourlyCounters, StoreTables
from shared.tally import Tally
from shared.telemetry import Telemetry

OK = Attempt(ok=True, rows=3, status=204, request_id="r1")
FAIL = Attempt(ok=False, rows=2, status=503, error="ServiceUnavailable", request_id="r2")


def _books(tables: StoreTables, clock: FakeClock, asked: list[int]) -> tuple[Books, HourlyCounters]:
    counters = HourlyCounters(tables.counters, clock)
    ledger = AttemptLedger(tables.ledger, clock, counters)
    return Books(ledger, Telemetry(), after_failure=lambda: asked.append(1)), counters


def test_attempts_and_counts_land_in_the_same_hour_row(tables: StoreTables) -> None:
    clock = FakeClock()
    asked: list[int] = []
    books, counters = _books(tables, clock, asked)
    tally = Tally.of(DeliveryReport(attempts=[OK]), source="webhook")
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
    books.write(Tally.of(DeliveryReport(attempts=[OK, FAIL]), source="retry", entry_id="e1"))
    hour = counters.read(clock().replace(minute=0, second=0, microsecond=0))
    assert sum(v for k, v in hour.items() if k.startswith("failures_m")) == 1
    assert asked == [1]
    failed = list(tables.ledger.list_entities())
    assert [(e["status"], e["source"], e["entry_id"]) for e in failed] == [(503, "retry", "e1")]


def test_an_empty_tally_writes_nothing(tables: StoreTables) -> None:
    clock = FakeClock()
    books, _ = _books(tables, clock, [])
    books.write(Tally("hourly"))
    assert list(tables.counters.list_entities()) == []


def test_a_table_outage_is_logged_not_raised(tables: StoreTables, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    asked: list[int] = []
    books, _ = _books(tables, clock, asked)
    tables.counters.delete_table()  # every write now fails as a lost table does in Azure
    tables.ledger.delete_table()
    books.write(Tally.of(DeliveryReport(attempts=[FAIL]), source="webhook"))
    assert "Ledger and hourly counters not updated" in caplog.text
    assert asked == []  # no rule check on counts that were not written


def _attempts_and_failures(counters: HourlyCounters, clock: FakeClock) -> tuple[int, int]:
    hour = counters.read(clock().replace(minute=0, second=0, microsecond=0))
    return (
        sum(v for k, v in hour.items() if k.startswith("attempts_m")),
        sum(v for k, v in hour.items() if k.startswith("failures_m")),
    )


def test_write_after_runs_first_then_writes_later_and_flush_waits(tables: StoreTables) -> None:
    clock = FakeClock()
    books, counters = _books(tables, clock, [])
    gate = threading.Event()
    order: list[str] = []

    def first() -> None:
        gate.wait(10)
        order.append("first")

    tally = Tally.of(DeliveryReport(attempts=[OK]), source="webhook")
    tally.add({"received": 1})
    booking = books.write_after(tally, first)
    assert booking is not None and not booking.done()
    assert _attempts_and_failures(counters, clock) == (0, 0)  # not yet: the answer goes first
    assert books.flush(timeout=0.2) is False
    gate.set()
    assert books.flush(timeout=10) is True
    assert order == ["first"]
    assert _attempts_and_failures(counters, clock) == (1, 0)


def test_the_rule_sees_every_success_written_after_an_answer(tables: StoreTables) -> None:
    """Exactness of the 60 % ratio: a failure's write waits for this process's pending writes."""
    clock = FakeClock()
    seen: list[tuple[int, int]] = []
    counters = HourlyCounters(tables.counters, clock)
    ledger = AttemptLedger(tables.ledger, clock, counters)
    books = Books(
        ledger, Telemetry(), after_failure=lambda: seen.append(_attempts_and_failures(counters, clock))
    )
    gate = threading.Event()
    for _ in range(3):
        assert books.write_after(
            Tally.of(DeliveryReport(attempts=[OK]), source="webhook"), lambda: gate.wait(10)
        )
    threading.Timer(0.3, gate.set).start()
    books.write(Tally.of(DeliveryReport(attempts=[FAIL]), source="webhook"))
    assert seen == [(4, 1)]


def test_a_failed_tally_is_never_deferred(tables: StoreTables) -> None:
    books, _ = _books(tables, FakeClock(), [])
    with pytest.raises(ValueError):
        books.write_after(Tally.of(DeliveryReport(attempts=[FAIL]), source="webhook"), lambda: None)


def test_too_many_in_flight_declines_so_the_caller_writes_itself(tables: StoreTables) -> None:
    clock = FakeClock()
    counters = HourlyCounters(tables.counters, clock)
    books = Books(AttemptLedger(tables.ledger, clock, counters), Telemetry(), max_in_flight=2)
    gate = threading.Event()
    try:
        taken = [books.write_after(Tally("webhook"), lambda: gate.wait(10)) for _ in range(3)]
        assert [t is not None for t in taken] == [True, True, False]
    finally:
        gate.set()
    assert books.flush(timeout=10)
