"""Helpers for the store's Azurite tests: a fake clock and per-test tables.

The Azurite server itself comes from ``tests/conftest.py`` (fixtures ``azurite``,
``table_service``, ``unique_prefix``); these helpers only add what the store tests share.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from azure.data.tables import TableClient, TableServiceClient

from shared.store.tables import StoreTables, open_store_tables, table_names

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    """A settable UTC clock, safe to read from several threads."""

    def __init__(self, start: datetime = T0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment


def open_tables(service: TableServiceClient, prefix: str) -> StoreTables:
    return open_store_tables(service, prefix)


def drop_tables(service: TableServiceClient, prefix: str) -> None:
    """Delete a test's tables so a long session does not grow Azurite's memory."""
    for name in table_names(prefix).values():
        service.delete_table(name)


def own_client(connection_string: str, table: TableClient) -> TableClient:
    """A separate client (own HTTP session) for the same table, as another worker would have."""
    return TableClient.from_connection_string(connection_string, table_name=table.table_name)
