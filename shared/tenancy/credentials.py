"""The credential for one destination's DCR, built from its `DestinationCredential`.

- managed_identity: the relay's own credential (its home tenant, and customers' DCRs delegated to
  it through Azure Lighthouse: same identity, delegated scope), or another user-assigned identity
  of the app when `client_id` names one.
- app_secret / app_certificate: a customer tenant's app registration; its client secret or its
  certificate (PEM with the private key, or Key Vault's base64 PKCS#12) is read from Key Vault
  with the relay's identity when a token is first needed, and again when the value changes (a
  rotation in Key Vault takes effect within the secrets cache's TTL, without a restart).
- federated_identity: a (multi-tenant) app in the customer's tenant that trusts the relay's
  identity (FACTS.md): the relay's token for `api://AzureADTokenExchange` is the client assertion.
  No secret anywhere.

Each destination gets its own credential object (its own token cache), so a token of one
destination is never offered to another's DCR. Nothing here logs a secret or a token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from azure.core.exceptions import ClientAuthenticationError

from shared.delivery.identity import authority_options
from shared.tenancy.destination import (
    APP_CERTIFICATE,
    APP_SECRET,
    FEDERATED_IDENTITY,
    MANAGED_IDENTITY,
    DestinationCredential,
)
from shared.tenancy.secrets import SecretUnavailable

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, AccessTokenInfo, TokenCredential, TokenRequestOptions

TOKEN_EXCHANGE_SCOPE = "api://AzureADTokenExchange/.default"


class SecretSource(Protocol):
    """What reads a secret by reference (`KeyVaultSecrets`)."""

    def get(self, ref: str) -> str: ...


def credential_for(
    cred: DestinationCredential,
    *,
    relay_credential: TokenCredential,
    secrets: SecretSource,
    ca_bundle: str | None = None,
    authority_host: str | None = None,
) -> TokenCredential:
    """A credential for `cred`'s destination (module docstring). `authority_host` is the Entra
    host of the destination's cloud (default: azure-identity's, i.e. `AZURE_AUTHORITY_HOST` or
    the public cloud); `ca_bundle` is trusted for the Entra calls (the local stand-ins)."""
    from azure.identity import (
        CertificateCredential,
        ClientAssertionCredential,
        ClientSecretCredential,
        ManagedIdentityCredential,
    )

    if cred.kind == MANAGED_IDENTITY:
        return ManagedIdentityCredential(client_id=cred.client_id) if cred.client_id else relay_credential
    tenant, client_id = _required(cred)
    transport: dict[str, Any] = {"connection_verify": ca_bundle} if ca_bundle else {}
    msal = {**transport, **authority_options(authority_host)}
    if cred.kind == FEDERATED_IDENTITY:
        # Not MSAL-based: it takes the authority but has no instance discovery to turn off.
        authority = {"authority": authority_host} if authority_host else {}

        def assertion() -> str:
            return relay_credential.get_token(TOKEN_EXCHANGE_SCOPE).token

        return ClientAssertionCredential(tenant, client_id, assertion, **transport, **authority)
    ref = cred.secret_ref
    if not ref:
        raise ValueError(
            f"a {cred.kind} credential needs secret_ref: the Key Vault secret URI of its secret."
        )
    if cred.kind == APP_SECRET:
        return KeyVaultBackedCredential(
            lambda value: ClientSecretCredential(tenant, client_id, value, **msal), ref, secrets
        )
    if cred.kind == APP_CERTIFICATE:
        return KeyVaultBackedCredential(
            lambda value: CertificateCredential(
                tenant, client_id, certificate_data=certificate_bytes(value), **msal
            ),
            ref,
            secrets,
        )
    raise ValueError(
        f"unknown credential kind {cred.kind[:40]!r}: use managed_identity, app_secret, app_certificate "
        "or federated_identity."
    )


def _required(cred: DestinationCredential) -> tuple[str, str]:
    if not cred.client_id or not cred.entra_tenant_id:
        raise ValueError(
            f"a {cred.kind[:40]} credential needs client_id (the app's) and entra_tenant_id (the "
            "destination's Entra tenant id)."
        )
    return cred.entra_tenant_id, cred.client_id


def certificate_bytes(value: str) -> bytes:
    """A certificate secret as azure-identity takes it: Key Vault keeps a certificate's secret as
    PEM (certificate and private key) or as base64 PKCS#12, by the certificate's content type."""
    text = value.strip()
    if text.startswith("-----BEGIN"):
        return text.encode("ascii")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ClientAuthenticationError(
            message="the certificate secret is neither PEM nor base64 PKCS#12: store the certificate in "
            "Key Vault as a certificate, or its PEM (with the private key) as the secret."
        ) from None


class KeyVaultBackedCredential:
    """A credential built from a Key Vault secret on first use and rebuilt when the value changes.

    Only a digest of the value is kept here for the comparison; the inner credential holds the
    value, as it must to sign in.
    """

    def __init__(self, build: Callable[[str], TokenCredential], ref: str, secrets: SecretSource) -> None:
        self._build = build
        self._ref = ref
        self._secrets = secrets
        self._lock = threading.Lock()
        self._digest = b""
        self._inner: TokenCredential | None = None

    def _current(self) -> Any:
        try:
            value = self._secrets.get(self._ref)
        except SecretUnavailable as err:
            raise ClientAuthenticationError(message=f"cannot read the credential's secret: {err}") from err
        digest = hashlib.sha256(value.encode("utf-8")).digest()
        with self._lock:
            if self._inner is None or digest != self._digest:
                self._inner, self._digest = self._build(value), digest
            return self._inner

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        token: AccessToken = self._current().get_token(
            *scopes, claims=claims, tenant_id=tenant_id, enable_cae=enable_cae, **kwargs
        )
        return token

    def get_token_info(self, *scopes: str, options: TokenRequestOptions | None = None) -> AccessTokenInfo:
        info: AccessTokenInfo = self._current().get_token_info(*scopes, options=options)
        return info

    def close(self) -> None:
        with self._lock:
            inner, self._inner = self._inner, None
        close = getattr(inner, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> KeyVaultBackedCredential:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()
