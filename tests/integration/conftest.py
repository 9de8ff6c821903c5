"""Fixtures every store test shares, defined once: a fake clock and per-test tables in Azurite.

Azurite itself comes from ``tests/conftest.py`` (``table_service``, ``unique_prefix``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from azure.data.tables import TableServiceClient
from store_fixtures import FakeClock, drop_tables, open_tables

from shared.store.tables import StoreTables


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def tables(table_service: TableServiceClient, unique_prefix: str) -> Iterator[StoreTables]:
    """The store's tables under a prefix of this test's own, dropped afterwards."""
    yield open_tables(table_service, unique_prefix)
    drop_tables(table_service, unique_prefix)
