"""Delivers what is due from the retry queue, and heals the integration after an outage.

A timer starts it every minute and it works for most of that minute (RETRY_WORKER_RUN_SECONDS),
polling the queue's due index once per RETRY_POLL_SECONDS and sleeping exactly until the next due
entry in between. That is how second-level steps (1, 3, 5 s…) happen within about a second of
their due time without a timer that fires every second. Claims are ETag-guarded, and a lease is
renewed while its upload runs (``shared.delivery.lease_keeper``), so several instances running the worker
never deliver one entry twice, however many requests its upload takes.

Health probes (an empty upload, every RECOVERY_PROBE_SECONDS) make recovery independent of the
schedule's long steps:
- while auto-disabled, the first successful probe re-enables the integration and resumes every
  queued and parked entry, oldest first (a manual disable waits for an operator);
- while enabled, with entries waiting for a later step, a successful probe makes them due now,
  so a backlog on a 30-minute step lands within a minute of the API being healthy again.

A pass starts the uploads of its claimed entries oldest first, up to ``uploads`` at a time (Log
Analytics orders rows by TimeGenerated, not by arrival), while the delivered ones settle in groups
(one transaction removes them, one ledger write counts their requests) on up to ``parallel``
threads beside. A failed upload stops new starts until everything so far is settled, since it may
auto-disable the integration. Starts are paced to ``max_per_second``, below the DCR's 12,000
requests/min with room left for the webhooks. These numbers are constants, with their reasons, in
``shared.settings.RetryWorkerLimits``. The state is checked before each start, so a disable mid-run
stops new uploads at once.

Idle is cheap and quiet: a disabled run returns, an auto-disabled one sleeps until its probe, a
queue empty for ``idle_exit_after`` ends a run after one pass, a Table Storage outage backs off
(1 s doubling to 30 s), and repeated identical warnings are summarised.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.clock import Clock
from shared.delivery.deliver_or_queue import STATE_MAX_AGE_SECONDS, DeliverOrQueue, StoreRetry
from shared.delivery.ingestion import Attempt, DeliveryReport
from shared.delivery.lease_keeper import LeaseKeeper
from shared.health.integration_switch import IntegrationSwitch
from shared.health.ledger_writer import LedgerWriter
from shared.health.request_tally import RequestTally
from shared.limits import RetryWorkerLimits
from shared.log_throttle import RepeatedLog
from shared.store.queue import QueueEntry, RetryQueue
from shared.store.state import IntegrationStateRepo, ProbeRecord
from shared.store.tables import StoreUnavailable
from shared.telemetry import Telemetry

log = logging.getLogger(__name__)

_STORAGE_BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
# A settle retries on a storage outage until this long after the first lease of its group ends.
# Past the lease another instance may claim an entry and resend it; the retried removal then
# loses the ETag race harmlessly, and until then it may still win (no instance claims while the
# store is down), so retrying a little past the lease can only prevent resends. Bounds the run.
_SETTLE_PAST_LEASE = timedelta(seconds=60)
# Uploaded entries wait at most this long for others to share their settle (one transaction).
_GROUP_WAIT = timedelta(seconds=0.5)


@dataclass
class WorkerRun:
    attempted: int = 0
    delivered: int = 0
    skipped_disabled: bool = False
    probes: int = 0
    recovered: bool = False
    storage_errors: int = 0
    lease_short: int = 0  # claimed entries not started: too little of their lease was left
    idle_exit: bool = False  # ended early: the queue has been empty for idle_exit_after
    released: int = 0  # claimed entries given back unstarted (due now, not after their lease)
    deferred: int = 0  # in doubt, given back until their landed check may run


@dataclass(frozen=True)
class RetryWorkerConfig:
    """What the worker is told, built from Settings once by the composition root
    (`shared/ops/services.py`); none has a default here. `start_margin`: an entry whose lease
    ends sooner is not started, since its upload (read timeout included) could outlast the lease
    and another instance would then deliver it too; it comes due again when the lease ends."""

    lease: timedelta
    poll: timedelta
    probe_every: timedelta
    start_margin: timedelta
    limits: RetryWorkerLimits


class RetryWorker:
    def __init__(
        self,
        relay: DeliverOrQueue,
        switch: IntegrationSwitch,
        queue: RetryQueue,
        *,
        state: IntegrationStateRepo,
        books: LedgerWriter,
        telemetry: Telemetry,
        probe_api: Callable[[], Attempt],
        config: RetryWorkerConfig,
        clock: Clock,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`config.limits.idle_exit_after`: once the queue has been empty this long, a run ends
        after its first pass instead of polling for the rest of the minute (the timer's run time
        is the bill of an idle relay); the first entry queued after that waits for the next timer
        (at most a minute) and the runs poll again from then on. None: always poll."""
        self.relay = relay
        self.switch = switch
        self.queue = queue
        self.state = state
        self.books = books
        self.telemetry = telemetry
        self.probe_api = probe_api
        limits = config.limits
        self.lease = config.lease
        self.start_margin = config.start_margin
        self.poll = config.poll
        self.clock = clock
        self.sleep = sleep
        self.batch = limits.batch
        self.probe_every = config.probe_every
        self.parallel = max(1, limits.parallel)
        self.uploads = max(1, limits.uploads)
        self.settle_batch = max(1, limits.settle_batch)
        self.max_per_second = limits.max_per_second
        self._min_gap = 1.0 / limits.max_per_second
        self._pool: ThreadPoolExecutor | None = None
        self._uploader: ThreadPoolExecutor | None = None
        self._claimer: ThreadPoolExecutor | None = None
        self._next_probe_at: datetime | None = None
        self._next_sweep_at: datetime | None = None
        self.idle_exit_after = limits.idle_exit_after
        self._busy_at: datetime | None = None  # when this process last saw the queue non-empty
        self._quiet = RepeatedLog(log)
        # Renews the lease of each entry whose upload outlives half of it (several chunks, a
        # slow API, 413 splits), so another instance never claims and delivers it too.
        self.leases = LeaseKeeper(queue.renew, lease=config.lease, clock=clock)

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
        if upcoming is None and self._idle_for(now) >= (self.idle_exit_after or timedelta.max):
            run.idle_exit = True
            return None
        if upcoming is not None:
            self._busy_at = now
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

    def _idle_for(self, now: datetime) -> timedelta:
        """How long the queue has been empty as this process saw it (a new process: not yet)."""
        if self._busy_at is None:
            self._busy_at = now
        return now - self._busy_at

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
        # A probe is a request to the API: it counts toward the auto-disable rule either way, as
        # Wallarm counts its requests (README "Auto-disable"); leaving successes out skewed the ratio up.
        self.books.write(RequestTally.of(DeliveryReport(attempts=[attempt]), source="probe"))
        if not attempt.ok:
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

        A batch of claims is one ETag-guarded transaction (up to 50 entries). After a full batch
        the next one is claimed beside the uploads, and its uploads start while the last ones of
        the batch before are still running or settling. Claimed entries not started (the run
        stopped early, or too little of their lease was left) are released: due now, not after
        the lease."""
        run = run or WorkerRun()
        if self._claimer is None:
            self._claimer = ThreadPoolExecutor(1, thread_name_prefix="retry-claims")
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.parallel, thread_name_prefix="retry-worker")
        if self._uploader is None:
            self._uploader = ThreadPoolExecutor(self.uploads, thread_name_prefix="retry-upload")
        pass_ = _DrainPass(
            self._uploader,
            self._pool,
            self.settle_batch,
            self.relay,
            self.leases,
            clock=self.clock,
            sleep=self.sleep,
        )
        unstarted: list[QueueEntry] = []
        try:
            entries = self.queue.claim_due(self.batch, self.lease)
            while entries:
                upcoming: Future[list[QueueEntry]] | None = None
                if len(entries) >= self.batch:
                    context = contextvars.copy_context()
                    upcoming = self._claimer.submit(context.run, self.queue.claim_due, self.batch, self.lease)
                try:
                    going = self._deliver_all(entries, run, pass_, unstarted)
                finally:
                    claimed = upcoming.result() if upcoming is not None else []
                if not going:
                    unstarted.extend(claimed)
                    return run
                entries = claimed or (
                    self.queue.claim_due(self.batch, self.lease) if upcoming is None else []
                )
        finally:
            pass_.finish(run)  # every upload's outcome is written before the run ends
            if unstarted:
                run.released += self.queue.release(unstarted)
        return run

    def _deliver_all(
        self, entries: list[QueueEntry], run: WorkerRun, pass_: _DrainPass, unstarted: list[QueueEntry]
    ) -> bool:
        """Start the uploads of the claimed entries oldest first, up to ``uploads`` at a time,
        while the delivered ones settle (their Table writes) in groups of ``settle_batch`` on up
        to ``parallel`` threads beside. False once disabled mid-run; entries not started go to
        ``unstarted``."""
        for index, entry in enumerate(entries):
            pass_.make_room(self.uploads, self.parallel, run)
            if pass_.failed:
                # A failure may auto-disable the integration: settle everything so far first.
                pass_.finish(run)
            if not self.state.get(max_age=STATE_MAX_AGE_SECONDS).enabled:
                unstarted.extend(entries[index:])  # disabled mid-run: the rest wait, unleased
                return False
            if entry.due_at - self.clock() < self.start_margin:
                run.lease_short += 1  # claimed too long ago (a slow API): its next claim delivers it
                unstarted.append(entry)
                continue
            check_at = self.relay.check_wait(entry)
            if check_at is not None:
                # Its last upload may still be on its way into the workspace: ask later.
                run.deferred += self.queue.release([entry], due_at=check_at)
                continue
            pause = pass_.next_start - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            pass_.next_start = time.monotonic() + self._min_gap
            run.attempted += 1
            pass_.start(entry)
        return True

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


class _DrainPass:
    """The uploads and settles of one run_once: uploads in flight (started oldest first), uploaded
    entries waiting to settle, and the settles running beside."""

    def __init__(
        self,
        uploader: ThreadPoolExecutor,
        settler: ThreadPoolExecutor,
        settle_batch: int,
        relay: DeliverOrQueue,
        leases: LeaseKeeper,
        *,
        clock: Clock,
        sleep: Callable[[float], None],
    ) -> None:
        self._leases = leases
        self._clock = clock
        self._sleep = sleep
        self._uploader = uploader
        self._settler = settler
        self._settle_batch = settle_batch
        self._relay = relay
        self._uploading: dict[Future[DeliveryReport], QueueEntry] = {}
        self._ready: list[tuple[QueueEntry, DeliveryReport]] = []
        self._settling: set[Future[list[bool]]] = set()
        self.failed = False  # an upload failed since the last finish()
        self.next_start = 0.0  # monotonic time the next upload may start (pacing)
        self._errors: list[Exception] = []  # uploads that raised instead of reporting

    def start(self, entry: QueueEntry) -> None:
        self._leases.hold(entry)
        context = contextvars.copy_context()
        self._uploading[self._uploader.submit(context.run, self._relay.attempt, entry)] = entry

    def make_room(self, uploads: int, settles: int, run: WorkerRun) -> None:
        """Wait until another upload may start; hand finished uploads to the settlers."""
        self._collect(block=False)
        while len(self._uploading) >= uploads:
            self._collect_or_settle(run)
        self._settle(settles, run, everything=False)

    def finish(self, run: WorkerRun) -> None:
        """Wait for every upload, settle all of them, and wait for the settles."""
        while self._uploading:
            self._collect_or_settle(run)
        self._settle(0, run, everything=True)
        self.failed = False
        if self._errors:
            error, self._errors = self._errors[0], []
            raise error

    def _collect_or_settle(self, run: WorkerRun) -> None:
        """Wait for an upload to finish; if none does within ``_GROUP_WAIT``, settle the uploaded
        ones now. A landed upload never waits unsettled behind a slow one (a hung connection
        held the settle of 16 landed entries for 40 s in the soak): a process ended meanwhile
        leaves them leased, and they would be sent again when the lease ends."""
        if not self._collect(timeout=_GROUP_WAIT.total_seconds()):
            self._settle(len(self._settling) + 1, run, everything=False, now=True)

    def _collect(self, *, block: bool = True, timeout: float | None = None) -> int:
        """Hand finished uploads to ``_ready``; how many finished."""
        if not self._uploading:
            return 0
        done, _ = wait(self._uploading, timeout=timeout if block else 0, return_when=FIRST_COMPLETED)
        for future in done:
            # Still held: its lease is renewed until its settle starts (it may wait for a group).
            entry = self._uploading.pop(future)
            try:
                report = future.result()
            except Exception as error:  # noqa: BLE001 - raised by finish(), once the others are settled
                self._leases.release(entry)
                self._errors.append(error)  # the entry stays leased and comes due again
                continue
            self._ready.append((entry, report))
            self.failed = self.failed or not report.all_accepted
        return len(done)

    def _settle(self, settles: int, run: WorkerRun, *, everything: bool, now: bool = False) -> None:
        if self._ready and (everything or now or len(self._ready) >= self._settle_batch):
            context = contextvars.copy_context()
            # The version of its last lease renewal: the one the settle's guarded writes match.
            ready = [(self._leases.release(entry), report) for entry, report in self._ready]
            retry = self._retry(ready)
            self._settling.add(self._settler.submit(context.run, self._relay.settle_many, ready, retry))
            self._ready = []
        if everything:
            finished, self._settling = wait(self._settling).done, set()
            self._count(finished, run)
        elif len(self._settling) > settles:
            finished, self._settling = wait(self._settling, return_when=FIRST_COMPLETED)
            self._count(finished, run)

    def _retry(self, ready: list[tuple[QueueEntry, DeliveryReport]]) -> StoreRetry:
        """Settles retry on a storage outage until ``_SETTLE_PAST_LEASE`` after the group's first
        lease ends (the writes are ETag-guarded: a late one never undoes another claim)."""
        until = min(entry.due_at for entry, _report in ready) + _SETTLE_PAST_LEASE
        return StoreRetry(until, self._clock, self._sleep)

    @staticmethod
    def _count(done: set[Future[list[bool]]], run: WorkerRun) -> None:
        for future in done:
            try:
                run.delivered += sum(future.result())
            except StoreUnavailable as err:
                # Retried past the leases' end: these entries come due again, and their rows,
                # already in Azure, go a second time. The run goes on (and ends) cleanly.
                run.storage_errors += 1
                log.error("Retry worker: delivered entries not settled before their lease ended: %s", err)
