"""The few Wallarm API calls reconciliation and the watchdog use (each listed below).

- `POST /v1/user` {} -> `body.client_id` (when WALLARM_CLIENT_ID is not set);
- `POST /v1/objects/hit`: hits of a time window (Unix seconds), experimental hits filtered out
  (`"!experimental": true`, as the webhook never sends them), paged by offset, oldest first;
- `GET /v2/integration?clientid=` and `PUT /v2/integration/{id}` with `{"active": true}`.

Auth is the `X-WallarmAPI-Token` header. 429 and 5xx are retried here with wallarm-go's backoff
(1 s doubling, 30 s cap; `Retry-After` honoured) a bounded number of times; 401/403 are not.
Nothing here logs a token, a body or an id.

Bounds (shared/settings.py `WallarmApiLimits`), because the server may be flaky, a proxy broken, or
the URL pointed at a stranger:
- HTTPS only, except a loopback host (stand-ins), judged on the parsed host; no user info.
- No redirect is followed: a 30x is a `WallarmApiError`, so the token goes to one host only.
- Each HTTP exchange has a total deadline (a timer shuts the socket at it: a server dripping one
  byte at a time cannot stretch it), each call (pages and retries) another; the body is read in
  chunks and dropped past a size cap; a window stops after a number of pages or bytes, and when a
  full page brings no hit id not seen before (an API that ignores the offset).
- Any answer of the wrong shape is a `WallarmApiError` (logged without content): one malformed
  integration in the list is skipped and counted, the rest are used.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

from shared.completeness.api_hits import hit_key
from shared.settings import WallarmApiLimits
from shared.wallarm_cloud import api_url_problem, is_loopback

log = logging.getLogger(__name__)

TOKEN_HEADER: Final[str] = "X-WallarmAPI-Token"
HIT_PAGE_SIZE: Final[int] = 500  # what Wallarm's Terraform provider uses
_RETRIED: Final[frozenset[int]] = frozenset({408, 423, 429, 500, 502, 503, 504})
_CHUNK: Final[int] = 64 * 1024
_WORDS: Final = re.compile(r"[A-Za-z][A-Za-z ]{0,39}")
DEFAULT_LIMITS: Final[WallarmApiLimits] = WallarmApiLimits()


class WallarmApiError(Exception):
    """A call failed for good: `status` is the HTTP status (None: no answer)."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status

    @property
    def forbidden(self) -> bool:
        return self.status in (401, 403)


def _malformed(what: str) -> WallarmApiError:
    return WallarmApiError(200, f"{what}: the answer has an unexpected shape")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Integration:
    """One integration as `GET /v2/integration` returns it (the fields the watchdog reads)."""

    id: int
    type: str
    name: str
    active: bool
    url: str
    http_method: str
    format: str
    events: Mapping[str, bool]  # event name -> active

    @classmethod
    def from_api(cls, obj: Any) -> Integration:
        """Strict: a field of the wrong type is a `WallarmApiError`, never a guess (a wrong guess
        about `active` or `url` would make the watchdog act on someone else's integration)."""
        if not isinstance(obj, Mapping) or not _is_int(obj.get("id")) or obj["id"] <= 0:
            raise _malformed("integration")
        target = obj.get("target", {})
        events = obj.get("events", [])
        if target is None:
            target = {}
        if events is None:
            events = []
        if not isinstance(target, Mapping) or not isinstance(events, list):
            raise _malformed("integration")
        texts = {
            "type": obj.get("type"),
            "name": obj.get("name"),
            "url": target.get("url"),
            "http_method": target.get("http_method"),
            "format": target.get("format"),
        }
        if any(v is not None and not isinstance(v, str) for v in texts.values()):
            raise _malformed("integration")
        if not isinstance(obj.get("active"), bool):
            raise _malformed("integration")
        parsed: dict[str, bool] = {}
        for event in events:
            if (
                not isinstance(event, Mapping)
                or not isinstance(event.get("event"), str)
                or not isinstance(event.get("active", False), bool)
            ):
                raise _malformed("integration")
            parsed[event["event"]] = bool(event.get("active", False))
        return cls(
            id=obj["id"],
            type=texts["type"] or "",
            name=texts["name"] or "",
            active=obj["active"],
            url=texts["url"] or "",
            http_method=texts["http_method"] or "",
            format=texts["format"] or "",
            events=parsed,
        )

    def snapshot(self) -> dict[str, Any]:
        """What the watchdog compares between runs. No secrets: headers are left out, and so is
        the URL's query (`?code=<function key>`), which may rotate without breaking anything."""
        return {
            "id": self.id,
            "active": self.active,
            "name": self.name,
            "url": self.url.split("?", 1)[0],
            "http_method": self.http_method,
            "format": self.format,
            "events": dict(sorted(self.events.items())),
        }


class _Deadline:
    """Shuts the exchange's socket when its time is up, whatever phase it is in (connect, TLS,
    headers, a body dripped one byte at a time): a per-read timeout alone never ends a drip."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(seconds, 0.0), self._cut)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            self._socket = sock
            expired = self.expired
        if expired:
            self._shut(sock)

    def _cut(self) -> None:
        with self._lock:
            self.expired = True
            sock = self._socket
        if sock is not None:
            self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            return


def _connection(base: type[http.client.HTTPConnection], deadline: _Deadline) -> Any:
    class Connection(base):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # The TCP socket, before TLS: a handshake dripped byte by byte ends at the deadline too.
            self._create_connection = self._attached

        @staticmethod
        def _attached(*args: Any, **kwargs: Any) -> socket.socket:
            sock = socket.create_connection(*args, **kwargs)
            deadline.attach(sock)
            return sock

    return Connection


class _Http(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_connection(http.client.HTTPConnection, self._deadline), req)


class _Https(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__(context=ssl.create_default_context())
        self._deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(
            _connection(http.client.HTTPSConnection, self._deadline),
            req,
            context=self._context,  # type: ignore[attr-defined]
        )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A 30x comes back as itself (an HTTPError): following it would send the token elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WallarmApi:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float | None = None,
        max_retries: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        limits: WallarmApiLimits = DEFAULT_LIMITS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        why = api_url_problem(base_url)
        if why is not None:
            raise ValueError(f"the Wallarm API URL must be an https:// URL: {why}")
        self.base_url = base_url.rstrip("/")
        # A loopback stand-in is never reached through a proxy (plain http would hand it the token).
        self._proxies: dict[str, str] | None = {} if is_loopback(urlsplit(base_url).hostname or "") else None
        self._token = token
        self.limits = limits if timeout is None else _with_request_seconds(limits, timeout)
        self.max_retries = max_retries
        self.sleep = sleep
        self.monotonic = monotonic
        self._client_id: int | None = None
        self.calls = 0  # HTTP requests sent, retries included (the cost the README states)
        self.pages = 0  # hit pages read by the last `hits` call

    # -- endpoints --------------------------------------------------------------------------
    def client_id(self) -> int:
        """The token's client id, asked once per instance."""
        if self._client_id is None:
            body, _ = self._call("POST", "/v1/user", {}, self._until())
            client = body.get("client_id") if isinstance(body, Mapping) else None
            if not isinstance(client, int) or isinstance(client, bool) or client <= 0:
                raise WallarmApiError(200, "POST /v1/user: no client_id in the answer")
            self._client_id = client
        return self._client_id

    def hits(
        self, client_id: int, start: int, end: int, *, page_size: int = HIT_PAGE_SIZE
    ) -> list[dict[str, Any]]:
        """Every non-experimental hit with `start <= time <= end` (Unix seconds), oldest first.

        Sorted ascending by time, so hits arriving during paging land on later pages instead of
        shifting the ones already read; a hit seen twice is kept once (by its `id` pair). Items
        that are not objects are skipped (counted in a log line); a full page without a new id,
        more than `limits.pages` pages or `limits.window_bytes` bytes, or the call's deadline
        end the call with a `WallarmApiError` (the window is then recorded failed, not done)."""
        limits = self.limits
        until = self._until()
        hits: list[dict[str, Any]] = []
        seen: set[str] = set()
        offset = skipped = size = 0
        self.pages = 0
        while True:
            if self.pages >= limits.pages:
                raise WallarmApiError(
                    200,
                    f"POST /v1/objects/hit: more than {limits.pages} pages ({limits.pages * page_size} hits) "
                    "in one window; stopped",
                )
            request = {
                "filter": {"clientid": [client_id], "time": [[start, end]], "!experimental": True},
                "limit": page_size,
                "offset": offset,
                "order_by": "time",
                "order_desc": False,
            }
            page, nbytes = self._call("POST", "/v1/objects/hit", request, until)
            self.pages += 1
            size += nbytes
            if not isinstance(page, list):
                raise _malformed("POST /v1/objects/hit")
            new = 0
            for hit in page:
                if not isinstance(hit, dict):
                    skipped += 1
                    continue
                key = hit_key(hit.get("id"))
                if key is not None:
                    if key in seen:
                        continue
                    seen.add(key)
                    new += 1
                hits.append(hit)  # without an id pair: the reconciler counts and skips it
            if len(page) < page_size:
                break
            if new == 0:
                raise WallarmApiError(
                    200, "POST /v1/objects/hit: a full page brought no new hit id (offset ignored?); stopped"
                )
            if size > limits.window_bytes:
                raise WallarmApiError(
                    200, f"POST /v1/objects/hit: more than {limits.window_bytes} bytes in one window; stopped"
                )
            offset += page_size
        if skipped:
            log.warning("Wallarm API POST /v1/objects/hit: %d items not objects, skipped", skipped)
        return hits

    def integrations(self, client_id: int) -> list[Integration]:
        return self.read_integrations(client_id)[0]

    def read_integrations(self, client_id: int) -> tuple[list[Integration], int]:
        """The integrations, and how many were skipped as malformed (never their content)."""
        path = "/v2/integration?" + urlencode({"clientid": client_id})
        body, _ = self._call("GET", path, None, self._until())
        objects = body.get("object") if isinstance(body, Mapping) else None
        if not isinstance(objects, list):
            raise WallarmApiError(200, "GET /v2/integration: no object list in the answer")
        found: list[Integration] = []
        malformed = 0
        for obj in objects:
            try:
                found.append(Integration.from_api(obj))
            except WallarmApiError:
                malformed += 1
        if malformed:
            log.warning("Wallarm API GET /v2/integration: %d malformed integrations skipped", malformed)
        return found, malformed

    def enable_integration(self, integration_id: int) -> None:
        self._call("PUT", f"/v2/integration/{int(integration_id)}", {"active": True}, self._until())

    # -- transport --------------------------------------------------------------------------
    def _until(self) -> float:
        return self.monotonic() + self.limits.call_seconds

    def _call(self, method: str, path: str, payload: Any, until: float) -> tuple[Any, int]:
        """The answer's `body` (Wallarm wraps answers as {"status": …, "body": …}) and its size."""
        name = f"{method} {path.split('?')[0]}"
        delay = 1.0
        for attempt in range(self.max_retries + 1):
            left = until - self.monotonic()
            if left <= 0:
                raise WallarmApiError(None, f"{name}: no answer within {self.limits.call_seconds:g} s")
            status, headers, body = self._send(method, path, payload, min(left, self.limits.request_seconds))
            if status is not None and 200 <= status < 300:
                envelope = _json(body, name)
                return (envelope.get("body") if isinstance(envelope, Mapping) else envelope), len(body)
            retryable = status is None or status in _RETRIED
            if not retryable or attempt == self.max_retries:
                raise WallarmApiError(status, f"{name}: {_reason(status, body)}")
            wait = min(_retry_after(headers) or delay, 30.0)
            if self.monotonic() + wait >= until:
                raise WallarmApiError(status, f"{name}: {_reason(status, body)}; no time left to retry")
            log.warning("Wallarm API %s answered %s; retrying in %.0f s", name, status, wait)
            self.sleep(wait)
            delay = min(delay * 2, 30.0)
        raise AssertionError("unreachable")

    def _send(
        self, method: str, path: str, payload: Any, seconds: float
    ) -> tuple[int | None, Mapping[str, str], bytes]:
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={TOKEN_HEADER: self._token, "Accept": "application/json"}
            | ({"Content-Type": "application/json"} if data is not None else {}),
        )
        self.calls += 1
        name = f"{method} {path.split('?')[0]}"
        with _Deadline(seconds) as deadline:
            handlers: list[urllib.request.BaseHandler] = [_Http(deadline), _Https(deadline), _NoRedirect()]
            if self._proxies is not None:
                handlers.append(urllib.request.ProxyHandler(self._proxies))
            opener = urllib.request.build_opener(*handlers)
            try:
                with opener.open(request, timeout=seconds) as response:
                    return response.status, dict(response.headers), self._read(response, deadline, name)
            except urllib.error.HTTPError as err:
                with err:
                    try:
                        body = self._read(err, deadline, name)
                    except (WallarmApiError, OSError, http.client.HTTPException):
                        body = b""  # an error's body is only for its reason: never needed
                    return err.code, dict(err.headers or {}), body
            except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
                why = "deadline" if deadline.expired else type(err).__name__
                log.warning("Wallarm API %s unreachable: %s", name, why)
                return None, {}, b""

    def _read(self, response: Any, deadline: _Deadline, name: str) -> bytes:
        """The body in chunks, stopped at the size cap; a body cut by the deadline is no body."""
        cap = self.limits.answer_bytes
        length = response.headers.get("Content-Length")
        # isdigit() alone admits "²" (a latin-1 header byte), which int() refuses.
        if length is not None and length.strip().isascii() and length.strip().isdigit() and int(length) > cap:
            raise WallarmApiError(None, f"{name}: the answer is larger than {cap} bytes")
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = response.read1(_CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if total > cap:
                raise WallarmApiError(None, f"{name}: the answer is larger than {cap} bytes")
            chunks.append(chunk)
        if deadline.expired:
            raise TimeoutError  # cut short: no answer, retried like any other timeout
        return b"".join(chunks)


def _with_request_seconds(limits: WallarmApiLimits, seconds: float) -> WallarmApiLimits:
    from dataclasses import replace

    return replace(limits, request_seconds=seconds)


def _json(body: bytes, name: str) -> Any:
    try:
        return json.loads(body or b"null")
    except (ValueError, RecursionError) as err:
        raise WallarmApiError(200, f"{name}: the answer is not JSON") from err


def _reason(status: int | None, body: bytes) -> str:
    if status is None:
        return "no answer (connection failed or timed out)"
    if status == 401:
        return "401: the token was refused (WALLARM_API_TOKEN wrong, expired or disabled)"
    if status == 403:
        return "403: the token's role may not do this (integrations need an Administrator token)"
    if 300 <= status < 400:
        return f"{status}: a redirect, not followed (the token goes to WALLARM_API_URL's host only)"
    try:
        envelope = json.loads(body or b"null")
    except (ValueError, RecursionError):
        envelope = None
    detail = envelope.get("body") if isinstance(envelope, Mapping) else None
    # Wallarm's error bodies are fixed words ("Not found", "Already exists"): only such words are
    # kept, so a hostile server cannot write its own text (a fake log line, a value) into logs.
    if isinstance(detail, str) and _WORDS.fullmatch(detail):
        return f"{status} {detail}"
    return str(status)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                seconds = float(value)
            except ValueError:
                return None
            return max(0.0, seconds) if seconds == seconds else None  # NaN is no answer
    return None
