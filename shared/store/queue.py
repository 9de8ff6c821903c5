"""The retry queue: rows that could not be delivered yet, kept in Table Storage until they are.

Partitions of the queue table:

- ``pending``: RowKey ``{due_ms:015d}_{id}``, so one range query (``RowKey le {now_ms}_~``) returns
  due entries oldest-due first, ties in id (arrival) order.
- ``parked``: RowKey ``id``; rows received while the integration is disabled.
- ``quarantine``: RowKey ``id``; poison entries, kept with their last status/code/request id.

An entry's rows are gzip(JSON) split over binary properties of at most 64 KiB. The compressed
payload of one entity is capped at ``MAX_ENTRY_PAYLOAD``: Azure caps an entity at 1 MiB of data,
and Azurite measures the JSON body (binary travels as base64, 4/3 larger), so the cap fits both.
Larger inputs are split over several entries.

Claims are leases: ``claim_due`` moves an entry to ``due = now + lease`` in one ETag-guarded
transaction (delete old, create new). A worker that crashes leaves the entry to come due again;
two claimers cannot both win. Delivery is therefore at-least-once.
"""

from __future__ import annotations

import gzip
import itertools
import json
import logging
import math
import random
import re
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableEntity, UpdateMode

from shared.schema import Row
from shared.store.tables import (
    MAX_BATCH_OPS,
    Clock,
    as_int,
    as_str,
    as_utc,
    etag_of,
    guarded,
    log_lost_race,
)

_LOG = logging.getLogger(__name__)

PENDING: Final[str] = "pending"
PARKED: Final[str] = "parked"
QUARANTINE: Final[str] = "quarantine"
PROBE: Final[str] = "probe"
"""Partition of the probe's write check; no queue query reads it."""
ENTRY_ID: Final = re.compile(r"^[0-9]{15}-[0-9a-f]{14}$")
"""The shape of an entry id (``_new_id``): callers validate user-supplied ids against it."""

CHUNK_BYTES: Final[int] = 64 * 1024
MAX_ENTRY_PAYLOAD: Final[int] = 720_000
"""Compressed bytes per entity: 11 chunks; as base64 ~960 KB, under 1 MiB with the metadata."""
MAX_TXN_PAYLOAD: Final[int] = 2_400_000
"""Compressed bytes per transaction: the 4 MiB batch body limit, as base64, with headroom."""
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
_FORMAT: Final[int] = 1
LEASED: Final[str] = "leased"
_META_FIELDS: Final[list[str]] = [
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
]


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


@dataclass(frozen=True)
class QueueStats:
    """Queue sizes for health and telemetry; computed from small properties only."""

    pending: int
    pending_rows: int
    oldest_pending_created_at: datetime | None
    parked: int
    quarantined: int
    parked_rows: int = 0
    quarantined_rows: int = 0


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime (exact, no float)."""
    if moment.tzinfo is None:
        raise ValueError("queue times must be timezone-aware (UTC)")
    return (moment - _EPOCH) // _MS


def pending_row_key(due_at: datetime, entry_id: str) -> str:
    """RowKey in ``pending``: sorts by due time, then by id."""
    return f"{to_ms(due_at):015d}_{entry_id}"


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


def _chunks(payload: bytes) -> dict[str, bytes]:
    return {
        f"p{index}": payload[offset : offset + CHUNK_BYTES]
        for index, offset in enumerate(range(0, len(payload), CHUNK_BYTES))
    }


def _payload_of(entity: TableEntity) -> bytes:
    count = as_int(entity.get("chunks"))
    parts: list[bytes] = []
    for index in range(count):
        part = entity.get(f"p{index}")
        if not isinstance(part, bytes | bytearray):
            raise ValueError(f"queue entry {entity.get('id')!r} misses payload chunk {index}")
        parts.append(bytes(part))
    return b"".join(parts)


def _entry(entity: TableEntity, etag: str | None = None, *, with_payload: bool = True) -> QueueEntry:
    payload = _payload_of(entity) if with_payload else b""
    status = entity.get("last_status")
    created_at = as_utc(entity.get("created_at")) or _EPOCH
    return QueueEntry(
        id=as_str(entity.get("id")),
        partition=as_str(entity.get("PartitionKey")),
        row_key=as_str(entity.get("RowKey")),
        etag=etag if etag is not None else etag_of(entity.metadata),
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
    )


def _is_lost_race(error: HttpResponseError) -> bool:
    """404/412/409 on a guarded write: another worker moved, changed or created it first."""
    return error.status_code in (404, 409, 412)


def _without_metadata(entity: TableEntity | dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in entity.items() if value is not None}


class RetryQueue:
    """Repository for retry-queue entries (see the module docstring for the layout)."""

    def __init__(self, table: TableClient, clock: Clock) -> None:
        self._table = table
        self._clock = clock
        self._id_lock = threading.Lock()
        self._last_ms = -1
        self._seq = itertools.count()

    # ---- ids and entities -------------------------------------------------------------------

    def _new_id(self, now: datetime) -> str:
        """Time-ordered id; within one millisecond a per-instance sequence keeps arrival order."""
        ms = to_ms(now)
        with self._id_lock:
            if ms != self._last_ms:
                self._last_ms = ms
                self._seq = itertools.count()
            seq = next(self._seq)
        return f"{ms:015d}-{seq:06x}{uuid.uuid4().hex[:8]}"

    def _entity(
        self,
        *,
        partition: str,
        row_key: str,
        entry_id: str,
        payload: bytes,
        row_count: int,
        attempt: int,
        claims: int,
        created_at: datetime,
        first_failed_at: datetime | None,
        due_at: datetime,
        status: int | None,
        error: str,
        request_id: str,
        reason: str,
    ) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": partition,
            "RowKey": row_key,
            "v": _FORMAT,
            "id": entry_id,
            "attempt": attempt,
            "claims": claims,
            "rows": row_count,
            "created_at": created_at,
            "due_at": due_at,
            "last_error": error,
            "last_request_id": request_id,
            "reason": reason,
            "chunks": math.ceil(len(payload) / CHUNK_BYTES),
        }
        if first_failed_at is not None:
            entity["first_failed_at"] = first_failed_at
        if status is not None:
            entity["last_status"] = status
        entity.update(_chunks(payload))
        return entity

    def _row_key(self, partition: str, due_at: datetime, entry_id: str) -> str:
        return pending_row_key(due_at, entry_id) if partition == PENDING else entry_id

    def _add(
        self,
        partition: str,
        rows: Sequence[Row],
        *,
        due_at: datetime,
        attempt: int,
        reason: str,
        status: int | None,
        error: str,
        request_id: str,
        first_failed_at: datetime | None,
    ) -> list[QueueEntry]:
        if not rows:
            return []
        now = self._clock()
        entities = []
        for group, payload in pack_rows(rows):
            entry_id = self._new_id(now)
            entities.append(
                self._entity(
                    partition=partition,
                    row_key=self._row_key(partition, due_at, entry_id),
                    entry_id=entry_id,
                    payload=payload,
                    row_count=len(group),
                    attempt=attempt,
                    claims=0,
                    created_at=now,
                    first_failed_at=first_failed_at,
                    due_at=due_at,
                    status=status,
                    error=error,
                    request_id=request_id,
                    reason=reason,
                )
            )
        return self._create_all(entities)

    def _create_all(self, entities: list[dict[str, Any]]) -> list[QueueEntry]:
        """Create entities of one partition; atomically when they fit one transaction."""
        out: list[QueueEntry] = []
        for batch in _size_batches(entities):
            if len(batch) == 1:
                meta = self._table.create_entity(batch[0])
                out.append(_entry(TableEntity(batch[0]), etag_of(meta)))
                continue
            results = self._table.submit_transaction([("create", e) for e in batch])
            out.extend(_entry(TableEntity(e), etag_of(r)) for e, r in zip(batch, results, strict=True))
        return out

    def _replace_entry(
        self, entry: QueueEntry, new_entity: dict[str, Any], operation: str | None
    ) -> str | None:
        """Atomically swap ``entry``'s stored version for ``new_entity`` (same partition).

        Returns the new ETag, or None if another worker changed or removed the entry first
        (logged unless ``operation`` is None: losing a claim race is routine).
        """
        try:
            if new_entity["RowKey"] == entry.row_key:
                meta = self._table.update_entity(
                    new_entity,
                    mode=UpdateMode.REPLACE,
                    etag=entry.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
                return etag_of(meta)
            results = self._table.submit_transaction(
                [
                    (
                        "delete",
                        {"PartitionKey": entry.partition, "RowKey": entry.row_key},
                        {"etag": entry.etag, "match_condition": MatchConditions.IfNotModified},
                    ),
                    ("create", new_entity),
                ]
            )
        except HttpResponseError as error:
            if not _is_lost_race(error):
                raise
            if operation is not None:
                log_lost_race(operation, entry.id)
            return None
        return etag_of(results[1])

    def _delete_guarded(self, entry: QueueEntry) -> bool:
        """Delete exactly the version we hold; False if it changed or is gone (a lost race).

        A one-operation transaction, because ``delete_entity`` hides 404s.
        """
        try:
            self._table.submit_transaction(
                [
                    (
                        "delete",
                        {"PartitionKey": entry.partition, "RowKey": entry.row_key},
                        {"etag": entry.etag, "match_condition": MatchConditions.IfNotModified},
                    )
                ]
            )
        except HttpResponseError as error:
            if error.status_code not in (404, 412):
                raise
            return False
        return True

    # ---- writing ------------------------------------------------------------------------------

    @guarded("queue.enqueue")
    def enqueue(
        self,
        rows: Sequence[Row],
        *,
        due_at: datetime,
        attempt: int = 0,
        reason: str,
        status: int | None = None,
        error: str = "",
        request_id: str = "",
        first_failed_at: datetime | None = None,
    ) -> list[QueueEntry]:
        """Store rows for a later attempt at ``due_at``; several entries if they are large.

        ``first_failed_at`` defaults to now when ``attempt`` > 0 (the rows already failed once).
        """
        if first_failed_at is None and attempt > 0:
            first_failed_at = self._clock()
        return self._add(
            PENDING,
            rows,
            due_at=due_at,
            attempt=attempt,
            reason=reason,
            status=status,
            error=error,
            request_id=request_id,
            first_failed_at=first_failed_at,
        )

    @guarded("queue.park")
    def park(self, rows: Sequence[Row], *, reason: str) -> list[QueueEntry]:
        """Keep rows received while the integration is disabled, until ``unpark_all``."""
        return self._add(
            PARKED,
            rows,
            due_at=self._clock(),
            attempt=0,
            reason=reason,
            status=None,
            error="",
            request_id="",
            first_failed_at=None,
        )

    @guarded("queue.claim_due")
    def claim_due(self, limit: int, lease: timedelta) -> list[QueueEntry]:
        """Lease up to ``limit`` due entries, oldest due first; lost races are skipped.

        Each claim moves the entry to ``due = now + lease`` (claims += 1) in one transaction
        guarded by the ETag, so exactly one concurrent claimer wins and a crashed worker's
        entries come due again after the lease.
        """
        if lease <= timedelta(0):
            raise ValueError("the claim lease must be positive")
        if limit <= 0:
            return []
        now = self._clock()
        lease_until = now + lease
        upper = f"{to_ms(now):015d}_~"
        claimed: list[tuple[str, QueueEntry]] = []
        after = ""
        for _round in range(3):
            want = limit - len(claimed)
            candidates = list(
                itertools.islice(
                    self._table.query_entities(
                        "PartitionKey eq @pk and RowKey gt @after and RowKey le @upper",
                        parameters={"pk": PENDING, "after": after, "upper": upper},
                        results_per_page=min(want, 1000),
                    ),
                    want,
                )
            )
            if not candidates:
                break
            after = as_str(candidates[-1].get("RowKey"))
            lost = 0
            shuffled = False
            for index in range(len(candidates)):
                if len(claimed) >= limit:
                    break
                if lost and not shuffled:
                    # Another claimer works the same list from the same end: spread out.
                    tail = candidates[index:]
                    random.shuffle(tail)
                    candidates[index:] = tail
                    shuffled = True
                entity = candidates[index]
                entry = _entry(entity, with_payload=False)
                new_entity = _without_metadata(entity)
                new_entity["RowKey"] = pending_row_key(lease_until, entry.id)
                new_entity["due_at"] = lease_until
                new_entity["claims"] = entry.claims + 1
                new_entity[LEASED] = True  # in flight: pull_forward must leave it to its worker
                etag = self._replace_entry(entry, new_entity, None)
                if etag is None:
                    lost += 1
                    continue
                claimed.append((entry.row_key, _entry(TableEntity(new_entity), etag)))
            if lost == 0 or len(claimed) >= limit:
                break
        claimed.sort(key=lambda pair: pair[0])  # due order, also after a shuffle
        return [entry for _key, entry in claimed]

    @guarded("queue.pull_forward")
    def pull_forward(self, limit: int) -> int:
        """Make up to ``limit`` pending entries that wait for a later step due now, in arrival order.

        Used once the API is known to be healthy again, so a backlog on a 30-minute step does not
        wait for it. Leased entries (being delivered by a worker) are left alone; each move is
        ETag-guarded, so a concurrent claim or reschedule wins and the entry is skipped.
        """
        now = self._clock()
        lower = f"{to_ms(now):015d}_~"
        candidates = [
            e
            for e in itertools.islice(
                self._table.query_entities(
                    "PartitionKey eq @pk and RowKey gt @lower",
                    parameters={"pk": PENDING, "lower": lower},
                    results_per_page=min(max(limit, 1), 1000),
                ),
                limit,
            )
            if not e.get(LEASED)
        ]
        moved = 0
        for entity in sorted(candidates, key=lambda e: as_str(e.get("id"))):
            entry = _entry(entity, with_payload=False)
            new_entity = _without_metadata(entity)
            new_entity["RowKey"] = pending_row_key(now, entry.id)
            new_entity["due_at"] = now
            if self._replace_entry(entry, new_entity, None) is not None:
                moved += 1
        return moved

    @guarded("queue.complete")
    def complete(self, entry: QueueEntry) -> bool:
        """Remove a delivered entry. False (logged) if another worker re-claimed it meanwhile."""
        if self._delete_guarded(entry):
            return True
        log_lost_race("queue.complete", entry.id)
        return False

    @guarded("queue.reschedule")
    def reschedule(
        self,
        entry: QueueEntry,
        *,
        due_at: datetime,
        attempt: int,
        status: int | None,
        error: str,
        request_id: str,
        rows: Sequence[Row] | None = None,
    ) -> QueueEntry | None:
        """Record a failed attempt and set the next due time (atomic; keeps the entry id).

        ``rows`` replaces the stored rows (only part of them failed). Returns the new version,
        or None if another worker re-claimed the entry after the lease expired.
        """
        now = self._clock()
        groups = _groups_for(entry, rows)

        def build(entry_id: str, group: list[Row], payload: bytes) -> dict[str, Any]:
            return self._entity(
                partition=PENDING,
                row_key=pending_row_key(due_at, entry_id),
                entry_id=entry_id,
                payload=payload or compress_rows(group),
                row_count=len(group),
                attempt=attempt,
                claims=entry.claims,
                created_at=entry.created_at,
                first_failed_at=entry.first_failed_at or now,
                due_at=due_at,
                status=status,
                error=error,
                request_id=request_id,
                reason=entry.reason,
            )

        extras = [build(self._new_id(now), group, payload) for group, payload in groups[1:]]
        if extras:
            # Created before the swap: a crash in between duplicates rows, never loses them.
            self._create_all(extras)
        new_entity = build(entry.id, *groups[0])
        etag = self._replace_entry(entry, new_entity, "queue.reschedule")
        if etag is None:
            return None
        return _entry(TableEntity(new_entity), etag)

    @guarded("queue.quarantine")
    def quarantine(
        self,
        entry: QueueEntry,
        *,
        status: int | None,
        error: str,
        request_id: str,
        rows: Sequence[Row] | None = None,
    ) -> bool:
        """Move a poison entry out of ``pending`` into ``quarantine`` (RowKey = id).

        Cross-partition, so not one transaction: the quarantine copy is created first, then
        the pending version deleted with its ETag. If that delete loses a race, the copy we
        created is removed again. Returns False when the race was lost.
        """
        now = self._clock()
        groups = _groups_for(entry, rows)
        created: list[QueueEntry] = []
        for index, (group, payload) in enumerate(groups):
            entry_id = entry.id if index == 0 else self._new_id(now)
            entity = self._entity(
                partition=QUARANTINE,
                row_key=entry_id,
                entry_id=entry_id,
                payload=payload or compress_rows(group),
                row_count=len(group),
                attempt=entry.attempt,
                claims=entry.claims,
                created_at=entry.created_at,
                first_failed_at=entry.first_failed_at or now,
                due_at=now,
                status=status,
                error=error,
                request_id=request_id,
                reason=entry.reason,
            )
            try:
                meta = self._table.create_entity(entity)
                created.append(_entry(TableEntity(entity), etag_of(meta), with_payload=False))
            except ResourceExistsError:
                # An earlier attempt of ours (or of the worker that re-claimed it) got here first.
                _LOG.info("store: quarantine copy of %s already exists", entry_id)
        if self._delete_guarded(entry):
            return True
        log_lost_race("queue.quarantine", entry.id)
        for copy in created:
            self._delete_guarded(copy)
        return False

    # ---- moving parked / quarantined entries back --------------------------------------------

    def _iter_partition(self, partition: str, page: int = MAX_BATCH_OPS) -> Iterator[TableEntity]:
        """Full entities of a partition in RowKey order, re-queried page by page (we delete)."""
        after = ""
        while True:
            batch = list(
                itertools.islice(
                    self._table.query_entities(
                        "PartitionKey eq @pk and RowKey gt @after",
                        parameters={"pk": partition, "after": after},
                        results_per_page=page,
                    ),
                    page,
                )
            )
            if not batch:
                return
            yield from batch
            after = as_str(batch[-1].get("RowKey"))

    def _move_to_pending(self, sources: list[TableEntity], due_at: datetime) -> int:
        """Move entities from another partition to ``pending`` without losing or doubling them.

        1. mark each source with its target RowKey (``moving_to``; ETag-guarded; a retry after a
           crash reuses the mark, so the target key is the same);
        2. create the pending copies (409 = an earlier attempt already did);
        3. delete the sources with the ETag from step 1.
        Batched per partition (100 ops, and ≤ ``MAX_TXN_PAYLOAD`` for the copies).
        """
        marked: list[tuple[TableEntity, str]] = []
        to_mark: list[TableEntity] = []
        copies: list[dict[str, Any]] = []
        for source in sources:
            if as_str(source.get("moving_to")):
                marked.append((source, etag_of(source.metadata)))
            else:
                to_mark.append(source)
        for batch in _count_batches(to_mark):
            updates = []
            for source in batch:
                source["moving_to"] = pending_row_key(due_at, as_str(source.get("id")))
                updates.append(
                    {
                        "PartitionKey": source["PartitionKey"],
                        "RowKey": source["RowKey"],
                        "moving_to": source["moving_to"],
                    }
                )
            marked.extend(self._guarded_merges(batch, updates))

        for source, _etag in marked:
            copy = _without_metadata(source)
            copy.pop("moving_to", None)
            copy["PartitionKey"] = PENDING
            copy["RowKey"] = as_str(source.get("moving_to"))
            copy["due_at"] = due_at
            copies.append(copy)
        for group in _size_batches(copies):
            try:
                self._table.submit_transaction([("create", c) for c in group])
            except HttpResponseError as error:
                if error.status_code != 409:
                    raise
                for copy in group:
                    try:
                        self._table.create_entity(copy)
                    except ResourceExistsError:
                        _LOG.info("store: pending copy of %s already exists", copy.get("id"))

        moved = 0
        for source, etag in marked:
            guarded_delete = [
                (
                    "delete",
                    {"PartitionKey": source["PartitionKey"], "RowKey": source["RowKey"]},
                    {"etag": etag, "match_condition": MatchConditions.IfNotModified},
                )
            ]
            try:
                self._table.submit_transaction(guarded_delete)
                moved += 1
            except HttpResponseError as error:
                if error.status_code not in (404, 412):
                    raise
                log_lost_race("queue.move", as_str(source.get("id")))
        return moved

    def _guarded_merges(
        self, sources: list[TableEntity], updates: list[dict[str, Any]]
    ) -> list[tuple[TableEntity, str]]:
        """ETag-guarded merges of one partition: one transaction, or one by one after a race."""
        ops: list[Any] = [
            (
                "update",
                update,
                {
                    "mode": UpdateMode.MERGE,
                    "etag": etag_of(source.metadata),
                    "match_condition": MatchConditions.IfNotModified,
                },
            )
            for source, update in zip(sources, updates, strict=True)
        ]
        try:
            results = self._table.submit_transaction(ops)
            return [(s, etag_of(r)) for s, r in zip(sources, results, strict=True)]
        except HttpResponseError as error:
            if error.status_code not in (404, 412):
                raise
        done: list[tuple[TableEntity, str]] = []
        for source, update in zip(sources, updates, strict=True):
            try:
                meta = self._table.update_entity(
                    update,
                    mode=UpdateMode.MERGE,
                    etag=etag_of(source.metadata),
                    match_condition=MatchConditions.IfNotModified,
                )
                done.append((source, etag_of(meta)))
            except HttpResponseError as error:
                if error.status_code not in (404, 412):
                    raise
                log_lost_race("queue.move", as_str(source.get("id")))
        return done

    def _move_all(self, partition: str, due_at: datetime) -> int:
        moved = 0
        batch: list[TableEntity] = []
        for entity in self._iter_partition(partition):
            batch.append(entity)
            if len(batch) >= MAX_BATCH_OPS:
                moved += self._move_to_pending(batch, due_at)
                batch = []
        if batch:
            moved += self._move_to_pending(batch, due_at)
        return moved

    @guarded("queue.unpark_all")
    def unpark_all(self, due_at: datetime) -> int:
        """Move every parked entry to ``pending`` (due at ``due_at``, in id order)."""
        return self._move_all(PARKED, due_at)

    @guarded("queue.replay_quarantined")
    def replay_quarantined(self, due_at: datetime, ids: Sequence[str] | None = None) -> int:
        """Move quarantined entries (all, or those ``ids``) back to ``pending``."""
        if ids is None:
            return self._move_all(QUARANTINE, due_at)
        sources = []
        for entry_id in sorted(set(ids)):
            try:
                sources.append(self._table.get_entity(QUARANTINE, entry_id))
            except ResourceNotFoundError:
                _LOG.info("store: quarantined entry %s not found for replay", entry_id)
        moved = 0
        for start in range(0, len(sources), MAX_BATCH_OPS):
            moved += self._move_to_pending(sources[start : start + MAX_BATCH_OPS], due_at)
        return moved

    # ---- health -------------------------------------------------------------------------------

    @guarded("queue.probe")
    def probe(self) -> None:
        """Write one small entity where no queue query looks: proves the relay can queue now."""
        self._table.upsert_entity(
            {"PartitionKey": PROBE, "RowKey": "write-check", "checked_at": self._clock()},
            mode=UpdateMode.REPLACE,
        )

    # ---- reading ------------------------------------------------------------------------------

    @guarded("queue.list_quarantined")
    def list_quarantined(self, limit: int = 100) -> list[QueueEntry]:
        """Quarantined entries' metadata (no payload), oldest id first."""
        entities = itertools.islice(
            self._table.query_entities(
                "PartitionKey eq @pk",
                parameters={"pk": QUARANTINE},
                select=_META_FIELDS,
                results_per_page=min(max(limit, 1), 1000),
            ),
            limit,
        )
        return [_entry(e, with_payload=False) for e in entities]

    @guarded("queue.next_due_at")
    def next_due_at(self) -> datetime | None:
        """Due time of the earliest pending entry (claimed ones included), or None if empty."""
        first = next(
            iter(
                self._table.query_entities(
                    "PartitionKey eq @pk",
                    parameters={"pk": PENDING},
                    select=["due_at"],
                    results_per_page=1,
                )
            ),
            None,
        )
        return None if first is None else as_utc(first.get("due_at"))

    def _count(self, partition: str, *, oldest: bool = False) -> tuple[int, int, datetime | None]:
        count = rows = 0
        first: datetime | None = None
        select = ["rows", "created_at"] if oldest else ["rows"]
        for entity in self._table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": partition}, select=select
        ):
            count += 1
            rows += as_int(entity.get("rows"))
            created = as_utc(entity.get("created_at")) if oldest else None
            if created is not None and (first is None or created < first):
                first = created
        return count, rows, first

    @guarded("queue.stats")
    def stats(self) -> QueueStats:
        """Entry and row counts per partition, from the small ``rows``/``created_at`` columns."""
        pending, pending_rows, oldest = self._count(PENDING, oldest=True)
        parked, parked_rows, _ = self._count(PARKED)
        quarantined, quarantined_rows, _ = self._count(QUARANTINE)
        return QueueStats(
            pending=pending,
            pending_rows=pending_rows,
            oldest_pending_created_at=oldest,
            parked=parked,
            quarantined=quarantined,
            parked_rows=parked_rows,
            quarantined_rows=quarantined_rows,
        )


def _groups_for(entry: QueueEntry, rows: Sequence[Row] | None) -> list[tuple[list[Row], bytes]]:
    """The row groups to store for ``entry``: its own payload, or ``rows`` re-packed."""
    if rows is not None:
        return pack_rows(rows) if rows else [([], compress_rows([]))]
    if not entry.payload:
        raise ValueError(f"queue entry {entry.id} was read without its payload; pass rows")
    return [(entry.rows, entry.payload)]


def _size_batches(entities: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Group entities for transactions: ≤ 100 ops and ≤ ``MAX_TXN_PAYLOAD`` payload bytes."""
    batch: list[dict[str, Any]] = []
    size = 0
    for entity in entities:
        entity_size = sum(len(v) for v in entity.values() if isinstance(v, bytes | bytearray))
        if batch and (len(batch) >= MAX_BATCH_OPS or size + entity_size > MAX_TXN_PAYLOAD):
            yield batch
            batch, size = [], 0
        batch.append(entity)
        size += entity_size
    if batch:
        yield batch


def _count_batches(entities: list[TableEntity]) -> Iterator[list[TableEntity]]:
    for start in range(0, len(entities), MAX_BATCH_OPS):
        yield entities[start : start + MAX_BATCH_OPS]
