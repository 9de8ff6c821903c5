"""The attempt ledger: every delivery attempt, and per-bucket counts for the 60 % / 12 h rule.

Wallarm disables an integration when 60 % of its requests fail within 12 hours; the relay
watches its own attempts the same way. Reading 12 hours of single attempts would be unbounded,
so each attempt also increments a bucket counter and ``failure_window`` reads only buckets.

Layout of the ledger table:

- attempts: PartitionKey = UTC hour ``YYYYMMDDHH``, RowKey ``{ms:015d}-{uuid12}``.
- buckets: PartitionKey ``buckets``, RowKey ``{YYYYMMDDHHMM}_{shard}``: the bucket start, plus
  a shard so concurrent writers rarely collide on one ETag. A range query on RowKey still
  selects whole buckets because the shard suffix sorts after the bucket start.
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from azure.data.tables import TableClient

from shared.store.tables import (
    Clock,
    as_int,
    delete_keys,
    guarded,
    increment_entity,
)

_LOG = logging.getLogger(__name__)

BUCKETS: Final[str] = "buckets"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
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


def hour_key(moment: datetime) -> str:
    """``YYYYMMDDHH`` of the UTC hour containing ``moment``."""
    return moment.astimezone(UTC).strftime("%Y%m%d%H")


def bucket_start(moment: datetime, bucket: timedelta) -> datetime:
    """Start of the fixed bucket (aligned to the epoch) that contains ``moment``."""
    offset = (moment.astimezone(UTC) - _EPOCH) // bucket
    return _EPOCH + offset * bucket


def bucket_key(moment: datetime, bucket: timedelta) -> str:
    """``YYYYMMDDHHMM`` of the bucket containing ``moment``."""
    return bucket_start(moment, bucket).strftime("%Y%m%d%H%M")


class AttemptLedger:
    """Repository for delivery attempts and their bucketed counts.

    ``bucket`` must divide an hour into whole minutes (1, 5, 10, 15, 30 or 60 minutes).
    """

    def __init__(
        self,
        table: TableClient,
        clock: Clock,
        bucket: timedelta = timedelta(minutes=10),
        shards: int = 4,
    ) -> None:
        minutes = bucket / timedelta(minutes=1)
        if minutes < 1 or minutes != int(minutes) or 60 % int(minutes):
            raise ValueError("ledger bucket must be a whole number of minutes dividing an hour")
        if shards < 1:
            raise ValueError("shards must be >= 1")
        self._table = table
        self._clock = clock
        self._bucket = bucket
        self._shards = shards

    @guarded("ledger.record")
    def record(self, outcome: AttemptRecord) -> None:
        """Store one attempt and count it in its bucket (no lost increments under concurrency)."""
        now = self._clock()
        ms = (now - _EPOCH) // _MS
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
        shard = random.randrange(self._shards)
        increment_entity(
            self._table,
            BUCKETS,
            f"{bucket_key(now, self._bucket)}_{shard}",
            {"attempts": 1, "failures": 0 if outcome.ok else 1},
            operation="ledger.record",
        )

    @guarded("ledger.failure_window")
    def failure_window(self, window: timedelta = timedelta(hours=12)) -> WindowCounts:
        """Attempts and failures of the last ``window``, in whole buckets, by one range query.

        Boundary: the window starts at the start of the bucket containing ``now - window``,
        so an attempt at exactly ``now - window`` is IN, and so is anything up to one bucket
        older. Counting a little more history errs towards seeing Wallarm's 60 % rule early.
        """
        start = bucket_key(self._clock() - window, self._bucket)
        attempts = failures = 0
        for entity in self._table.query_entities(
            "PartitionKey eq @pk and RowKey ge @start",
            parameters={"pk": BUCKETS, "start": start},
            select=["attempts", "failures"],
        ):
            attempts += as_int(entity.get("attempts"))
            failures += as_int(entity.get("failures"))
        return WindowCounts(attempts=attempts, failures=failures)

    @guarded("ledger.purge")
    def purge(self, older_than: timedelta) -> int:
        """Delete attempts of hours and buckets that ended before ``now - older_than``."""
        cutoff = self._clock() - older_than
        keys: list[tuple[str, str]] = []
        # Hour partitions are digits, which sort before "buckets": "lt" never touches buckets.
        for entity in self._table.query_entities(
            "PartitionKey lt @hour",
            parameters={"hour": hour_key(cutoff)},
            select=["PartitionKey", "RowKey"],
        ):
            keys.append((str(entity["PartitionKey"]), str(entity["RowKey"])))
        for entity in self._table.query_entities(
            "PartitionKey eq @pk and RowKey lt @start",
            parameters={"pk": BUCKETS, "start": bucket_key(cutoff, self._bucket)},
            select=["PartitionKey", "RowKey"],
        ):
            keys.append((BUCKETS, str(entity["RowKey"])))
        deleted = delete_keys(self._table, keys)
        if deleted:
            _LOG.info("store: ledger purge removed %d entities", deleted)
        return deleted
