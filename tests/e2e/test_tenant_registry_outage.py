"""The tenant registry out of reach must not stop the default tenant (issue 22): its webhooks,
status and retry worker go on as if no tenant had been added."""

from __future__ import annotations

import json

import pytest
from azure.data.tables import TableServiceClient

import function_app
from local.standins.logs_ingestion import LogsIngestionStandIn
from shared.ops import routes

from .conftest import Call, body_json


def test_the_default_tenant_drains_and_answers_with_the_registry_table_gone(
    call: Call, relay_env: dict[str, str], ingestion: LogsIngestionStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETRY_WORKER_RUN_SECONDS", "4")  # the first retry step is 1 s
    hit = json.dumps([{"summary": "s", "details": {"notification_type": "new_hits", "client_name": "c"}}])
    ingestion.set_outage(503)
    assert call("wallarm_webhook", hit.encode()).status_code == 202  # queued
    function_app.services()
    service = TableServiceClient.from_connection_string(relay_env["RELAY_STORAGE_CONNECTION_STRING"])
    service.delete_table(f"{relay_env['RELAY_TABLE_PREFIX']}tenants")
    ingestion.set_outage(None)

    status = body_json(call("relay_status", method="GET"))
    assert "tenants" not in status  # the same answer as before any tenant
    routes.run_retry_worker()
    assert len(ingestion.accepted) == 1
    assert call("wallarm_webhook", hit.replace('"s"', '"t"').encode()).status_code == 200
