"""The retry worker's minute, shared fairly among tenants.

Each tenant has its own queue, rate limits and thread pools (``RetryWorker``); what they share is
the instance. So the minute is handed out in turns: at most ``slots`` tenants drain at once, each
for at most an equal slice of the minute, least recently served first. A tenant whose run ends
early (its queue is empty, or it is disabled) frees its slot for the next at once; one with work
left goes to the back of the line and gets another turn if time remains. A tenant with a 100k
backlog therefore holds one slot for one slice at a time, and never delays another tenant's turn
by more than a slice; when there are no more tenants than slots, every tenant drains all minute.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Generic, TypeVar

from shared.telemetry import current_tenant

log = logging.getLogger(__name__)

R = TypeVar("R")


@dataclass(frozen=True)
class Turn(Generic[R]):
    tenant: str
    started: float  # seconds after the drain started
    ended: float
    result: R | None  # None: the tenant's worker raised (logged with its type)


@dataclass
class DrainReport(Generic[R]):
    turns: list[Turn[R]] = field(default_factory=list)

    def of(self, tenant: str) -> list[Turn[R]]:
        return [t for t in self.turns if t.tenant == tenant]


class FairDrain(Generic[R]):
    def __init__(
        self,
        slots: int,
        *,
        min_slice: timedelta = timedelta(seconds=10),
        has_more: Callable[[R], bool] = lambda _: True,
        monotonic: Callable[[], float] = time.monotonic,
        errors: tuple[type[Exception], ...] = (OSError,),
    ) -> None:
        """``has_more(result)``: the tenant's turn ended with work left (it wants another turn);
        ``errors``: what one tenant's worker may raise without ending the others' turns."""
        self.slots = max(1, slots)
        self.min_slice = min_slice.total_seconds()
        self.has_more = has_more
        self.monotonic = monotonic
        self.errors = errors
        self._served: dict[str, float] = {}  # tenant -> when its last turn started (across runs)
        self._lock = threading.Lock()

    def slice_for(self, tenants: int, run_for: float) -> float:
        """Each turn's length: the whole run while every tenant has a slot, else an equal share."""
        if tenants <= self.slots:
            return run_for
        return max(self.min_slice, run_for * self.slots / tenants)

    def run(self, workers: Mapping[str, Callable[[timedelta], R]], run_for: timedelta) -> DrainReport[R]:
        """Run each tenant's worker in turns until ``run_for`` is spent or nobody has work left."""
        report: DrainReport[R] = DrainReport()
        if not workers:
            return report
        start = self.monotonic()
        total = run_for.total_seconds()
        deadline = start + total
        turn_length = self.slice_for(len(workers), total)
        with self._lock:
            line = sorted(workers, key=lambda name: (self._served.get(name, -math.inf), name))
        running: dict[Future[R], tuple[str, float]] = {}
        # No turn starts shorter than a slice, unless the whole run is: a run shorter than a
        # slice (RETRY_WORKER_RUN_SECONDS below it) still gives every tenant its turn.
        floor = self.min_slice if total > self.min_slice else 0.0
        threads = min(self.slots, len(workers))
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="drain") as pool:
            while True:
                now = self.monotonic()
                while line and len(running) < self.slots and deadline - now > floor:
                    name = line.pop(0)
                    length = min(turn_length, deadline - now)
                    with self._lock:
                        self._served[name] = now
                    future = pool.submit(self._turn, name, workers[name], timedelta(seconds=length))
                    running[future] = (name, now - start)
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    name, began = running.pop(future)
                    result = self._result(name, future)
                    report.turns.append(Turn(name, began, self.monotonic() - start, result))
                    if result is not None and self.has_more(result):
                        line.append(name)  # back of the line: another turn if time remains
        return report

    def _turn(self, name: str, worker: Callable[[timedelta], R], length: timedelta) -> R:
        token = current_tenant.set(name)  # its log lines carry the tenant
        try:
            return worker(length)
        finally:
            current_tenant.reset(token)

    def _result(self, name: str, future: Future[R]) -> R | None:
        try:
            return future.result()
        except self.errors as err:
            log.error("Drain turn failed: %s", type(err).__name__)
            return None

    def forget(self, tenant: str) -> None:
        with self._lock:
            self._served.pop(tenant, None)
