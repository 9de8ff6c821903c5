"""Dedup on the webhook's path, decided and written here only.

Two questions, both answered from the dedup store:
- `WebhookDedup`: was this body accepted before (Wallarm resends a body it got no 2xx for)?
- `LateHitGuard`: did reconciliation already add this hit? Only hits older than `min_age` (half of
  RECONCILE_DELAY) can be in a window reconciliation has looked at; only those claim their id pair
  (the key the reconciler uses), so a healthy webhook carrying fresh hits costs no extra Table
  request. A hit whose key is taken is dropped; a Table Storage outage keeps the row (a possible
  duplicate is better than a lost hit).

Dedup is an optimisation, never a reason to lose events: every store failure here means "new".
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from shared.clock import Clock, parse_iso_utc
from shared.intake.hit_keys import dedup_key, hit_key
from shared.schema import Row
from shared.store.dedup import DedupKeys
from shared.store.tables import StoreUnavailable

log = logging.getLogger(__name__)

# A "processing" body key older than this belongs to a dead request (Wallarm waits 15 s, the
# delivery budget is shorter): Wallarm's resend then takes it over.
PROCESSING_TIMEOUT = timedelta(seconds=60)
# A late hit's claim older than this belongs to a dead request.
_HIT_CLAIM_TIMEOUT = timedelta(minutes=10)
# The body's "done" marks written after answers (see `finish_after_answer`).
_AFTER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook-after")


class LateHitGuard:
    def __init__(self, dedup: DedupKeys, *, ttl: timedelta, min_age: timedelta, clock: Clock) -> None:
        self.dedup = dedup
        self.ttl = ttl
        self.min_age = min_age
        self.clock = clock

    def late(self, rows: Sequence[Row]) -> list[str | None]:
        """Each row's hit key if it is a hit old enough to be reconciled already, else None. Pure."""
        cutoff = self.clock() - self.min_age
        keys: list[str | None] = []
        for row in rows:
            when = _time_of(row) if row.get("EventType") == "new_hits" else None
            keys.append(_row_hit_key(row) if when is not None and when < cutoff else None)
        return keys

    def claim(self, rows: Sequence[Row], late: Sequence[str | None]) -> tuple[list[Row], list[str], int]:
        """(rows to deliver, keys claimed for them, rows dropped as already written); `late` as
        `late(rows)` gave it."""
        kept: list[Row] = []
        claimed: list[str] = []
        dropped = 0
        for row, key in zip(rows, late, strict=True):
            if key is None:
                kept.append(row)
                continue
            try:
                outcome = self.dedup.begin(dedup_key(key), ttl=self.ttl, stale_after=_HIT_CLAIM_TIMEOUT)
            except StoreUnavailable as err:
                log.warning("Hit guard skipped, Table Storage unavailable: %s", err)
                kept.append(row)
                continue
            if outcome == "new":
                kept.append(row)
                claimed.append(dedup_key(key))
            else:
                dropped += 1
        if dropped:
            log.warning(
                "Webhook: %d late hits were already added by reconciliation and were skipped", dropped
            )
        return kept, claimed, dropped

    def settle(self, keys: Sequence[str], *, durable: bool) -> None:
        for key in keys:
            try:
                if durable:
                    self.dedup.finish(key, ttl=self.ttl)
                else:
                    self.dedup.abandon(key)
            except StoreUnavailable as err:
                log.warning("Hit guard key not settled: %s", err)


class WebhookDedup:
    """A body's key: claimed while the body is parsed, finished once its rows are delivered or
    durable, abandoned when Wallarm must resend. `late_hits` is set when reconciliation is on."""

    def __init__(
        self,
        keys: DedupKeys,
        *,
        window: timedelta,
        late_hits: LateHitGuard | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keys = keys
        self.window = window
        self.late_hits = late_hits
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._finishing: set[str] = set()  # answered; their "done" mark not yet stored

    def begin(self, key: str) -> str:
        """ "new", "taken_over" (an earlier processing of this body stopped mid-way, maybe after
        its upload), "duplicate" or "in_progress"."""
        with self._lock:
            if key in self._finishing:
                return "duplicate"  # answered a moment ago; its "done" mark is on its way
        try:
            return self.keys.begin(key, ttl=self.window, stale_after=PROCESSING_TIMEOUT, report_takeover=True)
        except StoreUnavailable as err:
            log.warning("Dedup check skipped, Table Storage unavailable: %s", err)
            return "new"

    def finish(self, key: str) -> None:
        try:
            self.keys.finish(key, ttl=self.window)
        except StoreUnavailable as err:
            log.warning("Dedup key not saved, a resend may duplicate rows: %s", err)

    def abandon(self, key: str) -> None:
        try:
            self.keys.abandon(key)
        except StoreUnavailable as err:
            log.warning("Dedup key not released: %s", err)

    def finish_after_answer(self, key: str) -> None:
        """The "done" mark of a delivered webhook, after its answer; the same body arriving
        meanwhile is answered "duplicate" from memory. Lost with the instance, the key expires as
        "processing" after PROCESSING_TIMEOUT (a resend then goes through)."""
        with self._lock:
            self._finishing.add(key)

        def finish() -> None:
            try:
                self.finish(key)
            finally:
                with self._lock:
                    self._finishing.discard(key)

        _AFTER.submit(contextvars.copy_context().run, finish)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the "done" marks of answered webhooks are stored (tests, benchmarks)."""
        deadline = None if timeout is None else self.monotonic() + timeout
        while True:
            with self._lock:
                if not self._finishing:
                    return True
            if deadline is not None and self.monotonic() >= deadline:
                return False
            time.sleep(0.01)


def _row_hit_key(row: Row) -> str | None:
    try:
        raw = json.loads(row.get("RawData") or "{}")
    except ValueError:
        return None
    details = raw.get("details") if isinstance(raw, dict) else None
    hit = details.get("hit") if isinstance(details, dict) else None
    return hit_key(hit.get("id")) if isinstance(hit, dict) else None


def _time_of(row: Row) -> datetime | None:
    return parse_iso_utc(row.get("TimeGenerated"))
