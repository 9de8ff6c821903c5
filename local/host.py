"""A small stand-in for the Functions host: serves `function_app.app` over real HTTP.

It reads the functions the way the host indexes them (`app.get_functions()`), routes
`/api/<route>` to HTTP triggers (with `{name}` / `{name:alpha}` route parameters), checks auth
levels against local keys, and runs timer triggers on their NCRONTAB schedules. It exists because
Core Tools cannot be installed here; `func start` works too for those who have it.

Its front end frames requests as strictly as Kestrel (the Functions host's web server) does, so
that what passes here passes there and nothing is smuggled: one Content-Length or one
`Transfer-Encoding: chunked` (411: send a length), never both, never two; header lines checked
before the stdlib parses them; a deadline for the request head, a minimum body data rate, and a cap
on connections. What the platform answers itself (401 without a key, 404 for an unknown route or a
method the route does not take) has an empty body, as there.
"""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from local.ncrontab import Schedule

log = logging.getLogger("local.host")

LISTEN_BACKLOG = 1024
"""Connections the kernel holds before accept(): Wallarm and load tests send bursts (stdlib: 5)."""
HEADERS_TIMEOUT_SECONDS = 30.0
"""Kestrel's RequestHeadersTimeout: the request line and headers must be in within 30 s -> 408."""
MIN_BODY_RATE = 240.0
MIN_BODY_RATE_GRACE_SECONDS = 5.0
"""Kestrel's MinRequestBodyDataRate: after 5 s a body slower than 240 bytes/s on average -> 408."""
REQUEST_DEADLINE_SECONDS = 120.0
"""The whole request (head and body) must be in within this, whatever its rate (local guard: a
body trickled at 240 B/s would otherwise hold a thread for days)."""
KEEP_ALIVE_TIMEOUT_SECONDS = 130.0
"""Kestrel's KeepAliveTimeout: an idle connection between two requests is closed, unanswered."""
MAX_CONNECTIONS = 256
"""Connections served at once (one thread each); more are answered 503 and closed at accept,
without a thread. Above the 200-post bursts that tests and load tests send."""
CONNECTION_THREAD = "local-host-connection"
"""The name of each connection's thread (what tests and bench count)."""
MAX_REQUEST_BYTES = 100 * 1024 * 1024
"""The Functions host's own request size limit (100 MB): larger bodies get 413 without being read."""
MAX_REQUEST_LINE_BYTES = 8 * 1024
MAX_HEADER_BYTES = 32 * 1024
MAX_HEADERS = 100
"""Kestrel's MaxRequestLineSize, MaxRequestHeadersTotalSize and MaxRequestHeaderCount."""
_DIGITS = re.compile(r"[0-9]{1,19}")
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_REQUEST_LINE = re.compile(rf"{_TOKEN} [\x21-\x7e\x80-\xff]+ HTTP/[0-9]\.[0-9]\r?\n".encode())
_HEADER_LINE = re.compile(rf"{_TOKEN}:[\t\x20-\x7e\x80-\xff]*\r?\n".encode())
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9/_.~-]{0,200}")
_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"})


def _json_error(status: int, reason: str, code: str, message: str, extra: str = "") -> bytes:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n{extra}"
        f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


class _Server(ThreadingHTTPServer):
    """One thread per connection, at most `max_connections` of them: the rest are answered 503
    from the accept loop (a non-blocking send, no thread) and closed."""

    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True
    block_on_close = False  # stop() must not wait out an idle keep-alive (130 s) or a slow client

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], max_connections: int
    ) -> None:
        self._slots = threading.BoundedSemaphore(max_connections)
        self._busy = _json_error(
            503,
            "Service Unavailable",
            "too_many_connections",
            f"the local host serves {max_connections} connections at once; retry",
            "Retry-After: 1\r\n",
        )
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("Connection refused by the local host: 503 too_many_connections")
            with suppress(OSError):
                request.setblocking(False)
                with suppress(BlockingIOError):
                    request.recv(65536)  # what already arrived: closing over unread data resets
                request.send(self._busy)
            self.shutdown_request(request)
            return
        try:
            thread = threading.Thread(
                target=self.process_request_thread,
                args=(request, client_address),
                name=CONNECTION_THREAD,
                daemon=True,
            )
            thread.start()
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _DeadlineReader(io.RawIOBase):
    """The socket as a raw stream whose every read ends by `deadline` (monotonic seconds): a
    client that sends one byte at a time cannot stretch a socket timeout forever."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self.deadline = time.monotonic()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline passed")
        self._sock.settimeout(remaining)
        return self._sock.recv_into(buffer)


class _Refused(Exception):
    """The front end answers before the function: malformed framing, slow or oversized bodies."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class HttpFunction:
    name: str
    pattern: re.Pattern[str]
    methods: frozenset[str]
    auth_level: str
    handler: Callable[[func.HttpRequest], func.HttpResponse]


@dataclass(frozen=True)
class TimerFunction:
    name: str
    schedule: str
    handler: Callable[[Any], None]


def _route_pattern(route: str) -> re.Pattern[str]:
    def param(match: re.Match[str]) -> str:
        name, _, constraint = match.group(1).partition(":")
        body = "[A-Za-z]+" if constraint == "alpha" else "[^/]+"
        return f"(?P<{name}>{body})"

    return re.compile("^" + re.sub(r"\{([^}]+)\}", param, route.strip("/")) + "$")


def index(app: func.FunctionApp) -> tuple[list[HttpFunction], list[TimerFunction]]:
    http: list[HttpFunction] = []
    timers: list[TimerFunction] = []
    for fn in app.get_functions():
        trigger_binding = fn.get_trigger()
        if trigger_binding is None:
            continue
        trigger = trigger_binding.get_dict_repr()
        user = fn.get_user_function()
        name = str(fn.get_function_name())
        if trigger["type"] == "httpTrigger":
            methods = frozenset(str(getattr(m, "value", m)).upper() for m in trigger.get("methods") or [])
            level = str(getattr(trigger.get("authLevel"), "value", trigger.get("authLevel"))).lower()
            route = str(trigger.get("route") or name)
            http.append(HttpFunction(name, _route_pattern(route), methods, level, user))
        elif trigger["type"] == "timerTrigger":
            timers.append(TimerFunction(name, trigger["schedule"], user))
    # Literal routes before parameterised ones, as the host does.
    http.sort(key=lambda f: f.pattern.pattern.count("(?P<"))
    return http, timers


class LocalHost:
    """Serves HTTP triggers on 127.0.0.1; `function_key` and `master_key` play the host's keys."""

    def __init__(
        self,
        app: func.FunctionApp,
        *,
        port: int = 7071,
        function_key: str,
        master_key: str,
        headers_timeout: float = HEADERS_TIMEOUT_SECONDS,
        min_body_rate: float = MIN_BODY_RATE,
        min_body_rate_grace: float = MIN_BODY_RATE_GRACE_SECONDS,
        request_deadline: float = REQUEST_DEADLINE_SECONDS,
        keep_alive_timeout: float = KEEP_ALIVE_TIMEOUT_SECONDS,
        max_connections: int = MAX_CONNECTIONS,
        max_request_bytes: int = MAX_REQUEST_BYTES,
    ) -> None:
        self.http, self.timers = index(app)
        self.function_key = function_key
        self.master_key = master_key
        self.headers_timeout = headers_timeout
        self.min_body_rate = min_body_rate
        self.min_body_rate_grace = min_body_rate_grace
        self.request_deadline = request_deadline
        self.keep_alive_timeout = keep_alive_timeout
        self.max_request_bytes = max_request_bytes
        self._server = _Server(("127.0.0.1", port), self._handler_class(), max_connections)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:  # shutdown() waits for a serve_forever() that must have started
            self._server.shutdown()
        self._server.server_close()

    def run_timer(self, name: str) -> None:
        timer = next(t for t in self.timers if t.name == name)
        timer.handler(_TimerRequest())

    def start_timer(self, name: str, schedule: Schedule) -> threading.Thread:
        """Run a timer function at each occurrence of its NCRONTAB schedule (UTC), as the host
        does: never two runs at once, and occurrences missed while a run lasts are skipped. A
        failing run is logged once per kind of error, and while it keeps failing the next run
        waits at least 2, 4, 8 … (up to 300) seconds, so a sub-minute schedule cannot spin."""

        def now() -> datetime:
            return datetime.now(UTC)

        def loop() -> None:
            failures = 0
            last_error = ""
            after = now()
            while True:
                due = next_run(schedule, after, failures)
                if self._stop.wait(max((due - now()).total_seconds(), 0.0)):
                    return
                try:
                    self.run_timer(name)
                    failures, last_error = 0, ""
                except Exception as err:  # noqa: BLE001 - a failing timer run is logged, the host keeps going
                    failures += 1
                    if type(err).__name__ != last_error:
                        last_error = type(err).__name__
                        log.exception("Timer %s failed (backing off while it keeps failing)", name)
                after = max(now(), due)

        thread = threading.Thread(target=loop, name=f"timer-{name}", daemon=True)
        thread.start()
        return thread

    def _authorised(self, level: str, headers: dict[str, str], query: dict[str, str]) -> bool:
        given = headers.get("x-functions-key") or query.get("code", "")
        if level == "anonymous":
            return True
        if level == "admin":
            return given == self.master_key
        return given in (self.function_key, self.master_key)

    def dispatch(
        self, method: str, raw_url: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Route as the host does. What the host answers itself has an empty body: 404 for no
        route (a route that does not take the method is no route: the host's routing answers
        404, not 405), 401 for a missing or wrong key."""
        parts = urlsplit(raw_url)
        path = parts.path
        if not path.startswith("/api/"):
            return 404, {}, b""
        query = dict(parse_qsl(parts.query))
        route = path[len("/api/") :].strip("/")
        for fn in self.http:
            match = fn.pattern.match(route)
            if not match or (fn.methods and method not in fn.methods):
                continue  # like the host: another route may take this path and method
            if not self._authorised(fn.auth_level, headers, query):
                return 401, {}, b""
            req = func.HttpRequest(
                method=method,
                url=raw_url,
                headers=headers,
                params=query,
                route_params=match.groupdict(),
                body=body,
            )
            resp = fn.handler(req)
            out_headers = dict(resp.headers.items())
            if resp.mimetype:
                out_headers.setdefault("Content-Type", resp.mimetype)
            return resp.status_code, out_headers, resp.get_body()
        return 404, {}, b""

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = None  # each read has its own deadline (_DeadlineReader)
            _reader: _DeadlineReader
            _stream: io.BufferedReader
            _request_deadline = 0.0
            _served = 0

            def setup(self) -> None:
                super().setup()
                self.rfile.close()  # the stdlib's reader holds a reference that keeps the socket open
                self._reader = _DeadlineReader(self.connection)
                self._stream = io.BufferedReader(self._reader)
                self.rfile = self._stream

            def handle_one_request(self) -> None:
                """One request, framed strictly; any refusal closes the connection."""
                self.close_connection = True
                started = time.monotonic()
                # A new connection has the head's deadline from accept; a kept-alive one may idle.
                self._reader.deadline = started + (
                    host.keep_alive_timeout if self._served else host.headers_timeout
                )
                try:
                    if not self._stream.peek(1):
                        return  # the client closed
                except (TimeoutError, OSError):
                    return  # idle: closed unanswered, as Kestrel does
                if self._served:
                    started = time.monotonic()
                    self._reader.deadline = started + host.headers_timeout
                self._served += 1
                self._request_deadline = started + host.request_deadline
                self.command, self.path, self.request_version = "", "", "HTTP/1.1"
                try:
                    self._read_head()
                    body = self._read_body()
                except _Answered:
                    return
                except _Refused as refused:
                    log.warning("Request refused by the local host: %d %s", refused.status, refused.code)
                    self._refuse(refused)
                    return
                except OSError:
                    return  # the client went away
                self._serve(body)

            def _read_head(self) -> None:
                """Read and check the request line and header lines, then let the stdlib parse
                them; _Refused for anything Kestrel would refuse."""
                try:
                    line = self.rfile.readline(MAX_REQUEST_LINE_BYTES + 1)
                    if len(line) > MAX_REQUEST_LINE_BYTES:
                        raise _Refused(
                            414, "request_line_too_long", f"the limit is {MAX_REQUEST_LINE_BYTES} bytes"
                        )
                    if not _REQUEST_LINE.fullmatch(line):
                        raise _Refused(400, "invalid_request_line", "send METHOD /path HTTP/1.1")
                    lines: list[bytes] = []
                    size = 0
                    while (raw := self.rfile.readline(MAX_HEADER_BYTES + 1)) not in (b"\r\n", b"\n"):
                        size += len(raw)
                        if size > MAX_HEADER_BYTES or len(lines) >= MAX_HEADERS:
                            raise _Refused(
                                431,
                                "headers_too_large",
                                f"at most {MAX_HEADERS} headers, {MAX_HEADER_BYTES} bytes",
                            )
                        if not raw.endswith(b"\n"):
                            raise _Refused(
                                400, "incomplete_headers", "the connection closed inside the headers"
                            )
                        if not _HEADER_LINE.fullmatch(raw):
                            raise _Refused(
                                400,
                                "invalid_header",
                                "a header line must be name:value with no space before the colon, "
                                "no line folding and no control characters",
                            )
                        lines.append(raw)
                except TimeoutError:
                    raise _Refused(
                        408,
                        "request_timeout",
                        f"the request line and headers must arrive within {host.headers_timeout:g} s",
                    ) from None
                self.raw_requestline = line
                self.connection.settimeout(host.headers_timeout)  # the stdlib may answer 100/400
                self.rfile = io.BufferedReader(io.BytesIO(b"".join(lines) + b"\r\n"))
                try:
                    if not self.parse_request():  # the stdlib answered (400, 431, 505) and closes
                        raise _Answered
                finally:
                    self.rfile = self._stream
                self._check_framing()

            def _check_framing(self) -> None:
                """One way to find the body's end, or 400: every Transfer-Encoding header counts."""
                codings = self.headers.get_all("Transfer-Encoding") or []
                lengths = self.headers.get_all("Content-Length") or []
                hosts = len(self.headers.get_all("Host") or [])
                if hosts > 1 or (hosts == 0 and self.request_version != "HTTP/1.0"):
                    raise _Refused(400, "invalid_host", "send exactly one Host header")
                if codings and lengths:
                    raise _Refused(
                        400, "conflicting_framing", "send Content-Length or Transfer-Encoding, not both"
                    )
                if len(codings) > 1:
                    raise _Refused(
                        400, "duplicate_transfer_encoding", "send at most one Transfer-Encoding header"
                    )
                if codings:
                    if codings[0].strip().lower() == "chunked":
                        raise _Refused(411, "length_required", "send the body with a Content-Length")
                    raise _Refused(
                        400,
                        "invalid_transfer_encoding",
                        "only chunked is a transfer coding; send a Content-Length",
                    )
                if len(lengths) > 1:
                    raise _Refused(400, "duplicate_content_length", "send one Content-Length header")
                if lengths and not _DIGITS.fullmatch(lengths[0].strip()):
                    raise _Refused(400, "invalid_content_length", "Content-Length must be one decimal number")

            def _read_body(self) -> bytes:
                """The body, read against Kestrel's minimum data rate and the request deadline."""
                raw = (self.headers.get("Content-Length") or "0").strip()
                length = int(raw)
                if length > host.max_request_bytes:
                    raise _Refused(413, "body_too_large", f"the limit is {host.max_request_bytes} bytes")
                chunks: list[bytes] = []
                got = 0
                started = time.monotonic()
                while got < length:
                    allowed = max(host.min_body_rate_grace, got / host.min_body_rate)
                    self._reader.deadline = min(started + allowed, self._request_deadline)
                    try:
                        chunk = self.rfile.read1(min(length - got, 65536))
                    except TimeoutError:
                        raise _Refused(
                            408,
                            "body_timeout",
                            f"the body came slower than {host.min_body_rate:g} bytes/s (after a "
                            f"{host.min_body_rate_grace:g} s grace) or took over {host.request_deadline:g} s",
                        ) from None
                    if not chunk:
                        raise _Refused(400, "incomplete_body", "the body was shorter than its Content-Length")
                    chunks.append(chunk)
                    got += len(chunk)
                return b"".join(chunks)

            def _send(self, data: bytes) -> None:
                self.connection.settimeout(host.headers_timeout)  # a client that never reads
                self.wfile.write(data)

            def _refuse(self, refused: _Refused) -> None:
                self.close_connection = True  # the rest of the stream cannot be trusted
                reason = self.responses.get(refused.status, ("Error",))[0]
                with suppress(OSError):  # a client that gave up has closed its end
                    self._send(_json_error(refused.status, reason, refused.code, refused.message))

            def _serve(self, body: bytes) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                # As the App Service front end does: the peer address is appended last.
                peer = self.client_address[0]
                forwarded = headers.get("x-forwarded-for")
                headers["x-forwarded-for"] = f"{forwarded}, {peer}" if forwarded else peer
                try:
                    status, out_headers, payload = host.dispatch(self.command, self.path, headers, body)
                except Exception:  # noqa: BLE001 - like the host: a crash is a 500, the server lives on
                    log.exception("Function failed")
                    status, out_headers, payload = 500, {}, b""
                self.log_request(status)
                lines = [f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}".rstrip()]
                lines += [f"{k}: {v}" for k, v in out_headers.items() if k.lower() != "content-length"]
                lines += [f"Date: {self.date_time_string()}", f"Content-Length: {len(payload)}"]
                if self.close_connection:
                    lines.append("Connection: close")
                data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
                try:
                    self._send(data + (b"" if self.command == "HEAD" else payload))
                except OSError:
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                # Never the query (keys) nor a path a client could use to forge log lines.
                path = urlsplit(getattr(self, "path", "") or "").path
                shown = path if _PLAIN_PATH.fullmatch(path) else "(path not shown)"
                log.debug("%s %s", self.command if self.command in _METHODS else "-", shown)

        return Handler


def next_run(schedule: Schedule, after: datetime, failures: int) -> datetime:
    """When a timer runs next: its first occurrence after `after`, or, while it keeps failing,
    the first one at least 2**failures seconds (at most 300) after `after`."""
    if failures:
        after = after + timedelta(seconds=min(2.0**failures, 300.0)) - timedelta(microseconds=1)
    return schedule.next_after(after)


class _Answered(Exception):
    """The stdlib already answered the request (a malformed line or header block)."""


class _TimerRequest(func.TimerRequest):
    @property
    def past_due(self) -> bool:
        return False
