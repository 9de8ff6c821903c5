"""The attempt ledger: counts of every delivery attempt, and each failed one in detail.

Wallarm disables an integration when 60 % of its requests fail within 12 hours; the relay
watches its own attempts the same way. Reading 12 hours of single attempts would be unbounded,
so attempts are counted per 10-minute bucket in the hourly counter entities (properties
``attempts_mMM`` / ``failures_mMM``, MM = the bucket's minute), and ``failure_window`` reads the
13 hour partitions that cover the window in one query. The counts ride on the same write as the
webhook's own counters, so a healthy webhook pays no extra round trip for the ledger.

Failed attempts are also kept one by one (status, Azure's error code, x-ms-request-id) in the
ledger table: PartitionKey = UTC hour ``YYYYMMDDHH``, RowKey ``{ms:015d}-{uuid12}``. Successful
attempts are only counted: their rows are in Log Analytics, and their request ids in telemetry.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from azure.data.tables import TableClient

from shared.store.counters import HourlyCounters
from shared.store.tables import EPOCH, Clock, delete_keys, guarded, hour_key

_LOG = logging.getLogger(__name__)

_MS: Final = timedelta(milliseconds=1)


@dataclass(frozen=True)
class AttemptRecord:
    """The outcome of one delivery attempt (one Logs Ingestion call or one batch of rows)."""

    ok: bool
    status: int | None
    error: str
    request_id: str
    rows: int
    source: str  # "webhook" | "retry" | "probe" | "hourly"
    entry_id: str = ""


@dataclass(frozen=True)
class WindowCounts:
    """Attempts and failures in a time window."""

    attempts: int
    failures: int

    @property
    def failure_ratio(self) -> float:
        """failures / attempts, 0.0 when there were no attempts."""
        return self.failures / self.attempts if self.attempts else 0.0


@dataclass(frozen=True)
class Bucket:
    """Attempts and failures counted in one ledger bucket starting at ``start``."""

    start: datetime
    attempts: int
    failures: int


def bucket_start(moment: datetime, bucket: timedelta) -> datetime:
    """Start of the fixed bucket (aligned to the epoch) that contains ``moment``."""
    offset = (moment.astimezone(UTC) - EPOCH) // bucket
    return EPOCH + offset * bucket


def bucket_key(moment: datetime, bucket: timedelta) -> str:
    """``YYYYMMDDHHMM`` of the bucket containing ``moment``."""
    return bucket_start(moment, bucket).strftime("%Y%m%d%H%M")


ATTEMPTS_PREFIX: Final[str] = "attempts_m"
FAILURES_PREFIX: Final[str] = "failures_m"


def _bucket_fields(minute: int) -> tuple[str, str]:
    return f"{ATTEMPTS_PREFIX}{minute:02d}", f"{FAILURES_PREFIX}{minute:02d}"


def fold_attempt_buckets(counts: Mapping[str, int]) -> dict[str, int]:
    """An hour's counters with its attempt buckets summed into ``attempts`` and ``failed_attempts``."""
    folded: dict[str, int] = {}
    for name, value in counts.items():
        if name.startswith(ATTEMPTS_PREFIX):
            name = "attempts"
        elif name.startswith(FAILURES_PREFIX):
            name = "failed_attempts"
        folded[name] = folded.get(name, 0) + value
    return folded


class AttemptLedger:
    """Repository for delivery attempts. ``bucket`` must divide an hour into whole minutes."""

    def __init__(
        self,
        table: TableClient,
        clock: Clock,
        counters: HourlyCounters,
        bucket: timedelta = timedelta(minutes=10),
    ) -> None:
        minutes = bucket / timedelta(minutes=1)
        if minutes < 1 or minutes != int(minutes) or 60 % int(minutes):
            raise ValueError("ledger bucket must be a whole number of minutes dividing an hour")
        self._table = table
        self._clock = clock
        self._counters = counters
        self._bucket = bucket

    def record(self, outcome: AttemptRecord) -> None:
        self.record_all([outcome])

    @guarded("ledger.record")
    def record_all(
        self,
        outcomes: Sequence[AttemptRecord],
        counts: Mapping[str, int] | None = None,
        *,
        at: datetime | None = None,
        ahead: int = 0,
    ) -> None:
        """Count ``outcomes`` in their bucket together with the caller's other ``counts`` (one
        ETag-guarded increment: no lost increments under concurrency) and keep each failure.
        ``at``: when they happened (default now), for a write made a moment later. ``ahead``:
        successful attempts among them already counted by ``count_ahead``."""
        now = at or self._clock()
        totals = dict(counts or {})
        if outcomes or ahead:
            attempts, failures = _bucket_fields(bucket_start(now, self._bucket).minute)
            totals[attempts] = totals.get(attempts, 0) + len(outcomes) - ahead
            totals[failures] = totals.get(failures, 0) + sum(1 for o in outcomes if not o.ok)
        ms = (now - EPOCH) // _MS
        # The counts first: the counters keep them in memory when their write fails, and a later
        # write carries them. After a failed failure record they were lost, and with them the
        # correction of a webhook's counts stored ahead (a 503 during a store outage counted its
        # events; soak seed 24: +4,877 events).
        try:
            self._counters.add(totals, at=now)
        finally:
            self._record_failures(outcomes, now, ms)

    def _record_failures(self, outcomes: Sequence[AttemptRecord], now: datetime, ms: int) -> None:
        for outcome in outcomes:
            if outcome.ok:
                continue
            entity: dict[str, Any] = {
                "PartitionKey": hour_key(now),
                "RowKey": f"{ms:015d}-{uuid.uuid4().hex[:12]}",
                "at": now,
                "ok": outcome.ok,
                "error": outcome.error,
                "request_id": outcome.request_id,
                "rows": outcome.rows,
                "source": outcome.source,
                "entry_id": outcome.entry_id,
            }
            if outcome.status is not None:
                entity["status"] = outcome.status
            self._table.create_entity(entity)

    @guarded("ledger.count_ahead")
    def count_ahead(self, attempts: int, counts: Mapping[str, int], *, at: datetime | None = None) -> None:
        """Count ``attempts`` successful requests and ``counts`` before they happen (the webhook
        does so while it delivers, so its answer waits for no write of its own); the outcome is
        then stored as a difference (``record_all(..., ahead=attempts)``)."""
        now = at or self._clock()
        totals = dict(counts)
        if attempts:
            totals[_bucket_fields(bucket_start(now, self._bucket).minute)[0]] = attempts
        self._counters.add(totals, at=now)

    @guarded("ledger.failure_window")
    def failure_window(self, window: timedelta) -> WindowCounts:
        buckets = self.buckets(window)
        return WindowCounts(
            attempts=sum(b.attempts for b in buckets), failures=sum(b.failures for b in buckets)
        )

    @guarded("ledger.buckets")
    def buckets(self, window: timedelta) -> list[Bucket]:
        """Attempts and failures of the last ``window``, in whole buckets, by one range query.

        Boundary: the window starts at the start of the bucket containing ``now - window``,
        so an attempt at exactly ``now - window`` is IN, and so is anything up to one bucket
        older. Counting a little more history errs towards seeing Wallarm's 60 % rule early.
        """
        now = self._clock()
        start = bucket_start(now - window, self._bucket)
        counts: dict[datetime, list[int]] = {}
        for hour, totals in self._counters.read_range(start, now):
            for name, value in totals.items():
                if not name.startswith((ATTEMPTS_PREFIX, FAILURES_PREFIX)):
                    continue
                at = hour + timedelta(minutes=int(name[-2:]))
                if at < start:
                    continue
                pair = counts.setdefault(at, [0, 0])
                pair[0 if name.startswith(ATTEMPTS_PREFIX) else 1] += value
        return [Bucket(at, a, f) for at, (a, f) in sorted(counts.items())]

    @guarded("ledger.purge")
    def purge(self, older_than: timedelta) -> int:
        """Delete failed-attempt records of hours that ended before ``now - older_than``.

        The bucket counts live in the hourly counters and go with their retention."""
        cutoff = self._clock() - older_than
        keys = [
            (str(e["PartitionKey"]), str(e["RowKey"]))
            for e in self._table.query_entities(
                "PartitionKey lt @hour",
                parameters={"hour": hour_key(cutoff)},
                select=["PartitionKey", "RowKey"],
            )
        ]
        deleted = delete_keys(self._table, keys)
        if deleted:
            _LOG.info("store: ledger purge removed %d entities", deleted)
        return deleted
