"""What reconciliation and the watchdog remember: one record per window, and the watchdog's state.

Table ``<prefix>completeness``:
- PartitionKey ``window``, RowKey = the window's start (``YYYYMMDDTHHMMSSZ``): the counts of the
  last run for that window (in Wallarm, already present, added, already added earlier), its
  status, how many runs it took and who ran it (timer or an operator).
  Status ``ok`` is the only one the timer skips: ``queued`` (a manual job will run it),
  ``unconfirmed`` (hits looked missing once; added only if a second look RECONCILE_CONFIRM later
  still misses them), ``deferred`` and ``failed`` are run again.
- PartitionKey ``job``, RowKey = the job id: a manual range run in the background, its progress
  and a heartbeat (a job whose heartbeat stopped was killed; its windows stay ``queued``).
- PartitionKey ``watchdog``, RowKey ``integration`` / ``quiet``: the last problem raised (so an
  alert is raised on a change, not every run), the integration's last seen settings, and when
  the relay last re-enabled it (at most once an hour).

Plain upserts: both writers are timers (singletons) or an operator's explicit re-run, and a
lost update costs only a repeated alert or count, never data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from shared.clock import iso_ms
from shared.store.tables import Clock, as_int, as_str, as_utc, etag_of, guarded, lost_race

WINDOW_PARTITION: Final[str] = "window"
WATCHDOG_PARTITION: Final[str] = "watchdog"
JOB_PARTITION: Final[str] = "job"
JOB_LOCK: Final[str] = "~lock"  # sorts after every job id
BATCH = 100  # operations per entity-group transaction


def window_row_key(start: datetime) -> str:
    """The window's UTC start: a `+02:00` start must not record the wrong hour."""
    return start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


@dataclass(frozen=True)
class WindowRecord:
    start: datetime
    end: datetime
    in_wallarm: int
    present: int
    added: int
    already_added: int
    status: str  # "ok" | "failed" | "deferred" | "unconfirmed" | "queued"
    error: str = ""
    run_at: datetime | None = None
    runs: int = 1
    by: str = "timer"
    job: str = ""
    missing_seen_at: datetime | None = None  # first run that found hits missing (unconfirmed)
    suspect: int = 0  # hits that run found missing

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": iso_ms(self.start),
            "end": iso_ms(self.end),
            "in_wallarm": self.in_wallarm,
            "present": self.present,
            "added": self.added,
            "already_added": self.already_added,
            "status": self.status,
            "error": self.error or None,
            "run_at": iso_ms(self.run_at) if self.run_at else None,
            "runs": self.runs,
            "by": self.by,
            "job": self.job or None,
            "missing_seen_at": iso_ms(self.missing_seen_at) if self.missing_seen_at else None,
            "suspect": self.suspect,
        }


@dataclass
class JobRecord:
    id: str
    start: datetime
    end: datetime
    by: str
    state: str  # "running" | "done" | "stopped" (deferred or failed)
    heartbeat: datetime
    windows: int
    done: int = 0
    added: int = 0
    error: str = ""

    def live(self, now: datetime, stale_after: timedelta) -> bool:
        return self.state == "running" and now - self.heartbeat < stale_after

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.start < end and start < self.end

    def as_dict(self, now: datetime, stale_after: timedelta) -> dict[str, Any]:
        state = self.state
        if state == "running" and not self.live(now, stale_after):
            state = "abandoned"  # killed mid-way: its remaining windows are left to the timer
        return {
            "id": self.id,
            "from": iso_ms(self.start),
            "to": iso_ms(self.end),
            "by": self.by,
            "state": state,
            "windows": self.windows,
            "done": self.done,
            "added": self.added,
            "heartbeat": iso_ms(self.heartbeat),
            "error": self.error or None,
        }


@dataclass
class WatchState:
    problem: str = ""  # "" when fine
    since: datetime | None = None
    snapshot: dict[str, Any] = field(default_factory=dict)
    reenabled_at: datetime | None = None
    # The re-enable rule's own records (shared/completeness/watchdog.py): last seen healthy, the current
    # disable and its verdict, the relay's last re-enable, a hold after a person undid it.
    memo: dict[str, Any] = field(default_factory=dict)


class CompletenessLog:
    def __init__(self, table: TableClient, clock: Clock) -> None:
        self._table = table
        self._clock = clock

    @classmethod
    @guarded("completeness.open")
    def open(cls, service: TableServiceClient, prefix: str, clock: Clock) -> CompletenessLog:
        return cls(service.create_table_if_not_exists(f"{prefix}completeness"), clock)

    # -- windows ----------------------------------------------------------------------------
    @guarded("completeness.get_window")
    def get_window(self, start: datetime) -> WindowRecord | None:
        try:
            entity = self._table.get_entity(WINDOW_PARTITION, window_row_key(start))
        except ResourceNotFoundError:
            return None
        return _window(entity)

    @guarded("completeness.save_window")
    def save_window(self, record: WindowRecord) -> WindowRecord:
        previous = self.get_window(record.start)
        runs = (previous.runs + 1) if previous else 1
        stored = WindowRecord(**{**record.__dict__, "runs": runs, "run_at": record.run_at or self._clock()})
        self._table.upsert_entity(
            {
                "PartitionKey": WINDOW_PARTITION,
                "RowKey": window_row_key(record.start),
                "start": stored.start,
                "end": stored.end,
                "in_wallarm": stored.in_wallarm,
                "present": stored.present,
                "added": stored.added,
                "already_added": stored.already_added,
                "status": stored.status,
                "error": stored.error,
                "run_at": stored.run_at,
                "runs": stored.runs,
                "by": stored.by,
                "job": stored.job,
                "missing_seen_at": stored.missing_seen_at,
                "suspect": stored.suspect,
            },
            mode=UpdateMode.REPLACE,
        )
        return stored

    @guarded("completeness.mark_queued")
    def mark_queued(self, windows: list[tuple[datetime, datetime]], job: str, by: str) -> None:
        """Before a job starts: its windows are not `ok` until it has run them, so a job killed
        at any point leaves the rest to the timer (merged: earlier counts and runs are kept)."""
        ops = [
            (
                "upsert",
                {
                    "PartitionKey": WINDOW_PARTITION,
                    "RowKey": window_row_key(start),
                    "start": start,
                    "end": end,
                    "status": "queued",
                    "job": job,
                    "by": by,
                },
                {"mode": UpdateMode.MERGE},
            )
            for start, end in windows
        ]
        for i in range(0, len(ops), BATCH):
            self._table.submit_transaction(ops[i : i + BATCH])

    @guarded("completeness.open_windows")
    def open_windows(self, since: datetime) -> list[WindowRecord]:
        """Recorded windows from `since` on that are not `ok`, oldest first."""
        records = [
            _window(e)
            for e in self._table.query_entities(
                "PartitionKey eq @pk and RowKey ge @rk and status ne @ok",
                parameters={"pk": WINDOW_PARTITION, "rk": window_row_key(since), "ok": "ok"},
            )
        ]
        return sorted(records, key=lambda r: r.start)

    # -- jobs -------------------------------------------------------------------------------
    @guarded("completeness.save_job")
    def save_job(self, job: JobRecord) -> None:
        self._table.upsert_entity(
            {
                "PartitionKey": JOB_PARTITION,
                "RowKey": job.id,
                "start": job.start,
                "end": job.end,
                "by": job.by,
                "state": job.state,
                "heartbeat": job.heartbeat,
                "windows": job.windows,
                "done": job.done,
                "added": job.added,
                "error": job.error,
            },
            mode=UpdateMode.REPLACE,
        )

    @guarded("completeness.take_job_lock")
    def take_job_lock(self, owner: str, lease: timedelta) -> bool:
        """A short mutex (ETag-guarded) around "no overlapping live job? then register mine", so
        two instances cannot both pass the check; a holder that died frees it after `lease`."""
        now = self._clock()
        entity = {"PartitionKey": JOB_PARTITION, "RowKey": JOB_LOCK, "owner": owner, "until": now + lease}
        try:
            self._table.create_entity(entity)
            return True
        except ResourceExistsError:
            pass
        try:
            current = self._table.get_entity(JOB_PARTITION, JOB_LOCK)
        except ResourceNotFoundError:
            return False  # released in between: the caller tries again
        until = as_utc(current.get("until"))
        if until is not None and until > now:
            return False
        try:
            self._table.update_entity(
                entity,
                mode=UpdateMode.REPLACE,
                etag=etag_of(current.metadata),
                match_condition=MatchConditions.IfNotModified,
            )
        except HttpResponseError as err:
            if lost_race(err):
                return False
            raise
        return True

    @guarded("completeness.release_job_lock")
    def release_job_lock(self, owner: str) -> None:
        try:
            current = self._table.get_entity(JOB_PARTITION, JOB_LOCK)
        except ResourceNotFoundError:
            return
        if as_str(current.get("owner")) != owner:
            return
        try:
            self._table.delete_entity(
                JOB_PARTITION,
                JOB_LOCK,
                etag=etag_of(current.metadata),
                match_condition=MatchConditions.IfNotModified,
            )
        except HttpResponseError as err:
            if not lost_race(err):
                raise

    @guarded("completeness.jobs")
    def jobs(self) -> list[JobRecord]:
        """Every job, newest first (the partition holds one small row per manual request)."""
        out: list[JobRecord] = []
        for e in self._table.query_entities("PartitionKey eq @pk", parameters={"pk": JOB_PARTITION}):
            start, end, beat = as_utc(e.get("start")), as_utc(e.get("end")), as_utc(e.get("heartbeat"))
            if start is None or end is None or beat is None:
                continue
            out.append(
                JobRecord(
                    id=as_str(e.get("RowKey")),
                    start=start,
                    end=end,
                    by=as_str(e.get("by")),
                    state=as_str(e.get("state")),
                    heartbeat=beat,
                    windows=as_int(e.get("windows")),
                    done=as_int(e.get("done")),
                    added=as_int(e.get("added")),
                    error=as_str(e.get("error")),
                )
            )
        return sorted(out, key=lambda j: j.id, reverse=True)

    @guarded("completeness.recent_windows")
    def recent_windows(self, limit: int = 24) -> list[WindowRecord]:
        """The newest windows first (RowKeys sort by time; one partition scan, small)."""
        records = [
            _window(e)
            for e in self._table.query_entities("PartitionKey eq @pk", parameters={"pk": WINDOW_PARTITION})
        ]
        records.sort(key=lambda r: r.start, reverse=True)
        return records[:limit]

    # -- watchdog ---------------------------------------------------------------------------
    @guarded("completeness.get_watch")
    def get_watch(self, name: str) -> WatchState:
        try:
            entity = self._table.get_entity(WATCHDOG_PARTITION, name)
        except ResourceNotFoundError:
            return WatchState()
        return WatchState(
            problem=as_str(entity.get("problem")),
            since=as_utc(entity.get("since")),
            snapshot=_json_dict(entity.get("snapshot")),
            reenabled_at=as_utc(entity.get("reenabled_at")),
            memo=_json_dict(entity.get("memo")),
        )

    @guarded("completeness.save_watch")
    def save_watch(self, name: str, state: WatchState) -> None:
        entity: dict[str, Any] = {
            "PartitionKey": WATCHDOG_PARTITION,
            "RowKey": name,
            "problem": state.problem,
            "snapshot": json.dumps(state.snapshot, sort_keys=True),
            "memo": json.dumps(state.memo, sort_keys=True),
        }
        if state.since is not None:
            entity["since"] = state.since
        if state.reenabled_at is not None:
            entity["reenabled_at"] = state.reenabled_at
        self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)


def _json_dict(value: Any) -> dict[str, Any]:
    try:
        parsed = json.loads(as_str(value) or "{}")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _window(entity: Any) -> WindowRecord:
    start = as_utc(entity.get("start"))
    end = as_utc(entity.get("end"))
    if start is None or end is None:
        raise ValueError("window record without start/end")
    return WindowRecord(
        start=start,
        end=end,
        in_wallarm=as_int(entity.get("in_wallarm")),
        present=as_int(entity.get("present")),
        added=as_int(entity.get("added")),
        already_added=as_int(entity.get("already_added")),
        status=as_str(entity.get("status")),
        error=as_str(entity.get("error")),
        run_at=as_utc(entity.get("run_at")),
        runs=as_int(entity.get("runs"), 1),
        by=as_str(entity.get("by")),
        job=as_str(entity.get("job")),
        missing_seen_at=as_utc(entity.get("missing_seen_at")),
        suspect=as_int(entity.get("suspect")),
    )
