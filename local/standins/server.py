"""Server plumbing shared by every stand-in: a quiet threaded HTTP(S) server and a JSON handler base."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

from local.standins import tls


def free_port() -> int:
    """A TCP port free on the loopback right now (the OS's pick; free until someone binds it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _QuietThreadingServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # Azure takes bursts; the stdlib's backlog of 5 drops SYNs

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeouts, dropped TLS) is a normal event for a fault injector.
        return


class StandInHandler(BaseHTTPRequestHandler):
    """Base handler: HTTP/1.1 keep-alive, JSON helpers, silence (never logs bodies or tokens)."""

    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send_json(
        self,
        status: int,
        payload: Any,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        body = b"" if payload is None else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def drop_connection(self) -> None:
        """Close the socket without answering (the client sees a reset / remote disconnect)."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            return


class ThreadedServer:
    """Runs a ``StandInHandler`` subclass on 127.0.0.1 in a daemon thread, with or without TLS."""

    def __init__(self, handler: type[StandInHandler], owner: object, *, port: int, use_tls: bool) -> None:
        self._handler = handler
        self._owner = owner
        self._port = port
        self._tls = use_tls
        self._server: _QuietThreadingServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._server is not None:
            return
        server = _QuietThreadingServer(("127.0.0.1", self._port), self._handler)
        if self._tls:
            server.socket = tls.server_ssl_context().wrap_socket(server.socket, server_side=True)
        server.owner = self._owner  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("stand-in is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}"


class _Counted(Protocol):
    times: int


F = TypeVar("F", bound=_Counted)


def take_fault(faults: list[F], outage: F | None) -> F | None:
    """The fault for the next request (call under the stand-in's lock): the outage while there is
    one, else the first queued fault, used up after its ``times``."""
    if outage is not None:
        return outage
    if not faults:
        return None
    fault = faults[0]
    fault.times -= 1
    if fault.times <= 0:
        faults.pop(0)
    return fault


def owner_of(handler: BaseHTTPRequestHandler) -> Any:
    return handler.server.owner  # type: ignore[attr-defined]


class StartStop:
    """A context manager over ``start``/``stop``: ``with Azurite() as a:`` and the stand-ins alike."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class StandInLifecycle(StartStop):
    """``start``/``stop`` for stand-ins that own a ``ThreadedServer``."""

    _server: ThreadedServer

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()
