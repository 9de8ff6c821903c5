"""Which credential the relay uses for the Logs Ingestion API and Table Storage.

A managed identity by default (system-assigned, or user-assigned when AZURE_CLIENT_ID is set); a
client-secret app registration when AZURE_TENANT_ID and AZURE_CLIENT_SECRET are also set, since
that is how Wallarm's Sentinel setup guide creates access (keep the secret in Key Vault).
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


def build_credential(
    client_id: str | None, *, ca_bundle: str | None = None, env: Mapping[str, str] | None = None
) -> TokenCredential:
    from azure.identity import ClientSecretCredential, ManagedIdentityCredential

    env = os.environ if env is None else env
    tenant, secret = env.get("AZURE_TENANT_ID"), env.get("AZURE_CLIENT_SECRET")
    kwargs: dict[str, Any] = {"connection_verify": ca_bundle} if ca_bundle else {}
    if tenant and secret and client_id:
        authority = env.get("AZURE_AUTHORITY_HOST", "")
        if authority:
            kwargs["authority"] = authority
            host = urlparse(authority if "//" in authority else f"https://{authority}").hostname or ""
            kwargs["disable_instance_discovery"] = host not in _KNOWN_AUTHORITIES
        return ClientSecretCredential(tenant_id=tenant, client_id=client_id, client_secret=secret, **kwargs)
    if client_id:
        return ManagedIdentityCredential(client_id=client_id)
    return ManagedIdentityCredential()
