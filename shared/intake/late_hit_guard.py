"""Keeps a late webhook from writing a hit that reconciliation already added (and vice versa).

Only hits older than `min_age` (half of RECONCILE_DELAY) can be in a window reconciliation has
already looked at; only those claim their id pair in the dedup store (the one the reconciler
uses), so a healthy webhook carrying fresh hits costs no extra Table request. A hit whose key is
taken is dropped from the webhook's rows; a Table Storage outage keeps the row (a possible
duplicate is better than a lost hit).

`GuardedDeliverOrQueue` applies the guard to the webhook's `submit` only, so the webhook handler itself is
unchanged; it is used only when reconciliation is configured.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from shared.clock import Clock
from shared.completeness.api_hits import dedup_key, hit_key
from shared.delivery.deliver_or_queue import DeliverOrQueue, SubmitResult
from shared.delivery.ingestion import Packed
from shared.health.request_tally import RequestTally
from shared.schema import Row
from shared.store.dedup import DedupKeys
from shared.store.tables import StoreUnavailable

if TYPE_CHECKING:  # the constructor's types only
    from shared.delivery.ingestion import Deliverer
    from shared.delivery.policy import RetrySchedule
    from shared.health.ledger_writer import LedgerWriter
    from shared.store.queue import RetryQueue
    from shared.store.state import IntegrationStateRepo
    from shared.telemetry import Telemetry

log = logging.getLogger(__name__)


def _row_hit_key(row: Row) -> str | None:
    try:
        raw = json.loads(row.get("RawData") or "{}")
    except ValueError:
        return None
    details = raw.get("details") if isinstance(raw, dict) else None
    hit = details.get("hit") if isinstance(details, dict) else None
    return hit_key(hit.get("id")) if isinstance(hit, dict) else None


def _time_of(row: Row) -> datetime | None:
    try:
        return datetime.fromisoformat(row.get("TimeGenerated", "").replace("Z", "+00:00"))
    except ValueError:
        return None


class LateHitGuard:
    def __init__(self, dedup: DedupKeys, *, ttl: timedelta, min_age: timedelta, clock: Clock) -> None:
        self.dedup = dedup
        self.ttl = ttl
        self.min_age = min_age
        self.clock = clock

    def claim(self, rows: Sequence[Row]) -> tuple[list[Row], list[str], int]:
        """(rows to deliver, keys claimed for them, rows dropped as already written)."""
        cutoff = self.clock() - self.min_age
        kept: list[Row] = []
        claimed: list[str] = []
        dropped = 0
        for row in rows:
            when = _time_of(row) if row.get("EventType") == "new_hits" else None
            key = _row_hit_key(row) if when is not None and when < cutoff else None
            if key is None:
                kept.append(row)
                continue
            try:
                outcome = self.dedup.begin(dedup_key(key), ttl=self.ttl, stale_after=timedelta(minutes=10))
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


class GuardedDeliverOrQueue(DeliverOrQueue):
    """The webhook's DeliverOrQueue with the hit guard in front of `submit` (webhook rows only)."""

    def __init__(
        self,
        deliverer: Deliverer,
        queue: RetryQueue,
        state: IntegrationStateRepo,
        books: LedgerWriter,
        telemetry: Telemetry,
        *,
        schedule: RetrySchedule,
        clock: Clock,
        guard: LateHitGuard | None,
    ) -> None:
        """DeliverOrQueue's arguments, and the guard (None unless reconciliation is on)."""
        super().__init__(deliverer, queue, state, books, telemetry, schedule=schedule, clock=clock)
        self.guard = guard

    def submit(
        self,
        rows: Sequence[Row],
        *,
        tally: RequestTally,
        deadline: float | None,
        packed: Sequence[Packed] | None = None,
    ) -> SubmitResult:
        if self.guard is None or tally.source != "webhook":
            return super().submit(rows, tally=tally, deadline=deadline, packed=packed)
        kept, claimed, _ = self.guard.claim(rows)
        try:
            # Rows dropped by the guard make the packed requests stale: pack again.
            same = len(kept) == len(rows)
            result = super().submit(kept, tally=tally, deadline=deadline, packed=packed if same else None)
        except StoreUnavailable:
            self.guard.settle(claimed, durable=False)
            raise
        self.guard.settle(claimed, durable=True)
        return result
