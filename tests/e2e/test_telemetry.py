"""Telemetry asserted with in-memory OpenTelemetry readers: what Application Insights would get."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from wallarm_fixtures import load_fixture

from local.standins.logs_ingestion import LogsIngestionStandIn
from local.standins.wallarm_api import Hit, WallarmApiStandIn
from shared.intake.webhook import WebhookRequest
from shared.telemetry import Telemetry

from .conftest import FakeClock, MakeServices


@dataclass
class Captured:
    telemetry: Telemetry
    metrics: InMemoryMetricReader
    spans: InMemorySpanExporter

    def points(self, name: str, *, tenant: str = "default") -> list[tuple[dict[str, Any], float]]:
        """The metric's points of one tenant, with the tenant dimension taken off their attributes."""
        return [
            ({k: v for k, v in attrs.items() if k != "tenant"}, value)
            for attrs, value in self.tagged_points(name)
            if attrs.get("tenant") == tenant
        ]

    def tagged_points(self, name: str) -> list[tuple[dict[str, Any], float]]:
        data = self.metrics.get_metrics_data()
        found: list[tuple[dict[str, Any], float]] = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        for point in metric.data.data_points:
                            value = getattr(point, "value", getattr(point, "sum", 0))
                            found.append((dict(point.attributes or {}), float(value)))
        return found


@pytest.fixture
def captured() -> Iterator[Captured]:
    reader = InMemoryMetricReader()
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Captured(Telemetry(meter_provider, tracer_provider), reader, spans)
    meter_provider.shutdown()


def post(make: Any, body: bytes) -> Any:
    return make.webhook.handle(WebhookRequest(body, {"content-type": "application/json"}, "127.0.0.1"))


def test_events_attempts_and_latency_are_measured_per_type(
    make_services: MakeServices, clock: FakeClock, captured: Captured, ingestion: LogsIngestionStandIn
) -> None:
    svc = make_services(clock, telemetry=captured.telemetry)
    post(svc, load_fixture("new_hits"))
    post(svc, load_fixture("vuln_high"))
    ingestion.inject(403)
    post(svc, load_fixture("create_user"))
    received = {(a["outcome"], a["event_type"]): v for a, v in captured.points("relay.events")}
    assert received[("received", "new_hits")] == 2
    assert received[("received", "vuln_high")] == 1
    assert received[("delivered", "new_hits")] == 2
    assert received[("queued", "mixed")] == 1
    attempts = {(a["status"], a["ok"]): v for a, v in captured.points("relay.delivery.attempts")}
    assert attempts[("204", True)] == 2
    assert attempts[("403", False)] == 1
    assert captured.points("relay.delivery.duration")


def test_queue_gauges_and_failure_ratio(
    make_services: MakeServices, clock: FakeClock, captured: Captured, ingestion: LogsIngestionStandIn
) -> None:
    svc = make_services(clock, telemetry=captured.telemetry)
    ingestion.set_outage(503)
    post(svc, load_fixture("create_user"))
    clock.advance(120)
    svc.worker.run(__import__("datetime").timedelta(seconds=0))
    gauges = {
        name: captured.points(name)
        for name in ("relay.queue.depth", "relay.queue.oldest_pending_age_seconds", "relay.failure_ratio_12h")
    }
    assert gauges["relay.queue.depth"][0][1] == 1
    assert gauges["relay.queue.oldest_pending_age_seconds"][0][1] >= 120
    assert gauges["relay.failure_ratio_12h"][0][1] == 1.0


def test_auto_disable_is_a_metric_and_an_error_log(
    make_services: MakeServices,
    clock: FakeClock,
    captured: Captured,
    ingestion: LogsIngestionStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    svc = make_services(
        clock, telemetry=captured.telemetry, AUTO_DISABLE_MIN_ATTEMPTS="2", AUTO_DISABLE_GRACE_MINUTES="0"
    )
    ingestion.set_outage(503)
    with caplog.at_level(logging.ERROR):
        post(svc, load_fixture("create_user"))
        post(svc, load_fixture("delete_user"))
    assert captured.points("relay.integration.disabled") == [({"mode": "auto_disabled"}, 1)]
    assert any("integration_broken" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)


def test_webhook_span_parents_the_delivery(
    make_services: MakeServices, clock: FakeClock, captured: Captured
) -> None:
    svc = make_services(clock, telemetry=captured.telemetry)
    post(svc, load_fixture("new_hits"))
    spans = {s.name: s for s in captured.spans.get_finished_spans()}
    webhook, deliver = spans["wallarm.webhook"], spans["relay.deliver"]
    assert deliver.parent is not None and deliver.parent.span_id == webhook.context.span_id
    assert webhook.attributes is not None and webhook.attributes["http.response.status_code"] == 200


def test_no_payload_or_secret_reaches_logs_or_spans(
    make_services: MakeServices,
    clock: FakeClock,
    captured: Captured,
    ingestion: LogsIngestionStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "a-very-secret-shared-value-123"
    svc = make_services(clock, telemetry=captured.telemetry, WEBHOOK_SHARED_SECRET=secret)
    marker = "PAYLOAD-MARKER-5f1c"
    body = json.loads(load_fixture("new_hits"))
    body[0]["details"]["hit"]["payloads"] = [marker]
    raw = json.dumps(body).encode()
    ingestion.inject(400)
    with caplog.at_level(logging.DEBUG):
        for headers in ({"x-wallarm-relay-secret": secret}, {"x-wallarm-relay-secret": secret + "x"}, {}):
            svc.webhook.handle(
                WebhookRequest(raw, {"content-type": "application/json", **headers}, "1.2.3.4")
            )
        svc.webhook.handle(
            WebhookRequest(
                b"{" + marker.encode(),
                {"content-type": "application/json", "x-wallarm-relay-secret": secret},
                "1.2.3.4",
            )
        )
    text = caplog.text + json.dumps([dict(s.attributes or {}) for s in captured.spans.get_finished_spans()])
    assert marker not in text
    assert secret not in text


def test_sdk_calls_are_traced_under_the_webhook(make_services: MakeServices, clock: FakeClock) -> None:
    """With azure-core's OpenTelemetry tracing on (configure_azure_monitor turns it on in Azure),
    the ingestion upload and the Table writes are child spans of the webhook's span."""
    from azure.core.settings import settings
    from opentelemetry import trace

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # azure-core traces through the global provider
    assert trace.get_tracer_provider() is provider, "another test set the global tracer provider first"
    settings.tracing_implementation = "opentelemetry"
    try:
        svc = make_services(clock, telemetry=Telemetry(tracer_provider=provider))
        exporter.clear()
        post(svc, load_fixture("new_hits"))
    finally:
        settings.tracing_implementation = None
    spans = exporter.get_finished_spans()
    by_id = {s.context.span_id: s for s in spans}
    root = next(s for s in spans if s.name == "wallarm.webhook")

    def under_root(span: Any) -> bool:
        while span.parent is not None:
            if span.parent.span_id == root.context.span_id:
                return True
            span = by_id.get(span.parent.span_id)
            if span is None:
                return False
        return False

    names = {s.name for s in spans if under_root(s)}
    assert any("upload" in n for n in names), names
    assert any(n.startswith("TableClient.") for n in names), names


def test_watchdog_alerts_and_backfilled_hits_are_measured(
    make_services: MakeServices,
    clock: FakeClock,
    captured: Captured,
    wallarm: WallarmApiStandIn,
    completeness_env: dict[str, str],
) -> None:
    wallarm.add_integration("https://relay.example.net/api/wallarm?code=k", active=False)
    wallarm.add_hit(
        Hit("hits_p_4242_202611_v_1", "d1", "r1", int(clock().timestamp()) - 3 * 3600), notify=False
    )
    svc = make_services(clock, telemetry=captured.telemetry, **completeness_env)
    svc.completeness.run_timer()
    assert ({"problem": "disabled"}, 1.0) in captured.points("relay.watchdog.alerts")
    clock.advance(3600)  # missing hits are added by the second look (RECONCILE_CONFIRM_MINUTES)
    svc.completeness.run_timer()
    assert ({"outcome": "backfilled", "event_type": "new_hits"}, 1.0) in captured.points("relay.events")
