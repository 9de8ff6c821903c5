"""The composition root: builds every service once per worker and wires them together.

function_app.py, the local runner and the benchmark call `build_services`; tests may pass their
own clock, sleep and telemetry. Nothing else constructs clients.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, TypeVar

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError
from azure.data.tables import TableServiceClient

from shared.clock import Clock, utc_now
from shared.completeness.timer import Completeness, build_completeness
from shared.completeness.workspace_hits import build_query_client
from shared.delivery.deliver_or_queue import DeliverOrQueue
from shared.delivery.hourly_count import HourlyReporter
from shared.delivery.identity import build_credential
from shared.delivery.ingestion import Deliverer, build_ingestion_client
from shared.delivery.landed_check import LandedCheck
from shared.delivery.retry_worker import RetryWorker, RetryWorkerConfig, WorkerRun
from shared.health.integration_switch import AutoDisableRule, IntegrationSwitch
from shared.health.ledger_writer import LedgerWriter
from shared.health.probe import DcrProbe
from shared.intake.dedup import WebhookDedup
from shared.intake.webhook import WebhookConfig, WebhookHandler
from shared.limits import LANDED_CHECK_QUERY_BOUNDS, TABLE_CLIENT_BOUNDS, TENANT_LIMITS
from shared.ops.admin import Admin, platform_auth_enabled
from shared.ops.retention import Retention
from shared.ops.tenant_admin import SecretWriter, TenantAdmin
from shared.settings import Settings, SettingsError, load_settings
from shared.store.counters import HourlyCounters
from shared.store.dedup import DedupKeys
from shared.store.ledger import AttemptLedger
from shared.store.queue import RetryQueue
from shared.store.state import IntegrationStateRepo
from shared.store.tables import StoreUnavailable, open_store_tables, table_service_from
from shared.store.tenants import TenantRegistry
from shared.telemetry import DEFAULT_TENANT, Telemetry, tenant_log_records
from shared.tenancy.credentials import credential_for
from shared.tenancy.directory import TenantDirectory
from shared.tenancy.drain import FairDrain
from shared.tenancy.secrets import KeyVaultSecrets, SecretUnavailable
from shared.tenancy.spec import tenant_env
from shared.tenancy.tenant_ops import KeyVaultWriter, StateSwitches, TableQueues, TenantTables, TenantVersion

log = logging.getLogger(__name__)
SECRET_CACHE = timedelta(minutes=1)
T = TypeVar("T")


@dataclass(frozen=True)
class Services:
    """One tenant's pipe, from webhook to table, with its own state."""

    tenant: str
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
    # The default tenant's services carry the others and their operations (None in a tenant's own).
    tenants: Tenants | None = None
    tenant_admin: TenantAdmin | None = None


@dataclass(frozen=True)
class Tenants:
    """The tenants added beside the default one, and how they share the retry worker's minute."""

    directory: TenantDirectory[Any, Services]
    drain: FairDrain[WorkerRun]
    # Drops a removing tenant from the registry once its queue is empty (None: nothing to finish).
    finish_removal: Callable[[str], None] | None = None

    def every(self, default: Services) -> list[Services]:
        """The default tenant first, then every added one (removing ones too: their queues drain).
        A registry that cannot be read yet leaves the default alone: its timers still run."""
        added: list[tuple[str, Services]] = self._read(self.directory.all, [])
        return [default, *(svc for _, svc in added)]

    def names(self) -> list[str]:
        """The added tenants' names ([] while the registry cannot be read)."""
        return self._read(self.directory.names, [])

    def removing(self) -> list[str]:
        return self._read(self.directory.removing, [])

    @staticmethod
    def _read(read: Callable[[], T], fallback: T) -> T:
        try:
            return read()
        except (StoreUnavailable, AzureError) as err:
            log.warning("Tenant registry unreadable; the default tenant goes on: %s", type(err).__name__)
            return fallback


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


@dataclass(frozen=True)
class Platform:
    """What every tenant of one worker shares: the relay's own settings and identity, the Table
    Storage account, telemetry, the clock. A tenant adds its destination and its tables."""

    env: Mapping[str, str]
    settings: Settings  # the default tenant's (today's single integration)
    credential: TokenCredential  # the relay's own identity
    service: TableServiceClient
    telemetry: Telemetry
    clock: Clock
    sleep: Callable[[float], None]


def build_platform(
    env: Mapping[str, str] | None = None,
    *,
    clock: Clock = utc_now,
    sleep: Callable[[float], None] = time.sleep,
    telemetry: Telemetry | None = None,
) -> Platform:
    env = os.environ if env is None else env
    settings = load_settings(env)
    credential = build_credential(settings.azure_client_id, ca_bundle=settings.ca_bundle, env=env)
    service = table_service_from(
        settings.storage_connection_string,
        settings.storage_table_endpoint,
        None if settings.storage_connection_string else credential,
        **TABLE_CLIENT_BOUNDS,  # bounded: the webhook answers inside Wallarm's 15 s
    )
    tenant_log_records()
    return Platform(env, settings, credential, service, telemetry or Telemetry(), clock, sleep)


def build_services(
    env: Mapping[str, str] | None = None,
    *,
    clock: Clock = utc_now,
    sleep: Callable[[float], None] = time.sleep,
    telemetry: Telemetry | None = None,
    secret_writer: SecretWriter | None = None,
) -> Services:
    """The default tenant's services (today's single integration), with the others' directory and
    their operations. ``secret_writer`` replaces Key Vault for rotated tenant secrets (tests)."""
    platform = build_platform(env, clock=clock, sleep=sleep, telemetry=telemetry)
    default = build_tenant_services(platform, platform.settings, platform.credential, DEFAULT_TENANT)
    registry = TenantRegistry.open(platform.service, platform.settings.table_prefix, platform.clock)
    # A minute's cache: a rotated secret reaches every instance within it (TenantVersion).
    secrets = KeyVaultSecrets(
        platform.credential, ca_bundle=platform.settings.ca_bundle, ttl=SECRET_CACHE, clock=platform.clock
    )
    tables = TenantTables(platform.service, platform.settings.table_prefix, platform.clock)
    tenants = build_tenants(platform, registry, secrets, tables)
    admin = TenantAdmin(
        registry,
        TableQueues(tables),
        StateSwitches(tables),
        secret_writer or KeyVaultWriter(secrets),
        platform.env,
        changed=lambda: refreshed_now(tenants.directory),
    )
    return replace(default, tenants=tenants, tenant_admin=admin)


def refreshed_now(directory: TenantDirectory[Any, Services]) -> None:
    """After an operator's change: this instance serves it at once (the others within a refresh).
    The change is made either way, so a registry blip here is logged, not answered."""
    try:
        directory.refresh(force=True)
    except (StoreUnavailable, AzureError) as err:
        log.warning("Tenant directory not refreshed after a change: %s", type(err).__name__)


def build_tenants(
    platform: Platform, registry: TenantRegistry, secrets: KeyVaultSecrets, tables: TenantTables
) -> Tenants:
    """The added tenants: each built from its registry row, its secrets read from Key Vault with the
    relay's identity, its destination reached with its own credential (shared/tenancy/credentials.py)."""
    authority = platform.env.get("AZURE_AUTHORITY_HOST", "").strip() or None

    def entries() -> list[TenantVersion]:
        return [TenantVersion.of(record, secrets) for record in registry.list()]

    def build(entry: TenantVersion) -> Services:
        spec = entry.spec
        env = tenant_env(platform.env, spec, entry.resolved(secrets))
        settings = load_settings(env)
        credential = credential_for(
            spec.credential,
            relay_credential=platform.credential,
            secrets=secrets,
            ca_bundle=settings.ca_bundle,
            authority_host=authority,
        )
        return build_tenant_services(platform, settings, credential, spec.name)

    # An instance that has not re-read the registry since the removal was marked may still accept
    # a webhook for the tenant and queue it; the row is dropped only once every instance has
    # seen the mark and any webhook it took then has answered, so no entry is queued behind it.
    settle = 2 * TENANT_LIMITS.registry_refresh + platform.settings.webhook_budget

    def finish_removal(name: str) -> None:
        record = registry.get(name)
        if record is None or not record.removing:
            return
        marked = record.updated_at or platform.clock()
        if platform.clock() - marked >= settle and TableQueues(tables).pending(name) == 0:
            registry.remove(record, "relay", note="queue drained")
            log.info("Tenant removed: its queue drained")

    directory: TenantDirectory[TenantVersion, Services] = TenantDirectory(
        entries,
        build,
        refresh_every=TENANT_LIMITS.registry_refresh.total_seconds(),
        on_removed=platform.telemetry.drop_tenant,
        build_errors=(SettingsError, SecretUnavailable, StoreUnavailable, AzureError, ValueError),
        list_errors=(StoreUnavailable, AzureError),
        background=True,  # a refresh reads each tenant's secrets: no webhook waits on a slow vault
    )
    drain: FairDrain[WorkerRun] = FairDrain(
        TENANT_LIMITS.drain_slots,
        min_slice=TENANT_LIMITS.min_slice,
        has_more=lambda run: not (run.idle_exit or run.skipped_disabled),
        errors=(StoreUnavailable, AzureError, OSError),
    )
    return Tenants(directory, drain, finish_removal)


def landed_check(settings: Settings, credential: TokenCredential) -> LandedCheck | None:
    """The workspace check before a doubtful resend, when the relay knows its workspace."""
    workspace = settings.completeness.workspace_id
    if not workspace:
        return None
    # Short timeouts: the check holds an upload slot, and a failed check only means a resend.
    query = build_query_client(
        settings.completeness.query_endpoint,
        credential,
        ca_bundle=settings.ca_bundle,
        bounds=LANDED_CHECK_QUERY_BOUNDS,
    )
    return LandedCheck(query, workspace, delay=settings.landed_check_delay)


def build_tenant_services(
    platform: Platform, settings: Settings, credential: TokenCredential, tenant: str
) -> Services:
    """The composition root of one tenant: every object of its pipe, built from its settings (its
    destination, secret, selection and table prefix) and wired together. Tenants share only the
    platform, so one tenant's failures, state and queue never touch another's.

    Long on purpose: it is only construction, in dependency order, and reading the whole wiring in
    one place is the point (each piece it calls is small and tested on its own).
    """
    env, service, clock, sleep = platform.env, platform.service, platform.clock, platform.sleep
    tel = platform.telemetry.for_tenant(tenant)

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
    landed = landed_check(settings, credential)

    def relay(api: Deliverer) -> DeliverOrQueue:
        books, schedule = ledger_writer, settings.retry_schedule
        return DeliverOrQueue(api, queue, state, books, tel, schedule=schedule, clock=clock, landed=landed)

    webhook_relay, worker_relay = relay(webhook_deliverer), relay(worker_deliverer)
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
        tenant=tenant,
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
    )
