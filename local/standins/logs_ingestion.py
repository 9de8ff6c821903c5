"""Azure Monitor Logs Ingestion API stand-in (HTTPS, 127.0.0.1) with fault injection.

Speaks ``POST /dataCollectionRules/{dcrImmutableId}/streams/{stream}?api-version=2023-01-01`` the
way the real service does, as far as public docs, SDK sources and issue threads show:

* bearer token required (issued by the shared ``TokenIssuer``): 401 + ``WWW-Authenticate``;
* 1 MiB (1,048,576 bytes) limit on the body *as sent* (gzipped when gzipped): 413
  ``ContentLengthLimitExceeded`` with Azure's message; set ``max_decompressed_bytes`` to also cap the
  inflated JSON (the docs say "both compressed and uncompressed"; observed behaviour accepts the
  SDK's ~1.05 MB uncompressed chunks, so it is off by default);
* unknown DCR / stream: 404; wrong api-version: 400 ``InvalidApiVersion``; body not JSON or not a
  JSON array: 400 ``InvalidPayload``; empty body: 500 without an error body (as the .NET SDK's live
  tests record);
* success: 204, empty body. Rows whose columns or types do not match the stream declaration are
  dropped silently (recorded in ``.dropped``), as a DCR does; string values over 64 KB
  (65,536 UTF-8 bytes) are cut (recorded in ``.truncated_fields``);
* every response carries ``x-ms-request-id``;
* an optional access map (``allow(dcr, client_id, tenant_id)``): once set, a verified token whose
  (appid, tid) is not allowed on the DCR gets 403 ``OperationFailed``, as Azure answers an
  identity without Monitoring Metrics Publisher on the DCR. No map: every valid token may ingest.

Error codes other than ``ContentLengthLimitExceeded``, ``InvalidApiVersion`` and ``OperationFailed``
(403) are best guesses: the service does not document them. Tests should assert on status codes.

Admin routes for other processes (no token): ``GET /_standin/rows``, ``GET /_standin/requests``,
``POST /_standin/fault`` (JSON ``{status, times, retry_after, code, delay, land, drop, outage}``;
``outage: null`` with no other key clears an outage), ``POST /_standin/reset``,
``POST /_standin/clear``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import json
import threading
import time
import uuid
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from local.standins.identity import DEFAULT_RESOURCE, TokenClaims, TokenError, TokenIssuer
from local.standins.server import StandInHandler, StandInLifecycle, ThreadedServer, owner_of, take_fault

API_VERSION = "2023-01-01"
MAX_BODY_BYTES = 1024 * 1024
MAX_FIELD_BYTES = 64 * 1024
DEFAULT_DCR_ID = "dcr-00000000000000000000000000000000"
_INFLATE_CAP = 64 * 1024 * 1024  # never inflate a gzip bomb past this

# Status -> (code, message) used when a fault is injected without an explicit code.
_DEFAULT_ERRORS: dict[int, tuple[str, str]] = {
    400: ("InvalidPayload", "The request payload is invalid."),
    401: ("InvalidAuthenticationToken", "The access token is invalid."),
    403: (
        "OperationFailed",
        "The authentication token provided does not have access to ingest data for the "
        "data collection rule with immutable Id '{dcr}'.",
    ),
    404: ("NotFound", "Data collection rule with immutable Id '{dcr}' not found."),
    408: ("RequestTimeout", "The request timed out."),
    413: ("ContentLengthLimitExceeded", "Maximum allowed content length: 1048576 bytes (1 MB)."),
    429: ("TooManyRequests", "The request rate limit for data collection rule '{dcr}' was exceeded."),
    500: ("InternalServerError", "An internal server error occurred."),
    502: ("BadGateway", "Bad gateway."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable."),
    504: ("GatewayTimeout", "The gateway timed out."),
}


T = TypeVar("T")


@dataclass(frozen=True)
class RecordedRequest:
    """One ingestion POST as the stand-in saw it (admin routes are not recorded)."""

    status: int
    body: bytes  # exactly as sent (gzipped when Content-Encoding: gzip)
    row_count: int  # rows in the JSON array (0 when it never parsed)
    request_id: str
    time: float
    path: str
    content_encoding: str | None
    client_id: str | None  # appid of the bearer token, when it verified
    fault: str | None  # which injected fault (if any) shaped the answer
    error_code: str | None = None  # ``error.code`` of the answer, when it had one
    tenant_id: str | None = None  # tid of the bearer token, when it verified


@dataclass(frozen=True)
class DroppedRow:
    """A row the DCR dropped (as the real one does, silently), and why."""

    row: Any
    reason: str
    request_id: str


@dataclass(frozen=True)
class TruncatedField:
    """A field the DCR cut to the column's limit."""

    column: str
    original_bytes: int
    kept_bytes: int
    request_id: str


@dataclass
class _Fault:
    status: int | None = None
    times: int = 1
    retry_after: float | None = None
    code: str | None = None
    delay: float = 0.0
    land: bool = False
    drop: bool = False

    def describe(self) -> str:
        parts = [f"status={self.status}"] if self.status else []
        if self.delay:
            parts.append(f"delay={self.delay:g}{' land' if self.land else ''}")
        if self.drop:
            parts.append("drop")
        return " ".join(parts) or "none"


@dataclass
class _Outcome:
    status: int
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    rows: int = 0


def _check_type(value: Any, kind: str) -> bool:
    """Whether a JSON value fits a Log Analytics column type (null fits every type)."""
    if value is None or kind == "dynamic":
        return True
    if kind == "string":
        return isinstance(value, str)
    if kind in ("int", "long"):
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "real":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "datetime":
        if not isinstance(value, str):
            return False
        try:
            dt.datetime.fromisoformat(value)
        except ValueError:
            return False
        return True
    if kind == "guid":
        try:
            uuid.UUID(str(value))
        except ValueError:
            return False
        return isinstance(value, str)
    return False


def _default_columns() -> dict[str, str]:
    from shared.schema import COLUMN_TYPES  # the app's schema: one source for the 11 columns

    return dict(COLUMN_TYPES)


class _Handler(StandInHandler):
    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        owner_of(self)._post(self)

    def do_GET(self) -> None:  # noqa: N802
        owner_of(self)._get(self)


class LogsIngestionStandIn(StandInLifecycle):
    """The Logs Ingestion endpoint of one DCR with one stream declaration.

    ``columns`` maps column name -> Log Analytics type (default: ``shared.schema.COLUMN_TYPES``).
    All recorded lists are appended under a lock; read them through the properties, which copy.
    """

    def __init__(
        self,
        issuer: TokenIssuer,
        *,
        dcr_id: str = DEFAULT_DCR_ID,
        stream: str | None = None,
        columns: Mapping[str, str] | Iterable[str] | None = None,
        audience: str = DEFAULT_RESOURCE,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_decompressed_bytes: int | None = None,
        max_field_bytes: int = MAX_FIELD_BYTES,
        port: int = 0,
    ) -> None:
        if stream is None:
            from shared.schema import STREAM

            stream = STREAM
        if columns is None:
            cols = _default_columns()
        elif isinstance(columns, Mapping):
            cols = dict(columns)
        else:
            cols = dict.fromkeys(columns, "dynamic")
        self.issuer = issuer
        self.dcr_id = dcr_id
        self.stream = stream
        self.column_types: dict[str, str] = cols
        self.audience = audience
        self.max_body_bytes = max_body_bytes
        self.max_decompressed_bytes = max_decompressed_bytes
        self.max_field_bytes = max_field_bytes
        self._server = ThreadedServer(_Handler, self, port=port, use_tls=True)
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self._outage: _Fault | None = None
        self._accepted: list[dict[str, Any]] = []
        self._requests: list[RecordedRequest] = []
        self._dropped: list[DroppedRow] = []
        self._truncated: list[TruncatedField] = []
        # reset() bumps the generation; a request still in flight (e.g. held by inject_delay)
        # from before the reset must not leak its rows or record into the next test.
        self._generation = 0
        self._request_generation: dict[str, int] = {}
        self._access: set[tuple[str, str, str]] | None = None  # (dcr, appid, tid); None: all

    # ---------------------------------------------------------------- public surface

    @property
    def endpoint(self) -> str:
        """``https://127.0.0.1:PORT`` (what ``LogsIngestionClient(endpoint=...)`` takes)."""
        return self._server.base_url

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.column_types)

    def _copy(self, items: list[T]) -> list[T]:
        """A snapshot, taken under the lock the handler threads append under."""
        with self._lock:
            return list(items)

    @property
    def accepted(self) -> list[dict[str, Any]]:
        return self._copy(self._accepted)

    @property
    def requests(self) -> list[RecordedRequest]:
        return self._copy(self._requests)

    @property
    def dropped(self) -> list[DroppedRow]:
        return self._copy(self._dropped)

    @property
    def truncated_fields(self) -> list[TruncatedField]:
        return self._copy(self._truncated)

    def inject(
        self,
        status: int,
        times: int = 1,
        *,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        """Answer the next ``times`` ingestion requests with ``status`` (rows do not land)."""
        self._queue(_Fault(status=status, times=times, retry_after=retry_after, code=code))

    def inject_delay(self, seconds: float, times: int = 1, *, land: bool = True) -> None:
        """Hold the next ``times`` requests ``seconds`` before answering.

        ``land=True``: rows are accepted *before* the wait, then 204 (a client that timed out
        meanwhile has a "timed out but landed" duplicate risk). ``land=False``: nothing lands and
        the connection is closed after the wait (timed out and lost).
        """
        self._queue(_Fault(delay=seconds, times=times, land=land))

    def inject_drop(self, times: int = 1) -> None:
        """Close the next ``times`` connections after reading the request, without answering."""
        self._queue(_Fault(drop=True, times=times))

    def set_outage(self, status: int | None, *, retry_after: float | None = None) -> None:
        """Fail every request with ``status`` until ``set_outage(None)`` (takes precedence)."""
        with self._lock:
            self._outage = None if status is None else _Fault(status=status, retry_after=retry_after)

    def allow(self, dcr_immutable_id: str, client_id: str, tenant_id: str) -> None:
        """Grant one identity (appid ``client_id`` of Entra tenant ``tenant_id``) the role on a DCR.

        The first grant turns the access map on: from then on only granted identities may ingest
        (others get 403, as without Monitoring Metrics Publisher). ``reset()`` turns it off.
        """
        with self._lock:
            if self._access is None:
                self._access = set()
            self._access.add((dcr_immutable_id, client_id, tenant_id))

    def _allowed(self, dcr: str, caller: TokenClaims | None) -> bool:
        with self._lock:
            if self._access is None:
                return True
            return caller is not None and (dcr, caller.appid, caller.tid) in self._access

    def clear(self) -> None:
        """Drop pending faults and any outage (recorded traffic stays)."""
        with self._lock:
            self._faults.clear()
            self._outage = None

    def reset(self) -> None:
        """``clear()`` plus forget accepted rows, requests, drops, truncations and the access map."""
        with self._lock:
            self._generation += 1
            self._access = None
            self._faults.clear()
            self._outage = None
            self._accepted.clear()
            self._requests.clear()
            self._dropped.clear()
            self._truncated.clear()

    def pending_faults(self) -> int:
        with self._lock:
            return sum(f.times for f in self._faults)

    # ---------------------------------------------------------------- internals

    def _queue(self, fault: _Fault) -> None:
        if fault.times < 1:
            raise ValueError("times must be >= 1")
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self) -> _Fault | None:
        with self._lock:
            return take_fault(self._faults, self._outage)

    def _error(
        self,
        status: int,
        code: str | None = None,
        message: str | None = None,
        retry_after: float | None = None,
    ) -> _Outcome:
        default_code, default_message = _DEFAULT_ERRORS.get(status, ("Error", "The request failed."))
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["Retry-After"] = f"{retry_after:g}"
        text = (message or default_message).format(dcr=self.dcr_id)
        return _Outcome(status, {"error": {"code": code or default_code, "message": text}}, headers)

    def _post(self, h: StandInHandler) -> None:
        url = urlsplit(h.path)
        if url.path.startswith("/_standin/"):
            self._admin_post(h, url.path)
            return
        request_id = str(uuid.uuid4())
        with self._lock:
            self._request_generation[request_id] = self._generation
        body = h.read_body()
        encoding = h.headers.get("Content-Encoding")
        fault = self._take_fault()
        caller: TokenClaims | None = None
        try:
            caller = self._authorize(h)
        except TokenError as exc:
            outcome = self._unauthorized(exc)
            if fault is None or fault.status is None:
                self._respond(h, outcome, request_id, body, url.path, encoding, None, fault)
                return

        if fault is not None and fault.status is not None:
            outcome = self._error(fault.status, fault.code, retry_after=fault.retry_after)
            self._respond(h, outcome, request_id, body, url.path, encoding, caller, fault)
            return
        if fault is not None and (fault.drop or fault.delay):
            if fault.land and not fault.drop:
                outcome = self._ingest(url.path, parse_qs(url.query), body, encoding, request_id, caller)
                time.sleep(fault.delay)
                self._respond(h, outcome, request_id, body, url.path, encoding, caller, fault)
                return
            time.sleep(fault.delay)
            self._record(
                RecordedRequest(
                    0,
                    body,
                    0,
                    request_id,
                    time.time(),
                    url.path,
                    encoding,
                    None if caller is None else caller.appid,
                    fault.describe(),
                    tenant_id=None if caller is None else caller.tid,
                )
            )
            h.drop_connection()
            return
        outcome = self._ingest(url.path, parse_qs(url.query), body, encoding, request_id, caller)
        self._respond(h, outcome, request_id, body, url.path, encoding, caller, None)

    def _respond(
        self,
        h: StandInHandler,
        outcome: _Outcome,
        request_id: str,
        body: bytes,
        path: str,
        encoding: str | None,
        caller: TokenClaims | None,
        fault: _Fault | None,
    ) -> None:
        code = None
        if isinstance(outcome.payload, dict) and isinstance(outcome.payload.get("error"), dict):
            code = outcome.payload["error"].get("code")
        self._record(
            RecordedRequest(
                outcome.status,
                body,
                outcome.rows,
                request_id,
                time.time(),
                path,
                encoding,
                None if caller is None else caller.appid,
                None if fault is None else fault.describe(),
                code,
                None if caller is None else caller.tid,
            )
        )
        headers = {"x-ms-request-id": request_id, **outcome.headers}
        h.send_json(outcome.status, outcome.payload, headers)

    def _current(self, request_id: str, *, done: bool = False) -> bool:
        """Whether the request started after the last reset (call with the lock held)."""
        table = self._request_generation
        gen = table.pop(request_id, None) if done else table.get(request_id)
        return gen == self._generation

    def _record(self, rec: RecordedRequest) -> None:
        with self._lock:
            if self._current(rec.request_id, done=True):
                self._requests.append(rec)

    def _authorize(self, h: StandInHandler) -> TokenClaims:
        auth = h.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise TokenError("InvalidAuthenticationToken", "An authentication token was not provided.")
        return self.issuer.verify(token.strip(), self.audience)

    def _unauthorized(self, exc: TokenError) -> _Outcome:
        outcome = self._error(401, exc.code, exc.message)
        outcome.headers["WWW-Authenticate"] = (
            f'Bearer authorization_uri="https://login.microsoftonline.com/{self.issuer.tenant_id}", '
            f'error="invalid_token", error_description="{exc.message}"'
        )
        return outcome

    def _ingest(
        self,
        path: str,
        query: dict[str, list[str]],
        body: bytes,
        encoding: str | None,
        request_id: str,
        caller: TokenClaims | None,
    ) -> _Outcome:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if len(parts) != 4 or parts[0] != "dataCollectionRules" or parts[2] != "streams":
            return self._error(404, "NotFound", "The requested resource was not found.")
        dcr, stream = parts[1], parts[3]
        if dcr != self.dcr_id:
            return self._error(404, "NotFound", f"Data collection rule with immutable Id '{dcr}' not found.")
        if not self._allowed(dcr, caller):
            return self._error(403)
        if stream != self.stream:
            return self._error(
                404, "InvalidStream", f"Stream '{stream}' is not declared in data collection rule '{dcr}'."
            )
        version = (query.get("api-version") or [""])[0]
        if version != API_VERSION:
            return self._error(
                400, "InvalidApiVersion", f"The api version is invalid. Allowed Api versions: {API_VERSION}."
            )
        if len(body) > self.max_body_bytes:
            return self._too_large(len(body))
        if not body:
            return _Outcome(500)
        if encoding is not None and encoding.lower() == "gzip":
            try:
                inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                raw = inflater.decompress(body, _INFLATE_CAP)
                if inflater.unconsumed_tail:
                    return self._too_large(_INFLATE_CAP)
            except zlib.error:
                return self._error(400, "InvalidContentEncoding", "The request body is not valid gzip.")
        elif encoding:
            return self._error(400, "InvalidContentEncoding", f"Unsupported Content-Encoding '{encoding}'.")
        else:
            raw = body
        if self.max_decompressed_bytes is not None and len(raw) > self.max_decompressed_bytes:
            return self._too_large(len(raw))
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return self._error(400, "InvalidPayload", "The request body is not valid UTF-8 JSON.")
        if not isinstance(data, list):
            return self._error(400, "InvalidPayload", "The request body must be a JSON array of objects.")
        self._accept_rows(data, request_id)
        return _Outcome(204, rows=len(data))

    def _too_large(self, size: int) -> _Outcome:
        return self._error(
            413,
            "ContentLengthLimitExceeded",
            f"Maximum allowed content length: {self.max_body_bytes} bytes (1 MB). "
            f"Provided content length: {size} bytes.",
        )

    def _accept_rows(self, rows: list[Any], request_id: str) -> None:
        accepted: list[dict[str, Any]] = []
        dropped: list[DroppedRow] = []
        truncated: list[TruncatedField] = []
        for row in rows:
            reason = self._row_problem(row)
            if reason is not None:
                dropped.append(DroppedRow(row, reason, request_id))
                continue
            clean: dict[str, Any] = {}
            for name, value in row.items():
                if isinstance(value, str):
                    encoded = value.encode("utf-8")
                    if len(encoded) > self.max_field_bytes:
                        value = encoded[: self.max_field_bytes].decode("utf-8", errors="ignore")
                        truncated.append(
                            TruncatedField(name, len(encoded), len(value.encode("utf-8")), request_id)
                        )
                clean[name] = value
            accepted.append(clean)
        with self._lock:
            if not self._current(request_id):
                return
            self._accepted.extend(accepted)
            self._dropped.extend(dropped)
            self._truncated.extend(truncated)

    def _row_problem(self, row: Any) -> str | None:
        if not isinstance(row, dict):
            return f"row is {type(row).__name__}, not an object"
        unknown = sorted(set(row) - set(self.column_types))
        if unknown:
            return f"unknown columns: {', '.join(unknown)}"
        for name, value in row.items():
            kind = self.column_types[name]
            if not _check_type(value, kind):
                return f"column {name}: {type(value).__name__} is not {kind}"
        return None

    # ---------------------------------------------------------------- admin surface

    def _get(self, h: StandInHandler) -> None:
        path = urlsplit(h.path).path
        headers = {"x-ms-request-id": str(uuid.uuid4())}
        if path == "/_standin/rows":
            h.send_json(200, self.accepted, headers)
        elif path == "/_standin/requests":
            summary = [
                {k: v for k, v in asdict(r).items() if k != "body"} | {"body_bytes": len(r.body)}
                for r in self.requests
            ]
            h.send_json(200, summary, headers)
        elif path == "/_standin/state":
            h.send_json(
                200,
                {
                    "endpoint": self.endpoint,
                    "dcr_id": self.dcr_id,
                    "stream": self.stream,
                    "accepted": len(self.accepted),
                    "requests": len(self.requests),
                    "dropped": [{"reason": d.reason} for d in self.dropped],
                    "truncated": [asdict(t) for t in self.truncated_fields],
                    "pending_faults": self.pending_faults(),
                },
                headers,
            )
        else:
            h.send_json(404, {"error": {"code": "NotFound", "message": "No such route."}}, headers)

    def _admin_post(self, h: StandInHandler, path: str) -> None:
        headers = {"x-ms-request-id": str(uuid.uuid4())}
        raw = h.read_body()
        if path == "/_standin/reset":
            self.reset()
            h.send_json(204, None, headers)
            return
        if path == "/_standin/clear":
            self.clear()
            h.send_json(204, None, headers)
            return
        if path != "/_standin/fault":
            h.send_json(404, {"error": {"code": "NotFound", "message": "No such route."}}, headers)
            return
        try:
            spec = json.loads(raw or b"{}")
            self._apply_fault_spec(spec)
        except (ValueError, TypeError) as exc:
            h.send_json(400, {"error": {"code": "InvalidFault", "message": str(exc)}}, headers)
            return
        h.send_json(204, None, headers)

    def _apply_fault_spec(self, spec: Any) -> None:
        if not isinstance(spec, dict):
            raise ValueError("fault spec must be a JSON object")
        times = int(spec.get("times", 1))
        retry_after = spec.get("retry_after")
        retry = None if retry_after is None else float(retry_after)
        if "outage" in spec:
            outage = spec["outage"]
            self.set_outage(None if outage is None else int(outage), retry_after=retry)
        elif spec.get("drop"):
            self.inject_drop(times)
        elif spec.get("delay"):
            self.inject_delay(float(spec["delay"]), times, land=bool(spec.get("land", True)))
        elif spec.get("status") is not None:
            self.inject(int(spec["status"]), times, retry_after=retry, code=spec.get("code"))
        else:
            raise ValueError("fault spec needs one of status, delay, drop, outage")


def gzip_rows(rows: list[dict[str, Any]]) -> bytes:
    """Gzip a JSON array the way the SDK does (handy for raw-HTTP tests and benchmarks)."""
    return gzip.compress(json.dumps(rows).encode("utf-8"))


def main(argv: list[str] | None = None) -> int:
    """Serve the managed identity + ingestion stand-ins until Ctrl-C (for the local runner/bench).

    Prints one JSON line with the endpoint, DCR, stream, CA path and the App Service env vars, so a
    separate process can point the relay at them and drive faults through ``/_standin/``.
    """
    import argparse
    import signal

    from local.standins import tls
    from local.standins.identity import ManagedIdentityStandIn

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=0, help="ingestion HTTPS port (default: ephemeral)")
    parser.add_argument("--identity-port", type=int, default=0, help="managed identity HTTP port")
    parser.add_argument("--dcr-id", default=DEFAULT_DCR_ID)
    parser.add_argument("--identity-secret", default=None, help="IDENTITY_HEADER value (default: random)")
    args = parser.parse_args(argv)

    issuer = TokenIssuer()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with (
        ManagedIdentityStandIn(issuer, secret=args.identity_secret, port=args.identity_port) as identity,
        LogsIngestionStandIn(issuer, dcr_id=args.dcr_id, port=args.port) as ingestion,
    ):
        info = {
            "endpoint": ingestion.endpoint,
            "dcr_id": ingestion.dcr_id,
            "stream": ingestion.stream,
            "ca_bundle": tls.ca_bundle_path(),
            **identity.env(),
        }
        print(json.dumps(info), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
