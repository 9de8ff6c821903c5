"""How the relay authenticates to one destination's DCR (issue 22: credentials per destination).

Kept to the agreed shape of `DestinationCredential` in the tenant spec; validation of a spec
(which fields each kind needs, and how to fix them) lives with the spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

MANAGED_IDENTITY: Final = "managed_identity"  # the relay's own (also via Azure Lighthouse), or another MI
APP_SECRET: Final = "app_secret"  # a customer tenant's app registration, client secret in Key Vault
APP_CERTIFICATE: Final = "app_certificate"  # the same with a certificate (PEM with key) in Key Vault
FEDERATED_IDENTITY: Final = "federated_identity"  # an app that trusts the relay's identity: no secret
CREDENTIAL_KINDS: Final = frozenset({MANAGED_IDENTITY, APP_SECRET, APP_CERTIFICATE, FEDERATED_IDENTITY})


@dataclass(frozen=True)
class DestinationCredential:
    """`client_id`: optional for managed_identity (absent: the relay's own identity), else the
    app's. `entra_tenant_id`: the destination's Entra tenant (not for managed_identity).
    `secret_ref`: Key Vault secret URI of the client secret or the certificate (app_* kinds)."""

    kind: str = MANAGED_IDENTITY
    client_id: str | None = None
    entra_tenant_id: str | None = None
    secret_ref: str | None = None
