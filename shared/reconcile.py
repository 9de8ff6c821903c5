"""Reconciliation: the hits Wallarm's cloud holds for a closed window, minus those the table holds.

Hourly (opt-in, WALLARM_API_TOKEN): for each window that closed at least RECONCILE_DELAY ago,
list its hits from the API (`POST /v1/objects/hit`, with RECONCILE_OVERLAP before it for hits
that reach the cloud late), ask the workspace which hit ids it already has, and write the
missing ones as `new_hits` rows, through the webhook's own mapping (api_hits ->
to_event -> select -> map_event), marked `_relay_backfill` in RawData.

Never twice: each added hit claims its id pair in the webhook's dedup store first, so a second
run, a concurrent run, or a late webhook (shared/hit_guard.py) skips it. A window is deferred
while the relay's own queue holds pending or parked rows: those are hits the table does not
show yet, and adding them from the API would duplicate them once the queue drains.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared.clock import Clock, iso_ms
from shared.dispatch import Relay
from shared.mapping import map_event
from shared.schema import Row
from shared.selection import Selection, select
from shared.store.completeness import CompletenessLog, WindowRecord
from shared.store.dedup import DedupKeys
from shared.store.queue import RetryQueue
from shared.store.tables import StoreUnavailable
from shared.table_hits import Presence, QueryFailed
from shared.telemetry import Telemetry
from shared.wallarm.api import WallarmApi, WallarmApiError
from shared.wallarm.api_hits import dedup_key, hit_key, notification_from_api_hit
from shared.wallarm.parse import to_event

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)


class HitIndex(Protocol):
    def hit_keys(self, start: datetime, end: datetime, now: datetime) -> Presence: ...


@dataclass(frozen=True)
class ReconcileConfig:
    delay: timedelta = timedelta(minutes=30)
    overlap: timedelta = timedelta(hours=1)
    catch_up: timedelta = timedelta(hours=6)
    dedup_ttl: timedelta = timedelta(hours=48)
    cloud: str = "EU"
    client_id: int | None = None
    selection: Selection = Selection()


class ReconcileDeferred(Exception):
    """Not run now (the relay's own backlog first); the next run tries again."""


def hour_floor(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


class Reconciler:
    def __init__(
        self,
        api: WallarmApi,
        table: HitIndex,
        dedup: DedupKeys,
        relay: Relay,
        queue: RetryQueue,
        telemetry: Telemetry,
        log_store: CompletenessLog,
        config: ReconcileConfig,
        *,
        clock: Clock,
    ) -> None:
        self.api = api
        self.table = table
        self.dedup = dedup
        self.relay = relay
        self.queue = queue
        self.telemetry = telemetry
        self.log = log_store
        self.config = config
        self.clock = clock
        self._client_id = config.client_id

    # -- which windows ----------------------------------------------------------------------
    def due_windows(self) -> list[tuple[datetime, datetime]]:
        """Closed hours within the catch-up span with no successful record, oldest first."""
        last_end = hour_floor(self.clock() - self.config.delay)
        first_start = last_end - max(self.config.catch_up, HOUR)
        windows: list[tuple[datetime, datetime]] = []
        start = first_start
        while start < last_end:
            record = self.log.get_window(start)
            if record is None or record.status != "ok":
                windows.append((start, start + HOUR))
            start += HOUR
        return windows

    def run_due(self) -> list[WindowRecord]:
        """The timer's run: every due window; a failure is recorded and retried next hour."""
        done: list[WindowRecord] = []
        for start, end in self.due_windows():
            try:
                done.append(self.run(start, end, by="timer", overlap=self.config.overlap))
            except ReconcileDeferred as why:
                log.warning("Reconciliation deferred: %s", why)
                break
            except (WallarmApiError, QueryFailed, StoreUnavailable) as err:
                done.append(self._failed(start, end, "timer", err))
                break  # the same cause would fail the next window too
        return done

    def run_range(self, start: datetime, end: datetime, *, by: str) -> list[WindowRecord]:
        """An operator's re-run (`relayctl reconcile --from --to`), in windows of at most one hour."""
        if end <= start:
            raise ValueError("--to must be after --from")
        records: list[WindowRecord] = []
        cursor = start
        while cursor < end:
            stop = min(cursor + HOUR, end)
            try:
                records.append(self.run(cursor, stop, by=by, overlap=timedelta(0)))
            except ReconcileDeferred as why:
                log.warning("Reconciliation deferred: %s", why)
                deferred = WindowRecord(cursor, stop, 0, 0, 0, 0, status="deferred", error=str(why), by=by)
                records.append(deferred)
                break
            except (WallarmApiError, QueryFailed, StoreUnavailable) as err:
                records.append(self._failed(cursor, stop, by, err))
                break
            cursor = stop
        return records

    # -- one window -------------------------------------------------------------------------
    def run(self, start: datetime, end: datetime, *, by: str, overlap: timedelta) -> WindowRecord:
        stats = self.queue.stats()
        if stats.pending or stats.parked:
            raise ReconcileDeferred(
                f"{stats.pending} pending and {stats.parked} parked queue entries are not in the table yet"
            )
        since = start - overlap
        now = self.clock()
        client_id = self._client()
        # The API's time filter is inclusive at both ends; the window is [start, end).
        hits = self.api.hits(client_id, int(since.timestamp()), int(end.timestamp()) - 1)
        present = self.table.hit_keys(since, end, now)
        keyed = [(hit_key(h.get("id")), h) for h in hits]
        unkeyed = sum(1 for key, _ in keyed if key is None)
        if unkeyed:
            log.warning("Reconciliation: %d API hits without an id pair were skipped", unkeyed)
        missing = [
            (key, h) for key, h in keyed if key is not None and not present.holds(key, h.get("request_id"))
        ]
        rows, claimed, already = self._claim_and_map(missing, now)
        try:
            if rows:
                # `backfilled` goes into the hour's counters with the attempts, so
                # `relay_hourly_stats` shows it too.
                self.relay.send(rows, source="reconcile", counts={"backfilled": len(rows)})
        except StoreUnavailable:
            self._release(claimed)
            raise
        for key in claimed:
            self._finish(key)
        added = len(rows)
        if added:
            self.telemetry.count_events("backfilled", Counter(r["EventType"] for r in rows))
            log.warning(
                "Reconciliation %s..%s: %d hits were missing from the table and were added",
                iso_ms(start),
                iso_ms(end),
                added,
            )
        record = WindowRecord(
            start=start,
            end=end,
            in_wallarm=len(hits),
            present=len(hits) - len(missing) - unkeyed,
            added=added,
            already_added=already,
            status="ok",
            by=by,
        )
        return self.log.save_window(record)

    def _claim_and_map(
        self, missing: list[tuple[str, dict[str, Any]]], now: datetime
    ) -> tuple[list[Row], list[str], int]:
        rows: list[Row] = []
        claimed: list[str] = []
        already = 0
        for key, hit in missing:
            dkey = dedup_key(key)
            claim = self.dedup.begin(dkey, ttl=self.config.dedup_ttl, stale_after=timedelta(minutes=10))
            if claim != "new":
                already += 1  # added by an earlier run, or delivered late by the webhook
                continue
            envelope = notification_from_api_hit(
                hit, client_name="", cloud=self.config.cloud, reconciled_at=iso_ms(now)
            )
            event = to_event(envelope)
            chosen = select(event, self.config.selection)
            if chosen is None:
                self.dedup.abandon(dkey)
                continue
            rows.append(map_event(chosen, now))
            claimed.append(dkey)
        return rows, claimed, already

    def _client(self) -> int:
        if self._client_id is None:
            self._client_id = self.api.client_id()
        return self._client_id

    def _release(self, keys: list[str]) -> None:
        for key in keys:
            try:
                self.dedup.abandon(key)
            except StoreUnavailable as err:
                log.warning("Reconciliation: a dedup key was not released: %s", err)

    def _finish(self, key: str) -> None:
        try:
            self.dedup.finish(key, ttl=self.config.dedup_ttl)
        except StoreUnavailable as err:
            log.warning("Reconciliation: a dedup key was not marked done: %s", err)

    def _failed(self, start: datetime, end: datetime, by: str, err: Exception) -> WindowRecord:
        log.error("Reconciliation %s..%s failed: %s", iso_ms(start), iso_ms(end), err)
        record = WindowRecord(start, end, 0, 0, 0, 0, status="failed", error=str(err)[:300], by=by)
        try:
            return self.log.save_window(record)
        except StoreUnavailable:
            return record

    def status(self, limit: int = 24) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self.log.recent_windows(limit)]
