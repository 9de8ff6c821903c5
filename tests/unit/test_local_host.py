"""local.host: indexing a FunctionApp like the host, routing, auth levels and the HTTP server."""

from __future__ import annotations

import contextlib
import json
import logging
import select
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import pytest

from local.host import LocalHost, index

FUNCTION_KEY = "function-key-0123456789"
MASTER_KEY = "master-key-0123456789"


def build_app() -> tuple[func.FunctionApp, list[str]]:
    """Items (function level), an admin action route, and a timer that records its runs."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
    timer_runs: list[str] = []

    @app.route(route="items/{id}", methods=["GET", "PUT"])
    def get_item(req: func.HttpRequest) -> func.HttpResponse:
        body = {
            "id": req.route_params.get("id"),
            "method": req.method,
            "q": req.params.get("q"),
            "body": req.get_body().decode("utf-8"),
            "forwarded": req.headers.get("x-forwarded-for"),
        }
        return func.HttpResponse(
            json.dumps(body), status_code=201, mimetype="application/json", headers={"X-Item": "yes"}
        )

    @app.route(route="things/{action:alpha}", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
    def thing_action(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(f"did {req.route_params['action']}", status_code=200)

    @app.route(route="open", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def open_route(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("open")

    @app.route(route="boom", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("function crashed")

    @app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer", run_on_startup=False)
    def tick(timer: func.TimerRequest) -> None:
        timer_runs.append("past_due" if timer.past_due else "on_time")

    return app, timer_runs


@pytest.fixture
def app_and_runs() -> tuple[func.FunctionApp, list[str]]:
    return build_app()


@pytest.fixture
def host(app_and_runs: tuple[func.FunctionApp, list[str]]) -> Iterator[LocalHost]:
    local = LocalHost(app_and_runs[0], port=0, function_key=FUNCTION_KEY, master_key=MASTER_KEY)
    yield local
    local._server.server_close()  # never started: close the bound socket (stop() needs a start())


def fkey() -> dict[str, str]:
    return {"x-functions-key": FUNCTION_KEY}


def mkey() -> dict[str, str]:
    return {"x-functions-key": MASTER_KEY}


# -- index ----------------------------------------------------------------------------------------


def test_index_finds_http_routes_and_timers(app_and_runs: tuple[func.FunctionApp, list[str]]) -> None:
    http, timers = index(app_and_runs[0])
    by_name = {f.name: f for f in http}
    assert set(by_name) == {"get_item", "thing_action", "open_route", "boom"}
    assert by_name["get_item"].methods == frozenset({"GET", "PUT"})
    assert by_name["get_item"].auth_level == "function"
    assert by_name["thing_action"].auth_level == "admin"
    assert by_name["open_route"].auth_level == "anonymous"
    assert by_name["get_item"].pattern.match("items/42") is not None
    assert by_name["get_item"].pattern.match("items/42/more") is None
    assert by_name["thing_action"].pattern.match("things/enable") is not None
    assert by_name["thing_action"].pattern.match("things/en4ble") is None
    assert [(t.name, t.schedule) for t in timers] == [("tick", "0 */5 * * * *")]


def test_index_puts_literal_routes_before_parameterised_ones(
    app_and_runs: tuple[func.FunctionApp, list[str]],
) -> None:
    http, _ = index(app_and_runs[0])
    params = [f.pattern.pattern.count("(?P<") for f in http]
    assert params == sorted(params)


def test_run_timer_calls_the_function_with_a_timer_request(
    host: LocalHost, app_and_runs: tuple[func.FunctionApp, list[str]]
) -> None:
    host.run_timer("tick")
    assert app_and_runs[1] == ["on_time"]
    with pytest.raises(StopIteration):
        host.run_timer("missing")


# -- dispatch -------------------------------------------------------------------------------------


def test_route_params_query_body_and_response(host: LocalHost) -> None:
    status, headers, body = host.dispatch("PUT", "/api/items/42?q=x", fkey(), b"payload")
    assert status == 201
    assert headers["X-Item"] == "yes"
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == {"id": "42", "method": "PUT", "q": "x", "body": "payload", "forwarded": None}


def test_trailing_slash_is_ignored(host: LocalHost) -> None:
    assert host.dispatch("GET", "/api/items/7/", fkey(), b"")[0] == 201


@pytest.mark.parametrize("url", ["/api/nothing", "/api/items", "/api/items/1/2", "/items/1", "/", "/api/"])
def test_unknown_path_is_404(host: LocalHost, url: str) -> None:
    assert host.dispatch("GET", url, mkey(), b"") == (404, {}, b"")


def test_alpha_constraint_is_404_for_digits(host: LocalHost) -> None:
    assert host.dispatch("POST", "/api/things/r2d2", mkey(), b"")[0] == 404


def test_wrong_method_is_404_with_an_empty_body_as_the_host_routes() -> None:
    """The Functions host's routing finds no function for a method the route does not take and
    answers 404 with an empty body (azure-functions-host #10098), before any key check."""
    local = LocalHost(build_app()[0], port=0, function_key=FUNCTION_KEY, master_key=MASTER_KEY)
    try:
        assert local.dispatch("DELETE", "/api/items/1", fkey(), b"") == (404, {}, b"")
        assert local.dispatch("GET", "/api/things/enable", mkey(), b"") == (404, {}, b"")
        assert local.dispatch("DELETE", "/api/items/1", {}, b"") == (404, {}, b"")
    finally:
        local._server.server_close()


@pytest.mark.parametrize(
    ("headers", "url"),
    [
        ({}, "/api/items/1"),
        ({"x-functions-key": "wrong"}, "/api/items/1"),
        ({}, "/api/items/1?code=wrong"),
        ({"x-functions-key": ""}, "/api/items/1"),
    ],
)
def test_missing_or_wrong_key_is_401(host: LocalHost, headers: dict[str, str], url: str) -> None:
    assert host.dispatch("GET", url, headers, b"") == (401, {}, b"")


def test_function_level_takes_the_function_or_the_master_key(host: LocalHost) -> None:
    assert host.dispatch("GET", "/api/items/1", fkey(), b"")[0] == 201
    assert host.dispatch("GET", "/api/items/1", mkey(), b"")[0] == 201
    assert host.dispatch("GET", f"/api/items/1?code={FUNCTION_KEY}", {}, b"")[0] == 201


def test_admin_level_takes_only_the_master_key(host: LocalHost) -> None:
    assert host.dispatch("POST", "/api/things/enable", fkey(), b"")[0] == 401
    assert host.dispatch("POST", f"/api/things/enable?code={FUNCTION_KEY}", {}, b"")[0] == 401
    assert host.dispatch("POST", "/api/things/enable", {}, b"")[0] == 401
    status, _, body = host.dispatch("POST", "/api/things/enable", mkey(), b"")
    assert (status, body) == (200, b"did enable")
    assert host.dispatch("POST", f"/api/things/disable?code={MASTER_KEY}", {}, b"")[1:] == (
        {"Content-Type": "text/plain"},
        b"did disable",
    )


def test_anonymous_needs_no_key(host: LocalHost) -> None:
    assert host.dispatch("GET", "/api/open", {}, b"")[0::2] == (200, b"open")


def test_dispatch_lets_a_crash_propagate(host: LocalHost) -> None:
    with pytest.raises(RuntimeError, match="function crashed"):
        host.dispatch("GET", "/api/boom", {}, b"")


def test_same_path_different_methods_reaches_the_route_that_accepts_the_method() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="relay/status", methods=["GET"])
    def status(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("status")

    @app.route(route="relay/{action:alpha}", methods=["POST"])
    def action(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(f"action {req.route_params['action']}")

    local = LocalHost(app, port=0, function_key=FUNCTION_KEY, master_key=MASTER_KEY)
    try:
        assert local.dispatch("GET", "/api/relay/status", {}, b"")[2] == b"status"
        assert local.dispatch("POST", "/api/relay/status", {}, b"")[0::2] == (200, b"action status")
    finally:
        local._server.server_close()


def test_stop_without_start_returns() -> None:
    app, _ = build_app()
    local = LocalHost(app, port=0, function_key=FUNCTION_KEY, master_key=MASTER_KEY)
    stopper = threading.Thread(target=local.stop, daemon=True)
    stopper.start()
    stopper.join(timeout=1)
    try:
        assert not stopper.is_alive()
    finally:
        local._server.server_close()


# -- over real HTTP -------------------------------------------------------------------------------


def _call(url: str, method: str = "GET", headers: dict[str, str] | None = None, body: bytes = b"") -> Any:
    req = urllib.request.Request(url, data=body or None, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers.items()), err.read()


def test_real_http_on_port_0(app_and_runs: tuple[func.FunctionApp, list[str]]) -> None:
    local = LocalHost(app_and_runs[0], port=0, function_key=FUNCTION_KEY, master_key=MASTER_KEY)
    assert not local.url.endswith(":0")
    local.start()
    try:
        status, headers, body = _call(
            f"{local.url}/api/items/abc?q=1",
            "PUT",
            {"x-functions-key": FUNCTION_KEY, "X-Forwarded-For": "203.0.113.9"},
            b"hello",
        )
        assert status == 201
        assert headers["X-Item"] == "yes"
        assert int(headers["Content-Length"]) == len(body)
        got = json.loads(body)
        assert (got["id"], got["q"], got["body"]) == ("abc", "1", "hello")
        # As the App Service front end does: the peer address is appended last.
        assert got["forwarded"] == "203.0.113.9, 127.0.0.1"
        assert _call(f"{local.url}/api/items/abc", "GET", {"X-Functions-Key": "nope"})[0] == 401
        assert _call(f"{local.url}/api/nowhere")[0] == 404
        assert _call(f"{local.url}/api/boom")[0] == 500  # a crash is a 500; the server lives on
        assert _call(f"{local.url}/api/open")[0::2] == (200, b"open")
    finally:
        local.stop()


def test_timer_runs_on_its_schedule_and_backs_off_on_failure() -> None:
    """Every second by its NCRONTAB schedule; a failing run waits 2 s, 4 s … before the next."""
    from local.ncrontab import parse

    calls = {"ok": 0, "fail": 0}
    two_ok = threading.Event()
    quick = LocalHost(build_app()[0], port=0, function_key="f", master_key="m")
    failing = LocalHost(build_app()[0], port=0, function_key="f", master_key="m")

    def count_ok(name: str) -> None:
        calls["ok"] += 1
        if calls["ok"] >= 2:
            two_ok.set()

    def count_fail(name: str) -> None:
        calls["fail"] += 1
        raise RuntimeError("storage down")

    quick.run_timer = count_ok  # type: ignore[method-assign]
    failing.run_timer = count_fail  # type: ignore[method-assign]
    started = time.monotonic()
    quick.start_timer("t", parse("* * * * * *"))
    failing.start_timer("t", parse("* * * * * *"))
    try:
        assert two_ok.wait(timeout=30)
        elapsed = time.monotonic() - started
    finally:
        for local in (quick, failing):
            local._stop.set()
            local._server.server_close()
    assert elapsed >= 1.0  # two runs are two occurrences apart, at least a second
    assert calls["fail"] <= 1 + elapsed / 2  # after a failure: 2 s, then 4 s …


# -- like a real front end: bursts, slow or malformed bodies --------------------------------------


def _raw(local: LocalHost, request: bytes, *, timeout: float = 5) -> bytes:
    """Send raw bytes, return what the server answers until it closes (or the timeout)."""
    port = int(local.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        with contextlib.suppress(TimeoutError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture
def served(app_and_runs: tuple[func.FunctionApp, list[str]]) -> Iterator[LocalHost]:
    local = LocalHost(
        app_and_runs[0],
        port=0,
        function_key=FUNCTION_KEY,
        master_key=MASTER_KEY,
        headers_timeout=0.5,
        min_body_rate_grace=0.5,
        max_request_bytes=4096,
    )
    local.start()
    yield local
    local.stop()


def _put(headers: str, body: bytes = b"") -> bytes:
    return (
        f"PUT /api/items/1 HTTP/1.1\r\nHost: x\r\nx-functions-key: {FUNCTION_KEY}\r\n{headers}\r\n".encode()
        + body
    )


def _status_and_code(answer: bytes) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, json.loads(body)["error"]["code"] if body.startswith(b"{") else ""


def test_body_shorter_than_its_content_length_is_408_after_the_grace(served: LocalHost) -> None:
    answer = _raw(served, _put("Content-Length: 100\r\n", b"only a part"))
    assert _status_and_code(answer) == (408, "body_timeout")


@pytest.mark.parametrize("value", ["abc", "-1", "+5", "0x10", "1e3", "", "5 5", "99999999999999999999"])
def test_malformed_content_length_is_400(served: LocalHost, value: str) -> None:
    answer = _raw(served, _put(f"Content-Length: {value}\r\n", b"hello"))
    assert _status_and_code(answer) == (400, "invalid_content_length")


def test_conflicting_content_lengths_are_400(served: LocalHost) -> None:
    answer = _raw(served, _put("Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"))
    assert _status_and_code(answer) == (400, "duplicate_content_length")


def test_chunked_body_is_411(served: LocalHost) -> None:
    answer = _raw(served, _put("Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"))
    assert _status_and_code(answer) == (411, "length_required")


def test_body_over_the_request_limit_is_413_unread(served: LocalHost) -> None:
    answer = _raw(served, _put("Content-Length: 5000\r\n"))  # nothing sent: it is not waited for
    assert _status_and_code(answer) == (413, "body_too_large")


def test_the_connection_still_serves_well_formed_requests(served: LocalHost) -> None:
    status, _, body = _call(f"{served.url}/api/items/9", "PUT", fkey(), b"x" * 4096)
    assert status == 201
    assert json.loads(body)["body"] == "x" * 4096


def test_listen_backlog_holds_a_burst_of_200_before_accept(
    app_and_runs: tuple[func.FunctionApp, list[str]],
) -> None:
    """The kernel completes 200 handshakes while no thread accepts (the stdlib's 5 drops SYNs)."""
    local = LocalHost(app_and_runs[0], port=0, function_key=FUNCTION_KEY, master_key=MASTER_KEY)
    port = int(local.url.rsplit(":", 1)[1])
    sockets = [socket.socket() for _ in range(200)]
    try:
        for sock in sockets:
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
        pending = set(sockets)
        deadline = time.monotonic() + 0.8  # a dropped SYN is resent only after 1 s
        while pending and time.monotonic() < deadline:
            _, writable, _ = select.select([], list(pending), [], 0.1)
            pending -= set(writable)
        connected = [
            s for s in sockets if s not in pending and not s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        ]
        assert len(connected) == 200
    finally:
        for sock in sockets:
            sock.close()
        local._server.server_close()


def test_access_log_shows_no_query_and_no_forged_path(
    served: LocalHost, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="local.host")
    _call(f"{served.url}/api/items/1?code={FUNCTION_KEY}", "PUT", {}, b"x")
    _raw(served, b"GET /api/items/\x1b[2J%0aFORGED HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    _raw(served, b"NONSENSE\r\n\r\n")
    text = caplog.text
    assert "PUT /api/items/1" in text
    assert FUNCTION_KEY not in text
    assert "FORGED" not in text and "\x1b" not in text


def test_next_run_is_the_next_occurrence_or_later_while_failing() -> None:
    from datetime import UTC, datetime, timedelta

    from local.host import next_run
    from local.ncrontab import parse

    t = datetime(2026, 1, 5, 10, 0, 0, 500000, tzinfo=UTC)
    every_second = parse("* * * * * *")
    assert next_run(every_second, t, 0) == datetime(2026, 1, 5, 10, 0, 1, tzinfo=UTC)
    assert next_run(every_second, t, 3) == datetime(2026, 1, 5, 10, 0, 9, tzinfo=UTC)  # >= t + 8 s
    assert next_run(every_second, t, 20) - t <= timedelta(seconds=301)  # at most 300 s
    hourly = parse("0 20 * * * *")
    assert next_run(hourly, t, 1) == datetime(2026, 1, 5, 10, 20, tzinfo=UTC)  # backoff < the period


def test_literal_routes_win_over_parameterised_ones_declared_first() -> None:
    """relay/tenants beside relay/{action:alpha} (issue 22): as in the host, the literal route takes
    its path whatever the declaration order, and the parameterised one keeps the rest."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.route(route="relay/{action:alpha}", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
    def relay_admin(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(f"action {req.route_params['action']}")

    @app.route(route="relay/tenants/{name}/{op}", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
    def relay_tenant_op(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(f"op {req.route_params['op']} of {req.route_params['name']}")

    @app.route(route="relay/tenants", methods=["GET", "POST"], auth_level=func.AuthLevel.ADMIN)
    def relay_tenants(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("tenants")

    local = LocalHost(app, port=0, function_key=FUNCTION_KEY, master_key=MASTER_KEY)
    try:
        assert local.dispatch("POST", "/api/relay/tenants", mkey(), b"")[2] == b"tenants"
        assert local.dispatch("POST", "/api/relay/disable", mkey(), b"")[2] == b"action disable"
        assert (
            local.dispatch("POST", "/api/relay/tenants/contoso/enable", mkey(), b"")[2]
            == b"op enable of contoso"
        )
    finally:
        local.stop()
