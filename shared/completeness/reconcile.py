"""Reconciliation: the hits Wallarm's cloud holds for a closed window, minus those the table holds.

Hourly (opt-in, WALLARM_API_TOKEN): for each window that closed at least RECONCILE_DELAY ago,
list its hits from the API (`POST /v1/objects/hit`, with RECONCILE_OVERLAP before it for hits
that reach the cloud late), ask the workspace which hit ids it already has, and write the
missing ones as `new_hits` rows, through the webhook's own mapping (api_hits ->
to_event -> select -> map_event), marked `_relay_backfill` in RawData.

Never twice: each added hit claims its id pair in the webhook's dedup store first, so a second
run, a concurrent run, or a late webhook (shared/intake/dedup.py) skips it. A window is deferred
while the relay's own queue holds pending, parked or quarantined rows: those are hits the table
does not show yet, and adding them from the API would duplicate them once the queue drains or an
operator replays them.

"Not queryable yet" is not "missing": Log Analytics shows a row 20 s to 3 min after upload, and
sometimes much later. A fresh webhook hit claims no dedup key (only hits older than half of
RECONCILE_DELAY do), and a queue entry delivered a second before a run has left the queue but not
reached the query. So a window whose hits look missing is first recorded `unconfirmed`; they are
added only by a run at least RECONCILE_CONFIRM later that still misses them with the queue empty.
Every row the relay delivered before the first look is then RECONCILE_CONFIRM old.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared.clock import Clock, hour_floor, iso_ms
from shared.completeness.api_hits import dedup_key, hit_key, notification_from_api_hit
from shared.completeness.reconcile_range import back
from shared.completeness.wallarm_api import WallarmApi, WallarmApiError
from shared.completeness.workspace_hits import Presence, QueryFailed
from shared.delivery.deliver_or_queue import DeliverOrQueue
from shared.intake.mapping import map_event
from shared.intake.parse import to_event
from shared.intake.selection import Selection, select
from shared.limits import RECONCILE_DEDUP_TTL
from shared.schema import Row
from shared.settings import Settings
from shared.store.dedup import DedupKeys
from shared.store.queue import RetryQueue
from shared.store.tables import StoreUnavailable
from shared.store.windows import CompletenessLog, WindowRecord
from shared.telemetry import Telemetry

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)


class HitIndex(Protocol):
    def hit_keys(self, start: datetime, end: datetime, now: datetime) -> Presence: ...


@dataclass(frozen=True)
class ReconcileConfig:
    """What reconciliation is told; every value comes from Settings (`from_settings`), which
    holds the defaults, so none is written here."""

    delay: timedelta
    overlap: timedelta
    catch_up: timedelta
    dedup_ttl: timedelta
    cloud: str
    client_id: int | None
    selection: Selection
    confirm: timedelta
    max_age: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> ReconcileConfig:
        cs = settings.completeness
        return cls(
            delay=cs.reconcile_delay,
            overlap=cs.reconcile_overlap,
            catch_up=cs.reconcile_catch_up,
            dedup_ttl=max(settings.dedup_window, RECONCILE_DEDUP_TTL),
            cloud=cs.wallarm_cloud.upper(),
            client_id=cs.wallarm_client_id,
            selection=settings.selection,
            confirm=cs.reconcile_confirm,
            max_age=cs.reconcile_max_age,
        )


MAX_REOPENED_PER_RUN = 24
"""Windows older than the catch-up span (a killed job's, a deferred or unconfirmed one) the timer
takes per run, so one run stays well inside the Functions timeout."""


class ReconcileDeferred(Exception):
    """Not run now (the relay's own backlog first); the next run tries again."""


class Reconciler:
    def __init__(
        self,
        api: WallarmApi,
        table: HitIndex,
        dedup: DedupKeys,
        relay: DeliverOrQueue,
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
        # The ranges live manual jobs hold (set by ReconcileJobs): the timer leaves them alone.
        self.live_ranges: Callable[[], list[tuple[datetime, datetime]]] = list

    # -- which windows ----------------------------------------------------------------------
    def due_windows(self) -> list[tuple[datetime, datetime]]:
        """Closed UTC hours within the catch-up span with no `ok` record, then older recorded
        windows that are not `ok` (a killed job's, a deferred or unconfirmed one), oldest first;
        none a live manual job holds."""
        now = self.clock()
        last_end = hour_floor(now - self.config.delay)
        first_start = last_end - max(self.config.catch_up, HOUR)
        reopened = [
            r.start
            for r in self.log.open_windows(hour_floor(back(now, self.config.max_age)))
            if r.start < first_start
        ][:MAX_REOPENED_PER_RUN]
        windows: list[tuple[datetime, datetime]] = [(s, s + HOUR) for s in reopened]
        start = first_start
        while start < last_end:
            record = self.log.get_window(start)
            if record is None or record.status != "ok":
                windows.append((start, start + HOUR))
            start += HOUR
        held = self.live_ranges() if windows else []
        return [w for w in windows if not any(s <= w[0] < e for s, e in held)]

    def run_due(self) -> list[WindowRecord]:
        """The timer's run: every due window; a failure is recorded and retried next hour."""
        return self.run_windows(self.due_windows(), by="timer", overlap=self.config.overlap)

    def run_windows(
        self,
        windows: list[tuple[datetime, datetime]],
        *,
        by: str,
        overlap: timedelta = timedelta(0),
        job: str = "",
        after_each: Callable[[WindowRecord], None] | None = None,
    ) -> list[WindowRecord]:
        """Whole UTC hours in order; stops at the first deferral or failure (the same cause would
        stop the next window too), recording it so the timer runs it again."""
        records: list[WindowRecord] = []
        for i, (start, end) in enumerate(windows):
            try:
                record = self.run(start, end, by=by, overlap=overlap, job=job)
            except ReconcileDeferred as why:
                log.warning("Reconciliation deferred: %s", why)
                record = self._stopped(start, end, by, job, "deferred", why)
            except (WallarmApiError, QueryFailed, StoreUnavailable) as err:
                record = self._stopped(start, end, by, job, "failed", err)
            records.append(record)
            if after_each is not None:
                after_each(record)
            if record.status in ("deferred", "failed"):
                if not job:  # a job's windows are recorded `queued` already
                    self._record_rest(windows[i + 1 :], by, record)
                break
        return records

    def _record_rest(self, rest: list[tuple[datetime, datetime]], by: str, why: WindowRecord) -> None:
        """Windows not run because an earlier one stopped get a record too: a window without
        one is only looked at while it is in the catch-up span, and a quarantine or an outage
        can outlast that."""
        for start, end in rest:
            try:
                if self.log.get_window(start) is None:
                    self.log.save_window(
                        WindowRecord(start, end, 0, 0, 0, 0, status=why.status, error=why.error, by=by)
                    )
            except StoreUnavailable:
                return

    def run_range(self, start: datetime, end: datetime, *, by: str) -> list[WindowRecord]:
        """The closed whole UTC hours of [start, end), inline (the watchdog's gap after a
        re-enable: at most 13 windows). Operators go through `ReconcileJobs`."""
        first, stop = hour_floor(start), min(hour_floor(end), hour_floor(self.clock()))
        windows: list[tuple[datetime, datetime]] = []
        while first < stop:
            windows.append((first, first + HOUR))
            first += HOUR
        return self.run_windows(windows, by=by)

    # -- one window -------------------------------------------------------------------------
    def run(
        self, start: datetime, end: datetime, *, by: str, overlap: timedelta, job: str = ""
    ) -> WindowRecord:
        if start != hour_floor(start) or end - start != HOUR:
            raise ValueError("a window is one whole UTC hour")  # the record is keyed by the hour
        if end > hour_floor(self.clock()):
            raise ValueError("a window that has not closed is never reconciled")
        stats = self.queue.stats()
        if stats.pending or stats.parked or stats.quarantined:
            raise ReconcileDeferred(
                f"{stats.pending} pending, {stats.parked} parked and {stats.quarantined} quarantined "
                "queue entries are not in the table yet"
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
        unconfirmed = self._unconfirmed(start, end, missing, len(hits), unkeyed, now, by, job)
        if unconfirmed is not None:
            return unconfirmed
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
            job=job,
        )
        return self.log.save_window(record)

    def _unconfirmed(
        self,
        start: datetime,
        end: datetime,
        missing: list[tuple[str, dict[str, Any]]],
        in_wallarm: int,
        unkeyed: int,
        now: datetime,
        by: str,
        job: str,
    ) -> WindowRecord | None:
        """The `unconfirmed` record when the missing hits need a second look; None to add them."""
        if not missing or self.config.confirm <= timedelta(0):
            return None
        previous = self.log.get_window(start)
        seen = previous.missing_seen_at if previous is not None else None
        if seen is not None and now - seen >= self.config.confirm:
            return None
        first = seen or now
        log.warning(
            "Reconciliation %s..%s: %d hits not in the table yet; added at the first run after %s "
            "that still misses them",
            iso_ms(start),
            iso_ms(end),
            len(missing),
            iso_ms(first + self.config.confirm),
        )
        record = WindowRecord(
            start=start,
            end=end,
            in_wallarm=in_wallarm,
            present=in_wallarm - len(missing) - unkeyed,
            added=0,
            already_added=0,
            status="unconfirmed",
            by=by,
            job=job,
            missing_seen_at=first,
            suspect=len(missing),
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
            try:
                envelope = notification_from_api_hit(
                    hit, client_name="", cloud=self.config.cloud, reconciled_at=iso_ms(now)
                )
                chosen = select(to_event(envelope), self.config.selection)
                row = map_event(chosen, now) if chosen is not None else None
            except (ValueError, TypeError, OverflowError, RecursionError) as err:
                # As the webhook rejects one item, never its batch: the other hits are added.
                log.warning("Reconcile: a hit from the API could not be mapped (%s)", type(err).__name__)
                row = None
            if row is None:
                self.dedup.abandon(dkey)
                continue
            rows.append(row)
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

    def _stopped(
        self, start: datetime, end: datetime, by: str, job: str, status: str, err: Exception
    ) -> WindowRecord:
        if status == "failed":
            log.error("Reconciliation %s..%s failed: %s", iso_ms(start), iso_ms(end), err)
        previous: WindowRecord | None = None
        with contextlib.suppress(StoreUnavailable):
            previous = self.log.get_window(start)
        record = WindowRecord(
            start,
            end,
            0,
            0,
            0,
            0,
            status=status,
            error=str(err)[:300],
            by=by,
            job=job,
            # A deferral or failure does not restart the second look's clock.
            missing_seen_at=previous.missing_seen_at if previous is not None else None,
        )
        try:
            return self.log.save_window(record)
        except StoreUnavailable:
            return record

    def status(self, limit: int = 24) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self.log.recent_windows(limit)]
