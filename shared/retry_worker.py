"""Delivers what is due from the retry queue.

A timer starts it every minute and it works for most of that minute (RETRY_WORKER_RUN_SECONDS),
polling the queue's due index once per RETRY_POLL_SECONDS and sleeping exactly until the next due
entry in between. That is how second-level steps (1, 3, 5 s…) happen within about a second of
their due time without a timer that fires every second. Claims are ETag-guarded, so several
instances running the worker never deliver one entry twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.relay import STATE_MAX_AGE_SECONDS, Relay
from shared.store.queue import RetryQueue

log = logging.getLogger(__name__)


@dataclass
class WorkerRun:
    attempted: int = 0
    delivered: int = 0
    skipped_disabled: bool = False


class RetryWorker:
    def __init__(
        self,
        relay: Relay,
        queue: RetryQueue,
        *,
        lease: timedelta,
        poll: timedelta,
        clock: Callable[[], datetime],
        sleep: Callable[[float], None] = time.sleep,
        batch: int = 20,
    ) -> None:
        self.relay = relay
        self.queue = queue
        self.lease = lease
        self.poll = poll
        self.clock = clock
        self.sleep = sleep
        self.batch = batch

    def run(self, run_for: timedelta) -> WorkerRun:
        """Work until `run_for` has passed; always does at least one pass."""
        stop_at = self.clock() + run_for
        run = WorkerRun()
        while True:
            if not self.relay.state.get(max_age=STATE_MAX_AGE_SECONDS).enabled:
                run.skipped_disabled = True
                break
            self.run_once(run)
            now = self.clock()
            if now >= stop_at:
                break
            wait = min(self.poll, stop_at - now)
            upcoming = self.queue.next_due_at()
            if upcoming is not None and upcoming <= now:
                continue
            if upcoming is not None:
                wait = min(wait, upcoming - now)
            self.sleep(max(wait.total_seconds(), 0.01))
        self.publish_gauges()
        return run

    def run_once(self, run: WorkerRun | None = None) -> WorkerRun:
        run = run or WorkerRun()
        while True:
            entries = self.queue.claim_due(self.batch, self.lease)
            if not entries:
                return run
            for entry in entries:
                run.attempted += 1
                if self.relay.retry(entry):
                    run.delivered += 1
                if not self.relay.state.get(max_age=STATE_MAX_AGE_SECONDS).enabled:
                    return run  # auto-disabled mid-run: leave the rest pending for re-enable

    def publish_gauges(self) -> None:
        stats = self.queue.stats()
        self.relay.telemetry.gauge("relay.queue.depth", stats.pending)
        oldest = stats.oldest_pending_created_at
        age = (self.clock() - oldest).total_seconds() if oldest else 0.0
        self.relay.telemetry.gauge("relay.queue.oldest_pending_age_seconds", age)
        if oldest and age > 1800:
            log.warning("Retry backlog: oldest pending entry is %.0f s old (%d pending)", age, stats.pending)
