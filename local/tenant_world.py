"""Several destinations for the relay's tenants, each its own DCR with its own identity.

One Logs Ingestion stand-in per destination (its own DCR), an Entra ID stand-in where the app
registrations of the customers' Entra tenants live, and a Key Vault stand-in holding each tenant's
webhook secret (and an app's client secret). Every DCR's access map grants exactly one identity
(appid, tid), so a token of another tenant's identity gets 403 there. Used by the multi-tenant
end-to-end tests (tests/e2e/test_tenants.py) and the measured runs (bench/tenants.py), so both
drive the same world through the relay's own composition.
"""

from __future__ import annotations

import copy
import gzip
import json
import re
import secrets
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from local.standins.identity import (
    SYSTEM_CLIENT_ID,
    EntraIdStandIn,
    FederatedSubject,
    TokenIssuer,
    issuer_url,
    principal_id,
)
from local.standins.key_vault import KeyVaultStandIn
from local.standins.logs_ingestion import LogsIngestionStandIn
from shared.tenancy.destination import APP_SECRET, FEDERATED_IDENTITY, MANAGED_IDENTITY

# The customers' app registrations (documentation-style ids, one Entra tenant each).
APP_SECRET_CLIENT: Final = "b0b0b0b0-0000-4000-8000-000000000001"
APP_SECRET_TENANT: Final = "c0ffee00-0000-4000-8000-0000000000b1"
FEDERATED_CLIENT: Final = "c1c1c1c1-0000-4000-8000-000000000002"
FEDERATED_TENANT: Final = "c0ffee00-0000-4000-8000-0000000000c2"
KINDS: Final = (MANAGED_IDENTITY, APP_SECRET, FEDERATED_IDENTITY)


@dataclass(frozen=True)
class Destination:
    """One tenant's destination: its DCR stand-in, the identity granted on it, its webhook secret."""

    tenant: str
    kind: str
    ingestion: LogsIngestionStandIn
    identity: tuple[str, str]  # (appid, tid) the DCR grants
    credential: dict[str, str]  # the registry body's `credential`
    secret: str  # the tenant's webhook secret (in the vault; the test plays Wallarm)
    secret_ref: str

    def body(self) -> dict[str, Any]:
        """The `relayctl tenant add` / `POST relay/tenants` body of this tenant."""
        return {
            "name": self.tenant,
            "settings": {
                "LOGS_INGESTION_ENDPOINT": self.ingestion.endpoint,
                "LOGS_DCR_IMMUTABLE_ID": self.ingestion.dcr_id,
                "LOGS_STREAM_NAME": self.ingestion.stream,
            },
            "secret_refs": {"WEBHOOK_SHARED_SECRET": self.secret_ref},
            "credential": self.credential,
        }

    def grant(self) -> None:
        """(Again) grant only this destination's identity on its DCR (a reset drops the map)."""
        self.ingestion.allow(self.ingestion.dcr_id, *self.identity)


class TenantWorld:
    """``TenantWorld(issuer, ["alpha", "bravo", "charlie"])``: the n-th tenant uses the n-th kind of
    ``KINDS`` (the relay's managed identity, an app secret in another Entra tenant, a federated
    identity credential in a third), each with its own DCR stand-in; a context manager."""

    def __init__(self, issuer: TokenIssuer, tenants: Sequence[str]) -> None:
        self.issuer = issuer
        self.names = list(tenants)
        self._stack = ExitStack()
        self.destinations: dict[str, Destination] = {}

    def __enter__(self) -> TenantWorld:
        stack = self._stack
        self.entra = stack.enter_context(EntraIdStandIn(self.issuer))
        self.vault = stack.enter_context(KeyVaultStandIn(self.issuer))
        self.vault.grant(SYSTEM_CLIENT_ID)  # the relay's identity reads the secrets; nobody else
        client_secret = secrets.token_urlsafe(24)
        self.entra.register_secret(APP_SECRET_CLIENT, client_secret, tenant_id=APP_SECRET_TENANT)
        self.vault.seed("bravo-app-secret", client_secret)
        relay = FederatedSubject(issuer_url(self.issuer.tenant_id), principal_id(SYSTEM_CLIENT_ID))
        self.entra.register_federated(FEDERATED_CLIENT, relay, tenant_id=FEDERATED_TENANT)
        home = (SYSTEM_CLIENT_ID, self.issuer.tenant_id)
        identities: dict[str, tuple[tuple[str, str], dict[str, str]]] = {
            MANAGED_IDENTITY: (home, {"kind": MANAGED_IDENTITY}),
            APP_SECRET: (
                (APP_SECRET_CLIENT, APP_SECRET_TENANT),
                {
                    "kind": APP_SECRET,
                    "client_id": APP_SECRET_CLIENT,
                    "entra_tenant_id": APP_SECRET_TENANT,
                    "secret_ref": self.vault.secret_uri("bravo-app-secret"),
                },
            ),
            FEDERATED_IDENTITY: (
                (FEDERATED_CLIENT, FEDERATED_TENANT),
                {
                    "kind": FEDERATED_IDENTITY,
                    "client_id": FEDERATED_CLIENT,
                    "entra_tenant_id": FEDERATED_TENANT,
                },
            ),
        }
        for n, name in enumerate(self.names):
            kind = KINDS[n % len(KINDS)]
            identity, credential = identities[kind]
            ingestion = stack.enter_context(LogsIngestionStandIn(self.issuer, dcr_id=f"dcr-{n + 1:032x}"))
            hook = secrets.token_urlsafe(24)
            self.vault.seed(f"{name}-hook", hook)
            self.destinations[name] = Destination(
                name, kind, ingestion, identity, credential, hook, self.vault.secret_uri(f"{name}-hook")
            )
            self.destinations[name].grant()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()

    def env(self) -> dict[str, str]:
        """What the relay's app settings add for this world: the Entra host of the app registrations."""
        return {"AZURE_AUTHORITY_HOST": self.entra.authority}

    def reset(self) -> None:
        """Forget every DCR's rows, requests and faults; grant each its own identity again."""
        for d in self.destinations.values():
            d.ingestion.reset()
            d.grant()


# --- events with identities: what Wallarm sends, and where each one landed ---------------------
_HIT: Final[dict[str, Any]] = json.loads(
    (Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "wallarm" / "new_hits.json").read_text()
)["body"][0]
_EVENT_ID = re.compile(r"evt:([a-z0-9-]+-\d+):")
INDEX: Final = "hits_production_4242_202611_v_1"


def event_body(tenant: str, numbers: Iterable[int]) -> bytes:
    """A Wallarm `new_hits` webhook body whose hits are events ``<tenant>-<n>`` (one per number)."""
    events = []
    for n in numbers:
        event = copy.deepcopy(_HIT)
        hit = event["details"]["hit"]
        hit["id"] = [INDEX, f"{n:016x}"]
        hit["request_id"] = f"evt:{tenant}-{n}:"
        events.append(event)
    return json.dumps(events).encode()


def landed_events(ingestion: LogsIngestionStandIn) -> dict[str, list[float]]:
    """Event id -> when each accepted request that carried it was answered (once per landing)."""
    found: dict[str, list[float]] = {}
    for request in ingestion.requests:
        if request.status != 204:
            continue
        body = request.body
        if request.content_encoding == "gzip":
            body = gzip.decompress(body)
        for row in json.loads(body):
            ids = set(_EVENT_ID.findall(str(row.get("RawData", ""))))
            for event in ids:
                found.setdefault(event, []).append(request.time)
    return found
