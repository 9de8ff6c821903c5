"""Issue 24, defect "timed out but landed": the webhook's upload read-times-out after Azure
accepted the rows; the relay queues them (202) and the worker sends them again. Without a
workspace identity check that is at-least-once by design (FACTS.md): the resend is counted as
``possible_duplicate`` (telemetry, a log line), never silent."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from wallarm_fixtures import load_fixture

from local.standins.logs_ingestion import LogsIngestionStandIn
from shared.intake.webhook import WebhookHandler, WebhookRequest
from shared.telemetry import Telemetry

from .conftest import FakeClock, MakeServices


def _events(reader: InMemoryMetricReader) -> dict[str, float]:
    data = reader.get_metrics_data()
    out: dict[str, float] = {}
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "relay.events":
                    for point in metric.data.data_points:
                        outcome = str(dict(point.attributes or {}).get("outcome"))
                        out[outcome] = out.get(outcome, 0.0) + float(getattr(point, "value", 0))
    return out


def test_rows_resent_after_a_timed_out_upload_that_landed_are_counted_as_possible_duplicates(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    svc = make_services(clock, Telemetry(meters, TracerProvider()), AUTO_DISABLE_MIN_ATTEMPTS="100000")
    assert isinstance(svc.webhook, WebhookHandler)
    body = json.loads(load_fixture("new_hits"))[:1]
    body[0]["details"]["hit"]["request_id"] = "landed-then-hung"
    # The rows land, then the answer waits past the webhook's read timeout (2 s in e2e).
    ingestion.inject_delay(6, land=True)
    request = WebhookRequest(json.dumps(body).encode(), {"content-type": "application/json"}, "127.0.0.1")
    assert svc.webhook.handle(request).status == 202  # queued: the relay could not tell
    assert [r["RequestId"] for r in ingestion.accepted] == ["landed-then-hung"]

    clock.advance(5)
    with caplog.at_level(logging.WARNING):
        run = svc.worker.run(timedelta(seconds=5))

    assert run.delivered == 1
    assert [r["RequestId"] for r in ingestion.accepted] == ["landed-then-hung"] * 2  # at-least-once
    assert _events(reader).get("possible_duplicate") == 1.0
    assert "may be in the table twice" in caplog.text
    meters.shutdown()
