"""open_store_tables / table_service_from against a real Azurite, and table-name rules."""

from __future__ import annotations

import pytest
from azure.data.tables import TableServiceClient
from azure.identity import ClientSecretCredential

from local.standins.azurite import Azurite
from shared.store import open_store_tables, table_service_from
from shared.store.tables import table_names


def test_table_names() -> None:
    assert table_names("relay") == {
        "queue": "relayqueue",
        "ledger": "relayledger",
        "counters": "relaycounters",
        "state": "relaystate",
        "dedup": "relaydedup",
    }
    assert table_names("")["queue"] == "queue"
    for bad in ("1relay", "re-lay", "r" * 56):
        with pytest.raises(ValueError):
            table_names(bad)


def test_open_creates_tables_idempotently(azurite: Azurite, unique_prefix: str) -> None:
    service = table_service_from(azurite.connection_string, None, None)
    with service:
        first = open_store_tables(service, unique_prefix)
        second = open_store_tables(service, unique_prefix)  # already there: no error
        assert second.queue.table_name == first.queue.table_name == f"{unique_prefix}queue"
        existing = {t.name for t in service.query_tables(f"TableName ge '{unique_prefix}'")}
        assert set(table_names(unique_prefix).values()) <= existing
        for name in table_names(unique_prefix).values():
            service.delete_table(name)


def test_table_service_from_needs_a_source() -> None:
    with pytest.raises(ValueError, match="connection string"):
        table_service_from(None, "https://acct.table.core.windows.net", None)
    assert isinstance(
        table_service_from(
            None,
            "https://acct.table.core.windows.net",
            ClientSecretCredential("tenant", "client", "not-a-secret"),
        ),
        TableServiceClient,
    )
