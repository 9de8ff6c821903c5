"""The Functions wiring, tested as the host sees it: `app.get_functions()` and the built functions."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
import pytest
from wallarm_fixtures import ALL_FIXTURES, Fixture, load_fixture

import function_app
from local.standins.logs_ingestion import LogsIngestionStandIn
from shared.schema import COLUMNS

from .conftest import Call, body_json, functions


def test_import_registers_every_function() -> None:
    assert set(functions()) == {
        "wallarm_webhook",
        "test_integration",
        "tenant_webhook",
        "tenant_test_integration",
        "relay_status",
        "relay_admin",
        "relay_tenants",
        "relay_tenant",
        "relay_tenant_op",
        "retry_worker",
        "hourly_count",
        "completeness",
    }


@pytest.mark.parametrize(
    ("name", "route", "methods", "auth"),
    [
        ("wallarm_webhook", "wallarm", {"POST", "PUT"}, "FUNCTION"),
        ("test_integration", "wallarm/test", {"GET", "POST"}, "FUNCTION"),
        ("tenant_webhook", "wallarm/{tenant}", {"POST", "PUT"}, "FUNCTION"),
        ("tenant_test_integration", "wallarm/{tenant}/test", {"GET", "POST"}, "FUNCTION"),
        ("relay_status", "relay/status", {"GET"}, "ADMIN"),
        ("relay_admin", "relay/{action:alpha}", {"POST"}, "ADMIN"),
        ("relay_tenants", "relay/tenants", {"GET", "POST"}, "ADMIN"),
        ("relay_tenant", "relay/tenants/{name}", {"GET", "PATCH", "DELETE"}, "ADMIN"),
        ("relay_tenant_op", "relay/tenants/{name}/{op}", {"POST"}, "ADMIN"),
    ],
)
def test_http_routes_and_auth_levels(name: str, route: str, methods: set[str], auth: str) -> None:
    binding = json.loads(functions()[name].get_function_json())["bindings"][0]
    assert binding["type"] == "httpTrigger"
    assert binding["route"] == route
    assert set(binding["methods"]) == methods
    assert binding["authLevel"] == auth


@pytest.mark.parametrize(
    ("name", "setting"),
    [
        ("retry_worker", "%RETRY_WORKER_SCHEDULE%"),
        ("hourly_count", "%HOURLY_COUNT_SCHEDULE%"),
        ("completeness", "%COMPLETENESS_SCHEDULE%"),
    ],
)
def test_timers_read_schedule_from_settings_and_never_run_on_startup(name: str, setting: str) -> None:
    binding = json.loads(functions()[name].get_function_json())["bindings"][0]
    assert binding["type"] == "timerTrigger"
    assert binding["schedule"] == setting
    assert binding["runOnStartup"] is False


@pytest.mark.parametrize("fixture", ALL_FIXTURES, ids=lambda f: f.name)
def test_every_wallarm_event_type_lands_as_its_row(
    call: Call, ingestion: LogsIngestionStandIn, fixture: Fixture
) -> None:
    resp = call("wallarm_webhook", load_fixture(fixture.name), headers={"Content-Type": fixture.content_type})
    assert resp.status_code == 200, resp.get_body()
    assert body_json(resp)["delivered"] == fixture.count
    rows = ingestion.accepted
    assert [r["EventType"] for r in rows] == [fixture.event_type] * fixture.count
    for row in rows:
        assert list(row) == list(COLUMNS)
        assert row["Vendor"] == "Wallarm"
        assert row["Severity"] in ("high", "medium", "low", "info")
        json.loads(row["RawData"])
    assert not ingestion.dropped
    assert not ingestion.truncated_fields


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"", "application/json", 400, "empty_body"),
        (b"{not json", "application/json", 400, "invalid_json"),
        (b"[]", "application/json", 422, "empty_batch"),
        (b"42", "application/json", 422, "invalid_shape"),
        (b"\xff\xfe[", "application/json", 400, "invalid_encoding"),
        (b"<xml/>", "application/xml", 400, "invalid_json"),  # the body decides, not the header
    ],
)
def test_bad_input_gets_its_status_and_a_json_error(
    call: Call, ingestion: LogsIngestionStandIn, body: bytes, content_type: str, status: int, code: str
) -> None:
    resp = call("wallarm_webhook", body, headers={"Content-Type": content_type})
    assert resp.status_code == status
    assert resp.mimetype == "application/json"
    assert body_json(resp)["error"]["code"] == code
    assert ingestion.accepted == []


def test_oversized_body_is_413(call: Call, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_BODY_BYTES", "2048")
    function_app.services.cache_clear()
    resp = call("wallarm_webhook", b"[" + b" " * 4096 + b"]")
    assert resp.status_code == 413
    assert body_json(resp)["error"]["code"] == "body_too_large"


def test_shared_secret_is_required_when_set(
    call: Call,
    monkeypatch: pytest.MonkeyPatch,
    ingestion: LogsIngestionStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "s3cret-value-that-is-long-enough"
    monkeypatch.setenv("WEBHOOK_SHARED_SECRET", secret)
    function_app.services.cache_clear()
    body = load_fixture("create_user")
    missing = call("wallarm_webhook", body)
    wrong = call("wallarm_webhook", body, headers={"X-Wallarm-Relay-Secret": "nope-nope-nope-nope"})
    right = call("wallarm_webhook", body, headers={"X-Wallarm-Relay-Secret": secret})
    assert (missing.status_code, body_json(missing)["error"]["code"]) == (401, "missing_secret")
    assert (wrong.status_code, body_json(wrong)["error"]["code"]) == (401, "wrong_secret")
    assert right.status_code == 200
    assert len(ingestion.accepted) == 1
    assert secret not in caplog.text and "nope-nope" not in caplog.text


def test_source_allow_list(call: Call, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_SOURCE_NETWORKS", "34.94.16.0/24, 2a01:4f8::/32")
    function_app.services.cache_clear()
    body = load_fixture("create_user")
    outside = call("wallarm_webhook", body, headers={"X-Forwarded-For": "34.94.16.7, 10.0.0.1:5555"})
    inside = call("wallarm_webhook", body, headers={"X-Forwarded-For": "10.0.0.1, 34.94.16.7:443"})
    assert outside.status_code == 403
    assert body_json(outside)["error"]["code"] == "source_not_allowed"
    assert inside.status_code == 200


def test_misconfiguration_is_a_clear_500(call: Call, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGS_STREAM_NAME", "WallarmSentinel_CL")
    function_app.services.cache_clear()
    resp = call("wallarm_webhook", load_fixture("create_user"))
    assert resp.status_code == 500
    problems = body_json(resp)["error"]["problems"]
    assert any("must start with 'Custom-'" in p for p in problems)


def test_test_integration_probe_and_event(call: Call, ingestion: LogsIngestionStandIn) -> None:
    probe = call("test_integration", method="GET")
    assert probe.status_code == 200, probe.get_body()
    assert body_json(probe)["ok"] is True
    assert ingestion.accepted == []
    event = call("test_integration", method="POST", params={"event": "true"})
    assert event.status_code == 200
    assert [r["EventType"] for r in ingestion.accepted] == ["test_integration"]


@pytest.mark.parametrize(
    ("status", "phrase"),
    [
        (403, "Monitoring Metrics Publisher"),
        (404, "LOGS_DCR_IMMUTABLE_ID"),
        (401, "token"),
        (413, "1 MB"),
    ],
)
def test_test_integration_explains_failures(
    call: Call, ingestion: LogsIngestionStandIn, status: int, phrase: str
) -> None:
    ingestion.inject(status)
    resp = call("test_integration", method="GET")
    assert resp.status_code == 502
    body = body_json(resp)["ingestion"]
    assert body["status"] == status
    assert phrase in body["advice"]
    assert body["x_ms_request_id"]


def test_api_failure_queues_then_worker_delivers(call: Call, ingestion: LogsIngestionStandIn) -> None:
    ingestion.set_outage(503)
    resp = call("wallarm_webhook", load_fixture("new_hits"))
    assert resp.status_code == 202
    assert body_json(resp)["queued"] == 2
    ingestion.set_outage(None)
    svc = function_app.services()
    svc.worker.run_once()
    assert ingestion.accepted == []  # not due yet: the first step is 1 s
    import time

    time.sleep(1.1)
    svc.worker.run_once()
    assert [r["EventType"] for r in ingestion.accepted] == ["new_hits", "new_hits"]


def test_timer_functions_deliver_due_entries_and_send_the_hourly_row(
    call: Call, ingestion: LogsIngestionStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETRY_WORKER_RUN_SECONDS", "0")
    monkeypatch.setenv("RETRY_SCHEDULE", "0s; every 1m")
    function_app.services.cache_clear()
    ingestion.inject(503)
    assert call("wallarm_webhook", load_fixture("create_user")).status_code == 202
    timer = func.TimerRequest  # the host passes a TimerRequest; the functions do not read it
    functions()["retry_worker"].get_user_function()(timer)
    functions()["hourly_count"].get_user_function()(timer)
    types = [r["EventType"] for r in ingestion.accepted]
    assert types == ["create_user", "relay_hourly_stats"]


def test_client_secret_app_registration_works(
    relay_env: dict[str, str], ingestion: LogsIngestionStandIn, token_issuer: Any, tls_ca: str
) -> None:
    """The Wallarm guide's setup: an app registration with a client secret instead of an identity."""
    from local.standins.identity import EntraIdStandIn
    from shared.ops.services import build_services

    client_id, secret = "44444444-4444-4444-8444-444444444444", "app-registration-secret"
    with EntraIdStandIn(token_issuer, {client_id: secret}) as entra:
        env = {k: v for k, v in relay_env.items() if not k.startswith("IDENTITY_")}
        env.update(
            AZURE_TENANT_ID=entra.tenant_id,
            AZURE_CLIENT_ID=client_id,
            AZURE_CLIENT_SECRET=secret,
            AZURE_AUTHORITY_HOST=entra.authority,
        )
        svc = build_services(env)
        status, body = svc.health.run(send_test_event=True)
        assert status == 200, body
        assert entra.token_requests == 1
    assert ingestion.requests[-1].client_id == client_id


def test_reconcile_route_status_and_timer(
    call: Call,
    monkeypatch: pytest.MonkeyPatch,
    completeness_env: dict[str, str],
    ingestion: LogsIngestionStandIn,
) -> None:
    for key, value in completeness_env.items():
        monkeypatch.setenv(key, value)
    function_app.services.cache_clear()
    window = {"from": "2026-11-25T10:00:00Z", "to": "2026-11-25T11:00:00Z"}
    resp = call("relay_admin", route_params={"action": "reconcile"}, params=window)
    assert resp.status_code == 200
    assert [w["in_wallarm"] for w in body_json(resp)["windows"]] == [0]
    bad = call("relay_admin", route_params={"action": "reconcile"}, params={"from": "x", "to": "y"})
    assert bad.status_code == 400 and body_json(bad)["error"]["code"] == "invalid_range"
    status = body_json(call("relay_status", method="GET"))
    assert status["completeness"]["windows"][0]["start"] == "2026-11-25T10:00:00.000Z"
    functions()["completeness"].get_user_function()(func.TimerRequest)
