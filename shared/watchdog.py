"""The watchdog: says when the pipe from Wallarm is broken, which no push-only shipper can notice.

- With WATCHDOG_CHECK_INTEGRATION and a token allowed to read integrations (Administrator), it
  reads the webhook integration pointing at this relay (`GET /v2/integration`) and checks that it
  is active, still points here, sends JSON/NDJSON and has the hit events (`siem`) on; a change
  from the settings seen last time counts too.
- Without such a token (or with WATCHDOG_QUIET_HOURS alone) it infers a quiet pipe from the
  relay's own counters: no webhook (Wallarm's hourly count included) for WATCHDOG_QUIET_HOURS
  after traffic in the day before.
- A new problem raises one alert row (through the relay, durable), an error log line and the
  `relay.watchdog.alerts` metric; the same problem is not raised again every run.
- WATCHDOG_REENABLE (a separate opt-in): a disabled integration is re-enabled
  (`PUT /v2/integration/{id}` `{"active": true}`) only when the relay's own probe of the DCR is
  healthy and the relay is enabled, at most once an hour, and the gap is then reconciled.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

from shared.clock import Clock, iso_ms
from shared.dispatch import Relay
from shared.reconcile import Reconciler, hour_floor
from shared.relay_rows import watchdog_row
from shared.settings import CompletenessSettings
from shared.store.completeness import CompletenessLog, WatchState
from shared.store.counters import HourlyCounters
from shared.store.state import IntegrationStateRepo
from shared.store.tables import StoreUnavailable
from shared.telemetry import Telemetry
from shared.wallarm.api import Integration, WallarmApi, WallarmApiError

log = logging.getLogger(__name__)

REENABLE_INTERVAL = timedelta(hours=1)
# Wallarm disables after 60 % failures within 12 h: the gap can start that long before.
DISABLE_WINDOW = timedelta(hours=12)
QUIET_BASELINE = timedelta(hours=24)
FORMATS = ("json", "jsonl", "ndjson")


class Probe(Protocol):
    def run(self, *, send_test_event: bool) -> tuple[int, dict[str, Any]]: ...


def _same_endpoint(a: str, b: str) -> bool:
    """Scheme, host and path; the query (`?code=<function key>`) is a secret and may rotate."""
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.netloc.lower(), pa.path.rstrip("/")) == (
        pb.scheme,
        pb.netloc.lower(),
        pb.path.rstrip("/"),
    )


def integration_problems(
    integration: Integration, expected_url: str | None, last: dict[str, Any]
) -> list[str]:
    problems: list[str] = []
    if not integration.active:
        problems.append("disabled")
    if expected_url and not _same_endpoint(integration.url, expected_url):
        problems.append("url")
    if integration.format.lower() not in FORMATS:
        problems.append("format")
    if not integration.events.get("siem"):
        problems.append("events")
    if last and last.get("id") == integration.id:
        now = integration.snapshot()
        for name in ("url", "http_method", "format", "events"):
            if last.get(name) != now[name] and name not in problems:
                problems.append(name if name != "http_method" else "method")
    return problems


class Watchdog:
    def __init__(
        self,
        settings: CompletenessSettings,
        api: WallarmApi | None,
        relay: Relay,
        probe: Probe,
        log_store: CompletenessLog,
        reconciler: Reconciler | None,
        *,
        state: IntegrationStateRepo,
        counters: HourlyCounters,
        telemetry: Telemetry,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.api = api
        self.relay = relay
        self.state = state
        self.counters = counters
        self.telemetry = telemetry
        self.probe = probe
        self.log = log_store
        self.reconciler = reconciler
        self.clock = clock

    def run(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.api is not None and self.settings.watch_integration:
            out["integration"] = self.check_integration()
        if self.settings.quiet_after > timedelta(0):
            out["quiet"] = self.check_quiet()
        return out

    # -- the integration, through Wallarm's API ---------------------------------------------
    def check_integration(self) -> dict[str, Any]:
        assert self.api is not None
        state = self.log.get_watch("integration")
        try:
            client = self.settings.wallarm_client_id or self.api.client_id()
            integrations = self.api.integrations(client)
        except WallarmApiError as err:
            if err.forbidden:
                log.warning(
                    "Watchdog: the Wallarm token may not read integrations; only the quiet check runs"
                )
            else:
                log.warning("Watchdog: Wallarm API unavailable: %s", err)
            return {"checked": False, "error": str(err)}
        ours = self._ours(integrations, state.snapshot)
        if ours is None:
            problems = ["missing"]
        else:
            # Changes are measured from the last healthy settings, so fixing a problem is no alert.
            baseline = state.snapshot if not state.problem else {}
            problems = integration_problems(ours, self.settings.integration_url, baseline)
        problem = ", ".join(problems)
        detail: dict[str, Any] = {"integration_id": ours.id if ours else None, "problems": problems}
        self._transition("integration", state, problem, detail)
        if ours is not None:
            state.snapshot = ours.snapshot()
        result: dict[str, Any] = {"checked": True, "problem": problem or None, **detail}
        if ours is not None and not ours.active and self.settings.reenable:
            result["reenabled"] = self._reenable(ours, state)
        self.log.save_watch("integration", state)
        return result

    def _ours(self, integrations: list[Integration], last: dict[str, Any]) -> Integration | None:
        hooks = [i for i in integrations if i.type == "web_hooks"]
        url = self.settings.integration_url
        if url:
            matching = [i for i in hooks if _same_endpoint(i.url, url)]
            if matching:
                return matching[0]
        by_id = [i for i in hooks if last and i.id == last.get("id")]
        if by_id:
            return by_id[0]  # still ours, even if its URL was changed away
        return hooks[0] if len(hooks) == 1 and not url else None

    def _reenable(self, integration: Integration, state: WatchState) -> str:
        now = self.clock()
        if state.reenabled_at is not None and now - state.reenabled_at < REENABLE_INTERVAL:
            return "skipped: re-enabled less than an hour ago"
        status, probe = self.probe.run(send_test_event=False)
        if status != 200 or not self.state.get().enabled:
            log.warning("Watchdog: integration left disabled, the relay itself is not healthy")
            return "skipped: the relay's own probe is not healthy"
        assert self.api is not None
        try:
            self.api.enable_integration(integration.id)
        except WallarmApiError as err:
            log.error("Watchdog: re-enabling the integration failed: %s", err)
            return f"failed: {err}"
        state.reenabled_at = now
        state.snapshot = {**integration.snapshot(), "active": True}
        self.telemetry.watchdog.add(1, {"problem": "reenabled"})
        log.warning("Watchdog: Wallarm's integration re-enabled through the API")
        if self.reconciler is not None:
            since = (state.since or now) - DISABLE_WINDOW
            end = hour_floor(now - self.settings.reconcile_delay)
            if end > since:
                self.reconciler.run_range(hour_floor(since), end, by="watchdog")
        return "reenabled"

    # -- the relay's own signals ------------------------------------------------------------
    def check_quiet(self) -> dict[str, Any]:
        now = self.clock()
        quiet_from = now - self.settings.quiet_after
        try:
            hours = self.counters.read_range(hour_floor(quiet_from - QUIET_BASELINE), hour_floor(now))
            state = self.log.get_watch("quiet")
        except StoreUnavailable as err:
            log.warning("Watchdog: counters unavailable: %s", err)
            return {"checked": False}
        recent = sum(
            c.get("received", 0) for hour, c in hours if hour >= hour_floor(quiet_from) + timedelta(hours=1)
        )
        before = sum(
            c.get("received", 0) for hour, c in hours if hour < hour_floor(quiet_from) + timedelta(hours=1)
        )
        problem = "quiet" if recent == 0 and before > 0 else ""
        detail = {"quiet_hours": self.settings.quiet_after.total_seconds() / 3600, "received_before": before}
        self._transition("quiet", state, problem, detail)
        self.log.save_watch("quiet", state)
        return {"checked": True, "problem": problem or None, "received_recently": recent}

    def _transition(self, name: str, state: WatchState, problem: str, detail: dict[str, Any]) -> None:
        now = self.clock()
        if problem and problem != state.problem:
            kind = "disabled" if problem.startswith("disabled") else problem
            log.error("Watchdog: Wallarm integration problem: %s", problem)
            self.telemetry.watchdog.add(1, {"problem": kind})
            row = watchdog_row(now, kind, {**detail, "since": iso_ms(now)})
            try:
                self.relay.send([row], source="watchdog")
            except StoreUnavailable as err:
                log.error("Watchdog alert row neither delivered nor queued: %s", err)
            state.since = now
        elif not problem and state.problem:
            log.warning("Watchdog: %s is fine again (was: %s)", name, state.problem)
            state.since = None
        state.problem = problem
