"""An operator's reconcile range as a background job: answered at once, reported by `status`.

One job at a time per window: a request whose range overlaps a live job gets 409
`reconcile_running` with that job's id (it does not join it: the operator sees what runs and
asks again after). Instances do not share memory, so "no overlapping live job, then register
mine" runs under a short ETag-guarded lock entity in the table; a request that cannot take it
within a few seconds gets 409 `reconcile_busy`.

Durable enough: before a job runs, each of its windows is recorded `queued`, not `ok`. A job
killed mid-way (an instance recycled, a deploy) stops heart-beating; after `stale_after` it shows
as `abandoned`, and the timer runs its remaining windows (`Reconciler.due_windows`).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from shared.clock import Clock, iso_ms
from shared.completeness.reconcile import Reconciler
from shared.completeness.reconcile_range import ClosedRange
from shared.store.tables import StoreUnavailable
from shared.store.windows import CompletenessLog, JobRecord, WindowRecord

log = logging.getLogger(__name__)

Runner = Callable[[Callable[[], None]], None]
LOCK_LEASE = timedelta(seconds=30)
LOCK_TRIES = 20
LOCK_PAUSE = 0.25  # seconds between tries: the lock is held for a few Table requests only
STALE_AFTER = timedelta(minutes=30)
"""No heartbeat for this long: the job was killed. A heartbeat is written after every window;
one window is bounded by the API client's page limit and deadline, far below this."""


def in_thread(work: Callable[[], None]) -> None:
    """``work`` in its own thread, in the caller's context: its log lines keep the caller's tenant."""
    context = contextvars.copy_context()
    threading.Thread(target=context.run, args=(work,), name="reconcile-job", daemon=True).start()


class ReconcileJobs:
    def __init__(
        self,
        reconciler: Reconciler,
        log_store: CompletenessLog,
        *,
        clock: Clock,
        runner: Runner = in_thread,
        stale_after: timedelta = STALE_AFTER,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.sleep = sleep
        self.reconciler = reconciler
        self.log = log_store
        self.clock = clock
        self.runner = runner
        self.stale_after = stale_after
        self._finished: dict[str, threading.Event] = {}
        reconciler.live_ranges = self.live_ranges

    def submit(self, rng: ClosedRange, by: str) -> tuple[int, dict[str, Any]]:
        """202 with the job; 200 with the record when the range is one hour (run inline); 409
        when a live job overlaps."""
        now = self.clock()
        windows = rng.windows()
        job = JobRecord(
            id=f"{int(now.timestamp() * 1000):015d}-{uuid.uuid4().hex[:12]}",
            start=rng.start,
            end=rng.end,
            by=by,
            state="running",
            heartbeat=now,
            windows=len(windows),
        )
        if not self._lock(job.id):
            message = "another reconcile request is being registered; ask again in a few seconds"
            return 409, {"error": {"code": "reconcile_busy", "message": message}}
        try:
            busy = self._overlapping(rng, now)
            if busy is not None:
                return 409, _running(busy, now, self.stale_after)
            self.log.save_job(job)
        finally:
            self.log.release_job_lock(job.id)
        try:
            self.log.mark_queued(windows, job.id, by)
        except StoreUnavailable:
            job.state, job.error = "stopped", "its windows could not be recorded"
            with contextlib.suppress(StoreUnavailable):
                self.log.save_job(job)  # else it looks live until its heartbeat is stale
            raise
        done = threading.Event()
        self._finished[job.id] = done
        answer: dict[str, Any] = {"clipped_to": iso_ms(rng.end) if rng.clipped else None}
        if len(windows) == 1:
            records = self._run(job, done)
            failed = any(r.status in ("failed", "deferred") for r in records)
            windows_out = [r.as_dict() for r in records]
            body = {"job": job.as_dict(self.clock(), self.stale_after), "windows": windows_out, **answer}
            return (502 if failed else 200), body

        def work() -> None:
            self._run(job, done)

        self.runner(work)
        return 202, {
            "job": job.as_dict(now, self.stale_after),
            "status": "GET /api/relay/status: completeness.jobs",
            **answer,
        }

    def wait(self, job_id: str, timeout: float) -> bool:
        """For tests and the CLI: True once the job has ended in this process."""
        event = self._finished.get(job_id)
        return event is not None and event.wait(timeout)

    def recent(self, limit: int = 10) -> list[dict[str, Any]]:
        now = self.clock()
        return [j.as_dict(now, self.stale_after) for j in self.log.jobs()[:limit]]

    def live_ranges(self) -> list[tuple[datetime, datetime]]:
        """The ranges live jobs hold (the timer leaves them to the job)."""
        now = self.clock()
        return [(j.start, j.end) for j in self.log.jobs() if j.live(now, self.stale_after)]

    def _lock(self, owner: str) -> bool:
        for attempt in range(LOCK_TRIES):
            if self.log.take_job_lock(owner, LOCK_LEASE):
                return True
            if attempt + 1 < LOCK_TRIES:
                self.sleep(LOCK_PAUSE)
        return False

    def _overlapping(self, rng: ClosedRange, now: datetime) -> JobRecord | None:
        for job in self.log.jobs():
            if job.live(now, self.stale_after) and job.overlaps(rng.start, rng.end):
                return job
        return None

    def _run(self, job: JobRecord, done: threading.Event) -> list[WindowRecord]:
        records: list[WindowRecord] = []

        def beat(record: WindowRecord) -> None:
            records.append(record)
            job.done += 1
            job.added += record.added
            job.heartbeat = self.clock()
            self.log.save_job(job)

        try:
            self.reconciler.run_windows(job_windows(job), by=job.by, job=job.id, after_each=beat)
            stopped = next((r for r in records if r.status in ("deferred", "failed")), None)
            job.state = "stopped" if stopped is not None else "done"
            job.error = stopped.error if stopped is not None else ""
        except Exception as err:  # noqa: BLE001 - a thread has no caller to raise to
            log.error("Reconcile job %s stopped: %s", job.id, type(err).__name__)
            job.state, job.error = "stopped", type(err).__name__
        job.heartbeat = self.clock()
        try:
            self.log.save_job(job)
        except StoreUnavailable as err:
            log.warning("Reconcile job %s: its end was not recorded: %s", job.id, err)
        done.set()
        return records


def job_windows(job: JobRecord) -> list[tuple[datetime, datetime]]:
    return ClosedRange(job.start, job.end, clipped=False).windows()


def _running(job: JobRecord, now: datetime, stale_after: timedelta) -> dict[str, Any]:
    return {
        "error": {
            "code": "reconcile_running",
            "message": f"job {job.id} is reconciling an overlapping range; ask again when it has ended",
        },
        "job": job.as_dict(now, stale_after),
    }
