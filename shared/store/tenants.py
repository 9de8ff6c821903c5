"""The tenant registry and its audit trail (issue 22): tenants as rows, every change as a row.

Table ``{prefix}tenants``, PartitionKey ``tenant``: RowKey = the tenant's name (Settings,
SecretRefs and Credential as JSON; TablePrefix; Removing; CreatedAt, UpdatedAt, UpdatedBy), and one
claim row per table prefix (RowKey ``~`` + the prefix, lowercased): Azure table names are
case-insensitive and alphanumeric, so two names that map to the same tables (``a-b`` and ``ab``)
would share a queue. Tenant and claim are created and removed in one transaction, so two racing
adds cannot both win. Updates are ETag-guarded: a lost race is ``TenantConflict``, never a silent
overwrite.

Table ``{prefix}tenantaudit``: PartitionKey = the tenant's name, RowKey = inverted time + uuid, so
newest first. The audit row is written before the change and withdrawn if the change loses its
race: a crash in between leaves a row for a change that may not have happened, never a change
without a row. Values in an audit row are settings and references, never a secret's value (the
registry holds none).
"""

from __future__ import annotations

import builtins
import json
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from shared.store.tables import EPOCH, Clock, as_str, as_utc, etag_of, guarded, lost_race

PARTITION: Final[str] = "tenant"
CLAIM: Final[str] = "~"  # a tenant's RowKey is a slug and never starts with it
ACTIONS: Final[tuple[str, ...]] = ("add", "update", "rotate_secret", "disable", "enable", "remove")
_MAX_TICKS: Final[int] = 10**17  # microseconds: beyond year 5000
_MICROSECOND: Final = timedelta(microseconds=1)


class TenantExists(Exception):
    """``add`` found the name, or another tenant holding the same tables (``taken_by``)."""

    def __init__(self, name: str, taken_by: str) -> None:
        super().__init__(
            f"tenant {name} exists" if taken_by == name else f"{name} maps to {taken_by}'s tables"
        )
        self.name = name
        self.taken_by = taken_by


class TenantNotFound(Exception):
    """No tenant of that name (never added, or removed)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no tenant {name}")
        self.name = name


class TenantConflict(Exception):
    """Another writer changed the tenant since it was read: re-read, and decide again."""

    def __init__(self, name: str) -> None:
        super().__init__(f"tenant {name} changed since it was read")
        self.name = name


@dataclass(frozen=True)
class TenantRecord:
    """One stored tenant. ``etag`` is the version it was read at ('' for one not stored yet)."""

    name: str
    table_prefix: str
    settings: Mapping[str, str] = field(default_factory=dict)
    secret_refs: Mapping[str, str] = field(default_factory=dict)
    credential: Mapping[str, str] = field(default_factory=dict)
    removing: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None
    updated_by: str = ""
    etag: str = ""


@dataclass(frozen=True)
class AuditEntry:
    """One change: when, who, what (``changed`` field names; ``detail`` old -> new, references as
    references)."""

    at: datetime | None
    by: str
    action: str
    changed: list[str]
    detail: dict[str, Any]


def fields_of(record: TenantRecord | None) -> dict[str, Any]:
    """A record's auditable values, flat: ``settings.X``, ``secret_refs.X``, ``credential.X``,
    ``removing``."""
    if record is None:
        return {}
    flat: dict[str, Any] = {}
    for group in ("settings", "secret_refs", "credential"):
        for key, value in getattr(record, group).items():
            flat[f"{group}.{key}"] = value
    if record.removing:
        flat["removing"] = True
    return flat


def diff(old: TenantRecord | None, new: TenantRecord | None) -> tuple[list[str], dict[str, Any]]:
    """(changed field names, {field: {"old", "new"}}) between two versions (None: absent)."""
    before, after = fields_of(old), fields_of(new)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    return changed, {k: {"old": before.get(k), "new": after.get(k)} for k in changed}


def _to_entity(record: TenantRecord) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": PARTITION,
        "RowKey": record.name,
        "Settings": json.dumps(dict(record.settings), sort_keys=True),
        "SecretRefs": json.dumps(dict(record.secret_refs), sort_keys=True),
        "Credential": json.dumps(dict(record.credential), sort_keys=True),
        "TablePrefix": record.table_prefix,
        "Removing": record.removing,
        "UpdatedBy": record.updated_by,
    }
    for name, value in (("CreatedAt", record.created_at), ("UpdatedAt", record.updated_at)):
        if value is not None:
            entity[name] = value
    return entity


def _json_map(value: object) -> dict[str, str]:
    try:
        loaded = json.loads(value) if isinstance(value, str) else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}


def _from_entity(entity: Mapping[str, Any], etag: str) -> TenantRecord:
    return TenantRecord(
        name=str(entity["RowKey"]),
        table_prefix=as_str(entity.get("TablePrefix")),
        settings=_json_map(entity.get("Settings")),
        secret_refs=_json_map(entity.get("SecretRefs")),
        credential=_json_map(entity.get("Credential")),
        removing=bool(entity.get("Removing", False)),
        created_at=as_utc(entity.get("CreatedAt")),
        updated_at=as_utc(entity.get("UpdatedAt")),
        updated_by=as_str(entity.get("UpdatedBy")),
        etag=etag,
    )


def _claim_key(table_prefix: str) -> str:
    return CLAIM + table_prefix.lower()


class TenantRegistry:
    """Repository of tenants and their audit rows (see the module docstring for the layout)."""

    def __init__(self, table: TableClient, audit_table: TableClient, clock: Clock) -> None:
        self._table = table
        self._audit = audit_table
        self._clock = clock
        self._lock = threading.Lock()
        self._last_tick = -1

    @classmethod
    @guarded("tenants.open")
    def open(cls, service: TableServiceClient, prefix: str, clock: Clock) -> TenantRegistry:
        """Create the two tables if missing (idempotent; safe to race) and return the registry."""
        return cls(
            service.create_table_if_not_exists(f"{prefix}tenants"),
            service.create_table_if_not_exists(f"{prefix}tenantaudit"),
            clock,
        )

    # ---- reading ------------------------------------------------------------------------------

    @guarded("tenants.get")
    def get(self, name: str) -> TenantRecord | None:
        try:
            entity = self._table.get_entity(PARTITION, name)
        except ResourceNotFoundError:
            return None
        return _from_entity(entity, etag_of(entity.metadata))

    def require(self, name: str) -> TenantRecord:
        """``get``, or TenantNotFound."""
        record = self.get(name)
        if record is None:
            raise TenantNotFound(name)
        return record

    @guarded("tenants.list")
    def list(self) -> list[TenantRecord]:
        """Every tenant, by name."""
        entities = self._table.query_entities(
            "PartitionKey eq @pk and RowKey lt @claim", parameters={"pk": PARTITION, "claim": CLAIM}
        )
        return [_from_entity(e, etag_of(e.metadata)) for e in entities]

    @guarded("tenants.audit")
    def audit(self, name: str, limit: int = 20) -> builtins.list[AuditEntry]:
        """The tenant's newest ``limit`` audit rows, newest first (kept after a remove)."""
        out: builtins.list[AuditEntry] = []
        for entity in self._audit.query_entities(
            "PartitionKey eq @pk", parameters={"pk": name}, results_per_page=min(max(limit, 1), 1000)
        ):
            out.append(
                AuditEntry(
                    at=as_utc(entity.get("At")),
                    by=as_str(entity.get("By")),
                    action=as_str(entity.get("Action")),
                    changed=[c for c in as_str(entity.get("Changed")).split(",") if c],
                    detail=json.loads(as_str(entity.get("Detail")) or "{}"),
                )
            )
            if len(out) >= limit:
                break
        return out

    # ---- changing -----------------------------------------------------------------------------

    @guarded("tenants.add")
    def add(self, record: TenantRecord, by: str) -> TenantRecord:
        """Store a new tenant with its claim on its tables; TenantExists if either is taken."""
        now = self._clock()
        stored = replace(record, created_at=now, updated_at=now, updated_by=by, removing=False)
        claim = {"PartitionKey": PARTITION, "RowKey": _claim_key(record.table_prefix), "Name": record.name}
        audit_key = self._write_audit(record.name, by, "add", *diff(None, stored))
        try:
            results = self._table.submit_transaction([("create", _to_entity(stored)), ("create", claim)])
        except HttpResponseError as error:
            self._withdraw_audit(record.name, audit_key)
            if error.status_code != 409:
                raise
            raise TenantExists(record.name, self._holder(record)) from None
        return replace(stored, etag=etag_of(results[0]))

    def _holder(self, record: TenantRecord) -> str:
        """Who holds the name or the tables ``record`` wanted (itself when the name is taken)."""
        if self.get(record.name) is not None:
            return record.name
        try:
            claim = self._table.get_entity(PARTITION, _claim_key(record.table_prefix))
        except ResourceNotFoundError:  # removed in between: report the name, the caller may retry
            return record.name
        return as_str(claim.get("Name")) or record.name

    @guarded("tenants.update")
    def update(
        self, old: TenantRecord, new: TenantRecord, by: str, *, action: str = "update", note: str = ""
    ) -> TenantRecord:
        """Replace version ``old`` (its etag) by ``new``; TenantConflict if it changed since,
        TenantNotFound if it is gone. ``note`` (no secret) goes into the audit detail."""
        if new.name != old.name or new.table_prefix != old.table_prefix:
            raise ValueError("a tenant's name and tables do not change: remove it and add another")
        stored = replace(new, created_at=old.created_at, updated_at=self._clock(), updated_by=by)
        changed, detail = diff(old, stored)
        if note:
            detail["note"] = note
        audit_key = self._write_audit(old.name, by, action, changed, detail)
        try:
            meta = self._table.update_entity(
                _to_entity(stored),
                mode=UpdateMode.REPLACE,
                etag=old.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except HttpResponseError as error:
            self._withdraw_audit(old.name, audit_key)
            if not lost_race(error):
                raise
            if error.status_code == 404:
                raise TenantNotFound(old.name) from None
            raise TenantConflict(old.name) from None
        return replace(stored, etag=etag_of(meta))

    @guarded("tenants.remove")
    def remove(self, old: TenantRecord, by: str, *, note: str = "") -> None:
        """Delete version ``old`` and its claim in one transaction (the audit rows stay)."""
        changed, detail = diff(old, None)
        if note:
            detail["note"] = note
        audit_key = self._write_audit(old.name, by, "remove", changed, detail)
        operations: list[Any] = [
            (
                "delete",
                {"PartitionKey": PARTITION, "RowKey": old.name},
                {"etag": old.etag, "match_condition": MatchConditions.IfNotModified},
            ),
            ("delete", {"PartitionKey": PARTITION, "RowKey": _claim_key(old.table_prefix)}),
        ]
        try:
            self._table.submit_transaction(operations)
        except HttpResponseError as error:
            self._withdraw_audit(old.name, audit_key)
            if not lost_race(error):
                raise
            if self.get(old.name) is None:
                raise TenantNotFound(old.name) from None
            raise TenantConflict(old.name) from None

    @guarded("tenants.record")
    def record(self, name: str, by: str, action: str, detail: Mapping[str, Any]) -> None:
        """An audit row for a change kept elsewhere (disable, enable: the tenant's state table)."""
        self._write_audit(name, by, action, sorted(detail), dict(detail))

    # ---- audit rows ---------------------------------------------------------------------------

    def _tick(self, now: datetime) -> int:
        """Microseconds since the epoch, strictly increasing within this registry: two changes in
        one microsecond (or under a clock that stands still) keep their order."""
        with self._lock:
            tick = max((now - EPOCH) // _MICROSECOND, self._last_tick + 1)
            self._last_tick = tick
            return tick

    def _write_audit(
        self, name: str, by: str, action: str, changed: builtins.list[str], detail: Mapping[str, Any]
    ) -> str:
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, not {action!r}")
        now = self._clock()
        row_key = f"{_MAX_TICKS - self._tick(now):017d}-{uuid.uuid4().hex}"
        self._audit.create_entity(
            {
                "PartitionKey": name,
                "RowKey": row_key,
                "At": now,
                "By": by,
                "Action": action,
                "Changed": ",".join(changed),
                "Detail": json.dumps(detail, sort_keys=True, default=str),
            }
        )
        return row_key

    def _withdraw_audit(self, name: str, row_key: str) -> None:
        """The change this row announced did not happen (its race was lost, or it failed)."""
        self._audit.delete_entity(name, row_key)
