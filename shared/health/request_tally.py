"""What one request did, for the ledger and the hourly counters.

The step that opens a tally (the webhook, the hourly timer, a settled retry) hands it down the
flow; each step adds what it saw (attempts, outcome counts) and nothing writes on the way. The
opener passes it to `LedgerWriter.write` once at the end, so each request costs one counter write and
data only flows downstream.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from shared.health.attempts import Attempt, DeliveryReport
from shared.store.ledger import AttemptRecord


@dataclass
class RequestTally:
    source: str  # "webhook" | "retry" | "probe" | "hourly" | "relay" | ...
    entry_id: str = ""
    counts: Counter[str] = field(default_factory=Counter)
    attempts: list[Attempt] = field(default_factory=list)
    at: datetime | None = None  # when the request happened; None: when it is written
    # Counted ahead (`count_ahead`), before the request's outcome was known: `write` then
    # stores only the difference.
    ahead: Counter[str] = field(default_factory=Counter)
    ahead_attempts: int = 0  # successful requests counted ahead

    @classmethod
    def of(cls, report: DeliveryReport | None, *, source: str, entry_id: str = "") -> RequestTally:
        tally = cls(source, entry_id)
        tally.add_report(report)
        return tally

    def add(self, counts: Mapping[str, int]) -> None:
        self.counts.update({name: n for name, n in counts.items() if n})

    def add_report(self, report: DeliveryReport | None) -> None:
        if report is not None:
            self.attempts.extend(report.attempts)

    def count_ahead(self, counts: Mapping[str, int], attempts: int) -> None:
        """What the request will have done if it goes as planned (`attempts` successful requests
        and `counts`), to be stored while it runs; the outcome corrects it (`delta`)."""
        self.ahead.update({name: n for name, n in counts.items() if n})
        self.ahead_attempts += attempts

    def delta(self) -> dict[str, int]:
        """The counts not yet stored: the outcome minus what was counted ahead (may be negative)."""
        names = set(self.counts) | set(self.ahead)
        diff = {name: self.counts[name] - self.ahead[name] for name in names}
        return {name: n for name, n in diff.items() if n}

    @property
    def settled_ahead(self) -> bool:
        """The outcome is exactly what was counted ahead: nothing is left to store."""
        return (
            not self.delta()
            and len(self.attempts) == self.ahead_attempts
            and all(a.ok for a in self.attempts)
        )

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
