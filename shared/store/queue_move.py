"""Moving queue entries between partitions (parked/quarantine → pending) without losing or doubling.

A move crosses partitions, so it cannot be one transaction. It is three idempotent steps:

1. mark each source with its target RowKey (``moving_to``; ETag-guarded; a retry after a crash
   reuses the mark, so the target key is the same);
2. create the pending copies (409 = an earlier attempt already did);
3. delete the sources with the ETag from step 1.

Batched per partition (100 ops, and ≤ ``MAX_TXN_PAYLOAD`` for the copies).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableEntity

from shared.store.queue_entry import MAX_TXN_PAYLOAD, PENDING, moved, pending_row_key
from shared.store.tables import (
    MAX_BATCH_OPS,
    as_str,
    chunked,
    delete_guarded,
    etag_of,
    log_lost_race,
    merge_guarded,
    size_batches,
)

_LOG = logging.getLogger(__name__)
_OPERATION = "queue.move"


def iter_partition(table: TableClient, partition: str, page: int = MAX_BATCH_OPS) -> Iterator[TableEntity]:
    """Full entities of a partition in RowKey order, re-queried page by page (we delete)."""
    after = ""
    while True:
        batch = list(
            itertools.islice(
                table.query_entities(
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


def _mark(table: TableClient, sources: list[TableEntity], due_at: datetime) -> list[tuple[TableEntity, str]]:
    """Step 1: the sources with their ``moving_to`` mark and the ETag of the marked version."""
    marked: list[tuple[TableEntity, str]] = []
    to_mark: list[TableEntity] = []
    for source in sources:
        if as_str(source.get("moving_to")):
            marked.append((source, etag_of(source.metadata)))
        else:
            to_mark.append(source)
    for batch in chunked(to_mark, MAX_BATCH_OPS):
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
        marked.extend(merge_guarded(table, batch, updates, _log_lost))
    return marked


def _copy(table: TableClient, marked: list[tuple[TableEntity, str]], due_at: datetime) -> None:
    """Step 2: create the pending copies; ones an earlier attempt created are left as they are."""
    copies: list[dict[str, Any]] = []
    for source, _etag in marked:
        copy = moved(source, PENDING, as_str(source.get("moving_to")), due_at)
        copy.pop("moving_to", None)
        copies.append(copy)
    for group in size_batches(copies, MAX_TXN_PAYLOAD):
        try:
            table.submit_transaction([("create", c) for c in group])
        except HttpResponseError as error:
            if error.status_code != 409:
                raise
            for copy in group:
                try:
                    table.create_entity(copy)
                except ResourceExistsError:
                    _LOG.info("store: pending copy of %s already exists", copy.get("id"))


def move_to_pending(table: TableClient, sources: list[TableEntity], due_at: datetime) -> int:
    """Move entities of one partition to ``pending`` (the three steps); returns how many moved."""
    marked = _mark(table, sources, due_at)
    _copy(table, marked, due_at)
    done = 0
    for source, etag in marked:
        if delete_guarded(table, source["PartitionKey"], source["RowKey"], etag):
            done += 1
        else:
            _log_lost(source)
    return done


def move_all(table: TableClient, partition: str, due_at: datetime) -> int:
    """Move every entity of ``partition`` to ``pending``, a page at a time."""
    pages = chunked(iter_partition(table, partition), MAX_BATCH_OPS)
    return sum(move_to_pending(table, batch, due_at) for batch in pages)


def move_ids(table: TableClient, partition: str, ids: Sequence[str], due_at: datetime) -> int:
    """Move the entities of ``partition`` whose RowKey is one of ``ids`` (missing ones logged)."""
    sources = []
    for entry_id in sorted(set(ids)):
        try:
            sources.append(table.get_entity(partition, entry_id))
        except ResourceNotFoundError:
            _LOG.info("store: %s entry %s not found for replay", partition, entry_id)
    return sum(move_to_pending(table, batch, due_at) for batch in chunked(sources, MAX_BATCH_OPS))


def _log_lost(source: TableEntity) -> None:
    log_lost_race(_OPERATION, as_str(source.get("id")))
