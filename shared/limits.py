"""Constants the stages share (no app settings): one home each, below every stage.

`shared/settings.py` re-exports them beside the settings that default to them; the stages import
them from here, so no stage below settings has to import settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType
from typing import Final

# Entra audience of the Logs Ingestion API per cloud (LOGS_INGESTION_AUDIENCE takes a name or a URL).
INGESTION_AUDIENCES = {
    "public": "https://monitor.azure.com",
    "usgov": "https://monitor.azure.us",
    "china": "https://monitor.azure.cn",
}

# Wallarm's own rule (FACTS.md): 60 % failed requests within 12 h disable the integration. The
# AUTO_DISABLE_* settings default to it; the watchdog and the Wallarm stand-in read it from here.
WALLARM_DISABLE_RATIO: Final[float] = 0.6
WALLARM_DISABLE_WINDOW: Final[timedelta] = timedelta(hours=12)
# Table Storage client bounds, so a Table Storage outage still lets the webhook answer inside
# Wallarm's 15 s (azure-data-tables keyword arguments).
TABLE_CLIENT_BOUNDS: Final[Mapping[str, float]] = MappingProxyType(
    {"retry_total": 2, "retry_backoff_factor": 0.2, "connection_timeout": 3, "read_timeout": 5}
)


# Log Analytics query client bounds (azure-monitor-query keyword arguments). Reconciliation can
# wait for a large answer; the landed check holds an upload slot and a failed check only means a
# resend, so it gives up sooner.
RECONCILE_QUERY_BOUNDS: Final[Mapping[str, float]] = MappingProxyType(
    {"retry_total": 2, "connection_timeout": 5, "read_timeout": 60}
)
LANDED_CHECK_QUERY_BOUNDS: Final[Mapping[str, float]] = MappingProxyType(
    {"retry_total": 1, "connection_timeout": 5, "read_timeout": 20}
)


@dataclass(frozen=True)
class RetryWorkerLimits:
    """How the retry worker groups and paces its work (not app settings: constants the bench
    measured, stated in the README's "Performance").

    `batch` entries are claimed in one ETag-guarded transaction; up to `uploads` uploads run at
    a time (16: what the pacing allows at a 100 ms API round trip), while delivered entries settle
    in groups of `settle_batch` on up to `parallel` threads; starts are paced to `max_per_second`
    (below the DCR's 12,000 requests/min, with room left for the webhooks). A queue empty for
    `idle_exit_after` ends a run after one pass (None: always poll for the whole run).
    """

    batch: int = 50
    uploads: int = 16
    parallel: int = 6
    settle_batch: int = 25
    max_per_second: float = 150.0
    idle_exit_after: timedelta | None = timedelta(minutes=10)


# Hit keys (reconciliation's claims, the late-hit guard's) outlive the webhook's body keys
# (DEDUP_WINDOW_HOURS, when shorter): a late webhook can come hours after a backfill.
RECONCILE_DEDUP_TTL: Final[timedelta] = timedelta(hours=48)


@dataclass(frozen=True)
class TenantLimits:
    """How tenants share one instance (constants, not settings; docs/TENANTS.md gives the reasons).

    `drain_slots` tenants drain the retry queue at once, each turn at least `min_slice` long
    (shared/tenancy/drain.py); `timer_slots` tenants run the hourly and completeness timers at
    once; the registry is read at most once per `registry_refresh` (a tenant added, changed or
    removed is served within that)."""

    drain_slots: int = 8
    min_slice: timedelta = timedelta(seconds=10)
    timer_slots: int = 4
    registry_refresh: timedelta = timedelta(seconds=15)


TENANT_LIMITS: Final[TenantLimits] = TenantLimits()
