"""Counting ahead (issue 19): a webhook's planned counts are stored while it delivers, and its
outcome is stored as the difference, so the books are right when the answer goes and a healthy
webhook needs no write of its own after the delivery."""

from __future__ import annotations

from typing import Any

from store_fixtures import AskedSwitch, FakeClock

from shared.delivery.ingestion import Attempt, DeliveryReport
from shared.health.ledger_writer import LedgerWriter
from shared.health.request_tally import RequestTally
from shared.store import AttemptLedger, HourlyCounters, StoreTables
from shared.telemetry import Telemetry

OK = Attempt(ok=True, rows=3, status=204, request_id="r1")
FAIL = Attempt(ok=False, rows=3, status=503, error="ServiceUnavailable", request_id="r2")


class CountingLedger(AttemptLedger):
    writes = 0

    def record_all(self, *args: Any, **kwargs: Any) -> None:
        """Counts the writes; the ledger's own signature (and its checks) stay the ledger's."""
        type(self).writes += 1
        super().record_all(*args, **kwargs)


def _hour(counters: HourlyCounters, clock: FakeClock) -> dict[str, int]:
    raw = counters.read(clock().replace(minute=0, second=0, microsecond=0))
    out = {k: v for k, v in raw.items() if not k.startswith(("attempts_m", "failures_m"))}
    out["attempts"] = sum(v for k, v in raw.items() if k.startswith("attempts_m"))
    out["failures"] = sum(v for k, v in raw.items() if k.startswith("failures_m"))
    return out


def _planned(clock: FakeClock) -> RequestTally:
    tally = RequestTally("webhook", at=clock())
    tally.count_ahead({"received": 1, "delivered": 3, "type_new_hits": 3}, 1)
    return tally


def test_a_webhook_that_went_as_planned_is_stored_ahead_and_not_written_again(tables: StoreTables) -> None:
    clock = FakeClock()
    counters = HourlyCounters(tables.counters, clock)
    CountingLedger.writes = 0
    books = LedgerWriter(CountingLedger(tables.ledger, clock, counters), Telemetry())
    tally = _planned(clock)
    books.write_ahead(tally)
    assert _hour(counters, clock) == {
        "received": 1,
        "delivered": 3,
        "type_new_hits": 3,
        "attempts": 1,
        "failures": 0,
    }
    tally.add_report(DeliveryReport(attempts=[OK]))
    tally.add({"received": 1, "delivered": 3, "type_new_hits": 3})
    assert tally.settled_ahead
    books.write(tally)
    assert CountingLedger.writes == 0  # nothing left to store
    assert _hour(counters, clock)["attempts"] == 1


def test_a_webhook_that_failed_after_counting_ahead_ends_with_the_truth(tables: StoreTables) -> None:
    clock = FakeClock()
    counters = HourlyCounters(tables.counters, clock)
    asked: list[int] = []
    books = LedgerWriter(
        AttemptLedger(tables.ledger, clock, counters), Telemetry(), switch=AskedSwitch(asked)
    )
    tally = _planned(clock)
    books.write_ahead(tally)
    tally.add_report(DeliveryReport(attempts=[FAIL]))
    tally.add({"received": 1, "queued": 3, "type_new_hits": 3})
    assert not tally.settled_ahead and tally.delta() == {"delivered": -3, "queued": 3}
    books.write(tally)
    hour = _hour(counters, clock)
    assert (hour["received"], hour.get("delivered", 0), hour["queued"]) == (1, 0, 3)
    assert (hour["attempts"], hour["failures"]) == (1, 1)
    assert asked == [1]
    assert [e["status"] for e in tables.ledger.list_entities()] == [503]


def test_a_413_split_counts_every_request_made(tables: StoreTables) -> None:
    clock = FakeClock()
    counters = HourlyCounters(tables.counters, clock)
    books = LedgerWriter(AttemptLedger(tables.ledger, clock, counters), Telemetry())
    tally = _planned(clock)
    books.write_ahead(tally)
    too_large = Attempt(ok=False, rows=3, status=413, error="ContentLengthLimitExceeded")
    tally.add_report(DeliveryReport(attempts=[too_large, OK, OK]))
    tally.add({"received": 1, "delivered": 3, "type_new_hits": 3})
    books.write(tally)
    assert (_hour(counters, clock)["attempts"], _hour(counters, clock)["failures"]) == (3, 1)
