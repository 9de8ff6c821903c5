"""Keeps the claim leases of the entries a worker is uploading, so no upload outlives its lease.

An entry split into several requests (over 1 MiB of JSON, or halved after a 413) makes them one
after another, each up to the read timeout: no fixed lease covers every case. Without renewal,
another instance claims the entry once the lease runs out and delivers it a second time (issue
19, finding 10). A thread beside the uploads renews (ETag-guarded, ``RetryQueue.renew``) every
held entry with less than half its lease left, for as long as its upload runs, up to
``max_hold``; a process that dies stops renewing, so its entries still come due again.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.clock import Clock
from shared.log_throttle import RepeatedLog
from shared.store.queue import QueueEntry
from shared.store.tables import StoreUnavailable

log = logging.getLogger(__name__)

Renew = Callable[[QueueEntry, timedelta], QueueEntry | None]


@dataclass
class _Held:
    entry: QueueEntry
    since: datetime
    lock: threading.Lock = field(default_factory=threading.Lock)
    released: bool = False
    lost: bool = False


class LeaseKeeper:
    def __init__(
        self,
        renew: Renew,
        *,
        lease: timedelta,
        clock: Clock,
        max_hold: timedelta | None = None,
        background: bool = True,
    ) -> None:
        """``max_hold`` (default 10 leases): an upload held longer is left to its lease, so a
        hung process cannot keep an entry from every other instance forever. ``background``:
        renew on a thread of its own (tests call ``renew_due`` instead)."""
        self._renew = renew
        self.lease = lease
        self.clock = clock
        self.max_hold = lease * 10 if max_hold is None else max_hold
        self.renewed = 0  # renewals that succeeded (for tests and telemetry)
        self._check_every = min(max(lease.total_seconds() / 8, 0.05), 5.0)
        self._held: dict[str, _Held] = {}
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._quiet = RepeatedLog(log)
        self._background = background

    def hold(self, entry: QueueEntry) -> None:
        """Keep ``entry``'s lease from now until ``release``."""
        with self._wake:
            self._held[entry.id] = _Held(entry, self.clock())
            if self._thread is None and self._background:
                context = contextvars.copy_context()  # its log lines keep the tenant
                self._thread = threading.Thread(
                    target=context.run, args=(self._run,), name="retry-leases", daemon=True
                )
                self._thread.start()
            self._wake.notify()

    def release(self, entry: QueueEntry) -> QueueEntry:
        """Stop renewing; the entry's newest version (its ETag), the one to settle. Waits for a
        renewal of it that is under way, so the settle never races it."""
        with self._wake:
            held = self._held.pop(entry.id, None)
        if held is None:
            return entry
        with held.lock:
            held.released = True
            return held.entry

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._held:
                    self._wake.wait()
                held = list(self._held.values())
            self.renew_due(held)
            with self._wake:
                self._wake.wait(self._check_every)

    def renew_due(self, held: list[_Held] | None = None) -> None:
        """Renew every held entry with less than half its lease left (one pass)."""
        if held is None:
            with self._wake:
                held = list(self._held.values())
        for one in held:
            with one.lock:
                if one.released or one.lost:
                    continue
                now = self.clock()
                if one.entry.due_at - now >= self.lease / 2:
                    continue
                if now - one.since >= self.max_hold:
                    one.lost = True
                    log.warning(
                        "Retry worker: an upload has run %.0f s; its lease is no longer renewed",
                        (now - one.since).total_seconds(),
                    )
                    continue
                try:
                    renewed = self._renew(one.entry, self.lease)
                except StoreUnavailable as err:
                    self._quiet.log(logging.WARNING, "renew", "Lease not renewed, will retry: %s", err)
                    continue
                if renewed is None:
                    one.lost = True  # another worker holds it now; its settle will lose the race
                    log.warning("Retry worker: the lease of an entry being uploaded was lost")
                    continue
                one.entry = renewed
                self.renewed += 1
