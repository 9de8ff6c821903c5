"""Delivers what is due from the retry queue, and heals the integration after an outage.

A timer starts it every minute and it works for most of that minute (RETRY_WORKER_RUN_SECONDS),
polling the queue's due index once per RETRY_POLL_SECONDS and sleeping exactly until the next due
entry in between. That is how second-level steps (1, 3, 5 s…) happen within about a second of
their due time without a timer that fires every second. Claims are ETag-guarded, so several
instances running the worker never deliver one entry twice.

Health probes (an empty upload, every RECOVERY_PROBE_SECONDS) make recovery independent of the
schedule's long steps:
- while auto-disabled, the first successful probe re-enables the integration and resumes every
  queued and parked entry in arrival order (a manual disable waits for an operator);
- while enabled, with entries waiting for a later step, a successful probe makes them due now,
  so a backlog on a 30-minute step lands within a minute of the API being healthy again.

A pass uploads its claimed entries one after another, in arrival order, while the Table writes
that settle earlier entries (complete or reschedule, ledger, counters) run on up to ``parallel``
threads (default 6) beside the next upload. Uploads are paced to ``max_per_second`` entries
(default 150/s, below the DCR's 12,000 requests/min with room left for the webhooks). The state is
checked after each upload, so a disable mid-run stops new uploads at once.

Idle is cheap and quiet: a disabled or empty run sleeps, a Table Storage outage backs off
(1 s doubling to 30 s), and repeated identical warnings are summarised.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.books import Books
from shared.clock import Clock
from shared.dispatch import STATE_MAX_AGE_SECONDS, Relay
from shared.ingestion import Attempt, DeliveryReport
from shared.integration_switch import IntegrationSwitch
from shared.log_throttle import RepeatedLog
from shared.store.queue import QueueEntry, RetryQueue
from shared.store.state import IntegrationStateRepo, ProbeRecord
from shared.store.tables import StoreUnavailable
from shared.tally import Tally
from shared.telemetry import Telemetry

log = logging.getLogger(__name__)

_STORAGE_BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)


@dataclass
class WorkerRun:
    attempted: int = 0
    delivered: int = 0
    skipped_disabled: bool = False
    probes: int = 0
    recovered: bool = False
    storage_errors: int = 0


class RetryWorker:
    def __init__(
        self,
        relay: Relay,
        switch: IntegrationSwitch,
        queue: RetryQueue,
        *,
        state: IntegrationStateRepo,
        books: Books,
        telemetry: Telemetry,
        probe_api: Callable[[], Attempt],
        lease: timedelta,
        poll: timedelta,
        clock: Clock,
        sleep: Callable[[float], None] = time.sleep,
        batch: int = 20,
        probe_every: timedelta = timedelta(seconds=30),
        parallel: int = 6,
        max_per_second: float = 150.0,
    ) -> None:
        self.relay = relay
        self.switch = switch
        self.queue = queue
        self.state = state
        self.books = books
        self.telemetry = telemetry
        self.probe_api = probe_api
        self.lease = lease
        self.poll = poll
        self.clock = clock
        self.sleep = sleep
        self.batch = batch
        self.probe_every = probe_every
        self.parallel = max(1, parallel)
        self._min_gap = 1.0 / max_per_second
        self._pool: ThreadPoolExecutor | None = None
        self._claimer: ThreadPoolExecutor | None = None
        self._next_probe_at: datetime | None = None
        self._next_sweep_at: datetime | None = None
        self._quiet = RepeatedLog(log)

    def run(self, run_for: timedelta) -> WorkerRun:
        """Work until `run_for` has passed; always does at least one pass."""
        stop_at = self.clock() + run_for
        run = WorkerRun()
        failures = 0
        while True:
            try:
                wait_until = self._step(run)
                if failures and self._quiet.clear("storage"):
                    log.warning("Retry worker: Table Storage reachable again")
                failures = 0
            except StoreUnavailable as err:
                run.storage_errors += 1
                self._quiet.log(
                    logging.WARNING, "storage", "Retry worker: Table Storage unavailable (%s)", err
                )
                wait_until = self.clock() + timedelta(seconds=_STORAGE_BACKOFF[min(failures, 5)])
                failures += 1
            now = self.clock()
            if wait_until is None or now >= stop_at:
                break
            wait = min(wait_until, stop_at) - now
            self.sleep(max(wait.total_seconds(), 0.01))
        self.publish_gauges()
        return run

    def _step(self, run: WorkerRun) -> datetime | None:
        """One pass; returns when the next pass is worth doing (None: end the run)."""
        state = self.state.get(max_age=STATE_MAX_AGE_SECONDS)
        now = self.clock()
        if state.mode == "disabled":  # an operator's choice: only an operator's enable ends it
            run.skipped_disabled = True
            return None
        if state.mode == "auto_disabled":
            run.skipped_disabled = True
            if not self._probe_due(now):
                return self._next_probe_at
            attempt = self._probe(run)
            if not attempt.ok:
                return self._next_probe_at
            run.recovered = self.switch.recover(attempt)
            if not (run.recovered or self.state.get().enabled):
                return self._next_probe_at
        elif self._sweep_due(now):
            # Webhooks on other instances act on a state up to STATE_MAX_AGE_SECONDS old, so a
            # few may park just after a re-enable: nothing acknowledged may stay parked.
            self._next_sweep_at = now + self.probe_every
            if self.queue.unpark_all(due_at=now):
                log.info("Retry worker: parked entries found while enabled were resumed")
        self.run_once(run)
        now = self.clock()
        upcoming = self.queue.next_due_at()
        if upcoming is not None and upcoming <= now:
            return now
        wait_until = now + self.poll
        if upcoming is not None and upcoming > now + self.probe_every:
            # Entries wait for a long step: a healthy API should not leave them waiting.
            if self._probe_due(now) and self._probe(run).ok and self.queue.pull_forward(self.batch * 5):
                return self.clock()
            if self._next_probe_at is not None:
                wait_until = min(wait_until, self._next_probe_at)
        elif upcoming is not None:
            wait_until = min(wait_until, upcoming)
        return wait_until

    def _sweep_due(self, now: datetime) -> bool:
        return self._next_sweep_at is None or now >= self._next_sweep_at

    def _probe_due(self, now: datetime) -> bool:
        return self._next_probe_at is None or now >= self._next_probe_at

    def _probe(self, run: WorkerRun) -> Attempt:
        """An empty upload: proves token, role, DCR and stream without writing a row."""
        run.probes += 1
        attempt = self.probe_api()
        now = self.clock()
        self._next_probe_at = now + self.probe_every
        if not attempt.ok:
            # A failed probe is a failed request to the API: it counts toward the auto-disable rule.
            self.books.write(Tally.of(DeliveryReport(attempts=[attempt]), source="probe"))
            self._quiet.log(
                logging.WARNING,
                "probe",
                "Retry worker: health probe failed: status=%s code=%s",
                attempt.status,
                attempt.error,
            )
        elif self._quiet.clear("probe"):
            log.warning("Retry worker: health probe succeeded again")
        try:
            self.state.record_probe(
                ProbeRecord(
                    at=now,
                    ok=attempt.ok,
                    status=attempt.status,
                    error=attempt.error,
                    request_id=attempt.request_id,
                    next_at=self._next_probe_at,
                )
            )
        except StoreUnavailable as err:
            self._quiet.log(logging.WARNING, "probe-record", "Probe outcome not saved: %s", err)
        return attempt

    def run_once(self, run: WorkerRun | None = None) -> WorkerRun:
        """Claim and deliver until nothing is due or the integration is disabled.

        After a full batch the next one is claimed beside the uploads (claims are one ETag-guarded
        transaction per entry, half of a drain's time otherwise); its entries stay leased if the
        pass stops early, as the rest of a batch does."""
        run = run or WorkerRun()
        if self._claimer is None:
            self._claimer = ThreadPoolExecutor(1, thread_name_prefix="retry-claims")
        entries = self.queue.claim_due(self.batch, self.lease)
        while entries:
            upcoming: Future[list[QueueEntry]] | None = None
            if len(entries) >= self.batch:
                context = contextvars.copy_context()
                upcoming = self._claimer.submit(context.run, self.queue.claim_due, self.batch, self.lease)
            try:
                going = self._deliver_all(entries, run)
            finally:
                claimed = upcoming.result() if upcoming is not None else []
            if not going:
                return run
            entries = claimed or (self.queue.claim_due(self.batch, self.lease) if upcoming is None else [])
        return run

    def _deliver_all(self, entries: list[QueueEntry], run: WorkerRun) -> bool:
        """Upload the claimed entries one after another, in arrival order, while up to
        ``parallel`` earlier entries settle (their Table writes) beside; False once disabled
        mid-run (the entries not started stay claimed and come due again after the lease)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.parallel, thread_name_prefix="retry-worker")
        settling: set[Future[bool]] = set()
        enabled = True
        next_start = 0.0
        try:
            for entry in entries:
                pause = next_start - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                next_start = time.monotonic() + self._min_gap
                run.attempted += 1
                report = self.relay.attempt(entry)
                context = contextvars.copy_context()
                settling.add(self._pool.submit(context.run, self.relay.settle, entry, report))
                if len(settling) >= self.parallel or not report.all_accepted:
                    # A failure may auto-disable the integration: settle it before going on.
                    done, settling = wait(
                        settling, return_when=FIRST_COMPLETED if report.all_accepted else ALL_COMPLETED
                    )
                    run.delivered += sum(1 for future in done if future.result())
                if not self.state.get(max_age=STATE_MAX_AGE_SECONDS).enabled:
                    enabled = False  # disabled mid-run: leave the rest pending
                    break
        finally:
            done, _ = wait(settling)  # every upload's outcome is written before the pass ends
        run.delivered += sum(1 for future in done if future.result())
        return enabled

    def publish_gauges(self) -> None:
        try:
            stats = self.queue.stats()
        except StoreUnavailable:
            return  # already reported by the run
        self.telemetry.gauge("relay.queue.depth", stats.pending)
        oldest = stats.oldest_pending_created_at
        age = (self.clock() - oldest).total_seconds() if oldest else 0.0
        self.telemetry.gauge("relay.queue.oldest_pending_age_seconds", age)
        if oldest and age > 1800:
            log.warning("Retry backlog: oldest pending entry is %.0f s old (%d pending)", age, stats.pending)
