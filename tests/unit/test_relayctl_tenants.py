"""relayctl's tenant commands: what each sends (method, route, query, JSON body), and what it
refuses before sending anything (two lines, exit 2, no value repeated, a plain secret never sent)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from local.host import LocalHost
from shared.ops import cli

MASTER_KEY = "master-key-0123456789"
REF = "https://relayvault.vault.azure.net/secrets/contoso-hook"
GUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
SEEN: list[dict[str, Any]] = []


def build_app() -> func.FunctionApp:
    """The admin routes as function_app.py binds them, echoing what they were sent."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    def echo(req: func.HttpRequest) -> func.HttpResponse:
        seen = {
            "method": req.method,
            "route": dict(req.route_params),
            "params": dict(req.params),
            "body": json.loads(req.get_body() or b"null"),
        }
        SEEN.append(seen)
        if req.route_params.get("name") == "gone":
            error = {"error": {"code": "unknown_tenant", "message": "no tenant named 'gone'"}}
            return func.HttpResponse(json.dumps(error), status_code=404, mimetype="application/json")
        answer: dict[str, Any] = {"seen": seen}
        if req.method == "DELETE" and req.params.get("then") == "export":
            answer["exported"] = [{"id": "e1", "rows": [{"EventType": "hit"}]}]
        return func.HttpResponse(json.dumps(answer), mimetype="application/json")

    @app.route(route="relay/status", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
    def relay_status(req: func.HttpRequest) -> func.HttpResponse:
        return echo(req)

    @app.route(route="relay/tenants", methods=["GET", "POST"], auth_level=func.AuthLevel.ADMIN)
    def relay_tenants(req: func.HttpRequest) -> func.HttpResponse:
        return echo(req)

    @app.route(
        route="relay/tenants/{name}", methods=["GET", "PATCH", "DELETE"], auth_level=func.AuthLevel.ADMIN
    )
    def relay_tenant(req: func.HttpRequest) -> func.HttpResponse:
        return echo(req)

    @app.route(route="relay/tenants/{name}/{op}", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
    def relay_tenant_op(req: func.HttpRequest) -> func.HttpResponse:
        return echo(req)

    @app.route(route="relay/{action:alpha}", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
    def relay_admin(req: func.HttpRequest) -> func.HttpResponse:
        return echo(req)

    return app


@pytest.fixture(scope="module")
def relay() -> Iterator[str]:
    local = LocalHost(build_app(), port=0, function_key="function-key", master_key=MASTER_KEY)
    local.start()
    yield local.url
    local.stop()


def run(relay: str, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    SEEN.clear()
    code = cli.main(["--url", relay, "--key", MASTER_KEY, *argv])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


def two_lines(err: str) -> tuple[str, str]:
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in err, err
    assert lines[0].startswith("relayctl: ") and lines[1].startswith("fix: ")
    return lines[0], lines[1]


def test_add_sends_the_spec_as_json(relay: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        relay,
        capsys,
        *("tenant", "add", "contoso-eu", "--setting", "LOGS_DCR_IMMUTABLE_ID=dcr-1"),
        *("--setting", "LOGS_INGESTION_ENDPOINT=https://x.ingest.monitor.azure.com/a=b"),
        *("--secret-ref", f"WEBHOOK_SHARED_SECRET={REF}", "--credential", "app_secret"),
        *("--client-id", GUID, "--entra-tenant-id", GUID, "--credential-secret-ref", REF + "-app"),
    )
    assert code == 0
    assert out["seen"] == {
        "method": "POST",
        "route": {},
        "params": {},
        "body": {
            "name": "contoso-eu",
            "settings": {
                "LOGS_DCR_IMMUTABLE_ID": "dcr-1",
                "LOGS_INGESTION_ENDPOINT": "https://x.ingest.monitor.azure.com/a=b",
            },
            "secret_refs": {"WEBHOOK_SHARED_SECRET": REF},
            "credential": {
                "kind": "app_secret",
                "client_id": GUID,
                "entra_tenant_id": GUID,
                "secret_ref": REF + "-app",
            },
        },
    }


@pytest.mark.parametrize(
    ("argv", "method", "route", "params", "body"),
    [
        (["tenant", "list"], "GET", {}, {}, None),
        (["tenant", "show", "contoso"], "GET", {"name": "contoso"}, {}, None),
        (
            [
                "tenant",
                "update",
                "contoso",
                "--setting",
                "LOGS_STREAM_NAME=Custom-X_CL",
                "--unset",
                "SELECT_HITS",
            ],
            "PATCH",
            {"name": "contoso"},
            {},
            {"settings": {"LOGS_STREAM_NAME": "Custom-X_CL", "SELECT_HITS": None}},
        ),
        (
            ["tenant", "update", "contoso", "--unset", "WALLARM_API_TOKEN"],
            "PATCH",
            {"name": "contoso"},
            {},
            {"secret_refs": {"WALLARM_API_TOKEN": None}},
        ),
        (
            ["tenant", "rotate-secret", "contoso"],
            "POST",
            {"name": "contoso", "op": "rotate-secret"},
            {},
            None,
        ),
        (
            ["tenant", "disable", "contoso", "--reason", "DCR move"],
            "POST",
            {"name": "contoso", "op": "disable"},
            {"reason": "DCR move"},
            None,
        ),
        (["tenant", "enable", "contoso"], "POST", {"name": "contoso", "op": "enable"}, {}, None),
        (["tenant", "remove", "contoso"], "DELETE", {"name": "contoso"}, {}, None),
        (["tenant", "remove", "contoso", "--drain"], "DELETE", {"name": "contoso"}, {"then": "drain"}, None),
        (["status", "--tenant", "contoso"], "GET", {}, {"tenant": "contoso"}, None),
        (["status", "--tenant", "all"], "GET", {}, {"tenant": "all"}, None),
        (
            ["disable", "--tenant", "contoso"],
            "POST",
            {"action": "disable"},
            {"tenant": "contoso"},
            None,
        ),
        (["enable", "--tenant", "contoso"], "POST", {"action": "enable"}, {"tenant": "contoso"}, None),
        (["replay", "--tenant", "contoso"], "POST", {"action": "replay"}, {"tenant": "contoso"}, None),
        (
            ["reconcile", "--tenant", "contoso", "--from", "a", "--to", "b"],
            "POST",
            {"action": "reconcile"},
            {"from": "a", "to": "b", "tenant": "contoso"},
            None,
        ),
    ],
)
def test_each_command_sends_its_call(
    relay: str,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    method: str,
    route: dict[str, str],
    params: dict[str, str],
    body: Any,
) -> None:
    code, out, _ = run(relay, capsys, *argv)
    assert code == 0
    assert out["seen"] == {"method": method, "route": route, "params": params, "body": body}


def test_an_unknown_tenant_is_the_relays_answer_and_exit_1(
    relay: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(relay, capsys, "tenant", "show", "gone")
    assert code == 1 and out["error"]["code"] == "unknown_tenant"


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["tenant", "show", "../x"], "is not a slug"),
        (["tenant", "add", "Contoso"], "is not a slug"),
        (["tenant", "add", "a--b"], "two hyphens in a row"),
        (["tenant", "show", ""], "is empty"),
        (
            ["tenant", "add", "contoso", "--setting", "LOGS_STREAM_NAME"],
            "--setting number 1 is not NAME=VALUE",
        ),
        (
            ["tenant", "add", "contoso", "--setting", "WEBHOOK_SHARED_SECRET=hunter2-secret"],
            "never a setting",
        ),
        (["tenant", "add", "contoso", "--secret-ref", "WEBHOOK_SHARED_SECRET=hunter2-secret"], "plain value"),
        (
            [
                "tenant",
                "add",
                "contoso",
                "--secret-ref",
                "WEBHOOK_SHARED_SECRET=http://v.vault.azure.net/secrets/x",
            ],
            "https:// URL",
        ),
        (
            [
                "tenant",
                "add",
                "contoso",
                "--secret-ref",
                "WEBHOOK_SHARED_SECRET=https://example.com/secrets/x",
            ],
            "not a Key Vault",
        ),
        (["tenant", "add", "contoso", "--credential-secret-ref", "hunter2-secret"], "plain value"),
        (["tenant", "update", "contoso"], "nothing to update"),
    ],
)
def test_what_can_be_checked_is_refused_before_any_call(
    relay: str, capsys: pytest.CaptureFixture[str], argv: list[str], said: str
) -> None:
    code, _, err = run(relay, capsys, *argv)
    assert code == 2 and SEEN == []  # nothing was sent
    what, _ = two_lines(err)
    assert said in what
    assert "hunter2" not in err


def test_a_long_name_is_not_repeated_whole(relay: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(relay, capsys, "tenant", "show", "x" * 200)
    assert code == 2 and "x" * 41 not in err


def test_remove_export_writes_the_entries_to_a_new_file(
    relay: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "contoso-queue.json"
    code, out, _ = run(relay, capsys, "tenant", "remove", "contoso", "--export", str(target))
    assert code == 0
    assert out["seen"]["params"] == {"then": "export"}
    assert out["exported_entries"] == 1 and out["exported_to"] == str(target) and "exported" not in out
    assert json.loads(target.read_text()) == [{"id": "e1", "rows": [{"EventType": "hit"}]}]
    assert target.stat().st_mode & 0o077 == 0  # owner only: the rows are event data

    code, _, err = run(relay, capsys, "tenant", "remove", "contoso", "--export", str(target))
    assert code == 2 and SEEN == []  # never overwritten, and nothing removed
    assert "exists" in two_lines(err)[0]


def test_remove_export_of_a_refused_remove_leaves_no_file(
    relay: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "gone.json"
    code, _, _ = run(relay, capsys, "tenant", "remove", "gone", "--export", str(target))
    assert code == 1 and not target.exists()


def test_drain_and_export_are_one_or_the_other(relay: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--url", relay, "--key", MASTER_KEY, "tenant", "remove", "x", "--drain", "--export", "f"])
    assert exited.value.code == 2
