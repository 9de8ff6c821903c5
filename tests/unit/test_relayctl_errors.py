"""relayctl's user errors: one line saying what is wrong, one saying how to fix it, exit 2, no
traceback; the relay's own error answers exit 1 (issue 20, item 5). Served by local.host, which
answers a wrong key as the platform does."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import azure.functions as func
import pytest

from local.host import LocalHost
from local.standins.server import free_port
from shared.ops import cli

MASTER_KEY = "master-key-0123456789"
FUNCTION_KEY = "function-key-0123456789"


def build_app() -> func.FunctionApp:
    """The admin routes' shapes: status answers, replay refuses an unknown id as the relay does."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.route(route="relay/status", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
    def relay_status(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(json.dumps({"state": "enabled"}), mimetype="application/json")

    @app.route(route="relay/{action:alpha}", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
    def relay_admin(req: func.HttpRequest) -> func.HttpResponse:
        error = {"error": {"code": "unknown_id", "message": "1 of the 1 ids given are not quarantined"}}
        return func.HttpResponse(json.dumps(error), status_code=400, mimetype="application/json")

    return app


@pytest.fixture(scope="module")
def relay() -> Iterator[str]:
    local = LocalHost(build_app(), port=0, function_key=FUNCTION_KEY, master_key=MASTER_KEY)
    local.start()
    yield local.url
    local.stop()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_two_lines(err: str) -> tuple[str, str]:
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in err, err
    assert lines[0].startswith("relayctl: ") and lines[1].startswith("fix: ")
    return lines[0], lines[1]


def test_status_works_with_the_master_key(relay: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--url", relay, "--key", MASTER_KEY, "status")
    assert code == 0 and json.loads(out) == {"state": "enabled"}


@pytest.mark.parametrize("key", [FUNCTION_KEY, "wrong"])
def test_a_wrong_key_says_the_master_key_is_needed_and_how_to_get_it(
    relay: str, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    code, _, err = run(capsys, "--url", relay, "--key", key, "status")
    assert code == 2
    what, fix = assert_two_lines(err)
    assert "HTTP 401" in what and "master key" in what
    assert "az functionapp keys list -g <rg> -n <app> --query masterKey -o tsv" in fix
    assert key not in err


def test_the_relay_down_is_one_message_not_a_urlerror_trace(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = run(capsys, "--url", url, "--key", MASTER_KEY, "status")
    assert code == 2
    what, fix = assert_two_lines(err)
    assert what.startswith(f"relayctl: cannot reach the relay at {url}")
    assert "RELAY_URL" in fix and "local.run" in fix


def test_an_unknown_replay_id_exits_non_zero(relay: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--url", relay, "--key", MASTER_KEY, "replay", "--id", "001764072000000-0")
    assert code == 1
    assert json.loads(out)["error"]["code"] == "unknown_id"


def test_a_wrong_base_url_says_so(relay: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--url", f"{relay}/somewhere", "--key", MASTER_KEY, "status")
    assert code == 2
    what, fix = assert_two_lines(err)
    assert "HTTP 404" in what and "without /api" in fix
    assert run(capsys, "--url", f"{relay}/api/", "--key", MASTER_KEY, "status")[0] == 0  # /api tolerated


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--url", "relay.azurewebsites.net", "--key", MASTER_KEY], "is not an http(s) URL"),
        (["--url", "http://127.0.0.1:1 x", "--key", MASTER_KEY], "is not an http(s) URL"),
        (["--url", "http://127.0.0.1:1", "--key", "kéy"], "--key is not a key"),
        (["--url", "http://127.0.0.1:1", "--key", "a\nb"], "--key is not a key"),
        (["--key", MASTER_KEY], "--url not given"),
        (["--url", "http://127.0.0.1:1"], "--key not given"),
    ],
)
def test_bad_arguments_are_two_lines_and_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str], said: str
) -> None:
    monkeypatch.delenv("RELAY_URL", raising=False)
    monkeypatch.delenv("RELAY_ADMIN_KEY", raising=False)
    code, _, err = run(capsys, *argv, "status")
    assert code == 2
    what, _ = assert_two_lines(err)
    assert said in what


@contextlib.contextmanager
def redirecting() -> Iterator[tuple[str, list[str]]]:
    """A server that redirects every call elsewhere, and records the keys it is sent."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("x-functions-key", ""))
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.2:9/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_redirect_is_not_followed_with_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    with redirecting() as (url, seen):
        code, _, err = run(capsys, "--url", url, "--key", MASTER_KEY, "status")
    assert code == 2 and "redirect" in assert_two_lines(err)[0]
    assert seen == [MASTER_KEY]  # sent once, to the address given; never to the Location


def test_help_documents_the_environment_the_options_and_the_master_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    top = capsys.readouterr().out
    for text in ("RELAY_URL", "RELAY_ADMIN_KEY", "--query masterKey -o tsv", "exit status"):
        assert text in top
    with pytest.raises(SystemExit):
        cli.main(["disable", "--help"])
    assert "--reason" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["replay", "--help"])
    assert "--id" in capsys.readouterr().out
