"""Which credential the relay uses for the Logs Ingestion API and Table Storage.

- An app registration's client secret when AZURE_TENANT_ID, AZURE_CLIENT_SECRET and AZURE_CLIENT_ID
  are set, since that is how Wallarm's Sentinel setup guide creates access (keep the secret in Key
  Vault).
- Otherwise, on Azure (the platform sets WEBSITE_INSTANCE_ID, or a managed identity endpoint), the
  managed identity: system-assigned, or user-assigned when AZURE_CLIENT_ID is set.
- Otherwise, a local run against a real workspace: the developer's own login, from the Azure CLI
  (`az login`) or azd (`azd auth login`), which azd gives the data roles. Never on Azure, where a
  login on the machine would act with a person's rights instead of the app's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

# Public and sovereign Entra ID hosts: MSAL's instance discovery knows them. Any other authority
# (Azure Stack, a local stand-in) must be used without discovery, which would ask the public cloud.
_KNOWN_AUTHORITIES = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoftonline.us",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
    }
)


# Set by App Service / Functions (and other hosts with a managed identity endpoint).
AZURE_MARKERS = ("WEBSITE_INSTANCE_ID", "IDENTITY_ENDPOINT", "MSI_ENDPOINT")
CLIENT_SECRET, MANAGED_IDENTITY, DEVELOPER = "client_secret", "managed_identity", "developer"


def authority_options(authority: str | None) -> dict[str, Any]:
    """Credential keyword arguments for an Entra authority host (`AZURE_AUTHORITY_HOST`'s form):
    none for the default; instance discovery off for a host MSAL does not know (it would ask the
    public cloud about it)."""
    if not authority:
        return {}
    host = urlparse(authority if "//" in authority else f"https://{authority}").hostname or ""
    return {"authority": authority, "disable_instance_discovery": host not in _KNOWN_AUTHORITIES}


def credential_kind(client_id: str | None, env: Mapping[str, str]) -> str:
    """Which credential the environment calls for (see the module docstring)."""
    if env.get("AZURE_TENANT_ID") and env.get("AZURE_CLIENT_SECRET") and client_id:
        return CLIENT_SECRET
    if any(env.get(name) for name in AZURE_MARKERS):
        return MANAGED_IDENTITY
    return DEVELOPER


def build_credential(
    client_id: str | None, *, ca_bundle: str | None = None, env: Mapping[str, str] | None = None
) -> TokenCredential:
    from azure.identity import (
        AzureCliCredential,
        AzureDeveloperCliCredential,
        ChainedTokenCredential,
        ClientSecretCredential,
        ManagedIdentityCredential,
    )

    env = os.environ if env is None else env
    kind = credential_kind(client_id, env)
    tenant = env.get("AZURE_TENANT_ID") or None
    if kind == CLIENT_SECRET and client_id:
        kwargs: dict[str, Any] = {"connection_verify": ca_bundle} if ca_bundle else {}
        kwargs.update(authority_options(env.get("AZURE_AUTHORITY_HOST", "")))
        return ClientSecretCredential(
            tenant_id=tenant or "", client_id=client_id, client_secret=env["AZURE_CLIENT_SECRET"], **kwargs
        )
    if kind == MANAGED_IDENTITY:
        return ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
    # The CLI first, as `az login` is the common case; azd's own login (`azd auth login`) next.
    return ChainedTokenCredential(
        AzureCliCredential(tenant_id=tenant or ""), AzureDeveloperCliCredential(tenant_id=tenant or "")
    )
