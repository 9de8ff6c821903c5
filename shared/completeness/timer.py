"""Completeness: reconciliation + watchdog behind one timer, the status view and the operator's re-run."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shared.clock import Clock, iso_ms
from shared.completeness.reconcile import ReconcileConfig, Reconciler
from shared.completeness.reconcile_jobs import ReconcileJobs, Runner, in_thread
from shared.completeness.reconcile_range import InvalidRange, RangeLimits, closed_range, parse_instant
from shared.completeness.wallarm_api import WallarmApi
from shared.completeness.watchdog import Probe, Watchdog
from shared.completeness.workspace_hits import WorkspaceHits, build_query_client
from shared.delivery.deliver_or_queue import DeliverOrQueue
from shared.intake.dedup import LateHitGuard
from shared.settings import CompletenessSettings, Settings
from shared.store.counters import HourlyCounters
from shared.store.dedup import DedupKeys
from shared.store.queue import RetryQueue
from shared.store.state import IntegrationStateRepo
from shared.store.tables import StoreUnavailable
from shared.store.windows import CompletenessLog
from shared.telemetry import Telemetry

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.data.tables import TableServiceClient

log = logging.getLogger(__name__)


class Completeness:
    def __init__(
        self,
        settings: CompletenessSettings,
        log_store: CompletenessLog,
        reconciler: Reconciler | None,
        watchdog: Watchdog,
        *,
        clock: Clock,
        runner: Runner = in_thread,
    ) -> None:
        self.settings = settings
        self.log = log_store
        self.reconciler = reconciler
        self.watchdog = watchdog
        self.clock = clock
        self.jobs = ReconcileJobs(reconciler, log_store, clock=clock, runner=runner) if reconciler else None
        self.limits = RangeLimits(
            max_range=settings.reconcile_max_range,
            max_age=settings.reconcile_max_age,
            delay=settings.reconcile_delay,
        )

    def run_timer(self) -> dict[str, Any]:
        """The hourly timer: watchdog first (so a re-enable reconciles its gap), then due windows."""
        out: dict[str, Any] = {}
        try:
            out["watchdog"] = self.watchdog.run()
        except StoreUnavailable as err:
            # Its state is in Table Storage: the next firing checks again (issue 24, defect 4).
            log.warning("Completeness timer: watchdog skipped, Table Storage unavailable: %s", err)
            out["watchdog"] = {"error": "storage unavailable"}
        if self.reconciler is not None:
            try:
                out["reconciled"] = [r.as_dict() for r in self.reconciler.run_due()]
            except StoreUnavailable as err:
                log.warning("Completeness timer: reconciliation skipped, Table Storage unavailable: %s", err)
                out["reconciled"] = {"error": "storage unavailable"}
        return out

    def reconcile_range(self, start_text: str, end_text: str, by: str) -> tuple[int, dict[str, Any]]:
        """`relayctl reconcile --from --to` (ISO 8601, UTC when no offset): the closed whole UTC
        hours of the range; one hour inline (200), more as a background job (202)."""
        if self.jobs is None:
            return 409, _error(
                "not_configured", "reconciliation needs WALLARM_API_TOKEN and LOGS_WORKSPACE_ID"
            )
        try:
            start, end = parse_instant(start_text, "from"), parse_instant(end_text, "to")
            rng = closed_range(start, end, self.clock(), self.limits)
        except InvalidRange as err:
            return 400, _error("invalid_range", str(err))
        return self.jobs.submit(rng, by)

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "reconciliation": "on" if self.reconciler is not None else "off (no WALLARM_API_TOKEN)",
            "watchdog": {
                "integration_check": self.settings.watch_integration and self.reconciler is not None,
                "reenable": self.settings.reenable,
                "quiet_hours": self.settings.quiet_after.total_seconds() / 3600,
            },
        }
        try:
            out["windows"] = [r.as_dict() for r in self.log.recent_windows(24)]
            if self.jobs is not None:
                out["jobs"] = self.jobs.recent()
            for name in ("integration", "quiet"):
                state = self.log.get_watch(name)
                out["watchdog"][name] = {
                    "problem": state.problem or None,
                    "since": iso_ms(state.since) if state.since else None,
                    "reenabled_at": iso_ms(state.reenabled_at) if state.reenabled_at else None,
                }
        except StoreUnavailable as err:
            out["error"] = str(err)
        return out


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def build_completeness(
    settings: Settings,
    service: TableServiceClient,
    dedup: DedupKeys,
    relay: DeliverOrQueue,
    probe: Probe,
    credential: TokenCredential,
    *,
    queue: RetryQueue,
    state: IntegrationStateRepo,
    counters: HourlyCounters,
    telemetry: Telemetry,
    clock: Clock,
    sleep: Callable[[float], None],
) -> tuple[Completeness, LateHitGuard | None]:
    """The completeness services, and the webhook's hit guard when reconciliation is on."""
    cs = settings.completeness
    log_store = CompletenessLog.open(service, settings.table_prefix, clock)
    api = WallarmApi(cs.wallarm_api_url, cs.wallarm_api_token, sleep=sleep) if cs.wallarm_api_token else None
    reconciler: Reconciler | None = None
    guard: LateHitGuard | None = None
    if api is not None and cs.workspace_id:
        query = build_query_client(cs.query_endpoint, credential, ca_bundle=settings.ca_bundle)
        config = ReconcileConfig.from_settings(settings)
        reconciler = Reconciler(
            api,
            WorkspaceHits(query, cs.workspace_id),
            dedup,
            relay,
            queue,
            telemetry,
            log_store,
            config,
            clock=clock,
        )
        guard = LateHitGuard(dedup, ttl=config.dedup_ttl, min_age=cs.reconcile_delay / 2, clock=clock)
    watchdog = Watchdog(
        cs,
        api,
        relay,
        probe,
        log_store,
        reconciler,
        state=state,
        counters=counters,
        telemetry=telemetry,
        clock=clock,
    )
    return Completeness(cs, log_store, reconciler, watchdog, clock=clock), guard
