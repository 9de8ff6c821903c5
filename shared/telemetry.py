"""Metrics and spans through the OpenTelemetry API.

The API is a no-op until a provider is configured: in Azure, `configure_telemetry_export()` (in
shared/ops/telemetry_export.py, called by function_app.py) exports to Application Insights; tests install
an in-memory reader. Attribute
values are low-cardinality facts (event type, status, outcome), never payload content.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation

_NAME = "wallarm_sentinel_relay"

Attributes = Mapping[str, str | int | float | bool]


class Telemetry:
    """One place for every metric name, so dashboards and alert rules match the code."""

    def __init__(
        self,
        meter_provider: metrics.MeterProvider | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        # Providers are injected in tests (in-memory readers); in Azure the global ones are set by
        # configure_azure_monitor() before services are built.
        meter = metrics.get_meter(_NAME, meter_provider=meter_provider)
        self._tracer = trace.get_tracer(_NAME, tracer_provider=tracer_provider)
        self.events = meter.create_counter(
            "relay.events",
            unit="{event}",
            description="Events by outcome (received, delivered, queued, "
            "rejected, filtered, parked, quarantined) and event type",
        )
        self.attempts = meter.create_counter(
            "relay.delivery.attempts", unit="{request}", description="Logs Ingestion API requests by status"
        )
        self.latency = meter.create_histogram(
            "relay.delivery.duration", unit="s", description="Logs Ingestion API request latency"
        )
        self.disabled = meter.create_counter(
            "relay.integration.disabled", unit="{event}", description="Integration disabled (auto or manual)"
        )
        self.recovered = meter.create_counter(
            "relay.integration.recovered",
            unit="{event}",
            description="Integration re-enabled automatically after a successful probe",
        )
        self.watchdog = meter.create_counter(
            "relay.watchdog.alerts",
            unit="{alert}",
            description="Wallarm integration disabled/changed or pipe quiet, by problem",
        )
        self._gauges: dict[str, float] = {}
        for name, description in (
            ("relay.queue.depth", "Pending retry queue entries"),
            ("relay.queue.oldest_pending_age_seconds", "Age of the oldest pending entry"),
            ("relay.failure_ratio_12h", "Failed share of delivery attempts over the auto-disable window"),
        ):
            meter.create_observable_gauge(name, callbacks=[self._observe(name)], description=description)

    def _observe(self, name: str) -> Callable[[CallbackOptions], Iterator[Observation]]:
        def callback(_: CallbackOptions) -> Iterator[Observation]:
            if name in self._gauges:
                yield Observation(self._gauges[name])

        return callback

    def gauge(self, name: str, value: float) -> None:
        self._gauges[name] = value

    def count_events(self, outcome: str, by_type: Mapping[str, int]) -> None:
        for event_type, n in by_type.items():
            if n:
                self.events.add(n, {"outcome": outcome, "event_type": event_type})

    def attempt(self, ok: bool, status: int | None, error: str, elapsed: float, source: str) -> None:
        attrs: dict[str, str | bool] = {
            "ok": ok,
            "status": str(status or 0),
            "error": error,
            "source": source,
        }
        self.attempts.add(1, attrs)
        self.latency.record(elapsed, attrs)

    @contextmanager
    def span(self, name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[trace.Span]:
        with self._tracer.start_as_current_span(name, attributes=dict(attributes or {})) as span:
            yield span
