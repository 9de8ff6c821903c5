"""What reconciliation and the watchdog remember: one record per window, and the watchdog's state.

Table ``<prefix>completeness``:
- PartitionKey ``window``, RowKey = the window's start (``YYYYMMDDTHHMMSSZ``): the counts of the
  last run for that window (in Wallarm, already present, added, already added earlier), its
  status, how many runs it took and who ran it (timer or an operator).
- PartitionKey ``watchdog``, RowKey ``integration`` / ``quiet``: the last problem raised (so an
  alert is raised on a change, not every run), the integration's last seen settings, and when
  the relay last re-enabled it (at most once an hour).

Plain upserts: both writers are timers (singletons) or an operator's explicit re-run, and a
lost update costs only a repeated alert or count, never data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from shared.clock import iso_ms
from shared.store.tables import Clock, as_int, as_str, as_utc, guarded

WINDOW_PARTITION: Final[str] = "window"
WATCHDOG_PARTITION: Final[str] = "watchdog"


def window_row_key(start: datetime) -> str:
    return start.strftime("%Y%m%dT%H%M%SZ")


@dataclass(frozen=True)
class WindowRecord:
    start: datetime
    end: datetime
    in_wallarm: int
    present: int
    added: int
    already_added: int
    status: str  # "ok" | "failed"
    error: str = ""
    run_at: datetime | None = None
    runs: int = 1
    by: str = "timer"

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
        }


@dataclass
class WatchState:
    problem: str = ""  # "" when fine
    since: datetime | None = None
    snapshot: dict[str, Any] = field(default_factory=dict)
    reenabled_at: datetime | None = None
    # The re-enable rule's own records (shared/watchdog.py): last seen healthy, the current
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
            },
            mode=UpdateMode.REPLACE,
        )
        return stored

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
    )
