"""A small stand-in for the Functions host: serves `function_app.app` over real HTTP.

It reads the functions the way the host indexes them (`app.get_functions()`), routes
`/api/<route>` to HTTP triggers (with `{name}` / `{name:alpha}` route parameters), checks auth
levels against local keys, and runs timer triggers on a simple interval. It exists because Core
Tools cannot be installed here; `func start` works too for those who have it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

log = logging.getLogger("local.host")

LISTEN_BACKLOG = 1024
"""Connections the kernel holds before accept(): Wallarm and load tests send bursts (stdlib: 5)."""
BODY_TIMEOUT_SECONDS = 30.0
"""How long a connection may stay silent (request line, headers or body) before it is answered 408."""
MAX_REQUEST_BYTES = 100 * 1024 * 1024
"""The Functions host's own request size limit (100 MB): larger bodies get 413 without being read."""
_DIGITS = re.compile(r"[0-9]{1,19}")
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9/_.~-]{0,200}")
_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"})


class _Server(ThreadingHTTPServer):
    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True


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
        body_timeout: float = BODY_TIMEOUT_SECONDS,
        max_request_bytes: int = MAX_REQUEST_BYTES,
    ) -> None:
        self.http, self.timers = index(app)
        self.function_key = function_key
        self.master_key = master_key
        self.body_timeout = body_timeout
        self.max_request_bytes = max_request_bytes
        self._server = _Server(("127.0.0.1", port), self._handler_class())
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

    def start_timer_loop(
        self, name: str, every_seconds: float, *, first_delay: float = 0
    ) -> threading.Thread:
        """Start a timer function every `every_seconds` (at least 1 s apart, like a cron
        schedule: a run that returns early waits for its next slot); `first_delay` keeps it from
        firing at start-up. A failing run backs off (doubling up to 5 min) and is logged once per
        kind of error, not once per run."""
        period = max(every_seconds, 1.0)

        def loop() -> None:
            next_start = time.monotonic() + first_delay
            failures = 0
            last_error = ""
            while not self._stop.wait(max(next_start - time.monotonic(), 0.0)):
                started = time.monotonic()
                try:
                    self.run_timer(name)
                    failures, last_error = 0, ""
                except Exception as err:  # noqa: BLE001 - a failing timer run is logged, the host keeps going
                    failures += 1
                    if type(err).__name__ != last_error:
                        last_error = type(err).__name__
                        log.exception("Timer %s failed (backing off while it keeps failing)", name)
                backoff = min(period * 2 ** min(failures, 10), 300.0) if failures else period
                next_start = started + backoff

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
        parts = urlsplit(raw_url)
        path = parts.path
        if not path.startswith("/api/"):
            return 404, {}, b""
        query = dict(parse_qsl(parts.query))
        route = path[len("/api/") :].strip("/")
        path_matched = False
        for fn in self.http:
            match = fn.pattern.match(route)
            if not match:
                continue
            if fn.methods and method not in fn.methods:
                path_matched = True  # like the host: another route may take this method
                continue
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
        return (405 if path_matched else 404), {}, b""

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = host.body_timeout  # socket timeout: a stalled request line or body ends

            def _read_body(self) -> bytes:
                """The body as the front end frames it; _Refused for what it would not forward."""
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    raise _Refused(411, "length_required", "send the body with a Content-Length")
                lengths = {v.strip() for v in self.headers.get_all("Content-Length") or []}
                if not lengths:
                    return b""
                raw = lengths.pop()
                if lengths or not _DIGITS.fullmatch(raw):
                    raise _Refused(400, "invalid_content_length", "Content-Length must be one decimal number")
                length = int(raw)
                if length > host.max_request_bytes:
                    raise _Refused(413, "body_too_large", f"the limit is {host.max_request_bytes} bytes")
                try:
                    body = self.rfile.read(length)
                except TimeoutError:
                    body = b""
                if len(body) < length:
                    raise _Refused(408, "body_timeout", "the body was shorter than its Content-Length")
                return body

            def _refuse(self, refused: _Refused) -> None:
                payload = json.dumps({"error": {"code": refused.code, "message": refused.message}}).encode()
                self.close_connection = True  # the rest of the stream cannot be trusted
                with suppress(OSError):  # a client that gave up has closed its end
                    self.send_response(refused.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(payload)

            def _serve(self) -> None:
                try:
                    body = self._read_body()
                except _Refused as refused:
                    log.warning("Request refused by the local host: %d %s", refused.status, refused.code)
                    self._refuse(refused)
                    return
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
                self.send_response(status)
                for key, value in out_headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                # Never the query (keys) nor a path a client could use to forge log lines.
                path = urlsplit(getattr(self, "path", "") or "").path
                shown = path if _PLAIN_PATH.fullmatch(path) else "(path not shown)"
                log.debug("%s %s", self.command if self.command in _METHODS else "-", shown)

        return Handler


class _TimerRequest(func.TimerRequest):
    @property
    def past_due(self) -> bool:
        return False
