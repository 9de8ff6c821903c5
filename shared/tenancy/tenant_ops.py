"""The tenant operations' collaborators, as simple real implementations on a tenant's own tables.

``shared.ops.tenant_admin`` takes them through Protocols (``TenantQueues``, ``TenantSwitches``,
``SecretWriter``); these are what the composition root wires until the per-tenant services
(``shared/tenancy/directory.py``) and the Key Vault client (``shared/tenancy/secrets.py``) take over.
Kept in one module so the integrator can swap them in one place.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any, Final

from azure.data.tables import TableServiceClient

from shared.clock import Clock, iso_ms
from shared.store.queue import PARKED, PENDING, QUARANTINE, QueueEntry, RetryQueue
from shared.store.state import IntegrationStateRepo
from shared.store.tables import StoreTables, open_store_tables
from shared.store.tenants import TenantRecord
from shared.tenancy.names import tenant_table_prefix
from shared.tenancy.secrets import KeyVaultSecrets, SecretRefError, SecretUnavailable
from shared.tenancy.spec import TenantSpec, spec_of

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


class KeyVaultWriter:
    """The SecretWriter on Key Vault, with the relay's identity (it needs Key Vault Secrets Officer
    on the tenant's secret: docs/TENANTS.md)."""

    def __init__(self, secrets: KeyVaultSecrets) -> None:
        self._secrets = secrets

    def set(self, ref: str, value: str) -> str:
        try:
            return self._secrets.set(ref, value)
        except SecretUnavailable as err:  # its message names the vault and secret, never the value
            raise SecretStoreUnavailable(f"Key Vault refused the new version: {err}") from None


@dataclass(frozen=True)
class TenantVersion:
    """A registry row as the tenant directory sees it. ``version`` changes with the row (its ETag)
    and with the value of its secrets (a rotation, through relayctl or straight in Key Vault), so
    each instance rebuilds the tenant's services within a secret cache period of either."""

    spec: TenantSpec
    version: str
    removing: bool

    @property
    def name(self) -> str:
        return self.spec.name

    @classmethod
    def of(cls, record: TenantRecord, secrets: KeyVaultSecrets) -> TenantVersion:
        spec = spec_of(record.name, record.settings, record.secret_refs, record.credential)
        digest = hashlib.sha256()
        for key in sorted(spec.secret_refs):
            try:
                digest.update(secrets.get(spec.secret_refs[key]).encode("utf-8"))
            except (SecretUnavailable, SecretRefError):
                digest.update(b"\0unavailable")  # the build says so, for this tenant alone
            digest.update(b"\0")
        return cls(spec, f"{record.etag}|{digest.hexdigest()[:16]}", record.removing)

    def resolved(self, secrets: KeyVaultSecrets) -> dict[str, str]:
        """The tenant's secret values (cached by ``secrets``); SecretUnavailable if one is out of reach."""
        return {key: secrets.get(ref) for key, ref in self.spec.secret_refs.items()}


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
