"""RequestTally: what one request did, added to by each step, pure."""

from __future__ import annotations

from shared.delivery.ingestion import Attempt, DeliveryReport
from shared.health.request_tally import RequestTally
from shared.store.ledger import AttemptRecord

OK = Attempt(ok=True, rows=3, status=204, request_id="r1", elapsed=0.01)
FAIL = Attempt(ok=False, rows=2, status=503, error="ServiceUnavailable", request_id="r2")


def test_counts_add_up_and_zeros_are_dropped() -> None:
    tally = RequestTally("webhook")
    tally.add({"received": 1, "delivered": 3, "queued": 0})
    tally.add({"delivered": 2, "type_new_hits": 5})
    assert dict(tally.counts) == {"received": 1, "delivered": 5, "type_new_hits": 5}


def test_attempts_come_from_reports_in_order_and_none_adds_nothing() -> None:
    tally = RequestTally.of(DeliveryReport(attempts=[OK]), source="retry", entry_id="e1")
    tally.add_report(None)
    tally.add_report(DeliveryReport(attempts=[FAIL]))
    assert tally.attempts == [OK, FAIL]
    assert tally.failed


def test_a_tally_without_failures_does_not_ask_for_the_rule() -> None:
    assert not RequestTally.of(DeliveryReport(attempts=[OK, OK]), source="webhook").failed
    assert not RequestTally("hourly").failed


def test_records_carry_the_openers_source_and_entry() -> None:
    tally = RequestTally.of(DeliveryReport(attempts=[OK, FAIL]), source="retry", entry_id="e9")
    assert tally.records() == [
        AttemptRecord(ok=True, status=204, error="", request_id="r1", rows=3, source="retry", entry_id="e9"),
        AttemptRecord(
            ok=False,
            status=503,
            error="ServiceUnavailable",
            request_id="r2",
            rows=2,
            source="retry",
            entry_id="e9",
        ),
    ]
