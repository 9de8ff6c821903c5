"""The tenant operations' collaborators, as simple real implementations on a tenant's own tables.

``shared.ops.tenant_admin`` takes them through Protocols (``TenantQueues``, ``TenantSwitches``,
``SecretWriter``); these are what the composition root wires until the per-tenant services
(``shared/tenancy/directory.py``) and the Key Vault client (``shared/tenancy/secrets.py``) take over.
Kept in one module so the integrator can swap them in one place.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from azure.data.tables import TableServiceClient

from shared.clock import Clock, iso_ms
from shared.store.queue import PARKED, PENDING, QUARANTINE, QueueEntry, RetryQueue
from shared.store.state import IntegrationStateRepo
from shared.store.tables import StoreTables, open_store_tables
from shared.tenancy.names import tenant_table_prefix

log = logging.getLogger(__name__)

STATES: Final[dict[str, str]] = {PENDING: "queued", PARKED: "parked", QUARANTINE: "quarantined"}
MAX_EXPORT_ENTRIES: Final[int] = 1000
"""An export travels in one HTTP answer: beyond this many entries, drain instead."""


class SecretStoreUnavailable(Exception):
    """The secret could not be written to Key Vault (no client wired yet, or the vault refused)."""


class NoSecretStore:
    """The SecretWriter until the Key Vault client is wired: every write is refused, clearly."""

    def set(self, ref: str, value: str) -> str:
        raise SecretStoreUnavailable(
            "this relay has no Key Vault client wired yet, so it cannot write a new secret version: "
            "set the secret yourself (`az keyvault secret set --vault-name <vault> --name <name> "
            '--value "$(openssl rand -hex 32)"`) and paste the same value into Wallarm\'s custom header'
        )


class TenantTables:
    """Opens a tenant's store tables (the default's own tables for ``default``), once each."""

    def __init__(self, service: TableServiceClient, base_prefix: str, clock: Clock) -> None:
        self._service = service
        self._base_prefix = base_prefix
        self.clock = clock
        self._open: dict[str, StoreTables] = {}

    def tables(self, name: str) -> StoreTables:
        if name not in self._open:
            self._open[name] = open_store_tables(self._service, tenant_table_prefix(self._base_prefix, name))
        return self._open[name]

    def queue(self, name: str) -> RetryQueue:
        return RetryQueue(self.tables(name).queue, self.clock)

    def state(self, name: str) -> IntegrationStateRepo:
        return IntegrationStateRepo(self.tables(name).state, self.clock)


def exported(entry: QueueEntry) -> dict[str, Any]:
    """One queue entry as an export row: enough to re-send its rows and to say why they waited."""
    return {
        "id": entry.id,
        "state": STATES.get(entry.partition, entry.partition),
        "created_at": iso_ms(entry.created_at),
        "last_status": entry.last_status,
        "last_error": entry.last_error or None,
        "rows": entry.rows,
    }


class TableQueues:
    """TenantQueues on each tenant's own retry queue."""

    def __init__(self, tables: TenantTables) -> None:
        self._tables = tables

    def pending(self, name: str) -> int:
        """Queued, parked and quarantined entries: all that removing the tenant would drop."""
        stats = self._tables.queue(name).stats()
        return stats.pending + stats.parked + stats.quarantined

    def export(self, name: str) -> list[dict[str, Any]]:
        return [exported(e) for e in self._tables.queue(name).entries(MAX_EXPORT_ENTRIES)]

    def discard(self, name: str, ids: list[str]) -> int:
        """Delete the exported entries (by id, wherever a claim moved them since)."""
        queue = self._tables.queue(name)
        wanted = set(ids)
        return queue.discard([e for e in queue.entries(MAX_EXPORT_ENTRIES) if e.id in wanted])

    def drain_then_remove(self, name: str) -> None:
        """The tenant is marked removing (by TenantAdmin); the retry worker's drain
        (shared/tenancy/drain.py) delivers what waits and drops the tenant once its queue is empty."""
        log.info("Tenant marked for removal after its queue drains")


class StateSwitches:
    """TenantSwitches on each tenant's own integration state (an operator's disable and enable)."""

    def __init__(self, tables: TenantTables, tries: int = 5) -> None:
        self._tables = tables
        self._tries = tries

    def disable(self, name: str, by: str, reason: str) -> None:
        self._set(name, False, by, reason)

    def enable(self, name: str, by: str) -> None:
        """Re-enable, then make what waited (queued and parked) due now, as the default's enable does."""
        if self._set(name, True, by, ""):
            queue = self._tables.queue(name)
            queue.pull_forward(1000)
            queue.unpark_all(due_at=self._tables.clock())

    def _set(self, name: str, enabled: bool, by: str, reason: str) -> bool:
        """True when this call changed the state; an ETag loop against concurrent writers."""
        state = self._tables.state(name)
        for _ in range(self._tries):
            current = state.get()
            if current.enabled == enabled:
                return False
            mode = "enabled" if enabled else "disabled"
            if state.set(enabled, mode, reason, by, expected=current) is not None:
                return True
        raise RuntimeError("the tenant's state kept changing; try again")
