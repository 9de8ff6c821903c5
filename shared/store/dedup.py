"""Dedup keys: recognise a webhook body Wallarm resends after we already handled it.

A key (a hex digest chosen by the caller) is inserted as ``processing`` before the work and
marked ``done`` after it; a failed request ``abandon``s its key so Wallarm's resend is processed.
A ``processing`` key older than ``stale_after`` (its worker died) and a ``done`` key past its TTL
are taken over with the ETag, so two racing requests cannot both win; a ``processing`` key
expires (``expires_at``) at ``stale_after``, so ``purge`` removes one left by a killed process.
Layout: PartitionKey = first two hex characters of the key, RowKey = the key.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.store.tables import Clock, as_int, as_str, as_utc, delete_keys, etag_of, guarded, lost_race

_LOG = logging.getLogger(__name__)

BeginResult = Literal["new", "taken_over", "duplicate", "in_progress"]
_KEY_RE: Final = re.compile(r"^[0-9A-Fa-f]{8,128}$")


def _partition(key: str) -> str:
    if not _KEY_RE.match(key):
        raise ValueError("dedup key must be 8-128 hex characters")
    return key[:2]


class DedupKeys:
    """Repository for webhook dedup keys."""

    def __init__(self, table: TableClient, clock: Clock) -> None:
        self._table = table
        self._clock = clock

    @guarded("dedup.begin")
    def begin(
        self, key: str, ttl: timedelta, stale_after: timedelta, *, report_takeover: bool = False
    ) -> BeginResult:
        """Start processing ``key``: "new" (go ahead), "duplicate" (done before), "in_progress".
        With ``report_takeover``, "taken_over" instead of "new" when the key was left
        "processing" by a worker that stopped mid-way (its work may have been half done)."""
        partition = _partition(key)
        now = self._clock()
        entity: dict[str, Any] = {
            "PartitionKey": partition,
            "RowKey": key,
            "status": "processing",
            "started_at": now,
            # A claim left by a dead process expires with its timeout, not the TTL: the purge
            # then removes it, and nothing reads it as in progress after ``stale_after``.
            "expires_at": now + stale_after,
            "ttl_s": int(ttl.total_seconds()),
        }
        for _ in range(4):
            try:
                self._table.create_entity(entity)
                return "new"
            except ResourceExistsError:
                pass
            try:
                current = self._table.get_entity(partition, key)
            except ResourceNotFoundError:
                continue  # abandoned or purged in between: try to insert again
            status = as_str(current.get("status"))
            expires_at = as_utc(current.get("expires_at"))
            expired = expires_at is None or expires_at <= now
            if status == "done" and not expired:
                return "duplicate"
            if status == "processing" and not expired:
                started_at = as_utc(current.get("started_at"))
                if started_at is not None and now - started_at < stale_after:
                    return "in_progress"
            try:
                self._table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=etag_of(current.metadata),
                    match_condition=MatchConditions.IfNotModified,
                )
                if status == "processing":
                    _LOG.warning("store: took over a stale dedup key")
                    return "taken_over" if report_takeover else "new"
                return "new"
            except HttpResponseError as error:
                if not lost_race(error):
                    raise
                # Someone else changed it first: look again.
        return "in_progress"

    @guarded("dedup.finish")
    def finish(self, key: str, ttl: timedelta | None = None) -> None:
        """Mark ``key`` done; it answers "duplicate" until its TTL (counted from now) ends.

        Pass the ``ttl`` given to ``begin`` to save a read (one request per webhook)."""
        partition = _partition(key)
        now = self._clock()
        if ttl is None:
            try:
                ttl_s = as_int(self._table.get_entity(partition, key, select=["ttl_s"]).get("ttl_s"))
            except ResourceNotFoundError:
                ttl_s = 0
            ttl = timedelta(seconds=ttl_s) if ttl_s > 0 else timedelta(days=1)
        self._table.upsert_entity(
            {
                "PartitionKey": partition,
                "RowKey": key,
                "status": "done",
                "done_at": now,
                "expires_at": now + ttl,
            },
            mode=UpdateMode.MERGE,
        )

    @guarded("dedup.abandon")
    def abandon(self, key: str) -> None:
        """Forget ``key`` (the request failed) so Wallarm's resend is processed as new."""
        self._table.delete_entity(_partition(key), key)

    @guarded("dedup.purge")
    def purge(self, now: datetime | None = None) -> int:
        """Delete keys whose TTL ended before ``now`` (default: the clock). A table scan."""
        moment = now or self._clock()
        keys = [
            (str(e["PartitionKey"]), str(e["RowKey"]))
            for e in self._table.query_entities(
                "expires_at lt @now",
                parameters={"now": moment},
                select=["PartitionKey", "RowKey"],
            )
        ]
        return delete_keys(self._table, keys)
