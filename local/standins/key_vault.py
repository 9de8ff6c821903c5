"""Azure Key Vault secrets stand-in (HTTPS, 127.0.0.1) with an access map and fault injection.

Speaks the documented REST subset the relay uses (api-version 7.x):

* ``GET /secrets/{name}[/{version}]?api-version=...`` -> 200 ``{"value", "id", "attributes"}``,
  ``id`` = ``https://host/secrets/{name}/{version}``; the newest version without one;
* ``PUT /secrets/{name}?api-version=...`` with ``{"value": ...}`` -> a new version, same answer;
* no bearer token: 401 with Key Vault's challenge (``WWW-Authenticate: Bearer
  authorization="...", resource="https://vault.azure.net"``); a token of another audience, issuer
  or tenant: 401;
* the token's appid not granted the operation on that secret (``grant``): 403 ``Forbidden``
  (inner ``ForbiddenByRbac``), as with Azure RBAC; no grants at all: every valid token may
  read and write (the local run);
* unknown secret or version: 404 ``SecretNotFound``; a bad name or api-version: 400
  ``BadParameter``; every answer carries ``x-ms-request-id``.

Tokens come from the shared ``TokenIssuer`` (audience ``https://vault.azure.net``). Nothing is
seeded by default. Requests are recorded without their values.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from local.standins.identity import TokenClaims, TokenError, TokenIssuer
from local.standins.server import StandInHandler, StandInLifecycle, ThreadedServer, owner_of, take_fault

AUDIENCE = "https://vault.azure.net"
READ, WRITE = "get", "set"
_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_API_VERSION = re.compile(r"^7\.\d+(-preview)?$")


@dataclass(frozen=True)
class VaultRequest:
    """One secrets request as the stand-in saw it (never the value)."""

    method: str
    name: str
    version: str | None
    status: int
    error_code: str | None
    client_id: str | None
    time: float


@dataclass
class _Version:
    version: str
    value: str
    created: int
    content_type: str | None = None


@dataclass
class _Fault:
    status: int | None = None
    times: int = 1
    delay: float = 0.0


@dataclass
class _Answer:
    status: int
    payload: Any
    headers: dict[str, str] = field(default_factory=dict)


class _Handler(StandInHandler):
    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        owner_of(self)._handle(self, "GET")

    def do_PUT(self) -> None:  # noqa: N802
        owner_of(self)._handle(self, "PUT")


class KeyVaultStandIn(StandInLifecycle):
    """One vault. ``vault_url`` is ``https://127.0.0.1:PORT``; a secret URI is
    ``{vault_url}/secrets/{name}``. ``tenant_id`` is the vault's tenant (default: the issuer's)."""

    def __init__(self, issuer: TokenIssuer, *, tenant_id: str | None = None, port: int = 0) -> None:
        self.issuer = issuer
        self.tenant_id = tenant_id or issuer.tenant_id
        self._server = ThreadedServer(_Handler, self, port=port, use_tls=True)
        self._lock = threading.Lock()
        self._secrets: dict[str, list[_Version]] = {}
        self._grants: dict[tuple[str, str], set[str]] | None = None  # (appid, name or "*") -> ops
        self._faults: list[_Fault] = []
        self._outage: _Fault | None = None
        self._requests: list[VaultRequest] = []

    # ---------------------------------------------------------------- public surface

    @property
    def vault_url(self) -> str:
        return self._server.base_url

    def secret_uri(self, name: str, version: str | None = None) -> str:
        return f"{self.vault_url}/secrets/{name}" + (f"/{version}" if version else "")

    @property
    def requests(self) -> list[VaultRequest]:
        with self._lock:
            return list(self._requests)

    def seed(self, name: str, value: str, *, content_type: str | None = None) -> str:
        """Store a new version directly (test set-up); returns the version."""
        return self._store(name, value, content_type).version

    def versions(self, name: str) -> list[str]:
        with self._lock:
            return [v.version for v in self._secrets.get(name, [])]

    def grant(self, client_id: str, name: str = "*", *, read: bool = True, write: bool = False) -> None:
        """Let appid ``client_id`` read (and write) secret ``name`` ("*": every secret). The first
        grant turns the access map on: from then on whoever has no grant gets 403."""
        ops = {op for op, on in ((READ, read), (WRITE, write)) if on}
        with self._lock:
            grants = self._grants if self._grants is not None else {}
            grants.setdefault((client_id, name), set()).update(ops)
            self._grants = grants

    def inject(self, status: int, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``status``."""
        with self._lock:
            self._faults.append(_Fault(status=status, times=times))

    def inject_delay(self, seconds: float, times: int = 1) -> None:
        """Hold the next ``times`` requests ``seconds`` before answering them normally."""
        with self._lock:
            self._faults.append(_Fault(delay=seconds, times=times))

    def set_outage(self, status: int | None) -> None:
        """Fail every request with ``status`` until ``set_outage(None)``."""
        with self._lock:
            self._outage = None if status is None else _Fault(status=status)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._outage = None

    def reset(self) -> None:
        """Forget faults, secrets, grants and recorded requests."""
        with self._lock:
            self._faults.clear()
            self._outage = None
            self._secrets.clear()
            self._grants = None
            self._requests.clear()

    # ---------------------------------------------------------------- internals

    def _store(self, name: str, value: str, content_type: str | None) -> _Version:
        version = _Version(uuid.uuid4().hex, value, int(time.time()), content_type)
        with self._lock:
            self._secrets.setdefault(name, []).append(version)
        return version

    def _take_fault(self) -> _Fault | None:
        with self._lock:
            return take_fault(self._faults, self._outage)

    def _allowed(self, client_id: str, name: str, op: str) -> bool:
        with self._lock:
            if self._grants is None:
                return True
            return any(op in self._grants.get((client_id, key), set()) for key in (name, "*"))

    def _handle(self, h: StandInHandler, method: str) -> None:
        url = urlsplit(h.path)
        body = h.read_body() if method == "PUT" else b""
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        name = parts[1] if len(parts) >= 2 else ""
        version = parts[2] if len(parts) == 3 else None
        caller: TokenClaims | None = None
        fault = self._take_fault()
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.status is not None:
            answer = _error(
                fault.status, "ServiceUnavailable" if fault.status >= 500 else "Injected", "Injected."
            )
        else:
            try:
                caller = self._authorize(h)
            except TokenError as exc:
                answer = self._unauthorized(exc)
            else:
                answer = self._answer(method, parts, query=parse_qs(url.query), body=body, caller=caller)
        request_id = str(uuid.uuid4())
        code = answer.payload["error"]["code"] if answer.status >= 400 else None
        with self._lock:
            self._requests.append(
                VaultRequest(
                    method,
                    name,
                    version,
                    answer.status,
                    code,
                    None if caller is None else caller.appid,
                    time.time(),
                )
            )
        h.send_json(answer.status, answer.payload, {"x-ms-request-id": request_id, **answer.headers})

    def _authorize(self, h: StandInHandler) -> TokenClaims:
        scheme, _, token = h.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise TokenError("Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
        claims = self.issuer.verify(token.strip(), AUDIENCE)
        if claims.tid != self.tenant_id:
            raise TokenError("Unauthorized", f"AKV10032: Invalid issuer. Expected one of {self.tenant_id}.")
        return claims

    def _unauthorized(self, exc: TokenError) -> _Answer:
        authority = f"https://login.microsoftonline.com/{self.tenant_id}"
        challenge = f'Bearer authorization="{authority}", resource="{AUDIENCE}"'
        return _Answer(
            401,
            {"error": {"code": "Unauthorized", "message": exc.message}},
            {"WWW-Authenticate": challenge},
        )

    def _answer(
        self, method: str, parts: list[str], *, query: dict[str, list[str]], body: bytes, caller: TokenClaims
    ) -> _Answer:
        if not _API_VERSION.match((query.get("api-version") or [""])[0]):
            return _error(400, "BadParameter", "The request URI contains an invalid or missing api-version.")
        if len(parts) not in (2, 3) or parts[0] != "secrets" or (method == "PUT" and len(parts) != 2):
            return _error(404, "NotFound", "The requested resource was not found.")
        name = parts[1]
        if not _NAME.match(name):
            return _error(400, "BadParameter", "The secret name is invalid: use letters, digits and hyphens.")
        op = WRITE if method == "PUT" else READ
        action = "setSecret" if op == WRITE else "getSecret"
        if not self._allowed(caller.appid, name, op):
            return _Answer(
                403,
                {
                    "error": {
                        "code": "Forbidden",
                        "message": (
                            f"Caller is not authorized to perform action on resource. "
                            f"Caller: appid={caller.appid}; Action: "
                            f"'Microsoft.KeyVault/vaults/secrets/{action}/action'; Vault: {self.vault_url}"
                        ),
                        "innererror": {"code": "ForbiddenByRbac"},
                    }
                },
            )
        if method == "PUT":
            try:
                spec = json.loads(body or b"{}")
            except ValueError:
                spec = None
            if not isinstance(spec, dict) or not isinstance(spec.get("value"), str):
                return _error(
                    400, "BadParameter", "The request body must be a JSON object with a string 'value'."
                )
            content_type = spec.get("contentType") if isinstance(spec.get("contentType"), str) else None
            return _Answer(200, self._bundle(name, self._store(name, spec["value"], content_type)))
        with self._lock:
            versions = list(self._secrets.get(name, []))
        wanted = parts[2] if len(parts) == 3 else None
        found = [v for v in versions if wanted is None or v.version == wanted]
        if not found:
            return _error(
                404,
                "SecretNotFound",
                f"A secret with (name/id) {'/'.join(parts[1:])} was not found in this key vault.",
            )
        return _Answer(200, self._bundle(name, found[-1]))

    def _bundle(self, name: str, version: _Version) -> dict[str, Any]:
        bundle: dict[str, Any] = {
            "value": version.value,
            "id": f"{self.vault_url}/secrets/{name}/{version.version}",
            "attributes": {
                "enabled": True,
                "created": version.created,
                "updated": version.created,
                "recoveryLevel": "Recoverable+Purgeable",
                "recoverableDays": 90,
            },
            "tags": {},
        }
        if version.content_type:
            bundle["contentType"] = version.content_type
        return bundle


def _error(status: int, code: str, message: str) -> _Answer:
    return _Answer(status, {"error": {"code": code, "message": message}})
