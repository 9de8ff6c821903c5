"""The hourly request-count row: idempotent per hour even when the timer fires twice."""

from __future__ import annotations

import logging
from datetime import timedelta

from shared.clock import Clock, hour_floor
from shared.delivery.deliver_or_queue import DeliverOrQueue
from shared.health.relay_rows import hourly_stats_row
from shared.store.counters import HourlyCounters
from shared.store.ledger import fold_attempt_buckets

log = logging.getLogger(__name__)


class HourlyReporter:
    def __init__(self, relay: DeliverOrQueue, counters: HourlyCounters, *, clock: Clock, owner: str) -> None:
        self.relay = relay
        self.counters = counters
        self.clock = clock
        self.owner = owner

    def report_previous_hour(self) -> bool:
        """Send one row for the hour before now. False when another firing already sent it."""
        hour = hour_floor(self.clock()) - timedelta(hours=1)
        counters = self.counters
        if not counters.claim_hour(hour, self.owner, stale_after=timedelta(minutes=10)):
            log.info("Hourly counts for %s already sent", hour.isoformat())
            return False
        counts = fold_attempt_buckets(counters.read(hour))
        # submit() delivers or queues durably, so the hour is marked sent only once the row is safe.
        self.relay.send([hourly_stats_row(hour, counts)], source="hourly")
        counters.mark_sent(hour)
        return True
