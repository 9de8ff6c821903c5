"""The retry queue's rules: enqueue, park, claim, complete, reschedule, quarantine, unpark.

Partitions of the queue table:

- ``pending``: RowKey ``{due_ms:015d}_{id}``, so one range query (``RowKey le {now_ms}_~``) returns
  due entries oldest-due first, ties in id (arrival) order.
- ``parked``: RowKey ``id``; rows received while the integration is disabled.
- ``quarantine``: RowKey ``id``; poison entries, kept with their last status/code/request id.

How one entry is stored is ``shared.store.queue_entry``; moving parked or quarantined entries
back is ``shared.store.queue_move``; the ETag-guarded writes are in ``shared.store.tables``.

Claims are leases: ``claim_due`` moves an entry to ``due = now + lease`` in an ETag-guarded
transaction (delete old, create new; up to 50 entries in one, all or none). A worker that crashes
leaves the entry to come due again; two claimers cannot both win; ``renew`` extends the lease of
an entry whose upload outlives half of it (the same guarded move). Delivery is therefore
at-least-once. ``complete_all`` removes delivered entries together the same way.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import random
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient, UpdateMode

from shared.schema import Row
from shared.store import queue_move
from shared.store.queue_entry import (
    CHUNK_BYTES,
    ENTRY_ID,
    LEASED,
    MAX_ENTRY_PAYLOAD,
    MAX_TXN_PAYLOAD,
    META_FIELDS,
    PARKED,
    PENDING,
    PROBE,
    QUARANTINE,
    QueueEntry,
    compress_rows,
    decompress_rows,
    entity_with,
    failure,
    from_entity,
    groups_for,
    moved,
    pack_rows,
    pending_row_key,
    row_key_for,
    to_ms,
)
from shared.store.tables import (
    MAX_BATCH_OPS,
    Clock,
    as_int,
    as_str,
    as_utc,
    chunked,
    delete_guarded,
    delete_guarded_all,
    delete_keys,
    etag_of,
    guarded,
    log_lost_race,
    replace_guarded,
    replace_guarded_all,
    size_batches,
)

__all__ = [
    "CHUNK_BYTES",
    "ENTRY_ID",
    "LEASED",
    "MAX_ENTRY_PAYLOAD",
    "MAX_TXN_PAYLOAD",
    "PARKED",
    "PENDING",
    "PROBE",
    "QUARANTINE",
    "QueueEntry",
    "QueueStats",
    "RetryQueue",
    "compress_rows",
    "decompress_rows",
    "pack_rows",
    "pending_row_key",
    "to_ms",
]

_LOG = logging.getLogger(__name__)

_Claim = tuple[str, QueueEntry]
"""A won claim: the entry's RowKey before it (its due order) and the leased entry."""
MAX_CLAIMS_PER_TXN = MAX_BATCH_OPS // 2
"""A claim is two operations (delete the due version, create the leased one)."""


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
        doubt_since: datetime | None = None,
    ) -> list[QueueEntry]:
        if not rows:
            return []
        now = self._clock()
        template = QueueEntry(
            id="",
            partition=partition,
            row_key="",
            etag="",
            attempt=attempt,
            claims=0,
            row_count=0,
            created_at=now,
            first_failed_at=first_failed_at,
            due_at=due_at,
            last_status=status,
            last_error=error,
            last_request_id=request_id,
            reason=reason,
            doubt_since=doubt_since,
        )
        entities = []
        for group, payload in pack_rows(rows):
            entry_id = self._new_id(now)
            row_key = row_key_for(partition, due_at, entry_id)
            entities.append(entity_with(template, rows=group, payload=payload, id=entry_id, row_key=row_key))
        return self._create_all(entities)

    def _create_all(self, entities: list[dict[str, Any]]) -> list[QueueEntry]:
        """Create entities of one partition; atomically when they fit one transaction."""
        out: list[QueueEntry] = []
        for batch in size_batches(entities, MAX_TXN_PAYLOAD):
            if len(batch) == 1:
                meta = self._table.create_entity(batch[0])
                out.append(from_entity(batch[0], etag_of(meta)))
                continue
            results = self._table.submit_transaction([("create", e) for e in batch])
            out.extend(from_entity(e, etag_of(r)) for e, r in zip(batch, results, strict=True))
        return out

    def _replace_entry(self, entry: QueueEntry, new_entity: dict[str, Any]) -> str | None:
        """Swap ``entry``'s stored version for ``new_entity``; None if another worker won."""
        return replace_guarded(self._table, entry.partition, entry.row_key, entry.etag, new_entity)

    def _delete_guarded(self, entry: QueueEntry) -> bool:
        """Delete exactly the version we hold; False if it changed or is gone (a lost race)."""
        return delete_guarded(self._table, entry.partition, entry.row_key, entry.etag)

    def _rekeyed(self, entity: dict[str, Any], entry: QueueEntry, due_at: datetime) -> str | None:
        """Move a stored pending entity to ``due_at`` (a new RowKey), guarded by ``entry``'s ETag."""
        return self._replace_entry(entry, moved(entity, PENDING, pending_row_key(due_at, entry.id), due_at))

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
        doubt_since: datetime | None = None,
    ) -> list[QueueEntry]:
        """Store rows for a later attempt at ``due_at``; several entries if they are large.

        ``first_failed_at`` defaults to now when ``attempt`` > 0 (the rows already failed once).
        ``doubt_since``: the rows may already be in the table (``QueueEntry.doubt_since``).
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
            doubt_since=doubt_since,
        )

    @guarded("queue.park")
    def park(
        self, rows: Sequence[Row], *, reason: str, doubt_since: datetime | None = None
    ) -> list[QueueEntry]:
        """Keep rows received while the integration is disabled, until ``unpark_all``.

        ``doubt_since`` survives the move back to ``pending``, so rows that may have landed are
        still checked, not resent blind, once the integration is enabled again."""
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
            doubt_since=doubt_since,
        )

    @guarded("queue.claim_due")
    def claim_due(self, limit: int, lease: timedelta) -> list[QueueEntry]:
        """Lease up to ``limit`` due entries, oldest due first; lost races are skipped.

        Each claim moves the entry to ``due = now + lease`` (claims += 1), guarded by its ETag, so
        exactly one concurrent claimer wins and a crashed worker's entries come due again after
        the lease. The entries one query returns are claimed together, up to 50 in one transaction
        (all or none); if another claimer took one of them, that transaction fails as a whole and
        its entries are claimed one by one.
        """
        if lease <= timedelta(0):
            raise ValueError("the claim lease must be positive")
        if limit <= 0:
            return []
        now = self._clock()
        lease_until = now + lease
        upper = f"{to_ms(now):015d}_~"
        claimed: list[_Claim] = []
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
            for group in size_batches(candidates, MAX_TXN_PAYLOAD, MAX_CLAIMS_PER_TXN):
                won = self._claim_all(group, lease_until) if lost == 0 else None
                if won is None:
                    won = self._claim_each(group, lease_until)
                    lost += len(group) - len(won)
                claimed.extend(won)
            if lost == 0 or len(claimed) >= limit:
                break
        claimed.sort(key=lambda pair: pair[0])  # due order, also after a shuffle
        return [entry for _key, entry in claimed]

    def _claim_all(self, entities: list[dict[str, Any]], lease_until: datetime) -> list[_Claim] | None:
        """Lease every entity in one transaction; None if another claimer took any of them."""
        leased = [self._leased(entity, lease_until) for entity in entities]
        etags = replace_guarded_all(
            self._table, PENDING, [(entry.row_key, entry.etag, new) for entry, new in leased]
        )
        if etags is None:
            return None
        return [
            (entry.row_key, from_entity(new, etag)) for (entry, new), etag in zip(leased, etags, strict=True)
        ]

    def _claim_each(
        self, entities: list[dict[str, Any]], lease_until: datetime
    ) -> list[tuple[str, QueueEntry]]:
        """One transaction per claim, after a lost race; shuffled, so two claimers working the
        same list from the same end spread out."""
        shuffled = list(entities)
        random.shuffle(shuffled)
        return [claim for entity in shuffled if (claim := self._claim(entity, lease_until)) is not None]

    def _leased(self, entity: dict[str, Any], lease_until: datetime) -> tuple[QueueEntry, dict[str, Any]]:
        """The stored entry (no payload decoded) and its leased version until ``lease_until``."""
        entry = from_entity(entity, with_payload=False)
        new_entity = moved(entity, PENDING, pending_row_key(lease_until, entry.id), lease_until)
        new_entity["claims"] = entry.claims + 1
        if entity.get(LEASED):
            # The last claim's lease ran out, neither settled nor released: its worker died or
            # hung, maybe mid-upload, and those rows may have landed up to the lease's end.
            new_entity["doubt_since"] = max(entry.due_at, entry.doubt_since or entry.due_at)
        new_entity[LEASED] = True  # in flight: pull_forward must leave it to its worker
        return entry, new_entity

    def _claim(self, entity: dict[str, Any], lease_until: datetime) -> _Claim | None:
        """Lease one pending entity until ``lease_until``: (its old RowKey, the leased entry), or None."""
        entry, new_entity = self._leased(entity, lease_until)
        etag = self._replace_entry(entry, new_entity)
        return None if etag is None else (entry.row_key, from_entity(new_entity, etag))

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
        count = 0
        for entity in sorted(candidates, key=lambda e: as_str(e.get("id"))):
            if self._rekeyed(entity, from_entity(entity, with_payload=False), now) is not None:
                count += 1
        return count

    @guarded("queue.release")
    def release(self, entries: Sequence[QueueEntry], *, due_at: datetime | None = None) -> int:
        """Give back claimed entries that were not started: due now (or at ``due_at``), no longer
        leased, so the next claim (any instance) takes them then instead of after the lease.
        ETag-guarded: an entry whose lease another worker already took over is left to it."""
        due = due_at or self._clock()
        released = 0
        for entry in entries:
            new_entity = entity_with(
                entry,
                rows=entry.rows,
                payload=entry.payload,
                partition=PENDING,
                row_key=pending_row_key(due, entry.id),
                due_at=due,
            )
            if self._replace_entry(entry, new_entity) is not None:
                released += 1
        return released

    @guarded("queue.renew")
    def renew(self, entry: QueueEntry, lease: timedelta) -> QueueEntry | None:
        """Extend the lease of an entry being delivered to ``now + lease`` (its RowKey moves with
        its due time, so the claim query keeps skipping it). ETag-guarded: None when the entry
        changed meanwhile (the lease had run out and another worker claimed it, or it is gone):
        the caller has lost it. Rewrites the whole entity, payload included: a few per upload
        that outlives half its lease."""
        lease_until = self._clock() + lease
        if lease_until <= entry.due_at:
            return entry
        row_key = pending_row_key(lease_until, entry.id)
        new_entity = entity_with(
            entry, rows=entry.rows, payload=entry.payload, row_key=row_key, due_at=lease_until
        )
        new_entity[LEASED] = True
        etag = self._replace_entry(entry, new_entity)
        if etag is None:
            log_lost_race("queue.renew", entry.id)
            return None
        return dataclasses.replace(entry, row_key=row_key, etag=etag, due_at=lease_until)

    @guarded("queue.complete")
    def complete(self, entry: QueueEntry) -> bool:
        """Remove a delivered entry. False (logged) if another worker re-claimed it meanwhile."""
        if self._delete_guarded(entry):
            return True
        log_lost_race("queue.complete", entry.id)
        return False

    @guarded("queue.complete_all")
    def complete_all(self, entries: Sequence[QueueEntry]) -> list[bool]:
        """``complete`` for several delivered entries: up to 100 of one partition in one
        transaction (all or none); if another worker re-claimed one of them meanwhile, that
        transaction fails as a whole and its entries are completed one by one."""
        done: dict[tuple[str, str], bool] = {}
        by_partition: dict[str, list[QueueEntry]] = {}
        for entry in entries:
            by_partition.setdefault(entry.partition, []).append(entry)
        for partition, group in by_partition.items():
            for batch in chunked(group, MAX_BATCH_OPS):
                if len(batch) > 1 and delete_guarded_all(
                    self._table, partition, [(e.row_key, e.etag) for e in batch]
                ):
                    done.update(((partition, e.row_key), True) for e in batch)
                    continue
                done.update(((partition, e.row_key), self.complete(e)) for e in batch)
        return [done[e.partition, e.row_key] for e in entries]

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
        doubt_since: datetime | None = None,
    ) -> QueueEntry | None:
        """Record a failed attempt and set the next due time (atomic; keeps the entry id).

        ``rows`` replaces the stored rows (only part of them failed). ``doubt_since``: this
        attempt may have landed (``QueueEntry.doubt_since``). Returns the new version,
        or None if another worker re-claimed the entry after the lease expired.
        """
        now = self._clock()
        groups = groups_for(entry, rows)
        failed = failure(
            entry, now, status=status, error=error, request_id=request_id, doubt_since=doubt_since
        )

        def build(entry_id: str, group: list[Row], payload: bytes) -> dict[str, Any]:
            row_key = pending_row_key(due_at, entry_id)
            return entity_with(
                entry,
                rows=group,
                payload=payload,
                id=entry_id,
                partition=PENDING,
                row_key=row_key,
                attempt=attempt,
                due_at=due_at,
                **failed,
            )

        extras = [build(self._new_id(now), group, payload) for group, payload in groups[1:]]
        if extras:
            # Created before the swap: a crash in between duplicates rows, never loses them.
            self._create_all(extras)
        new_entity = build(entry.id, *groups[0])
        etag = self._replace_entry(entry, new_entity)
        if etag is None:
            log_lost_race("queue.reschedule", entry.id)
            return None
        return from_entity(new_entity, etag)

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
        groups = groups_for(entry, rows)
        failed = failure(entry, now, status=status, error=error, request_id=request_id)
        created: list[QueueEntry] = []
        for index, (group, payload) in enumerate(groups):
            entry_id = entry.id if index == 0 else self._new_id(now)
            entity = entity_with(
                entry,
                rows=group,
                payload=payload,
                id=entry_id,
                partition=QUARANTINE,
                row_key=entry_id,
                due_at=now,
                **failed,
            )
            try:
                meta = self._table.create_entity(entity)
                created.append(from_entity(entity, etag_of(meta), with_payload=False))
            except ResourceExistsError:
                # An earlier attempt of ours (or of the worker that re-claimed it) got here first.
                _LOG.info("store: quarantine copy of %s already exists", entry_id)
        if self._delete_guarded(entry):
            return True
        log_lost_race("queue.quarantine", entry.id)
        for copy in created:
            self._delete_guarded(copy)
        return False

    # ---- moving parked / quarantined entries back (shared.store.queue_move) -------------------

    @guarded("queue.unpark_all")
    def unpark_all(self, due_at: datetime) -> int:
        """Move every parked entry to ``pending`` (due at ``due_at``, in id order)."""
        return queue_move.move_all(self._table, PARKED, due_at)

    @guarded("queue.replay_quarantined")
    def replay_quarantined(self, due_at: datetime, ids: Sequence[str] | None = None) -> int:
        """Move quarantined entries (all, or those ``ids``) back to ``pending``."""
        if ids is None:
            return queue_move.move_all(self._table, QUARANTINE, due_at)
        return queue_move.move_ids(self._table, QUARANTINE, ids, due_at)

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
                select=META_FIELDS,
                results_per_page=min(max(limit, 1), 1000),
            ),
            limit,
        )
        return [from_entity(e, with_payload=False) for e in entities]

    @guarded("queue.entries")
    def entries(self, limit: int) -> list[QueueEntry]:
        """Waiting entries with their rows (pending, then parked, then quarantined), at most
        ``limit``: what a tenant's export hands over before it is removed."""
        out: list[QueueEntry] = []
        for partition in (PENDING, PARKED, QUARANTINE):
            for entity in self._table.query_entities("PartitionKey eq @pk", parameters={"pk": partition}):
                if len(out) >= limit:
                    return out
                out.append(from_entity(entity))
        return out

    @guarded("queue.discard")
    def discard(self, entries: Sequence[QueueEntry]) -> int:
        """Delete these entries whatever their state (an exported tenant's); gone ones are skipped."""
        return delete_keys(self._table, [(e.partition, e.row_key) for e in entries])

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
