"""Table plumbing shared by the store's repositories: clients, errors, ETag loops, batch deletes.

Everything that talks to Azure Table Storage lives under ``shared.store``; this module holds the
pieces every repository needs so each repository file only states its own rules.
"""

from __future__ import annotations

import functools
import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, ParamSpec, TypeVar

from azure.core import MatchConditions
from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import EntityProperty, TableClient, TableEntity, TableServiceClient, UpdateMode

from shared.batches import by_size
from shared.clock import EPOCH as EPOCH  # re-exported: the store's repositories take them from here
from shared.clock import Clock as Clock
from shared.transport import client_options

_LOG = logging.getLogger(__name__)

TABLE_CONCERNS: Final[tuple[str, ...]] = ("queue", "ledger", "counters", "state", "dedup")
MAX_BATCH_OPS: Final[int] = 100  # Table Storage limit per entity-group transaction.
_PREFIX_RE: Final = re.compile(r"^(|[A-Za-z][A-Za-z0-9]*)$")
_TABLE_RE: Final = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")


class StoreUnavailable(Exception):
    """Table Storage could not do what was asked (network, 5xx, throttling, auth, contention).

    Callers answer non-2xx (Wallarm resends) or skip the timer run; ``status``, ``error_code``
    and ``request_id`` say what a person needs to look up the failure on the Azure side.
    """

    def __init__(
        self,
        operation: str,
        *,
        status: int | None = None,
        error_code: str = "",
        request_id: str = "",
        detail: str = "",
    ) -> None:
        self.operation = operation
        self.status = status
        self.error_code = error_code
        self.request_id = request_id
        parts = [f"table storage unavailable during {operation}"]
        if status is not None:
            parts.append(f"status={status}")
        if error_code:
            parts.append(f"code={error_code}")
        if request_id:
            parts.append(f"x-ms-request-id={request_id}")
        if detail:
            parts.append(detail)
        super().__init__(" ".join(parts))


class StoreContention(StoreUnavailable):
    """An ETag read-modify-write loop gave up after its bounded retries (too many writers)."""


def error_code_of(error: AzureError) -> str:
    """The storage error code (``x-ms-error-code``) as a plain string."""
    code = getattr(error, "error_code", None)
    if code is None:
        response = getattr(error, "response", None)
        code = response.headers.get("x-ms-error-code") if response is not None else None
    value = getattr(code, "value", code)
    return str(value) if value else ""


def request_id_of(error: AzureError) -> str:
    """The ``x-ms-request-id`` of a failed call, or ''."""
    response = getattr(error, "response", None)
    if response is None:
        return ""
    return str(response.headers.get("x-ms-request-id", ""))


def to_unavailable(operation: str, error: AzureError) -> StoreUnavailable:
    """Wrap an unhandled Azure error in the store's one typed exception."""
    status = error.status_code if isinstance(error, HttpResponseError) else None
    kind = type(error).__name__
    if isinstance(error, ServiceRequestError | ServiceResponseError):
        kind = f"{kind} (network)"
    return StoreUnavailable(
        operation,
        status=status,
        error_code=error_code_of(error),
        request_id=request_id_of(error),
        detail=kind,
    )


P = ParamSpec("P")
R = TypeVar("R")


def guarded(operation: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a public store method: unhandled Azure errors leave as ``StoreUnavailable``."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return func(*args, **kwargs)
            except StoreUnavailable:
                raise
            except AzureError as error:
                raise to_unavailable(operation, error) from error

        return wrapper

    return decorate


def lost_race(error: HttpResponseError) -> bool:
    """A 404 or 412 on an ETag-guarded write: another writer changed or removed the entity first."""
    return error.status_code in (404, 412)


def lost_race_or_exists(error: HttpResponseError) -> bool:
    """``lost_race``, or a 409: a guarded swap whose create found the target already there."""
    return lost_race(error) or error.status_code == 409


def hour_key(moment: datetime) -> str:
    """``YYYYMMDDHH`` of the UTC hour containing ``moment``: the partition of hour-keyed tables."""
    return moment.astimezone(UTC).strftime("%Y%m%d%H")


def jitter_sleep(attempt: int, base: float = 0.005, cap: float = 0.2) -> None:
    """Full-jitter backoff between ETag retries so colliding writers spread out."""
    time.sleep(random.uniform(0, min(cap, base * (2**attempt))))


def as_utc(value: object) -> datetime | None:
    """A stored datetime as a plain UTC-aware ``datetime`` (the SDK returns a subclass)."""
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return datetime(
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
        tzinfo=UTC,
    )


def as_int(value: object, default: int = 0) -> int:
    """A stored integer (Int32, Int64 wrapped in EntityProperty, or missing) as ``int``."""
    if isinstance(value, EntityProperty):
        value = value.value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return default


def as_str(value: object) -> str:
    """A stored string property, '' when missing."""
    return value if isinstance(value, str) else ""


def etag_of(metadata: Mapping[str, Any]) -> str:
    """The ETag from an SDK metadata mapping (entity.metadata or a write result)."""
    return str(metadata.get("etag", ""))


def increment_entity(
    table: TableClient,
    partition_key: str,
    row_key: str,
    deltas: Mapping[str, int],
    *,
    operation: str,
    max_tries: int = 40,
    fold: Callable[[Mapping[str, Any], Mapping[str, int]], Mapping[str, int]] | None = None,
) -> None:
    """Add ``deltas`` to integer properties of one entity without losing concurrent increments.

    ``fold(current, deltas)``, if given, may rename deltas against the stored entity (``{}``
    when there is none yet) before they are added: it keeps property counts within limits.

    Read, add, write back with ``IfNotModified`` on the ETag; a 412 means another writer won, so
    re-read and try again (bounded, with jitter). Missing entity: create it; a 409 means another
    writer created it first, so loop and merge into theirs.
    """
    for attempt in range(max_tries):
        try:
            current = table.get_entity(partition_key, row_key)
        except ResourceNotFoundError:
            fresh: dict[str, Any] = {"PartitionKey": partition_key, "RowKey": row_key}
            fresh.update({name: int(delta) for name, delta in (fold({}, deltas) if fold else deltas).items()})
            try:
                table.create_entity(fresh)
                return
            except ResourceExistsError:
                continue
        update: dict[str, Any] = {"PartitionKey": partition_key, "RowKey": row_key}
        for name, delta in (fold(current, deltas) if fold else deltas).items():
            update[name] = as_int(current.get(name)) + int(delta)
        try:
            table.update_entity(
                update,
                mode=UpdateMode.MERGE,
                etag=etag_of(current.metadata),
                match_condition=MatchConditions.IfNotModified,
            )
            return
        except HttpResponseError as error:
            if not lost_race(error):
                raise
            jitter_sleep(attempt)
    raise StoreContention(operation, detail=f"gave up after {max_tries} ETag conflicts")


def chunked(items: Iterable[R], size: int) -> Iterator[list[R]]:
    """Consecutive lists of at most ``size`` items."""
    batch: list[R] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def delete_keys(table: TableClient, keys: Iterable[tuple[str, str]]) -> int:
    """Delete entities by (PartitionKey, RowKey), unconditionally, 100 per partition transaction.

    Returns how many were deleted. A transaction failing on a 404 (someone else deleted one
    first, e.g. two purges at once) falls back to single deletes, which ignore 404.
    """
    by_partition: dict[str, list[str]] = {}
    for partition_key, row_key in keys:
        by_partition.setdefault(partition_key, []).append(row_key)
    deleted = 0
    for partition_key, row_keys in by_partition.items():
        for batch in chunked(row_keys, MAX_BATCH_OPS):
            operations: list[Any] = [
                ("delete", {"PartitionKey": partition_key, "RowKey": rk}) for rk in batch
            ]
            try:
                table.submit_transaction(operations)
            except HttpResponseError as error:
                if error.status_code != 404:
                    raise
                for row_key in batch:
                    table.delete_entity(partition_key, row_key)
            deleted += len(batch)
    return deleted


@dataclass(frozen=True)
class StoreTables:
    """One ``TableClient`` per concern, so each repository gets only its own table."""

    queue: TableClient
    ledger: TableClient
    counters: TableClient
    state: TableClient
    dedup: TableClient

    def close(self) -> None:
        """Close the underlying HTTP sessions."""
        for client in (self.queue, self.ledger, self.counters, self.state, self.dedup):
            client.close()


def table_names(prefix: str) -> dict[str, str]:
    """Concern -> table name (``{prefix}{concern}``); rejects names Table Storage would refuse."""
    if not _PREFIX_RE.match(prefix):
        raise ValueError(f"table prefix {prefix!r} must be letters and digits, starting with a letter")
    names = {concern: f"{prefix}{concern}" for concern in TABLE_CONCERNS}
    for name in names.values():
        if not _TABLE_RE.match(name):
            raise ValueError(f"table name {name!r} must be 3-63 letters/digits")
    return names


@guarded("open_store_tables")
def open_store_tables(service: TableServiceClient, prefix: str) -> StoreTables:
    """Create the five tables if missing and return their clients (idempotent; safe to race)."""
    names = table_names(prefix)
    clients = {concern: service.create_table_if_not_exists(name) for concern, name in names.items()}
    return StoreTables(**clients)


# Azurite's well-known development account on its default table port.
DEVELOPMENT_STORAGE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)


def table_service_from(
    connection_string: str | None,
    endpoint: str | None,
    credential: TokenCredential | None,
    **client_kwargs: Any,
) -> TableServiceClient:
    """Build the service client from a connection string (Azurite, dev) or endpoint + identity.

    ``client_kwargs`` go to azure-core (e.g. ``retry_total``, ``connection_timeout``,
    ``read_timeout``) so the webhook path can stay inside Wallarm's 15 s response budget. The
    proxy and CA environment is read once for the account's endpoint (``shared.transport``).
    """
    if connection_string:
        if connection_string.strip().rstrip(";") == "UseDevelopmentStorage=true":
            connection_string = DEVELOPMENT_STORAGE  # what Core Tools users put in local.settings.json
        # The connection string names the endpoint in several ways: let the SDK find it (no I/O).
        url = TableServiceClient.from_connection_string(connection_string).url
        return TableServiceClient.from_connection_string(connection_string, **_with_env(url, client_kwargs))
    if endpoint and credential is not None:
        kwargs = _with_env(endpoint, client_kwargs)
        return TableServiceClient(endpoint=endpoint, credential=credential, **kwargs)
    raise ValueError("table storage needs a connection string, or an endpoint and a credential")


def _with_env(url: str, client_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    kwargs = dict(client_kwargs)
    return {**client_options(url, verify=kwargs.pop("connection_verify", True)), **kwargs}


def log_lost_race(operation: str, key: str) -> None:
    """Record that another worker changed an entity first (expected, rare, worth seeing)."""
    _LOG.warning("store: %s lost a concurrent update on %s; leaving it to the winner", operation, key)


# ---- ETag-guarded writes ------------------------------------------------------------------------


_Operation = tuple[str, dict[str, str], dict[str, Any]]


def _guarded_delete_op(partition_key: str, row_key: str, etag: str) -> _Operation:
    return (
        "delete",
        {"PartitionKey": partition_key, "RowKey": row_key},
        {"etag": etag, "match_condition": MatchConditions.IfNotModified},
    )


def delete_guarded(table: TableClient, partition_key: str, row_key: str, etag: str) -> bool:
    """Delete exactly the version with ``etag``; False if it changed or is gone (a lost race).

    A one-operation transaction, because ``delete_entity`` hides 404s.
    """
    try:
        table.submit_transaction([_guarded_delete_op(partition_key, row_key, etag)])
    except HttpResponseError as error:
        if not lost_race(error):
            raise
        return False
    return True


def replace_guarded(
    table: TableClient, partition_key: str, row_key: str, etag: str, new_entity: dict[str, Any]
) -> str | None:
    """Atomically swap the version with ``etag`` for ``new_entity`` (same partition).

    Same RowKey: a replace; another RowKey: delete + create in one transaction. Returns the new
    ETag, or None if another writer changed, removed or re-created it first.
    """
    try:
        if new_entity["RowKey"] == row_key:
            meta = table.update_entity(
                new_entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
            )
            return etag_of(meta)
        results = table.submit_transaction(
            [_guarded_delete_op(partition_key, row_key, etag), ("create", new_entity)]
        )
    except HttpResponseError as error:
        if not lost_race_or_exists(error):
            raise
        return None
    return etag_of(results[1])


def _swap_ops(partition_key: str, row_key: str, etag: str, new_entity: dict[str, Any]) -> list[Any]:
    if new_entity["RowKey"] == row_key:
        return [
            (
                "update",
                new_entity,
                {"mode": UpdateMode.REPLACE, "etag": etag, "match_condition": MatchConditions.IfNotModified},
            )
        ]
    return [_guarded_delete_op(partition_key, row_key, etag), ("create", new_entity)]


Swap = tuple[str, str, dict[str, Any]]
"""(row_key, etag, new_entity): replace the version with ``etag`` by ``new_entity``."""


def replace_guarded_all(table: TableClient, partition_key: str, swaps: list[Swap]) -> list[str] | None:
    """``replace_guarded`` for several entities of one partition in ONE transaction: every swap
    (row_key, etag, new_entity) or none. The new ETags in order, or None if any lost a race (then
    nothing was written; the caller retries them one by one). At most 50 swaps (100 operations)."""
    operations: list[Any] = []
    for row_key, etag, new_entity in swaps:
        operations.extend(_swap_ops(partition_key, row_key, etag, new_entity))
    try:
        results = table.submit_transaction(operations)
    except HttpResponseError as error:
        if not lost_race_or_exists(error):
            raise
        return None
    return [etag_of(r) for r in _last_of_each(results, swaps)]


def _last_of_each(
    results: list[Mapping[str, Any]], swaps: list[tuple[str, str, dict[str, Any]]]
) -> list[Any]:
    """The result of each swap's last operation (its create, or its replace)."""
    out: list[Any] = []
    index = -1
    for row_key, _etag, new_entity in swaps:
        index += 1 if new_entity["RowKey"] == row_key else 2
        out.append(results[index])
    return out


def delete_guarded_all(table: TableClient, partition_key: str, versions: list[tuple[str, str]]) -> bool:
    """``delete_guarded`` of several (row_key, etag) of one partition in ONE transaction (at most
    100): all or none. False if any changed or is gone (then none was deleted)."""
    try:
        table.submit_transaction([_guarded_delete_op(partition_key, rk, etag) for rk, etag in versions])
    except HttpResponseError as error:
        if not lost_race(error):
            raise
        return False
    return True


def merge_guarded(
    table: TableClient,
    sources: list[TableEntity],
    updates: list[dict[str, Any]],
    on_lost: Callable[[TableEntity], None],
) -> list[tuple[TableEntity, str]]:
    """ETag-guarded merges of one partition: one transaction, or one by one after a lost race.

    Returns (source, new ETag) for the merges that won; ``on_lost`` hears of each that lost.
    """
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
        results = table.submit_transaction(ops)
        return [(s, etag_of(r)) for s, r in zip(sources, results, strict=True)]
    except HttpResponseError as error:
        if not lost_race(error):
            raise
    done: list[tuple[TableEntity, str]] = []
    for source, update in zip(sources, updates, strict=True):
        try:
            meta = table.update_entity(
                update,
                mode=UpdateMode.MERGE,
                etag=etag_of(source.metadata),
                match_condition=MatchConditions.IfNotModified,
            )
            done.append((source, etag_of(meta)))
        except HttpResponseError as error:
            if not lost_race(error):
                raise
            on_lost(source)
    return done


def size_batches(
    entities: Iterable[dict[str, Any]], max_bytes: int, max_count: int = MAX_BATCH_OPS
) -> Iterator[list[dict[str, Any]]]:
    """Group entities for transactions: ≤ ``max_count`` (100) and ≤ ``max_bytes`` of binary properties."""
    return by_size(entities, _binary_size, max_bytes, max_count)


def _binary_size(entity: dict[str, Any]) -> int:
    return sum(len(v) for v in entity.values() if isinstance(v, bytes | bytearray))
