"""The only code that touches Azure Table Storage: small repositories with ETag-guarded writes.

Knows nothing of HTTP or Wallarm; rows are ``shared.schema.Row``; time comes from an injected
clock. Every unhandled Azure error leaves as ``StoreUnavailable``.
"""

from shared.store.counters import HourlyCounters
from shared.store.dedup import BeginResult, DedupKeys
from shared.store.ledger import AttemptLedger, AttemptRecord, WindowCounts
from shared.store.queue import QueueEntry, QueueStats, RetryQueue
from shared.store.state import DEFAULT_STATE, IntegrationState, IntegrationStateRepo
from shared.store.tables import (
    Clock,
    StoreContention,
    StoreTables,
    StoreUnavailable,
    open_store_tables,
    table_service_from,
)

__all__ = [
    "DEFAULT_STATE",
    "AttemptLedger",
    "AttemptRecord",
    "BeginResult",
    "Clock",
    "DedupKeys",
    "HourlyCounters",
    "IntegrationState",
    "IntegrationStateRepo",
    "QueueEntry",
    "QueueStats",
    "RetryQueue",
    "StoreContention",
    "StoreTables",
    "StoreUnavailable",
    "WindowCounts",
    "open_store_tables",
    "table_service_from",
]
