"""The one writer of tallies: telemetry per attempt, the ledger and the hourly counters in one
Table write, then the auto-disable rule when a request to the API failed.

A healthy webhook's tally is written after its answer (`write_after`): its rows are in Azure, so
the counts need not hold the answer up. Before the rule reads the ledger, every such write of
this process has landed (`write` waits for them), so the 60 % ratio sees every success.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

from shared.store.ledger import AttemptLedger
from shared.store.tables import StoreUnavailable
from shared.tally import Tally
from shared.telemetry import Telemetry

log = logging.getLogger(__name__)

# Interpreter exit waits for queued work (concurrent.futures joins its threads), so a normal
# shutdown loses none of it.
_LATER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="books-later")


class Books:
    def __init__(
        self,
        ledger: AttemptLedger,
        telemetry: Telemetry,
        *,
        after_failure: Callable[[], object] = lambda: None,
        max_in_flight: int = 256,
    ) -> None:
        """Beyond `max_in_flight` writes after answers, `write_after` declines and the caller
        writes before its answer: a slow Table Storage slows the answers, memory stays bounded."""
        self.ledger = ledger
        self.max_in_flight = max_in_flight
        self.telemetry = telemetry
        self.after_failure = after_failure
        self._lock = threading.Lock()
        self._in_flight: set[Future[None]] = set()

    def write(self, tally: Tally) -> None:
        """A ledger outage never fails a delivery that happened: the rows are in Azure; only the
        failure ratio and the hour's counts miss this request."""
        if tally.failed:
            self.flush()
        self._emit(tally)
        self._record(tally)

    def write_after(self, tally: Tally, first: Callable[[], object]) -> Future[None] | None:
        """Telemetry now; `first()` then the Table write on a background thread, for a tally
        without failures. None when too many are in flight: the caller then does both itself."""
        if tally.failed:
            raise ValueError("a failed request's tally is written before the answer")

        def run() -> None:
            try:
                first()
                self._record(tally)
            finally:
                with self._lock:
                    self._in_flight.discard(future)

        with self._lock:
            if len(self._in_flight) >= self.max_in_flight:
                return None
            self._emit(tally)
            future = _LATER.submit(contextvars.copy_context().run, run)
            self._in_flight.add(future)
        return future

    def _emit(self, tally: Tally) -> None:
        for a in tally.attempts:
            self.telemetry.attempt(a.ok, a.status, a.error, a.elapsed, tally.source)

    def _record(self, tally: Tally) -> None:
        try:
            self.ledger.record_all(tally.records(), tally.counts, at=tally.at)
            if tally.failed:
                self.after_failure()
        except StoreUnavailable as err:
            log.warning("Ledger and hourly counters not updated: %s", err)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait for the writes `write_after` started; False if some are still running."""
        with self._lock:
            pending = list(self._in_flight)
        _, not_done = wait(pending, timeout)
        return not not_done
