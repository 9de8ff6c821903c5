"""What one request did, for the ledger and the hourly counters.

The step that opens a tally (the webhook, the hourly timer, a settled retry) hands it down the
flow; each step adds what it saw (attempts, outcome counts) and nothing writes on the way. The
opener passes it to `Books.write` once at the end, so each request costs one counter write and
data only flows downstream.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from shared.ingestion import Attempt, DeliveryReport
from shared.store.ledger import AttemptRecord


@dataclass
class Tally:
    source: str  # "webhook" | "retry" | "probe" | "hourly" | "relay" | ...
    entry_id: str = ""
    counts: Counter[str] = field(default_factory=Counter)
    attempts: list[Attempt] = field(default_factory=list)
    at: datetime | None = None  # when the request happened; None: when it is written

    @classmethod
    def of(cls, report: DeliveryReport | None, *, source: str, entry_id: str = "") -> Tally:
        tally = cls(source, entry_id)
        tally.add_report(report)
        return tally

    def add(self, counts: Mapping[str, int]) -> None:
        self.counts.update({name: n for name, n in counts.items() if n})

    def add_report(self, report: DeliveryReport | None) -> None:
        if report is not None:
            self.attempts.extend(report.attempts)

    @property
    def failed(self) -> bool:
        """Any request to the API failed: the auto-disable rule must look again."""
        return any(not a.ok for a in self.attempts)

    def records(self) -> list[AttemptRecord]:
        return [
            AttemptRecord(
                ok=a.ok,
                status=a.status,
                error=a.error,
                request_id=a.request_id,
                rows=a.rows,
                source=self.source,
                entry_id=self.entry_id,
            )
            for a in self.attempts
        ]
