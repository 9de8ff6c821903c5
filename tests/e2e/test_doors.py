"""Every door but the webhook, tried from outside: the probe, the admin routes, storage outages.

Each test sends what a stranger (or a broken storage account) would and checks the answer, the
rows that landed and that no caller-supplied value reached a log line. See SECURITY.md.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest

import function_app
from local.standins.azurite import Azurite, connection_string_for
from local.standins.logs_ingestion import LogsIngestionStandIn

from .conftest import Call, body_json

SECRET = "probe-secret-0123456789abcdef"
MARKER = "INJECTED-MARKER"


def relay_log(caplog: pytest.LogCaptureFixture) -> str:
    """What the relay itself logged (the stand-ins may log what they receive)."""
    return "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith(("shared", "function_app", "local.host"))
    )


def use(monkeypatch: pytest.MonkeyPatch, **settings: str) -> None:
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    function_app.services.cache_clear()


# -- the probe: the webhook's guards, and no resource identifiers --------------------------------


@pytest.mark.parametrize("params", [{}, {"event": "true"}], ids=["probe", "event"])
def test_probe_needs_the_shared_secret(
    call: Call, monkeypatch: pytest.MonkeyPatch, ingestion: LogsIngestionStandIn, params: dict[str, str]
) -> None:
    use(monkeypatch, WEBHOOK_SHARED_SECRET=SECRET)
    missing = call("test_integration", method="POST", params=params)
    wrong = call(
        "test_integration", method="POST", params=params, headers={"X-Wallarm-Relay-Secret": "x" * 29}
    )
    assert (missing.status_code, body_json(missing)["error"]["code"]) == (401, "missing_secret")
    assert (wrong.status_code, body_json(wrong)["error"]["code"]) == (401, "wrong_secret")
    assert ingestion.requests == [] and ingestion.accepted == []
    right = call("test_integration", method="POST", params=params, headers={"X-Wallarm-Relay-Secret": SECRET})
    assert right.status_code == 200, right.get_body()
    assert len(ingestion.accepted) == (1 if params else 0)


def test_probe_honours_the_source_allow_list(
    call: Call, monkeypatch: pytest.MonkeyPatch, ingestion: LogsIngestionStandIn
) -> None:
    use(monkeypatch, ALLOWED_SOURCE_NETWORKS="34.94.16.0/24")
    outside = call("test_integration", params={"event": "true"}, headers={"X-Forwarded-For": "198.51.100.7"})
    assert (outside.status_code, body_json(outside)["error"]["code"]) == (403, "source_not_allowed")
    assert ingestion.accepted == []
    inside = call("test_integration", params={"event": "true"}, headers={"X-Forwarded-For": "34.94.16.7"})
    assert inside.status_code == 200
    assert [r["EventType"] for r in ingestion.accepted] == ["test_integration"]


def test_probe_answer_names_no_resource(
    call: Call, ingestion: LogsIngestionStandIn, relay_env: dict[str, str]
) -> None:
    ingestion.inject(404)
    resp = call("test_integration", method="GET")
    text = resp.get_body().decode()
    for identifier in (ingestion.endpoint, ingestion.dcr_id, ingestion.stream, "assigned"):
        assert identifier not in text
    body = json.loads(text)
    assert body["ok"] is False
    assert body["ingestion"]["status"] == 404
    assert body["ingestion"]["x_ms_request_id"]
    assert "LOGS_DCR_IMMUTABLE_ID" in body["ingestion"]["advice"]  # the setting to check, not its value


# -- storage outages: the probe says so, admin routes answer 503 ----------------------------------


@pytest.fixture
def storage_gone(call: Call, monkeypatch: pytest.MonkeyPatch, relay_env: dict[str, str]) -> Iterator[None]:
    """The relay built against its own Azurite, which then stops: Table Storage is gone."""
    own = Azurite()
    own.start()
    try:
        use(monkeypatch, RELAY_STORAGE_CONNECTION_STRING=own.connection_string)
        function_app.services()
    finally:
        own.stop()
    yield


@pytest.mark.usefixtures("storage_gone")
def test_probe_reports_storage_next_to_ingestion(call: Call, ingestion: LogsIngestionStandIn) -> None:
    resp = call("test_integration", method="GET")
    body = body_json(resp)
    assert resp.status_code == 503
    assert body["ok"] is False
    assert body["ingestion"]["ok"] is True
    assert body["storage"]["ok"] is False
    assert "RELAY_STORAGE_TABLE_ENDPOINT" in body["storage"]["advice"]


ADMIN_ROUTES = [
    ("relay_status", "GET", ""),
    ("relay_admin", "POST", "disable"),
    ("relay_admin", "POST", "enable"),
    ("relay_admin", "POST", "replay"),
]


@pytest.mark.usefixtures("storage_gone")
@pytest.mark.parametrize(("name", "method", "action"), ADMIN_ROUTES)
def test_admin_routes_answer_503_when_storage_is_down(
    call: Call, name: str, method: str, action: str
) -> None:
    resp = call(name, method=method, route_params={"action": action} if action else {})
    assert resp.status_code == 503
    assert resp.mimetype == "application/json"
    assert resp.headers["Retry-After"] == "30"
    error = body_json(resp)["error"]
    assert error["code"] == "storage_unavailable"
    assert "Table Storage is unavailable" in error["message"]


def test_storage_down_at_start_up_is_a_503_not_a_500(call: Call, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    use(
        monkeypatch,
        RELAY_STORAGE_CONNECTION_STRING=connection_string_for(f"http://127.0.0.1:{port}/devstoreaccount1"),
    )
    resp = call("relay_status", method="GET")
    assert resp.status_code == 503
    assert body_json(resp)["error"]["code"] == "storage_unavailable"


# -- admin routes: identity from the platform only, free text cleaned or refused ------------------


def disable(call: Call, reason: str, headers: dict[str, str] | None = None) -> Any:
    return call(
        "relay_admin", route_params={"action": "disable"}, params={"reason": reason}, headers=headers or {}
    )


def test_forged_principal_header_is_ignored_without_platform_auth(
    call: Call,
    monkeypatch: pytest.MonkeyPatch,
    ingestion: LogsIngestionStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED", raising=False)
    caplog.set_level(logging.DEBUG)
    resp = disable(call, "maintenance", {"x-ms-client-principal-name": f"{MARKER}\r\nadmin: yes"})
    assert resp.status_code == 200
    assert body_json(resp)["changed_by"] == "admin-key"
    (row,) = [r for r in ingestion.accepted if r["EventType"] == "disable_integration"]
    assert json.loads(row["RawData"])["changed_by"] == "admin-key"
    assert MARKER not in json.dumps(ingestion.accepted)
    assert MARKER not in relay_log(caplog)


def test_principal_name_is_used_when_app_service_authentication_is_on(
    call: Call, monkeypatch: pytest.MonkeyPatch, ingestion: LogsIngestionStandIn
) -> None:
    use(monkeypatch, WEBSITE_AUTH_ENABLED="True")
    resp = disable(call, "", {"x-ms-client-principal-name": "alice@contoso.example\x1b[31m\n"})
    assert body_json(resp)["changed_by"] == "alice@contoso.example[31m"


def test_reason_is_one_clean_line_in_the_row_and_never_in_a_log(
    call: Call, ingestion: LogsIngestionStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    resp = disable(call, f"DCR migration\n2026-11-30 00:00 ERROR forged {MARKER}\u202e\x00")
    assert resp.status_code == 200
    reason = f"DCR migration 2026-11-30 00:00 ERROR forged {MARKER}"
    assert body_json(resp)["reason"] == reason
    (row,) = [r for r in ingestion.accepted if r["EventType"] == "disable_integration"]
    assert json.loads(row["RawData"])["reason"] == reason
    assert "\n" not in row["Description"]
    assert MARKER not in relay_log(caplog)


def test_overlong_reason_is_a_400(call: Call, ingestion: LogsIngestionStandIn) -> None:
    resp = disable(call, "x" * 201)
    assert resp.status_code == 400
    assert body_json(resp)["error"]["code"] == "invalid_reason"
    status = body_json(call("relay_status", method="GET"))
    assert status["enabled"] is True
    assert ingestion.accepted == []


@pytest.mark.parametrize(
    ("ids", "code"),
    [
        ("../../x", "invalid_id"),
        (f"001764072000000-0000001a2b3c4d,{MARKER}\n", "invalid_id"),
        ("001764072000000-0000001a2b3c4d'%20or%20'1", "invalid_id"),
        ("z" * 5000, "invalid_id"),
        (",".join(f"001764072000000-{n:014x}" for n in range(101)), "too_many_ids"),
    ],
)
def test_bad_replay_ids_are_a_400_and_never_logged(
    call: Call, caplog: pytest.LogCaptureFixture, ids: str, code: str
) -> None:
    caplog.set_level(logging.DEBUG)
    resp = call("relay_admin", route_params={"action": "replay"}, params={"id": ids})
    assert resp.status_code == 400
    assert resp.mimetype == "application/json"
    assert body_json(resp)["error"]["code"] == code
    assert MARKER not in relay_log(caplog) and "../" not in relay_log(caplog)


def test_well_formed_unknown_id_is_refused(call: Call) -> None:
    resp = call(
        "relay_admin", route_params={"action": "replay"}, params={"id": "001764072000000-0000001a2b3c4d"}
    )
    assert resp.status_code == 400  # not a 200 that "replayed": 0 (issue 20)
    assert body_json(resp)["error"]["code"] == "unknown_id"
