"""How long the relay keeps its own records (documented in the README's retention table)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from shared.store.counters import HourlyCounters
from shared.store.dedup import DedupKeys
from shared.store.ledger import AttemptLedger

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retention:
    ledger: AttemptLedger
    counters: HourlyCounters
    dedup: DedupKeys
    ledger_for: timedelta
    counters_for: timedelta

    def purge(self) -> dict[str, int]:
        """Runs hourly after the count row; each purge is bounded by what expired since the last."""
        removed = {
            "ledger": self.ledger.purge(self.ledger_for),
            "counters": self.counters.purge(self.counters_for),
            "dedup": self.dedup.purge(),
        }
        log.info("Retention: removed %s", removed)
        return removed
