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
  to ``/{tenant}/oauth2/v2.0/token``. ``CertificateCredential`` (MSAL's RS256 client assertion with
  ``x5t``) and ``ClientAssertionCredential`` (a managed identity's token for
  ``api://AzureADTokenExchange`` as the assertion: a federated identity credential) work the same
  way against apps registered with ``register_certificate`` / ``register_federated``.

Tokens carry ``tid`` (the tenant whose token endpoint issued them), ``appid`` and ``sub``, so the
resource stand-ins can tell which identity of which tenant called them.
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

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from local.standins.server import StandInHandler, StandInLifecycle, ThreadedServer, owner_of

DEFAULT_RESOURCE = "https://monitor.azure.com"
DEFAULT_TENANT = "72f988bf-0000-4000-8000-000000000000"
SYSTEM_CLIENT_ID = "11111111-1111-4111-8111-111111111111"
# The audience of a managed identity's token used as a federated client assertion (FACTS.md).
TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def issuer_url(tenant_id: str) -> str:
    """The ``iss`` of a token of ``tenant_id`` (Entra v2.0's form; what a federated credential names)."""
    return f"https://login.microsoftonline.com/{tenant_id}/v2.0"


def principal_id(client_id: str) -> str:
    """A managed identity's principal (object) id: stable per client id, distinct from it."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"managed-identity:{client_id}"))


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
    iss: str = ""
    sub: str = ""  # the principal: a managed identity's object id, else the client id


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

    def issue(
        self,
        resource: str,
        client_id: str,
        *,
        lifetime_seconds: int | None = None,
        tenant_id: str | None = None,
        subject: str | None = None,
    ) -> tuple[str, int]:
        """Return ``(token, expires_on)``; a negative lifetime gives an already expired token.

        ``tenant_id`` is the issuing tenant (default: the issuer's own, the relay's home tenant).
        """
        now = int(self._clock())
        life = self.lifetime_seconds if lifetime_seconds is None else lifetime_seconds
        tid = tenant_id or self.tenant_id
        claims = TokenClaims(
            aud=_audience(resource),
            appid=client_id,
            tid=tid,
            iat=now,
            exp=now + life,
            jti=uuid.uuid4().hex,
            iss=issuer_url(tid),
            sub=subject or client_id,
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
    Tokens are of the issuer's tenant with ``sub`` = ``principal_id(client_id)``.
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
        token, expires_on = self.issuer.issue(resource, client_id, subject=principal_id(client_id))
        return 200, {
            "access_token": token,
            "expires_on": str(expires_on),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": client_id,
        }


# --------------------------------------------------------------------------------------------
# Entra ID (AAD) token endpoint: client secret, certificate and federated client assertions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FederatedSubject:
    """A federated identity credential on an app: whose tokens it trusts as client assertions.

    For a managed identity (FACTS.md): issuer = ``issuer_url(<the identity's tenant>)``, subject =
    the identity's principal id, audience ``api://AzureADTokenExchange``.
    """

    issuer: str
    subject: str
    audience: str = TOKEN_EXCHANGE_AUDIENCE


@dataclass
class _App:
    secret: str | None = None
    certificate: x509.Certificate | None = None
    federated: FederatedSubject | None = None


@dataclass(frozen=True)
class EntraTokenRequest:
    """One token request the Entra stand-in answered (never the secret or the assertion)."""

    tenant_id: str
    client_id: str
    method: str  # "secret", "certificate", "federated" or "none"
    status: int
    error_code: int | None


class _Refusal(Exception):
    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.code, self.description = status, error, code, description


class _EntraHandler(StandInHandler):
    def do_GET(self) -> None:  # noqa: N802
        owner_of(self)._get(self)

    def do_POST(self) -> None:  # noqa: N802
        owner_of(self)._post(self)


class EntraIdStandIn(StandInLifecycle):
    """Entra ID v2.0 endpoints MSAL and azure-identity need for the client-credentials grant, over
    HTTPS, for any number of tenants (the tenant is the first path segment, as in Entra).

    Use ``authority=stand_in.authority`` and ``disable_instance_discovery=True`` on the credential
    (or ``AZURE_AUTHORITY_HOST``), plus ``connection_verify=ca_bundle_path()``.
    ``clients`` maps client id -> secret in the issuer's own tenant; ``register_*`` adds apps to
    any tenant. A token's ``tid`` is the tenant it was asked from. Wrong credentials get Entra's
    AADSTS errors (7000215 wrong secret, 700027 bad certificate assertion, 70021 no matching
    federated credential, 700016 unknown app, 90002 unknown tenant).
    """

    def __init__(
        self, issuer: TokenIssuer, clients: Mapping[str, str] | None = None, *, port: int = 0
    ) -> None:
        self.issuer = issuer
        self._server = ThreadedServer(_EntraHandler, self, port=port, use_tls=True)
        self._lock = threading.Lock()
        self._apps: dict[tuple[str, str], _App] = {}
        self.token_requests = 0
        self.discovery_requests = 0
        self.requests: list[EntraTokenRequest] = []
        for client_id, secret in (clients or {}).items():
            self.register_secret(client_id, secret)

    @property
    def authority(self) -> str:
        """Authority host (what ``AZURE_AUTHORITY_HOST`` / ``authority=`` take)."""
        return self._server.base_url

    @property
    def tenant_id(self) -> str:
        return self.issuer.tenant_id

    # ---------------------------------------------------------------- app registrations

    def _app(self, tenant_id: str | None, client_id: str) -> _App:
        with self._lock:
            return self._apps.setdefault((tenant_id or self.tenant_id, client_id), _App())

    def register_secret(self, client_id: str, secret: str, *, tenant_id: str | None = None) -> None:
        """An app (in ``tenant_id``, default the issuer's) that authenticates with a client secret."""
        self._app(tenant_id, client_id).secret = secret

    def register_certificate(
        self, client_id: str, certificate_pem: bytes, *, tenant_id: str | None = None
    ) -> None:
        """An app that authenticates with a certificate (its public part, PEM)."""
        self._app(tenant_id, client_id).certificate = x509.load_pem_x509_certificate(certificate_pem)

    def register_federated(
        self, client_id: str, federated: FederatedSubject, *, tenant_id: str | None = None
    ) -> None:
        """An app that trusts another issuer's tokens (a managed identity's) as client assertions."""
        self._app(tenant_id, client_id).federated = federated

    def _known_tenant(self, tenant_id: str) -> bool:
        with self._lock:
            return tenant_id == self.tenant_id or any(t == tenant_id for t, _ in self._apps)

    def token_endpoint(self, tenant_id: str) -> str:
        return f"{self.authority}/{tenant_id}/oauth2/v2.0/token"

    # ---------------------------------------------------------------- HTTP

    def _get(self, h: StandInHandler) -> None:
        parts = urlsplit(h.path).path.strip("/").split("/")
        if parts[1:] == ["v2.0", ".well-known", "openid-configuration"] and self._known_tenant(parts[0]):
            with self._lock:
                self.discovery_requests += 1
            base = f"{self.authority}/{parts[0]}"
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
        parts = urlsplit(h.path).path.strip("/").split("/")
        form = {k: v[0] for k, v in parse_qs(h.read_body().decode("utf-8")).items()}
        if parts[1:] != ["oauth2", "v2.0", "token"] or not self._known_tenant(parts[0]):
            h.send_json(
                400, {"error": "invalid_request", "error_description": "AADSTS90002: Tenant not found."}
            )
            return
        tenant_id, client_id = parts[0], form.get("client_id", "")
        method = "secret" if "client_secret" in form else "none"
        try:
            method = self._authenticate(tenant_id, client_id, form)
        except _Refusal as refusal:
            self._note(EntraTokenRequest(tenant_id, client_id, method, refusal.status, refusal.code))
            h.send_json(refusal.status, _aad_error(refusal.error, refusal.code, refusal.description))
            return
        self._note(EntraTokenRequest(tenant_id, client_id, method, 200, None))
        scope = form.get("scope", "")
        token, expires_on = self.issuer.issue(scope.split(" ")[0], client_id, tenant_id=tenant_id)
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

    def _note(self, request: EntraTokenRequest) -> None:
        with self._lock:
            self.token_requests += 1
            self.requests.append(request)

    def _authenticate(self, tenant_id: str, client_id: str, form: Mapping[str, str]) -> str:
        """Which way the client proved itself ("secret", "certificate", "federated"), else raise."""
        if form.get("grant_type") != "client_credentials":
            raise _Refusal(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        with self._lock:
            app = self._apps.get((tenant_id, client_id))
        if app is None:
            raise _Refusal(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{tenant_id}'.",
            )
        assertion = form.get("client_assertion")
        if assertion:
            if form.get("client_assertion_type") != JWT_BEARER:
                raise _Refusal(400, "invalid_request", 90014, "The client_assertion_type is not supported.")
            if app.federated is not None:
                self._check_federated(assertion, app.federated)
                return "federated"
            if app.certificate is not None:
                _check_certificate_assertion(
                    assertion, app.certificate, self.token_endpoint(tenant_id), client_id, time.time()
                )
                return "certificate"
            raise _Refusal(401, "invalid_client", 700027, "Client assertion failed signature validation.")
        if "client_secret" in form:
            if app.secret is None or not hmac.compare_digest(form["client_secret"], app.secret):
                raise _Refusal(401, "invalid_client", 7000215, "Invalid client secret provided.")
            return "secret"
        raise _Refusal(
            400,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )

    def _check_federated(self, assertion: str, federated: FederatedSubject) -> None:
        try:
            claims = self.issuer.verify(assertion, federated.audience)
        except TokenError as exc:
            raise _Refusal(
                401, "invalid_client", 700024, f"Client assertion is not valid: {exc.code}."
            ) from None
        if claims.iss != federated.issuer or claims.sub != federated.subject:
            raise _Refusal(
                401,
                "invalid_client",
                70021,
                "No matching federated identity record found for presented assertion. "
                f"Assertion Issuer: '{claims.iss}'. Assertion Subject: '{claims.sub}'.",
            )


def _check_certificate_assertion(
    assertion: str, certificate: x509.Certificate, audience: str, client_id: str, now: float
) -> None:
    """Check a client assertion as Entra does for a certificate credential: RS256 (``x5t``, SHA-1
    thumbprint, what azure-identity's CertificateCredential sends) or PS256 (``x5t#S256``) signed
    by the registered certificate's key, for this token endpoint, from this client, in time."""
    parts = assertion.split(".")
    if len(parts) != 3:
        raise _Refusal(401, "invalid_client", 50027, "The client assertion is not a valid JWT.")
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
        signature = _unb64(parts[2])
    except ValueError:
        raise _Refusal(401, "invalid_client", 50027, "The client assertion is not a valid JWT.") from None
    alg = header.get("alg")
    pad: padding.AsymmetricPadding
    if alg == "RS256":
        thumbprint, pad = header.get("x5t"), padding.PKCS1v15()
        expected = _b64(certificate.fingerprint(hashes.SHA1()))  # noqa: S303 - Entra's x5t is SHA-1
    elif alg == "PS256":
        thumbprint = header.get("x5t#S256")
        pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
        expected = _b64(certificate.fingerprint(hashes.SHA256()))
    else:
        raise _Refusal(
            401, "invalid_client", 5002738, f"The client assertion's algorithm {alg!r} is not supported."
        )
    if not isinstance(thumbprint, str) or thumbprint.rstrip("=") != expected:  # MSAL keeps the padding
        raise _Refusal(
            401,
            "invalid_client",
            700027,
            "The certificate with identifier used to sign the client assertion is not registered "
            "on application.",
        )
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise _Refusal(401, "invalid_client", 700027, "The registered certificate has no RSA key.")
    try:
        key.verify(signature, f"{parts[0]}.{parts[1]}".encode(), pad, hashes.SHA256())
    except InvalidSignature:
        raise _Refusal(
            401, "invalid_client", 700027, "Client assertion failed signature validation."
        ) from None
    if claims.get("aud") != audience:
        raise _Refusal(
            401, "invalid_client", 700212, "The client assertion's audience is not this token endpoint."
        )
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise _Refusal(
            401,
            "invalid_client",
            700021,
            "Client assertion application identifier doesn't match 'client_id'.",
        )
    exp, nbf = claims.get("exp"), claims.get("nbf", 0)
    if not isinstance(exp, int | float) or exp <= now or not isinstance(nbf, int | float) or nbf > now + 300:
        raise _Refusal(401, "invalid_client", 700024, "Client assertion is not within its valid time range.")


def _aad_error(error: str, code: int, description: str) -> dict[str, Any]:
    return {
        "error": error,
        "error_description": f"AADSTS{code}: {description} Trace ID: {uuid.uuid4()}",
        "error_codes": [code],
        "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
        "trace_id": str(uuid.uuid4()),
        "correlation_id": str(uuid.uuid4()),
    }
