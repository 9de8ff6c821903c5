"""What became of a webhook's rows: its hourly counts, its telemetry and its answer, in one step.
Pure but for the telemetry counters."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.delivery.deliver_or_queue import SubmitResult, types_of
from shared.intake.rows import BodyRows
from shared.schema import Row
from shared.telemetry import Telemetry


def counts_of(
    rows: Sequence[Row], result: SubmitResult, filtered: Counter[str], rejected: int
) -> Counter[str]:
    """A webhook's hourly counters, given what became of its rows."""
    counts: Counter[str] = Counter(
        received=1,
        events=len(rows) + sum(filtered.values()) + rejected,
        delivered=result.delivered,
        queued=result.queued,
        parked=result.parked,
        quarantined=result.quarantined,
        filtered=sum(filtered.values()),
        rejected=rejected,
    )
    for event_type, n in types_of(rows).items():
        counts[f"type_{event_type}"] += n
    return +counts


@dataclass(frozen=True)
class Outcome:
    counts: Counter[str]  # the hourly counters, for the caller's single write
    status: int
    answer: dict[str, Any]  # the JSON body of the answer


def account(telemetry: Telemetry, body: BodyRows, result: SubmitResult) -> Outcome:
    """Counted into telemetry now; the counters and the answer are handed back."""
    rejected = len(body.rejected)
    counts = counts_of(body.rows, result, body.filtered, rejected)
    by_type = types_of(body.rows)
    tel = telemetry
    tel.count_events("received", by_type)
    tel.count_events("filtered", body.filtered)
    if rejected:
        tel.count_events("rejected", {"unparsable": rejected})
    if result.delivered and not (result.queued or result.parked or result.quarantined):
        tel.count_events("delivered", by_type)
    else:
        tel.events.add(result.delivered, {"outcome": "delivered", "event_type": "mixed"})
        tel.events.add(result.queued, {"outcome": "queued", "event_type": "mixed"})
        tel.events.add(result.parked, {"outcome": "parked", "event_type": "mixed"})
        tel.events.add(result.quarantined, {"outcome": "quarantined", "event_type": "mixed"})
    status = 200 if result.queued == result.parked == result.quarantined == 0 else 202
    answer = {
        "status": _summary(result),
        "received": body.items,
        "delivered": result.delivered,
        "queued": result.queued,
        "parked": result.parked,
        "quarantined": result.quarantined,
        "filtered": sum(body.filtered.values()),
        "rejected": [{"index": r.index, "reason": r.reason} for r in body.rejected],
    }
    return Outcome(counts, status, answer)


def _summary(result: SubmitResult) -> str:
    if result.parked:
        return "parked"
    if result.queued:
        return "queued"
    return "quarantined" if result.quarantined else "delivered"
