"""Integration state: whether the relay forwards rows, and who changed that, when and why.

One entity (PartitionKey ``integration``, RowKey ``state``). Writes are ETag-guarded against
the version the caller read, so an operator's "enable" and the auto-disable rule cannot
silently overwrite each other: the loser gets None, re-reads, and decides again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.store.tables import Clock, as_str, as_utc, etag_of, guarded, log_lost_race, lost_race

PARTITION: Final[str] = "integration"
ROW: Final[str] = "state"
PROBE_ROW: Final[str] = "probe"
MODES: Final[tuple[str, ...]] = ("enabled", "disabled", "auto_disabled")

_LOG = logging.getLogger(__name__)
_REFRESH = ThreadPoolExecutor(max_workers=1, thread_name_prefix="state-refresh")


@dataclass(frozen=True)
class IntegrationState:
    """The stored state; ``etag`` None means nothing is stored yet (the default: enabled)."""

    enabled: bool
    mode: str  # "enabled" | "disabled" | "auto_disabled"
    reason: str
    changed_at: datetime | None
    changed_by: str
    etag: str | None


DEFAULT_STATE: Final = IntegrationState(
    enabled=True, mode="enabled", reason="", changed_at=None, changed_by="", etag=None
)


@dataclass(frozen=True)
class ProbeRecord:
    """The last health probe of the DCR (an empty upload) and when the next one is planned."""

    at: datetime
    ok: bool
    status: int | None
    error: str
    request_id: str
    next_at: datetime | None


class IntegrationStateRepo:
    """Repository for the single integration-state entity."""

    def __init__(
        self, table: TableClient, clock: Clock, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._table = table
        self._clock = clock
        self._monotonic = monotonic
        self._cached: tuple[float, IntegrationState] | None = None
        self._lock = threading.Lock()
        self._refreshing = False

    @guarded("state.get")
    def get(self, *, max_age: float = 0.0) -> IntegrationState:
        """The current state; enabled by default when none was ever stored.

        ``max_age`` > 0 (seconds) accepts this instance's copy read that recently: the hot paths
        (every webhook, every retried entry) then skip a read, and another instance's change takes
        effect within ``max_age``. Once the copy is half that old a read starts in the background,
        so a steady stream of webhooks never waits for one. Writers (``set``) always read fresh
        with the default 0."""
        if max_age > 0 and self._cached is not None:
            age = self._monotonic() - self._cached[0]
            if age <= max_age:
                if age > max_age / 2:
                    self._refresh_beside()
                return self._cached[1]
        return self._fresh()

    def _fresh(self) -> IntegrationState:
        started = self._monotonic()
        state = self._read()
        with self._lock:
            # The copy's age counts from before the read: a change during it is seen next time.
            if self._cached is None or self._cached[0] <= started:
                self._cached = (started, state)
        return state

    def _forget(self) -> None:
        with self._lock:
            self._cached = None

    def _refresh_beside(self) -> None:
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True

        def refresh() -> None:
            try:
                self._fresh()
            except (AzureError, OSError) as err:  # the next read that must wait will report it
                _LOG.debug("Background state read failed: %s", type(err).__name__)
            finally:
                with self._lock:
                    self._refreshing = False

        _REFRESH.submit(refresh)

    def _read(self) -> IntegrationState:
        try:
            entity = self._table.get_entity(PARTITION, ROW)
        except ResourceNotFoundError:
            return DEFAULT_STATE
        mode = as_str(entity.get("mode"))
        return IntegrationState(
            enabled=bool(entity.get("enabled", True)),
            mode=mode if mode in MODES else ("enabled" if entity.get("enabled", True) else "disabled"),
            reason=as_str(entity.get("reason")),
            changed_at=as_utc(entity.get("changed_at")),
            changed_by=as_str(entity.get("changed_by")),
            etag=etag_of(entity.metadata),
        )

    @guarded("state.record_probe")
    def record_probe(self, probe: ProbeRecord) -> None:
        """Last writer wins: each probe is a fact about the API at that moment."""
        entity: dict[str, Any] = {
            "PartitionKey": PARTITION,
            "RowKey": PROBE_ROW,
            "at": probe.at,
            "ok": probe.ok,
            "error": probe.error,
            "request_id": probe.request_id,
            "status": probe.status if probe.status is not None else 0,
        }
        if probe.next_at is not None:
            entity["next_at"] = probe.next_at
        self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    @guarded("state.last_probe")
    def last_probe(self) -> ProbeRecord | None:
        try:
            entity = self._table.get_entity(PARTITION, PROBE_ROW)
        except ResourceNotFoundError:
            return None
        at = as_utc(entity.get("at"))
        if at is None:
            return None
        status = entity.get("status")
        return ProbeRecord(
            at=at,
            ok=bool(entity.get("ok")),
            status=int(status) if status else None,
            error=as_str(entity.get("error")),
            request_id=as_str(entity.get("request_id")),
            next_at=as_utc(entity.get("next_at")),
        )

    @guarded("state.set")
    def set(
        self,
        enabled: bool,
        mode: str,
        reason: str,
        changed_by: str,
        expected: IntegrationState,
    ) -> IntegrationState | None:
        """Write a new state if the stored one is still ``expected``; None if it changed."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if enabled != (mode == "enabled"):
            raise ValueError(f"enabled={enabled} contradicts mode {mode!r}")
        now = self._clock()
        entity: dict[str, Any] = {
            "PartitionKey": PARTITION,
            "RowKey": ROW,
            "enabled": enabled,
            "mode": mode,
            "reason": reason,
            "changed_at": now,
            "changed_by": changed_by,
        }
        try:
            if expected.etag is None:
                meta = self._table.create_entity(entity)
            else:
                meta = self._table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=expected.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except ResourceExistsError:
            log_lost_race("state.set", ROW)
            self._forget()
            return None
        except HttpResponseError as error:
            if not lost_race(error):
                raise
            log_lost_race("state.set", ROW)
            self._forget()
            return None
        state = IntegrationState(
            enabled=enabled,
            mode=mode,
            reason=reason,
            changed_at=now,
            changed_by=changed_by,
            etag=etag_of(meta),
        )
        with self._lock:
            self._cached = (self._monotonic(), state)
        return state
