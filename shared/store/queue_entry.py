"""The retry queue's entry codec: how one ``QueueEntry`` is laid out as a Table Storage entity.

Pure: no I/O, so it is tested without Azurite. ``shared.store.queue`` holds the queue's rules.

An entry's rows are gzip(JSON) split over binary properties of at most 64 KiB. The compressed
payload of one entity is capped at ``MAX_ENTRY_PAYLOAD``: Azure caps an entity at 1 MiB of data,
and Azurite measures the JSON body (binary travels as base64, 4/3 larger), so the cap fits both.
Larger inputs are split over several entries (``pack_rows``).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from azure.data.tables import TableEntity

from shared.schema import Row
from shared.store.tables import EPOCH, as_int, as_str, as_utc, etag_of

PENDING: Final[str] = "pending"
PARKED: Final[str] = "parked"
QUARANTINE: Final[str] = "quarantine"
PROBE: Final[str] = "probe"
"""Partition of the probe's write check; no queue query reads it."""
ENTRY_ID: Final = re.compile(r"^[0-9]{15}-[0-9a-f]{14}$")
"""The shape of an entry id (``RetryQueue._new_id``): callers validate user-supplied ids against it."""

CHUNK_BYTES: Final[int] = 64 * 1024
MAX_ENTRY_PAYLOAD: Final[int] = 720_000
"""Compressed bytes per entity: 11 chunks; as base64 ~960 KB, under 1 MiB with the metadata."""
MAX_TXN_PAYLOAD: Final[int] = 2_400_000
"""Compressed bytes per transaction: the 4 MiB batch body limit, as base64, with headroom."""
_MS: Final = timedelta(milliseconds=1)
_FORMAT: Final[int] = 1
LEASED: Final[str] = "leased"
META_FIELDS: Final[list[str]] = [
    "PartitionKey",
    "RowKey",
    "id",
    "attempt",
    "claims",
    "created_at",
    "first_failed_at",
    "due_at",
    "last_status",
    "last_error",
    "last_request_id",
    "reason",
    "rows",
    "moving_to",
    "doubt_since",
]
"""The small properties: what a metadata-only read selects."""


@dataclass(frozen=True)
class QueueEntry:
    """One stored group of rows that failed (or were parked) together.

    ``rows``/``payload`` are empty for metadata-only reads (``list_quarantined``).
    ``partition``, ``row_key`` and ``etag`` identify the stored version this object came from.
    """

    id: str
    partition: str
    row_key: str
    etag: str
    attempt: int
    claims: int
    row_count: int
    created_at: datetime
    first_failed_at: datetime | None
    due_at: datetime
    last_status: int | None
    last_error: str
    last_request_id: str
    reason: str
    rows: list[Row] = field(default_factory=list, repr=False)
    payload: bytes = field(default=b"", repr=False)
    doubt_since: datetime | None = None
    """Set while an upload of these rows may have landed unseen (it timed out or lost its
    connection, or its worker's lease ran out mid-way): the latest time it could have landed.
    The retry worker asks the workspace before resending (``shared.delivery.landed_check``)."""


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime (exact, no float)."""
    if moment.tzinfo is None:
        raise ValueError("queue times must be timezone-aware (UTC)")
    return (moment - EPOCH) // _MS


def pending_row_key(due_at: datetime, entry_id: str) -> str:
    """RowKey in ``pending``: sorts by due time, then by id."""
    return f"{to_ms(due_at):015d}_{entry_id}"


def row_key_for(partition: str, due_at: datetime, entry_id: str) -> str:
    """RowKey of an entry in ``partition``: due-ordered in ``pending``, the id elsewhere."""
    return pending_row_key(due_at, entry_id) if partition == PENDING else entry_id


def compress_rows(rows: Sequence[Row]) -> bytes:
    """gzip(JSON) of the rows; deterministic (mtime 0)."""
    text = json.dumps(list(rows), separators=(",", ":"), ensure_ascii=False)
    return gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0)


def decompress_rows(payload: bytes) -> list[Row]:
    """Inverse of ``compress_rows``."""
    rows = json.loads(gzip.decompress(payload).decode("utf-8"))
    if not isinstance(rows, list):
        raise ValueError("queue payload is not a JSON array")
    return [dict(row) for row in rows]


def pack_rows(rows: Sequence[Row], limit: int = MAX_ENTRY_PAYLOAD) -> list[tuple[list[Row], bytes]]:
    """Split rows into groups whose compressed payload fits one entity, keeping their order."""
    payload = compress_rows(rows)
    if len(payload) <= limit:
        return [(list(rows), payload)]
    if len(rows) == 1:
        raise ValueError(f"one row compresses to {len(payload)} bytes, over the {limit}-byte entry limit")
    parts = min(len(rows), max(2, math.ceil(len(payload) / (limit * 0.85))))
    size = math.ceil(len(rows) / parts)
    groups: list[tuple[list[Row], bytes]] = []
    for start in range(0, len(rows), size):
        groups.extend(pack_rows(rows[start : start + size], limit))
    return groups


def groups_for(entry: QueueEntry, rows: Sequence[Row] | None) -> list[tuple[list[Row], bytes]]:
    """The row groups to store for ``entry``: its own payload, or ``rows`` re-packed."""
    if rows is not None:
        return pack_rows(rows) if rows else [([], compress_rows([]))]
    if not entry.payload:
        raise ValueError(f"queue entry {entry.id} was read without its payload; pass rows")
    return [(entry.rows, entry.payload)]


def _chunks(payload: bytes) -> dict[str, bytes]:
    return {
        f"p{index}": payload[offset : offset + CHUNK_BYTES]
        for index, offset in enumerate(range(0, len(payload), CHUNK_BYTES))
    }


def payload_of(entity: Mapping[str, Any]) -> bytes:
    """The compressed rows of a stored entity, joined from its chunks."""
    count = as_int(entity.get("chunks"))
    parts: list[bytes] = []
    for index in range(count):
        part = entity.get(f"p{index}")
        if not isinstance(part, bytes | bytearray):
            raise ValueError(f"queue entry {entity.get('id')!r} misses payload chunk {index}")
        parts.append(bytes(part))
    return b"".join(parts)


def to_entity(entry: QueueEntry) -> dict[str, Any]:
    """The entity that stores ``entry`` (its ``etag`` is the store's, so it is not written)."""
    entity: dict[str, Any] = {
        "PartitionKey": entry.partition,
        "RowKey": entry.row_key,
        "v": _FORMAT,
        "id": entry.id,
        "attempt": entry.attempt,
        "claims": entry.claims,
        "rows": entry.row_count,
        "created_at": entry.created_at,
        "due_at": entry.due_at,
        "last_error": entry.last_error,
        "last_request_id": entry.last_request_id,
        "reason": entry.reason,
        "chunks": math.ceil(len(entry.payload) / CHUNK_BYTES),
    }
    if entry.first_failed_at is not None:
        entity["first_failed_at"] = entry.first_failed_at
    if entry.last_status is not None:
        entity["last_status"] = entry.last_status
    if entry.doubt_since is not None:
        entity["doubt_since"] = entry.doubt_since
    entity.update(_chunks(entry.payload))
    return entity


def entity_with(entry: QueueEntry, *, rows: list[Row], payload: bytes, **changes: Any) -> dict[str, Any]:
    """The entity of ``entry`` holding ``rows`` (``payload`` if already compressed) and ``changes``.

    ``changes`` are ``QueueEntry`` fields, e.g. ``id``, ``partition``, ``row_key``, ``due_at``.
    """
    changed = dataclasses.replace(
        entry, rows=rows, row_count=len(rows), payload=payload or compress_rows(rows), **changes
    )
    return to_entity(changed)


def failure(
    entry: QueueEntry,
    now: datetime,
    *,
    status: int | None,
    error: str,
    request_id: str,
    doubt_since: datetime | None = None,
) -> dict[str, Any]:
    """The ``entity_with`` changes that record a failed attempt of ``entry`` at ``now``: the
    attempt's answer replaces any earlier doubt (``doubt_since`` only if this one left some)."""
    return {
        "first_failed_at": entry.first_failed_at or now,
        "last_status": status,
        "last_error": error,
        "last_request_id": request_id,
        "doubt_since": doubt_since,
    }


def from_entity(
    entity: Mapping[str, Any], etag: str | None = None, *, with_payload: bool = True
) -> QueueEntry:
    """The ``QueueEntry`` a stored entity holds; ``etag`` overrides the entity's own metadata."""
    payload = payload_of(entity) if with_payload else b""
    status = entity.get("last_status")
    created_at = as_utc(entity.get("created_at")) or EPOCH
    if etag is None:
        etag = etag_of(entity.metadata) if isinstance(entity, TableEntity) else ""
    return QueueEntry(
        id=as_str(entity.get("id")),
        partition=as_str(entity.get("PartitionKey")),
        row_key=as_str(entity.get("RowKey")),
        etag=etag,
        attempt=as_int(entity.get("attempt")),
        claims=as_int(entity.get("claims")),
        row_count=as_int(entity.get("rows")),
        created_at=created_at,
        first_failed_at=as_utc(entity.get("first_failed_at")),
        due_at=as_utc(entity.get("due_at")) or created_at,
        last_status=as_int(status) if status is not None else None,
        last_error=as_str(entity.get("last_error")),
        last_request_id=as_str(entity.get("last_request_id")),
        reason=as_str(entity.get("reason")),
        rows=decompress_rows(payload) if payload else [],
        payload=payload,
        doubt_since=as_utc(entity.get("doubt_since")),
    )


def without_metadata(entity: Mapping[str, Any]) -> dict[str, Any]:
    """A stored entity's properties as a plain dict to write again (``None`` values dropped)."""
    return {key: value for key, value in entity.items() if value is not None}


def moved(entity: Mapping[str, Any], partition: str, row_key: str, due_at: datetime) -> dict[str, Any]:
    """A copy of a stored entity under a new key and due time, everything else unchanged."""
    copy = without_metadata(entity)
    copy["PartitionKey"] = partition
    copy["RowKey"] = row_key
    copy["due_at"] = due_at
    return copy
