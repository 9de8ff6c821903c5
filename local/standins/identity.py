"""Token issuing stand-ins: App Service managed identity (plain HTTP) and Entra ID (HTTPS).

Both issue tokens from one ``TokenIssuer``; the Logs Ingestion stand-in holds the same issuer and
so accepts exactly the tokens these endpoints issued (and rejects forged or expired ones). The real
``azure.identity`` credentials talk to them unmodified:

* ``ManagedIdentityCredential()`` with ``IDENTITY_ENDPOINT``/``IDENTITY_HEADER`` from
  ``ManagedIdentityStandIn.env()`` (azure-identity -> MSAL ``_obtain_token_on_app_service``:
  GET ``?api-version=2019-08-01&resource=...[&client_id=...]`` with header ``X-IDENTITY-HEADER``,
  answer ``{"access_token", "expires_on": "<epoch seconds>", "resource", "token_type"}``).
* ``ClientSecretCredential(tenant, client_id, secret, authority=EntraIdStandIn.authority,
  disable_instance_discovery=True, connection_verify=ca_bundle_path())``: MSAL fetches
  ``/{tenant}/v2.0/.well-known/openid-configuration`` and then POSTs the client-credentials grant
  to ``/{tenant}/oauth2/v2.0/token``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from local.standins.server import StandInHandler, StandInLifecycle, ThreadedServer, owner_of

DEFAULT_RESOURCE = "https://monitor.azure.com"
DEFAULT_TENANT = "72f988bf-0000-4000-8000-000000000000"
SYSTEM_CLIENT_ID = "11111111-1111-4111-8111-111111111111"


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------


class TokenError(Exception):
    """A bearer token was missing, forged, expired or for another audience."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class TokenClaims:
    """What the issuer put into a token (a subset of real Entra access-token claims)."""

    aud: str
    appid: str
    tid: str
    iat: int
    exp: int
    jti: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _audience(resource_or_scope: str) -> str:
    """``https://monitor.azure.com//.default`` and ``.../`` and ``...`` all name one audience."""
    value = resource_or_scope.strip()
    if value.endswith("/.default"):
        value = value[: -len("/.default")]
    return value.rstrip("/")


class TokenIssuer:
    """Issues and verifies HS256 JWT-shaped bearer tokens; one instance shared by all stand-ins.

    Real Entra tokens are RS256 JWTs; an HMAC keeps this dependency-free while still letting the
    ingestion stand-in tell issued tokens from forged ones and see expiry, audience and client.
    """

    def __init__(
        self,
        *,
        secret: bytes | None = None,
        lifetime_seconds: int = 24 * 3600,
        tenant_id: str = DEFAULT_TENANT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self.lifetime_seconds = lifetime_seconds
        self.tenant_id = tenant_id
        self._clock = clock
        self._lock = threading.Lock()
        self.issued = 0

    def issue(self, resource: str, client_id: str, *, lifetime_seconds: int | None = None) -> tuple[str, int]:
        """Return ``(token, expires_on)``; a negative lifetime gives an already expired token."""
        now = int(self._clock())
        life = self.lifetime_seconds if lifetime_seconds is None else lifetime_seconds
        claims = TokenClaims(
            aud=_audience(resource),
            appid=client_id,
            tid=self.tenant_id,
            iat=now,
            exp=now + life,
            jti=uuid.uuid4().hex,
        )
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps(claims.__dict__, separators=(",", ":")).encode())
        signing_input = f"{header}.{payload}".encode()
        signature = _b64(hmac.new(self._secret, signing_input, hashlib.sha256).digest())
        with self._lock:
            self.issued += 1
        return f"{header}.{payload}.{signature}", claims.exp

    def verify(self, token: str, audience: str = DEFAULT_RESOURCE) -> TokenClaims:
        """Return the claims of a token this issuer made, else raise ``TokenError``."""
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError("InvalidAuthenticationToken", "The access token is not a valid JWT.")
        signing_input = f"{parts[0]}.{parts[1]}".encode()
        expected = _b64(hmac.new(self._secret, signing_input, hashlib.sha256).digest())
        if not hmac.compare_digest(expected, parts[2]):
            raise TokenError("InvalidAuthenticationToken", "The access token signature is invalid.")
        try:
            claims = TokenClaims(**json.loads(_unb64(parts[1])))
        except (ValueError, TypeError) as exc:
            raise TokenError("InvalidAuthenticationToken", "The access token is malformed.") from exc
        if claims.exp <= int(self._clock()):
            raise TokenError(
                "ExpiredAuthenticationToken",
                "The access token expiry UTC time is earlier than current UTC time.",
            )
        if claims.aud != _audience(audience):
            raise TokenError(
                "InvalidAuthenticationTokenAudience",
                f"The access token has been obtained for wrong audience or resource '{claims.aud}'.",
            )
        return claims


# --------------------------------------------------------------------------------------------
# App Service managed identity endpoint
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IdentityRequest:
    """One token request the managed identity endpoint saw (never the secret header value)."""

    resource: str | None
    client_id: str | None
    mi_res_id: str | None
    object_id: str | None
    status: int
    time: float


class _IdentityHandler(StandInHandler):
    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        owner_of(self)._handle(self)


class ManagedIdentityStandIn(StandInLifecycle):
    """App Service / Functions managed identity endpoint (``IDENTITY_ENDPOINT``), plain HTTP.

    Answers ``GET /msi/token?api-version=2019-08-01&resource=R[&client_id=C]`` when header
    ``X-IDENTITY-HEADER`` equals the secret. A request without ``client_id`` gets the
    system-assigned identity (``system_client_id``). ``known_client_ids`` (if given) limits which
    user-assigned identities exist; others get 400 as App Service does for an unknown identity.
    """

    PATH = "/msi/token"

    def __init__(
        self,
        issuer: TokenIssuer,
        *,
        secret: str | None = None,
        system_client_id: str = SYSTEM_CLIENT_ID,
        known_client_ids: Collection[str] | None = None,
        port: int = 0,
    ) -> None:
        self.issuer = issuer
        self.secret = secret if secret is not None else secrets.token_hex(16)
        self.system_client_id = system_client_id
        self.known_client_ids = None if known_client_ids is None else frozenset(known_client_ids)
        self._server = ThreadedServer(_IdentityHandler, self, port=port, use_tls=False)
        self._lock = threading.Lock()
        self._faults: list[list[int]] = []  # [status, remaining]
        self.requests: list[IdentityRequest] = []

    @property
    def endpoint(self) -> str:
        return self._server.base_url + self.PATH

    def env(self) -> dict[str, str]:
        """Environment variables App Service sets for the Functions host."""
        return {"IDENTITY_ENDPOINT": self.endpoint, "IDENTITY_HEADER": self.secret}

    @property
    def token_requests(self) -> int:
        with self._lock:
            return len(self.requests)

    @property
    def client_ids_requested(self) -> list[str | None]:
        with self._lock:
            return [r.client_id for r in self.requests]

    def inject(self, status: int, times: int = 1) -> None:
        """Answer the next ``times`` token requests with ``status`` and an App Service error body."""
        with self._lock:
            self._faults.append([status, times])

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self.requests.clear()

    def _next_fault(self) -> int | None:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            fault[1] -= 1
            if fault[1] <= 0:
                self._faults.pop(0)
            return fault[0]

    def _handle(self, h: StandInHandler) -> None:
        url = urlsplit(h.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        resource = query.get("resource")
        client_id = query.get("client_id")
        status, payload = self._answer(h, url.path, query)
        with self._lock:
            self.requests.append(
                IdentityRequest(
                    resource,
                    client_id,
                    query.get("mi_res_id"),
                    query.get("object_id"),
                    status,
                    time.time(),
                )
            )
        h.send_json(status, payload)

    def _answer(self, h: StandInHandler, path: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        def error(status: int, message: str) -> tuple[int, dict[str, Any]]:
            return status, {"statusCode": status, "message": message, "correlationId": str(uuid.uuid4())}

        fault = self._next_fault()
        if fault is not None:
            return error(fault, "Injected failure from the managed identity stand-in.")
        if path != self.PATH:
            return error(404, "Not found.")
        if not hmac.compare_digest(h.headers.get("X-IDENTITY-HEADER", ""), self.secret):
            return error(401, "The X-IDENTITY-HEADER header is missing or invalid.")
        if query.get("api-version") != "2019-08-01":
            return error(400, "The api-version is missing or not supported; use 2019-08-01.")
        resource = query.get("resource")
        if not resource:
            return error(400, "Required query parameter 'resource' is missing.")
        client_id = query.get("client_id") or self.system_client_id
        if (
            self.known_client_ids is not None
            and query.get("client_id")
            and client_id not in self.known_client_ids
        ):
            return error(
                400,
                "No User Assigned or Delegated Managed Identity found for specified "
                "ClientId/ResourceId/PrincipalId.",
            )
        token, expires_on = self.issuer.issue(resource, client_id)
        return 200, {
            "access_token": token,
            "expires_on": str(expires_on),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": client_id,
        }


# --------------------------------------------------------------------------------------------
# Entra ID (AAD) token endpoint for ClientSecretCredential
# --------------------------------------------------------------------------------------------


class _EntraHandler(StandInHandler):
    def do_GET(self) -> None:  # noqa: N802
        owner_of(self)._get(self)

    def do_POST(self) -> None:  # noqa: N802
        owner_of(self)._post(self)


class EntraIdStandIn(StandInLifecycle):
    """Entra ID v2.0 endpoints MSAL needs for the client-credentials grant, over HTTPS.

    Use ``authority=stand_in.authority`` and ``disable_instance_discovery=True`` on the credential
    (or ``AZURE_AUTHORITY_HOST``), plus ``connection_verify=ca_bundle_path()``.
    ``clients`` maps client id -> secret; a wrong secret gets AADSTS7000215 like Entra.
    """

    def __init__(self, issuer: TokenIssuer, clients: Mapping[str, str], *, port: int = 0) -> None:
        self.issuer = issuer
        self.clients = dict(clients)
        self._server = ThreadedServer(_EntraHandler, self, port=port, use_tls=True)
        self._lock = threading.Lock()
        self.token_requests = 0
        self.discovery_requests = 0

    @property
    def authority(self) -> str:
        """Authority host (what ``AZURE_AUTHORITY_HOST`` / ``authority=`` take)."""
        return self._server.base_url

    @property
    def tenant_id(self) -> str:
        return self.issuer.tenant_id

    def _tenant_base(self) -> str:
        return f"{self.authority}/{self.tenant_id}"

    def _get(self, h: StandInHandler) -> None:
        path = urlsplit(h.path).path
        if path == f"/{self.tenant_id}/v2.0/.well-known/openid-configuration":
            with self._lock:
                self.discovery_requests += 1
            base = self._tenant_base()
            h.send_json(
                200,
                {
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                    "issuer": f"{base}/v2.0",
                    "jwks_uri": f"{base}/discovery/v2.0/keys",
                    "token_endpoint_auth_methods_supported": [
                        "client_secret_post",
                        "private_key_jwt",
                        "client_secret_basic",
                    ],
                    "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                    "tenant_region_scope": "EU",
                },
            )
            return
        h.send_json(404, {"error": "not_found", "error_description": "AADSTS90002: Tenant not found."})

    def _post(self, h: StandInHandler) -> None:
        path = urlsplit(h.path).path
        form = {k: v[0] for k, v in parse_qs(h.read_body().decode("utf-8")).items()}
        if path != f"/{self.tenant_id}/oauth2/v2.0/token":
            h.send_json(
                400, {"error": "invalid_request", "error_description": "AADSTS90002: Tenant not found."}
            )
            return
        with self._lock:
            self.token_requests += 1
        if form.get("grant_type") != "client_credentials":
            h.send_json(
                400,
                _aad_error("unsupported_grant_type", 70003, "The app requested an unsupported grant type."),
            )
            return
        client_id = form.get("client_id", "")
        if client_id not in self.clients:
            h.send_json(
                400,
                _aad_error(
                    "unauthorized_client",
                    700016,
                    f"Application with identifier '{client_id}' was not found in the directory.",
                ),
            )
            return
        if not hmac.compare_digest(form.get("client_secret", ""), self.clients[client_id]):
            h.send_json(401, _aad_error("invalid_client", 7000215, "Invalid client secret provided."))
            return
        scope = form.get("scope", "")
        token, expires_on = self.issuer.issue(scope.split(" ")[0], client_id)
        expires_in = max(expires_on - int(time.time()), 0)
        h.send_json(
            200,
            {
                "token_type": "Bearer",
                "expires_in": expires_in,
                "ext_expires_in": expires_in,
                "access_token": token,
            },
        )


def _aad_error(error: str, code: int, description: str) -> dict[str, Any]:
    return {
        "error": error,
        "error_description": f"AADSTS{code}: {description} Trace ID: {uuid.uuid4()}",
        "error_codes": [code],
        "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
        "trace_id": str(uuid.uuid4()),
        "correlation_id": str(uuid.uuid4()),
    }
