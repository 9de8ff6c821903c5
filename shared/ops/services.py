"""The composition root: builds every service once per worker and wires them together.

function_app.py, the local runner and the benchmark call `build_services`; tests may pass their
own clock, sleep and telemetry. Nothing else constructs clients.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from azure.data.tables import TableServiceClient

from shared.clock import Clock, utc_now
from shared.completeness.timer import Completeness, build_completeness
from shared.delivery.deliver_or_queue import DeliverOrQueue
from shared.delivery.hourly_count import HourlyReporter
from shared.delivery.identity import build_credential
from shared.delivery.ingestion import Deliverer, build_ingestion_client
from shared.delivery.retry_worker import RetryWorker, RetryWorkerConfig
from shared.health.integration_switch import AutoDisableRule, IntegrationSwitch
from shared.health.ledger_writer import LedgerWriter
from shared.health.probe import DcrProbe
from shared.intake.dedup import WebhookDedup
from shared.intake.webhook import WebhookConfig, WebhookHandler
from shared.limits import TABLE_CLIENT_BOUNDS
from shared.ops.admin import Admin, platform_auth_enabled
from shared.ops.retention import Retention
from shared.ops.tenant_admin import SecretWriter, TenantAdmin
from shared.settings import Settings, load_settings
from shared.store.counters import HourlyCounters
from shared.store.dedup import DedupKeys
from shared.store.ledger import AttemptLedger
from shared.store.queue import RetryQueue
from shared.store.state import IntegrationStateRepo
from shared.store.tables import open_store_tables, table_service_from
from shared.store.tenants import TenantRegistry
from shared.telemetry import Telemetry
from shared.tenancy.tenant_ops import NoSecretStore, StateSwitches, TableQueues, TenantTables


@dataclass(frozen=True)
class Services:
    settings: Settings
    webhook: WebhookHandler
    worker: RetryWorker
    hourly: HourlyReporter
    health: DcrProbe
    admin: Admin
    relay: DeliverOrQueue
    switch: IntegrationSwitch
    state: IntegrationStateRepo
    counters: HourlyCounters
    retention: Retention
    completeness: Completeness
    tenant_admin: TenantAdmin


def retry_worker_config(settings: Settings) -> RetryWorkerConfig:
    """The retry worker's part of the settings."""
    return RetryWorkerConfig(
        lease=settings.claim_lease,
        poll=settings.worker_poll,
        probe_every=settings.recovery_probe,
        start_margin=settings.claim_lease / 2,  # the lease check in settings counts on half
        limits=settings.worker_limits,
    )


def auto_disable_rule(settings: Settings) -> AutoDisableRule:
    """The AUTO_DISABLE_* settings (Wallarm's 60 % in 12 h by default) as the rule's values."""
    return AutoDisableRule(
        ratio=settings.auto_disable_ratio,
        window=settings.auto_disable_window,
        min_attempts=settings.auto_disable_min_attempts,
        grace=settings.auto_disable_grace,
    )


def build_services(
    env: Mapping[str, str] | None = None,
    *,
    clock: Clock = utc_now,
    sleep: Callable[[float], None] = time.sleep,
    telemetry: Telemetry | None = None,
    secret_writer: SecretWriter | None = None,
) -> Services:
    """The composition root: every object of a worker, built from settings and wired together.

    Long on purpose: it is only construction, in dependency order, and reading the whole wiring in
    one place is the point (each piece it calls is small and tested on its own). ``secret_writer``
    writes rotated tenant secrets to Key Vault (refused with 501 until one is given).
    """
    env = os.environ if env is None else env
    settings = load_settings(env)
    credential = build_credential(settings.azure_client_id, ca_bundle=settings.ca_bundle, env=env)
    tel = telemetry or Telemetry()

    def deliverer(read_timeout: float) -> Deliverer:
        client = build_ingestion_client(
            settings.logs_endpoint,
            credential,
            read_timeout=read_timeout,
            connect_timeout=settings.connect_timeout,
            ca_bundle=settings.ca_bundle,
            audience=settings.ingestion_audience,
        )
        return Deliverer(
            client, settings.dcr_immutable_id, settings.stream_name, request_timeout=read_timeout
        )

    service = table_service_from(
        settings.storage_connection_string,
        settings.storage_table_endpoint,
        None if settings.storage_connection_string else credential,
        **TABLE_CLIENT_BOUNDS,  # bounded: the webhook answers inside Wallarm's 15 s
    )
    tables = open_store_tables(service, settings.table_prefix)
    queue = RetryQueue(tables.queue, clock)
    rule = auto_disable_rule(settings)

    # One state repository per worker, so a local enable/disable is seen at once by both relays.
    state = IntegrationStateRepo(tables.state, clock)
    counters = HourlyCounters(tables.counters, clock)
    ledger = AttemptLedger(tables.ledger, clock, counters)

    # Two clients: the webhook's must answer inside Wallarm's 15 s; the worker's waits long enough
    # that a slow-but-successful request is rarely mistaken for a failure (a duplicate risk).
    webhook_deliverer = deliverer(settings.webhook_read_timeout)
    worker_deliverer = deliverer(settings.worker_read_timeout)
    # Announcements may be raised on the webhook's path, so they use its short timeouts.
    switch = IntegrationSwitch(state, ledger, queue, webhook_deliverer, tel, rule=rule, clock=clock)
    ledger_writer = LedgerWriter(ledger, tel, switch=switch)
    webhook_relay = DeliverOrQueue(
        webhook_deliverer, queue, state, ledger_writer, tel, schedule=settings.retry_schedule, clock=clock
    )
    worker_relay = DeliverOrQueue(
        worker_deliverer, queue, state, ledger_writer, tel, schedule=settings.retry_schedule, clock=clock
    )
    health = DcrProbe(webhook_deliverer, queue.probe, clock)
    dedup = DedupKeys(tables.dedup, clock)
    completeness, guard = build_completeness(
        settings,
        service,
        dedup,
        worker_relay,
        health,
        credential,
        queue=queue,
        state=state,
        counters=counters,
        telemetry=tel,
        clock=clock,
        sleep=sleep,
    )
    # The guard is None unless reconciliation is on: then late hits claim their id.
    webhook_dedup = WebhookDedup(dedup, window=settings.dedup_window, late_hits=guard)
    config = WebhookConfig(
        secret=settings.webhook_secret,
        secret_header=settings.webhook_secret_header,
        allowed_networks=settings.allowed_networks,
        max_body_bytes=settings.max_body_bytes,
        selection=settings.selection,
        budget=settings.webhook_budget,
    )
    return Services(
        settings=settings,
        webhook=WebhookHandler(config, webhook_relay, webhook_dedup, ledger_writer, tel, clock=clock),
        worker=RetryWorker(
            worker_relay,
            switch,
            queue,
            state=state,
            books=ledger_writer,
            telemetry=tel,
            probe_api=worker_deliverer.probe,
            config=retry_worker_config(settings),
            clock=clock,
            sleep=sleep,
        ),
        hourly=HourlyReporter(
            worker_relay, counters, clock=clock, owner=f"{socket.gethostname()}:{os.getpid()}"
        ),
        health=health,
        admin=Admin(switch, state, queue, clock, platform_auth=platform_auth_enabled(env)),
        relay=worker_relay,
        switch=switch,
        state=state,
        counters=counters,
        retention=Retention(
            ledger,
            counters,
            DedupKeys(tables.dedup, clock),
            settings.ledger_retention,
            settings.counter_retention,
        ),
        completeness=completeness,
        tenant_admin=build_tenant_admin(service, settings, env, clock, secret_writer),
    )


def build_tenant_admin(
    service: TableServiceClient,
    settings: Settings,
    env: Mapping[str, str],
    clock: Clock,
    secret_writer: SecretWriter | None,
) -> TenantAdmin:
    """The tenant operations, on the registry and each tenant's own tables (shared/tenancy/tenant_ops.py
    holds the collaborators, to be swapped for the per-tenant services when they are wired)."""
    tenant_tables = TenantTables(service, settings.table_prefix, clock)
    return TenantAdmin(
        TenantRegistry.open(service, settings.table_prefix, clock),
        TableQueues(tenant_tables),
        StateSwitches(tenant_tables),
        secret_writer or NoSecretStore(),
        env,
    )
