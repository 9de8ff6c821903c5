"""Hourly counters (received, delivered, queued, ...) and the hourly timer's idempotency marker.

Layout of the counters table: PartitionKey = UTC hour ``YYYYMMDDHH``; RowKey ``s-{instance}``
for each process's own shard, ``s{n}`` for the shared shards, and RowKey ``claim`` for the marker
that makes the hourly summary go out once even if the timer fires twice. ``read`` sums every
``s*`` row. Counter properties are stored as ``c_{sanitized name}``.

Only this process writes its own shard, so an increment needs no read: the process keeps the
hour's running totals and upserts them (one request, no ETag). Concurrent adds in one process
are group-committed: whoever writes carries every increment made so far, and an add returns only
once a write that includes it succeeded (read-your-writes for the 60 %/12 h rule). A failed write
keeps its increments in memory, so the next write carries them. Hours older than the previous
one, or an hour this process already let go of, go to a shared shard by an ETag-guarded
read-merge instead, so a late add never overwrites stored totals with a fresh (smaller) copy.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.store.tables import (
    Clock,
    as_int,
    as_str,
    as_utc,
    delete_keys,
    etag_of,
    guarded,
    hour_key,
    increment_entity,
    log_lost_race,
    lost_race,
)

_LOG = logging.getLogger(__name__)

CLAIM: Final[str] = "claim"
_PREFIX: Final[str] = "c_"
_NON_ALNUM: Final = re.compile(r"[^A-Za-z0-9]")
_MAX_NAME: Final[int] = 200
# An entity holds at most 255 properties. The fixed counters and the ledger's attempt buckets take
# about 30; per-type counters (``type_<EventType>``) past this many per entity fold into
# ``type_other``, so Wallarm sending many types never makes the counter write fail.
MAX_TYPE_COUNTERS: Final[int] = 150
_TYPE: Final[str] = _PREFIX + "type_"
TYPE_OTHER: Final[str] = "type_other"


def sanitize_counter_name(name: str) -> str:
    """A counter name usable as a property name: non-alphanumerics become ``_``.

    Names starting with a digit get an ``n`` prefix; ``read`` returns the sanitized form.
    """
    clean = _NON_ALNUM.sub("_", name)[:_MAX_NAME]
    if not clean:
        raise ValueError("counter name must not be empty")
    if clean[0].isdigit():
        clean = f"n{clean}"
    return clean


def fold_types(
    current: Mapping[str, Any], deltas: Mapping[str, int], limit: int = MAX_TYPE_COUNTERS
) -> dict[str, int]:
    """Deltas with new ``type_*`` counters beyond ``limit`` per entity added to ``type_other``."""
    other = _PREFIX + TYPE_OTHER
    present = sum(1 for name in current if name.startswith(_TYPE) and name != other)
    out: dict[str, int] = {}
    for name, delta in deltas.items():
        if name.startswith(_TYPE) and name != other and name not in current:
            if present >= limit:
                out[other] = out.get(other, 0) + delta
                continue
            present += 1
        out[name] = out.get(name, 0) + delta
    return out


class HourlyCounters:
    """Repository for per-hour counters and the hourly timer's claim marker."""

    def __init__(self, table: TableClient, clock: Clock, shards: int = 4) -> None:
        if shards < 1:
            raise ValueError("shards must be >= 1")
        self._table = table
        self._clock = clock
        self._shards = shards
        self._own = f"s-{uuid.uuid4().hex[:16]}"
        self._lock = threading.Lock()  # guards the fields below (held briefly, never over I/O)
        self._totals: dict[str, dict[str, int]] = {}  # hour -> this process's running totals
        self._retired: set[str] = set()  # hours let go of: later adds take the shared shards
        self._dirty: set[str] = set()
        self._version = 0  # increments made so far
        self._written = 0  # increments a successful write carried
        self._write_lock = threading.Lock()  # one write of the own shard at a time

    @guarded("counters.add")
    def add(self, counts: Mapping[str, int], at: datetime | None = None) -> None:
        """Add ``counts`` to the hour of ``at`` (default now); zero counts are skipped."""
        deltas: dict[str, int] = {}
        for name, value in counts.items():
            if value:
                key = _PREFIX + sanitize_counter_name(name)
                deltas[key] = deltas.get(key, 0) + int(value)
        if not deltas:
            return
        now = self._clock()
        hour = hour_key(at or now)
        with self._lock:
            own = self._accumulate(hour, hour_key(now - timedelta(hours=1)), deltas)
        if own is None:
            shard = f"s{random.randrange(self._shards)}"
            increment_entity(self._table, hour, shard, deltas, operation="counters.add", fold=fold_types)
        else:
            self._commit(own)

    def _accumulate(self, hour: str, oldest: str, deltas: Mapping[str, int]) -> int | None:
        """Add ``deltas`` to the own shard's totals (caller holds the lock); the version that
        carries them, or None when ``hour`` must go to a shared shard."""
        if hour < oldest or hour in self._retired:
            return None
        for old in [h for h in self._totals if h < oldest and h not in self._dirty]:
            del self._totals[old]
            self._retired.add(old)
        current = self._totals.setdefault(hour, {})
        for name, delta in fold_types(current, deltas).items():
            current[name] = current.get(name, 0) + delta
        self._dirty.add(hour)
        self._version += 1
        return self._version

    def _commit(self, version: int) -> None:
        """Return once a write carrying ``version`` succeeded (this call's or a concurrent one's)."""
        with self._write_lock:
            if self._written >= version:
                return
            with self._lock:
                hours, self._dirty = self._dirty, set()
                snapshot = {h: dict(self._totals[h]) for h in hours}
                latest = self._version
            try:
                for hour, values in sorted(snapshot.items()):
                    entity: dict[str, Any] = {"PartitionKey": hour, "RowKey": self._own}
                    entity.update(values)
                    self._table.upsert_entity(entity, mode=UpdateMode.MERGE)
            except BaseException:
                with self._lock:
                    self._dirty |= hours  # the next write carries them
                raise
            self._written = latest

    @guarded("counters.read")
    def read(self, hour: datetime) -> dict[str, int]:
        """The hour's counters summed over shards (one partition query)."""
        totals: dict[str, int] = {}
        for entity in self._table.query_entities(
            "PartitionKey eq @pk and RowKey ge 's' and RowKey lt 't'",
            parameters={"pk": hour_key(hour)},
        ):
            for name, value in entity.items():
                if name.startswith(_PREFIX):
                    key = name[len(_PREFIX) :]
                    totals[key] = totals.get(key, 0) + as_int(value)
        return totals

    @guarded("counters.read_range")
    def read_range(self, first: datetime, last: datetime) -> list[tuple[datetime, dict[str, int]]]:
        """Counters of every hour from ``first`` to ``last`` (inclusive), summed over shards, in
        one query over at most (hours x shards) entities."""
        totals: dict[str, dict[str, int]] = {}
        for entity in self._table.query_entities(
            "PartitionKey ge @a and PartitionKey le @b and RowKey ge 's' and RowKey lt 't'",
            parameters={"a": hour_key(first), "b": hour_key(last)},
        ):
            hour = totals.setdefault(str(entity["PartitionKey"]), {})
            for name, value in entity.items():
                if name.startswith(_PREFIX):
                    key = name[len(_PREFIX) :]
                    hour[key] = hour.get(key, 0) + as_int(value)
        return [
            (datetime.strptime(key, "%Y%m%d%H").replace(tzinfo=UTC), values)
            for key, values in sorted(totals.items())
        ]

    @guarded("counters.claim_hour")
    def claim_hour(self, hour: datetime, owner: str, stale_after: timedelta) -> bool:
        """Take the right to send ``hour``'s summary. False if sent, or claimed by a live owner.

        A claim older than ``stale_after`` (its owner crashed) is taken over with the ETag, so
        only one of several racing takers wins. The same owner may claim again (retry).
        """
        now = self._clock()
        key = hour_key(hour)
        marker: dict[str, Any] = {
            "PartitionKey": key,
            "RowKey": CLAIM,
            "status": "claimed",
            "owner": owner,
            "claimed_at": now,
        }
        for _ in range(3):
            try:
                self._table.create_entity(marker)
                return True
            except ResourceExistsError:
                pass
            try:
                current = self._table.get_entity(key, CLAIM)
            except ResourceNotFoundError:
                continue  # released in between: try to create again
            if as_str(current.get("status")) == "sent":
                return False
            if as_str(current.get("owner")) == owner:
                return True
            claimed_at = as_utc(current.get("claimed_at"))
            if claimed_at is not None and now - claimed_at < stale_after:
                return False
            try:
                self._table.update_entity(
                    marker,
                    mode=UpdateMode.REPLACE,
                    etag=etag_of(current.metadata),
                    match_condition=MatchConditions.IfNotModified,
                )
                _LOG.warning("store: took over stale hourly claim for %s", key)
                return True
            except HttpResponseError as error:
                if not lost_race(error):
                    raise
                log_lost_race("counters.claim_hour", key)
                return False
        return False

    @guarded("counters.mark_sent")
    def mark_sent(self, hour: datetime) -> None:
        """Record that ``hour``'s summary went out; later claims return False."""
        self._table.upsert_entity(
            {
                "PartitionKey": hour_key(hour),
                "RowKey": CLAIM,
                "status": "sent",
                "sent_at": self._clock(),
            },
            mode=UpdateMode.MERGE,
        )

    @guarded("counters.release_hour")
    def release_hour(self, hour: datetime, owner: str) -> None:
        """Give up a claim after a failed send so the next timer run can retry at once."""
        key = hour_key(hour)
        try:
            current = self._table.get_entity(key, CLAIM)
        except ResourceNotFoundError:
            return
        if as_str(current.get("status")) != "claimed" or as_str(current.get("owner")) != owner:
            return
        try:
            self._table.delete_entity(
                key,
                CLAIM,
                etag=etag_of(current.metadata),
                match_condition=MatchConditions.IfNotModified,
            )
        except HttpResponseError as error:
            if error.status_code != 412:
                raise
            log_lost_race("counters.release_hour", key)

    @guarded("counters.purge")
    def purge(self, older_than: timedelta) -> int:
        """Delete hours (counters and markers) that ended before ``now - older_than``."""
        cutoff = hour_key(self._clock() - older_than)
        keys = [
            (str(e["PartitionKey"]), str(e["RowKey"]))
            for e in self._table.query_entities(
                "PartitionKey lt @hour",
                parameters={"hour": cutoff},
                select=["PartitionKey", "RowKey"],
            )
        ]
        return delete_keys(self._table, keys)
