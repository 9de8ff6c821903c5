"""The local host against slow clients, with its defaults (issue 19, finding 11).

1. 300 connections, each sending its request head one byte every 2 s (the issue's case).
   Reported: threads before, at the peak and 40 s in; how many got 503 at once and 408 later;
   when the last one was closed; threads after.
2. A 1,000-byte Content-Length with 2 bytes sent: when the 408 comes (Kestrel: after the 5 s
   grace of its 240 bytes/s minimum rate; the old host: 30 s).

Run: `.venv/bin/python -m bench.slow_clients` (about 45 s). Not part of the test suite.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import threading
import time

import azure.functions as func

from local.host import LocalHost

CONNECTIONS = 300
BYTE_EVERY = 2.0


def _app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="wallarm", methods=["POST"])
    def hook(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("{}", mimetype="application/json")

    return app


def _status(answer: bytes) -> int:
    match = re.match(rb"HTTP/1\.1 ([0-9]{3}) ", answer)
    return int(match.group(1)) if match else 0


def slow_heads(host: LocalHost, port: int) -> None:
    before = threading.active_count()
    started = time.monotonic()
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(CONNECTIONS)]
    answers = dict.fromkeys(socks, b"")
    closed_at: dict[socket.socket, float] = {}
    request = b"POST /api/wallarm HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000 + b"\r\n\r\n"
    sent, peak, at_40 = 0, 0, -1
    next_byte = started
    while len(closed_at) < len(socks) and time.monotonic() - started < 120:
        now = time.monotonic()
        if now >= next_byte:
            for sock in socks:
                if sock not in closed_at:
                    with contextlib.suppress(OSError):
                        sock.send(request[sent : sent + 1])
            sent += 1
            next_byte += BYTE_EVERY
        peak = max(peak, threading.active_count())
        if at_40 < 0 and now - started >= 40:
            at_40 = threading.active_count()
        live = [s for s in socks if s not in closed_at]
        readable, _, _ = select.select(live, [], [], 0.2)
        for sock in readable:
            try:
                chunk = sock.recv(65536)
            except OSError:
                chunk = b""
            answers[sock] += chunk
            if not chunk:
                closed_at[sock] = time.monotonic() - started
                sock.close()
    end = time.monotonic() + 10
    while threading.active_count() > before and time.monotonic() < end:
        time.sleep(0.05)
    codes = [_status(a) for a in answers.values()]
    print(f"{CONNECTIONS} connections, one byte every {BYTE_EVERY:g} s (in-process host, default settings)")
    print(f"  threads before           {before}")
    print(f"  threads at peak          {peak}")
    print(f"  threads 40 s in          {at_40 if at_40 >= 0 else 'all closed before 40 s'}")
    print(f"  threads after            {threading.active_count()}")
    refused_by = max((closed_at[s] for s, c in zip(socks, codes, strict=True) if c == 503), default=0.0)
    last = max(closed_at.values(), default=0.0)
    print(f"  503 at once              {codes.count(503)} (all closed by {refused_by:.2f} s)")
    print(f"  408 at the head deadline {codes.count(408)} (last closed at {last:.1f} s)")
    print(f"  other                    {len(codes) - codes.count(503) - codes.count(408)}")


def slow_body(port: int) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(b"POST /api/wallarm HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab")
        answer = sock.recv(65536)
    print(f"Content-Length 1000, 2 bytes sent: {_status(answer)} after {time.monotonic() - started:.1f} s")


def main() -> int:
    host = LocalHost(_app(), port=0, function_key="f", master_key="m")
    host.start()
    port = int(host.url.rsplit(":", 1)[1])
    try:
        slow_body(port)
        slow_heads(host, port)
    finally:
        host.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
