"""A Wallarm webhook sender: 15 s timeout, Wallarm's three retry cycles, then it gives up;
its own 60 %/12 h auto-disable. Delays and the window are divided by `scale` (documented in
docs/SOAK.md); the 15 s timeout is not scaled, it is what the relay must meet.

Every attempt is recorded (time, instance, status, latency) for the books.
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from local.standins.wallarm_api import WebhookIntegration
from soak.events import Notification

log = logging.getLogger("soak.sender")

# FACTS.md: "Non-2xx -> resend in three cycles: 1,3,5,10,10 s; 0,1,3,5,30 s; 1,1,3,5,10,30 min."
RETRY_DELAYS: tuple[float, ...] = (1, 3, 5, 10, 10, 0, 1, 3, 5, 30, 60, 60, 180, 300, 600, 1800)
TIMEOUT_SECONDS = 15.0
DISABLE_RATIO = 0.6
DISABLE_WINDOW_SECONDS = 12 * 3600.0
DISABLE_MIN_ATTEMPTS = 20


@dataclass
class Attempt:
    at: float
    instance: int
    status: int  # 0: no answer (refused, reset, timeout)
    seconds: float


@dataclass
class Delivery:
    note: Notification
    attempts: list[Attempt] = field(default_factory=list)
    outcome: str = "pending"  # acked | gave_up | never_sent (integration disabled)
    acked_status: int = 0


def auto_disable_due(window: Sequence[bool], *, ratio: float, min_attempts: int) -> bool:
    """Wallarm's rule on the attempts of the window (True = failed)."""
    return len(window) >= min_attempts and sum(window) / len(window) >= ratio


class WallarmSender:
    """Sends notifications to whichever relay instance the "front end" picks (a live one)."""

    def __init__(
        self,
        ports: Callable[[], list[tuple[int, int]]],
        path: str,
        *,
        scale: float,
        rng: random.Random,
        concurrency: int = 8,
        min_attempts: int = DISABLE_MIN_ATTEMPTS,
        integration: WebhookIntegration | None = None,
    ) -> None:
        self.ports = ports  # (instance slot, port) of the instances that should be up
        self.path = path
        self.scale = scale
        self.rng = rng
        self.min_attempts = min_attempts
        self._pick = random.Random(rng.random())
        self.deliveries: list[Delivery] = []
        self.disabled_at: list[tuple[float, int, int]] = []  # (time, attempts, failures) of the window
        self.integration = integration or WebhookIntegration(1, "", {})
        self._window: deque[tuple[float, bool]] = deque()
        self._lock = threading.Lock()
        self._due: list[tuple[float, int, Delivery]] = []
        self._seq = itertools.count()
        self._wake = threading.Condition(self._lock)
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="wallarm")
        self._stop = threading.Event()
        self._inflight = 0
        self._scheduler = threading.Thread(target=self._schedule_loop, name="wallarm-sched", daemon=True)
        self._scheduler.start()

    @property
    def active(self) -> bool:
        """The integration's switch, as the Wallarm API stand-in holds it (the relay's watchdog may
        turn it back on through the API, as WATCHDOG_REENABLE does on Wallarm)."""
        return self.integration.active

    # -- surface ----------------------------------------------------------------------------
    def submit(self, note: Notification) -> Delivery:
        delivery = Delivery(note)
        with self._lock:
            self.deliveries.append(delivery)
            if not self.active:
                delivery.outcome = "never_sent"  # a disabled integration is sent nothing
                return delivery
            heapq.heappush(self._due, (time.monotonic(), next(self._seq), delivery))
            self._wake.notify()
        return delivery

    def busy(self) -> int:
        with self._lock:
            return len(self._due) + self._inflight

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            self._wake.notify_all()
        self._scheduler.join(timeout=30)
        with self._lock:
            for _, _, waiting in self._due:  # still waiting for a retry at the end: given up
                waiting.outcome = "gave_up"
            self._due.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- internals --------------------------------------------------------------------------
    def _schedule_loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if not self._due:
                    self._wake.wait(timeout=0.5)
                    continue
                at, _, delivery = self._due[0]
                wait = at - time.monotonic()
                if wait > 0:
                    self._wake.wait(timeout=min(wait, 0.5))
                    continue
                heapq.heappop(self._due)
                self._inflight += 1
            self._pool.submit(self._attempt, delivery)

    def _post(self, port: int, body: bytes, ndjson: bool) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_SECONDS)
        try:
            ctype = "application/x-ndjson" if ndjson else "application/json"
            conn.request("POST", self.path, body=body, headers={"Content-Type": ctype})
            response = conn.getresponse()
            response.read()
            return int(response.status)
        finally:
            conn.close()

    def _attempt(self, delivery: Delivery) -> None:
        try:
            self._attempt_once(delivery)
        except Exception:  # noqa: BLE001 - a bug here must not stall the books: logged, counted failed
            log.exception("sender attempt failed unexpectedly")
            with self._lock:
                delivery.outcome = "gave_up"
        finally:
            with self._lock:
                self._inflight -= 1

    def _attempt_once(self, delivery: Delivery) -> None:
        live = list(self.ports())
        self._pick.shuffle(live)
        status, slot, started = 0, -1, time.monotonic()
        # The front end routes to a live instance; a refused connection is tried on the next one.
        for candidate, port in live:
            slot = candidate
            started = time.monotonic()
            try:
                status = self._post(port, delivery.note.body, delivery.note.ndjson)
                break
            except ConnectionRefusedError:
                status = 0
                continue
            except (OSError, http.client.HTTPException):
                status = 0  # reset, timeout, or cut mid-answer: Wallarm sees a failure
                break
        seconds = time.monotonic() - started
        ok = 200 <= status < 300
        now = time.time()
        with self._lock:
            delivery.attempts.append(Attempt(now, slot, status, seconds))
            self._window.append((time.monotonic(), not ok))
            horizon = time.monotonic() - DISABLE_WINDOW_SECONDS / self.scale
            while self._window and self._window[0][0] < horizon:
                self._window.popleft()
            if ok:
                delivery.outcome, delivery.acked_status = "acked", status
                return
            failures = [failed for _, failed in self._window]
            if self.active and auto_disable_due(
                failures, ratio=DISABLE_RATIO, min_attempts=self.min_attempts
            ):
                self.integration.active = False
                self._window.clear()  # Wallarm counts afresh once re-enabled
                self.disabled_at.append((now, len(failures), sum(failures)))
                log.warning(
                    "Wallarm sender: integration auto-disabled (%d/%d failed)", sum(failures), len(failures)
                )
                for _, _, waiting in self._due:
                    waiting.outcome = "gave_up"
                self._due.clear()
            retries = len(delivery.attempts) - 1
            if not self.active or retries >= len(RETRY_DELAYS) or self._stop.is_set():
                delivery.outcome = "gave_up"
                return
            delay = RETRY_DELAYS[retries] / self.scale
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._seq), delivery))
            self._wake.notify()
