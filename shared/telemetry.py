"""Metrics and spans through the OpenTelemetry API.

The API is a no-op until a provider is configured: in Azure, `configure_telemetry_export()` (in
shared/ops/telemetry_export.py, called by function_app.py) exports to Application Insights; tests install
an in-memory reader. Attribute
values are low-cardinality facts (event type, status, outcome), never payload content.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation

_NAME = "wallarm_sentinel_relay"

Attributes = Mapping[str, str | int | float | bool]


TENANT_ATTRIBUTE = "tenant"
DEFAULT_TENANT = "default"  # today's single integration: the tenant a deployment has without adding any

current_tenant: ContextVar[str] = ContextVar("relay_tenant", default=DEFAULT_TENANT)
"""The tenant whose work this thread does: log records carry it (``tenant_log_records``)."""


class _Tagged:
    """An instrument that adds the tenant to every measurement's attributes."""

    def __init__(self, instrument: Any, tags: Mapping[str, str]) -> None:
        self._instrument = instrument
        self._tags = tags

    def add(self, amount: float, attributes: Attributes | None = None) -> None:
        self._instrument.add(amount, {**(attributes or {}), **self._tags})

    def record(self, amount: float, attributes: Attributes | None = None) -> None:
        self._instrument.record(amount, {**(attributes or {}), **self._tags})


class Telemetry:
    """One place for every metric name, so dashboards and alert rules match the code.

    Every measurement and span carries a ``tenant`` dimension; ``for_tenant`` gives a tenant's view
    over the same instruments, so one meter serves every tenant and alerts can split by it."""

    def __init__(
        self,
        meter_provider: metrics.MeterProvider | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.tenant = DEFAULT_TENANT
        self._tags: dict[str, str] = {TENANT_ATTRIBUTE: DEFAULT_TENANT}
        # Providers are injected in tests (in-memory readers); in Azure the global ones are set by
        # configure_azure_monitor() before services are built.
        meter = metrics.get_meter(_NAME, meter_provider=meter_provider)
        self._tracer = trace.get_tracer(_NAME, tracer_provider=tracer_provider)
        self._events = meter.create_counter(
            "relay.events",
            unit="{event}",
            description="Events by outcome (received, delivered, queued, "
            "rejected, filtered, parked, quarantined) and event type",
        )
        self._attempts = meter.create_counter(
            "relay.delivery.attempts", unit="{request}", description="Logs Ingestion API requests by status"
        )
        self._latency = meter.create_histogram(
            "relay.delivery.duration", unit="s", description="Logs Ingestion API request latency"
        )
        self._disabled = meter.create_counter(
            "relay.integration.disabled", unit="{event}", description="Integration disabled (auto or manual)"
        )
        self._recovered = meter.create_counter(
            "relay.integration.recovered",
            unit="{event}",
            description="Integration re-enabled automatically after a successful probe",
        )
        self._watchdog = meter.create_counter(
            "relay.watchdog.alerts",
            unit="{alert}",
            description="Wallarm integration disabled/changed or pipe quiet, by problem",
        )
        # (gauge name, tenant) -> last value; one callback per gauge observes every tenant's.
        self._gauges: dict[tuple[str, str], float] = {}
        for name, description in (
            ("relay.queue.depth", "Pending retry queue entries"),
            ("relay.queue.oldest_pending_age_seconds", "Age of the oldest pending entry"),
            ("relay.failure_ratio_12h", "Failed share of delivery attempts over the auto-disable window"),
        ):
            meter.create_observable_gauge(name, callbacks=[self._observe(name)], description=description)
        self._tag_instruments()

    def _tag_instruments(self) -> None:
        self.events = _Tagged(self._events, self._tags)
        self.attempts = _Tagged(self._attempts, self._tags)
        self.latency = _Tagged(self._latency, self._tags)
        self.disabled = _Tagged(self._disabled, self._tags)
        self.recovered = _Tagged(self._recovered, self._tags)
        self.watchdog = _Tagged(self._watchdog, self._tags)

    def _observe(self, name: str) -> Callable[[CallbackOptions], Iterator[Observation]]:
        gauges = self._gauges

        def callback(_: CallbackOptions) -> Iterator[Observation]:
            for (gauge, tenant), value in list(gauges.items()):
                if gauge == name:
                    yield Observation(value, {TENANT_ATTRIBUTE: tenant})

        return callback

    def for_tenant(self, tenant: str) -> Telemetry:
        """This telemetry with every measurement and span tagged ``tenant`` (shares the instruments)."""
        view = copy.copy(self)
        view.tenant = tenant
        view._tags = {TENANT_ATTRIBUTE: tenant}
        view._tag_instruments()
        return view

    def gauge(self, name: str, value: float) -> None:
        self._gauges[(name, self.tenant)] = value

    def drop_tenant(self, tenant: str) -> None:
        """Stop reporting a removed tenant's gauges."""
        for key in [k for k in self._gauges if k[1] == tenant]:
            self._gauges.pop(key, None)

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
        attrs = {**dict(attributes or {}), **self._tags}
        with self._tracer.start_as_current_span(name, attributes=attrs) as span:
            yield span


def tenant_log_records() -> None:
    """Give every log record a ``tenant`` attribute from ``current_tenant`` (Application Insights
    shows it as customDimensions.tenant). Idempotent; installed by the composition root."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "relay_tenant", False):
        return

    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        record.tenant = current_tenant.get()
        return record

    make.relay_tenant = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(make)
