"""Key Vault secrets by reference, read with the relay's own identity (no secret to reach secrets).

A tenant's secrets (webhook secret, Wallarm token, an app registration's secret or certificate)
live only in Key Vault; the registry keeps references. `KeyVaultSecrets` reads them over Key
Vault's REST API (api-version 7.5) through azure-core, the same pipeline as the SDKs, so no new
dependency: a bearer token for `{audience}/.default`, bounded timeouts, the CA bundle and proxies
of shared/transport.py.

Values are cached per reference for `ttl`, so a webhook never waits on Key Vault in the steady
state and a rotation takes effect within `ttl`. When a refresh fails for a reason that passes
(connection, timeout, 408, 429, 5xx, the identity endpoint), the last value keeps being served
for up to `STALE_FOR` (logged once per outage), retried at most every `RETRY_STALE_AFTER`, so a
Key Vault blip does not fail webhooks. A 401/403/404 is an answer, not a blip: it fails at once
(a disabled or removed secret, or a revoked grant, takes effect within `ttl`).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from azure.core import PipelineClient
from azure.core.exceptions import AzureError, ClientAuthenticationError
from azure.core.pipeline.policies import (
    BearerTokenCredentialPolicy,
    HeadersPolicy,
    ProxyPolicy,
    RequestIdPolicy,
    RetryPolicy,
    UserAgentPolicy,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest

from shared.clock import Clock, utc_now
from shared.tenancy.refs import LOOPBACK_HOSTS, VAULT_SUFFIXES
from shared.transport import client_options

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.rest import HttpResponse

log = logging.getLogger(__name__)

API_VERSION: Final = "7.5"
PUBLIC_AUDIENCE: Final = "https://vault.azure.net"
STALE_FOR: Final = timedelta(hours=1)
RETRY_STALE_AFTER: Final = timedelta(seconds=30)
# Bounds so a webhook that must read a secret still answers inside Wallarm's 15 s.
CLIENT_BOUNDS: Final[dict[str, float]] = {"connection_timeout": 3, "read_timeout": 5}
RETRY_BOUNDS: Final[dict[str, float]] = {
    "retry_total": 2,
    "retry_backoff_factor": 0.2,
    "retry_backoff_max": 2,
    "timeout": 10,
}

LOCAL_HOSTS: Final = LOOPBACK_HOSTS  # the local Key Vault stand-in
_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_VERSION = re.compile(r"^[0-9A-Fa-f]{32}$")
_VAULT_NAME = re.compile(r"^[A-Za-z][0-9A-Za-z-]{1,22}[0-9A-Za-z]$")
_APP_SERVICE_REF = re.compile(r"^@Microsoft\.KeyVault\((?P<inner>.*)\)$", re.IGNORECASE | re.DOTALL)
_EXAMPLE = "e.g. https://relay-kv.vault.azure.net/secrets/webhook-secret"


class SecretRefError(ValueError):
    """A reference that names no Key Vault secret; the message says how to write one."""


class SecretUnavailable(Exception):
    """A secret could not be read or written. Carries where and why, never the value."""

    def __init__(
        self, vault_host: str, name: str, *, status: int | None, code: str, request_id: str = ""
    ) -> None:
        self.vault_host = vault_host
        self.name = name
        self.status = status
        self.code = code
        self.request_id = request_id
        where = f"Key Vault secret {name!r} in {vault_host}"
        what = f"HTTP {status} {code}" if status is not None else code
        rid = f" (x-ms-request-id {request_id})" if request_id else ""
        super().__init__(f"{where}: {what}{rid}. {_advice(status)}")

    @property
    def transient(self) -> bool:
        """Whether it may pass by itself (an outage), as opposed to an answer (denied, missing)."""
        return self.status is None or self.status in (408, 429) or self.status >= 500


def _advice(status: int | None) -> str:
    if status == 401:
        return "The token was refused: check the vault's tenant and the token audience (Key Vault's cloud)."
    if status == 403:
        return (
            "Grant the relay's identity 'Key Vault Secrets User' (read) or 'Key Vault Secrets Officer' "
            "(write) on the vault."
        )
    if status == 404:
        return "Create the secret, or fix the name in the reference."
    return "Key Vault or the network is unavailable; it is retried."


@dataclass(frozen=True)
class SecretRef:
    """A Key Vault secret: the vault's URL (`https://host[:port]`), the name, an optional version."""

    vault_url: str
    name: str
    version: str | None = None

    @property
    def host(self) -> str:
        return urlsplit(self.vault_url).netloc

    @property
    def uri(self) -> str:
        """The secret URI (versioned when the reference pins a version)."""
        return self.versionless + (f"/{self.version}" if self.version else "")

    @property
    def versionless(self) -> str:
        return f"{self.vault_url}/secrets/{self.name}"


def _clip(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def parse_secret_ref(text: str) -> SecretRef:
    """Parse a Key Vault secret reference (pure): a secret URI `https://<vault>.vault.azure.net/
    secrets/<name>[/<version>]` (sovereign vault hosts too, or `https://127.0.0.1:<port>/...` for
    the local stand-in), or App Service's `@Microsoft.KeyVault(SecretUri=...)` /
    `@Microsoft.KeyVault(VaultName=...;SecretName=...[;SecretVersion=...])`."""
    raw = text.strip()
    wrapped = _APP_SERVICE_REF.match(raw)
    if wrapped:
        pairs = (part.partition("=") for part in wrapped["inner"].split(";") if part.strip())
        fields = {key.strip().lower(): value.strip() for key, _, value in pairs}
        if "secreturi" in fields:
            raw = fields["secreturi"]
        elif "vaultname" in fields and "secretname" in fields:
            if not _VAULT_NAME.match(fields["vaultname"]):
                raise SecretRefError(
                    f"VaultName {_clip(fields['vaultname'])!r} is not a vault name: use 3-24 letters, "
                    "digits and hyphens, e.g. "
                    "@Microsoft.KeyVault(VaultName=relay-kv;SecretName=webhook-secret)."
                )
            version = fields.get("secretversion") or None
            raw = f"https://{fields['vaultname'].lower()}.vault.azure.net/secrets/{fields['secretname']}" + (
                f"/{version}" if version else ""
            )
        else:
            raise SecretRefError(
                "@Microsoft.KeyVault(...) needs SecretUri=<secret URI> or VaultName=...;SecretName=..., "
                f"{_EXAMPLE}."
            )
    parts = urlsplit(raw)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not host:
        raise SecretRefError(f"{_clip(raw)!r} is not an https Key Vault secret URI: write one, {_EXAMPLE}.")
    if host in LOCAL_HOSTS:
        if parts.port is None:
            raise SecretRefError(
                "the local Key Vault stand-in needs its port, e.g. https://127.0.0.1:8443/secrets/<name>."
            )
    elif not host.endswith(VAULT_SUFFIXES) or parts.port not in (None, 443):
        raise SecretRefError(
            f"{_clip(host)!r} is not a Key Vault host (<vault>.vault.azure.net, or a sovereign cloud's): "
            f"{_EXAMPLE}."
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise SecretRefError(f"a secret URI has no query, fragment or user part: {_EXAMPLE}.")
    segments = parts.path.strip("/").split("/")
    if len(segments) not in (2, 3) or segments[0] != "secrets":
        raise SecretRefError(f"the path must be /secrets/<name>[/<version>], {_EXAMPLE}.")
    name = segments[1]
    version = segments[2] if len(segments) == 3 else None
    if not _NAME.match(name):
        raise SecretRefError(
            f"secret name {_clip(name)!r} is not valid: use 1-127 letters, digits and hyphens, {_EXAMPLE}."
        )
    if version is not None and not _VERSION.match(version):
        raise SecretRefError(
            "the secret version must be the 32 hex digits Key Vault gave it, or left out for the newest."
        )
    port = "" if parts.port in (None, 443) else f":{parts.port}"
    netloc = f"[{host}]" if ":" in host else host  # an IPv6 loopback keeps its brackets
    return SecretRef(f"https://{netloc}{port}", name, version.lower() if version else None)


@dataclass
class _Cached:
    value: str
    fetched: datetime
    failed_at: datetime | None = None  # set while refreshes fail and the value is served stale


class KeyVaultSecrets:
    """Reads and writes Key Vault secrets by reference, with the given (the relay's) credential.

    `audience`: the token audience; by default the vault's cloud's (`vault_audience`).
    """

    def __init__(
        self,
        credential: TokenCredential,
        *,
        ca_bundle: str | None = None,
        audience: str | None = None,
        ttl: timedelta = timedelta(minutes=5),
        clock: Clock = utc_now,
    ) -> None:
        self._credential = credential
        self._ca_bundle = ca_bundle
        self._audience = audience
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[SecretRef, _Cached] = {}
        self._clients: dict[str, PipelineClient[HttpRequest, HttpResponse]] = {}

    def get(self, ref: str) -> str:
        """The secret's value: cached for `ttl`, stale on a passing error (module docstring)."""
        secret = parse_secret_ref(ref)
        now = self._clock()
        with self._lock:
            cached = self._cache.get(secret)
        if cached is not None and self._servable(cached, now):
            return cached.value
        try:
            value = self._read(secret)
        except SecretUnavailable as err:
            return self._stale_or_raise(secret, cached, err, now)
        with self._lock:
            self._cache[secret] = _Cached(value, self._clock())
        if cached is not None and cached.failed_at is not None:
            log.info("keyvault_recovered vault=%s secret=%s", secret.host, secret.name)
        return value

    def set(self, ref: str, value: str) -> str:
        """Write `value` as the secret's new version; returns the versionless reference."""
        secret = parse_secret_ref(ref)
        self._call(secret, "PUT", f"/secrets/{secret.name}", {"value": value})
        with self._lock:
            for key in [k for k in self._cache if (k.vault_url, k.name) == (secret.vault_url, secret.name)]:
                del self._cache[key]
        return secret.versionless

    def _servable(self, cached: _Cached, now: datetime) -> bool:
        """Fresh, or stale after a failed refresh that is not due for another try yet."""
        if now - cached.fetched < self._ttl:
            return True
        return (
            cached.failed_at is not None
            and now - cached.failed_at < RETRY_STALE_AFTER
            and now - cached.fetched < self._ttl + STALE_FOR
        )

    def _audience_of(self, vault_url: str) -> str:
        return (self._audience or vault_audience(vault_url)).rstrip("/")

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def _stale_or_raise(
        self, secret: SecretRef, cached: _Cached | None, err: SecretUnavailable, now: datetime
    ) -> str:
        if cached is None or not err.transient or now - cached.fetched >= self._ttl + STALE_FOR:
            raise err
        with self._lock:
            first = cached.failed_at is None
            cached.failed_at = now
        if first:
            log.warning(
                "keyvault_stale vault=%s secret=%s status=%s code=%s: serving the last value for up to %s",
                secret.host,
                secret.name,
                err.status,
                err.code,
                STALE_FOR,
            )
        return cached.value

    def _read(self, secret: SecretRef) -> str:
        path = f"/secrets/{secret.name}" + (f"/{secret.version}" if secret.version else "")
        body = self._call(secret, "GET", path, None)
        value = body.get("value")
        if not isinstance(value, str):
            raise SecretUnavailable(secret.host, secret.name, status=200, code="NoValue")
        return value

    def _call(self, secret: SecretRef, method: str, path: str, payload: Any) -> dict[str, Any]:
        request = HttpRequest(
            method, f"{secret.vault_url}{path}", params={"api-version": API_VERSION}, json=payload
        )
        try:
            response = self._client(secret.vault_url).send_request(request, stream=True)
            data = _read_capped(response)
        except AnswerTooLarge:
            raise SecretUnavailable(secret.host, secret.name, status=None, code="TooLarge") from None
        except ClientAuthenticationError as err:  # no token: the identity endpoint or Entra failed
            raise SecretUnavailable(secret.host, secret.name, status=None, code="NoToken") from err
        except AzureError as err:
            code = "Timeout" if "timed out" in str(err).lower() else "Unreachable"
            raise SecretUnavailable(secret.host, secret.name, status=None, code=code) from err
        request_id = response.headers.get("x-ms-request-id", "")
        if response.status_code != 200:
            raise SecretUnavailable(
                secret.host,
                secret.name,
                status=response.status_code,
                code=_error_code(data),
                request_id=request_id,
            )
        body = _json(data)
        if not isinstance(body, dict):
            raise SecretUnavailable(
                secret.host, secret.name, status=200, code="NotJson", request_id=request_id
            )
        return body

    def _client(self, vault_url: str) -> PipelineClient[HttpRequest, HttpResponse]:
        with self._lock:
            client = self._clients.get(vault_url)
            if client is None:
                options = client_options(vault_url, verify=self._ca_bundle or True)
                policies = [
                    RequestIdPolicy(),
                    HeadersPolicy(),
                    UserAgentPolicy(sdk_moniker="wallarm-sentinel-relay"),
                    ProxyPolicy(proxies=options.pop("proxies", None)),
                    RetryPolicy(**RETRY_BOUNDS),
                    BearerTokenCredentialPolicy(self._credential, f"{self._audience_of(vault_url)}/.default"),
                ]  # no HttpLoggingPolicy: nothing of a request or an answer is logged
                transport = RequestsTransport(**options, **CLIENT_BOUNDS)
                client = PipelineClient(vault_url, policies=policies, transport=transport)
                self._clients[vault_url] = client
        return client


def vault_audience(vault_url: str) -> str:
    """Key Vault's token audience for a vault: `https://vault.<cloud's suffix>` (public for the
    local stand-in)."""
    host = urlsplit(vault_url).hostname or ""
    for suffix in VAULT_SUFFIXES:
        if host.endswith(suffix):
            return "https://" + suffix.lstrip(".")
    return PUBLIC_AUDIENCE


MAX_ANSWER_BYTES: Final[int] = 256 * 1024
"""Key Vault keeps secrets of at most 25 KB; a longer answer is not a Key Vault's, and is not read."""


class AnswerTooLarge(Exception):
    pass


def _read_capped(response: HttpResponse) -> bytes:
    chunks, size = [], 0
    try:
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise AnswerTooLarge
            chunks.append(chunk)
    finally:
        response.close()
    return b"".join(chunks)


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


def _error_code(data: bytes) -> str:
    """Key Vault's `error.code` (e.g. Forbidden, SecretNotFound), never its message."""
    body = _json(data)
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return str(code)[:60] if code else "Error"
