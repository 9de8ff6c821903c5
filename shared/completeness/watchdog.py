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
  (`PUT /v2/integration/{id}` `{"active": true}`) only when the relay's own records show that
  Wallarm disabled it automatically, never a person's decision (`reenable_verdict`):
  * the watchdog saw it active and pointing at WALLARM_INTEGRATION_URL before, and since then only
    `active` changed (not its URL, name, events, format or method);
  * the relay's own counters show Wallarm's rule at work: of the requests that reached the relay
    in the 13 h before (since the relay's last re-enable, when there was one: Wallarm counts
    afresh then), at least 60 % were refused or rejected. A disable while the relay answered
    Wallarm normally is a person's decision, and so is one after requests stopped without
    failures (the relay cannot tell an outage it never saw from a quiet hour: it leaves those
    alone and keeps alerting);
  * a disable after the relay's own re-enable, while the relay answered normally, is a person
    undoing it: the integration is then held (never re-enabled) until WATCHDOG_REENABLE is off for
    one run or an operator disables/enables the relay after the hold;
  * and, as before, the relay's own probe of the DCR is healthy, the relay is enabled, at most
    once an hour; the gap is then reconciled.
  Every decision is logged with its reason (counts and the integration's numeric id only).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from shared.clock import Clock, hour_floor, iso_ms, parse_iso_utc
from shared.completeness.reconcile import Reconciler
from shared.completeness.wallarm_api import Integration, WallarmApi, WallarmApiError
from shared.delivery.deliver_or_queue import DeliverOrQueue
from shared.health.relay_rows import watchdog_row
from shared.settings import WALLARM_DISABLE_RATIO, WALLARM_DISABLE_WINDOW, CompletenessSettings
from shared.store.counters import HourlyCounters
from shared.store.state import IntegrationStateRepo
from shared.store.tables import StoreUnavailable
from shared.store.windows import CompletenessLog, WatchState
from shared.telemetry import Telemetry

log = logging.getLogger(__name__)

REENABLE_INTERVAL = timedelta(hours=1)
# Wallarm disables after 60 % failures within 12 h: the gap can start that long before.
DISABLE_WINDOW = WALLARM_DISABLE_WINDOW
QUIET_BASELINE = timedelta(hours=24)
FORMATS = ("json", "jsonl", "ndjson")
# The relay's answers Wallarm counts as failures (hourly counters written by the webhook).
FAILED_ANSWERS: Final[tuple[str, ...]] = ("refused", "rejected_requests", "not_durable")
# What must be unchanged since the integration was last seen healthy for a re-enable.
KEPT: Final[tuple[str, ...]] = ("url", "name", "events", "format", "http_method")


@dataclass(frozen=True)
class Answers:
    """What the relay answered Wallarm over some hours, from its own hourly counters."""

    ok: int = 0
    failed: int = 0

    @classmethod
    def of(cls, hours: Iterable[Mapping[str, int]]) -> Answers:
        ok = failed = 0
        for counts in hours:
            bad = sum(max(counts.get(name, 0), 0) for name in FAILED_ANSWERS)
            failed += bad
            ok += max(counts.get("received", 0) - counts.get("rejected_requests", 0), 0)
        return cls(ok, failed)

    def minus(self, other: Answers) -> Answers:
        return Answers(max(self.ok - other.ok, 0), max(self.failed - other.failed, 0))

    @property
    def failing(self) -> bool:
        """Wallarm's rule as far as the relay saw it (Wallarm's own count can only be worse)."""
        total = self.ok + self.failed
        return self.failed > 0 and self.failed / total >= WALLARM_DISABLE_RATIO

    def __str__(self) -> str:
        return f"{self.failed} of {self.ok + self.failed} requests refused or failed"


def reenable_verdict(
    current: Integration, memo: Mapping[str, Any], expected_url: str | None, answers: Answers
) -> tuple[bool, str]:
    """May the relay re-enable this disabled integration? Pure; `memo` is the watchdog's record.

    Returns (yes, reason). Every "no" leaves a person's decision standing."""
    hold = memo.get("hold")
    if isinstance(hold, Mapping) and hold.get("id") == current.id:
        return False, f"held since {hold.get('since')}: {hold.get('reason')}"
    if not expected_url:
        return False, "WALLARM_INTEGRATION_URL is unknown, so the relay cannot tell that it points here"
    if not _same_endpoint(current.url, expected_url):
        return False, "it does not point at this relay"
    healthy = memo.get("healthy")
    if not isinstance(healthy, Mapping) or healthy.get("id") != current.id:
        return (
            False,
            "the relay never saw it active and pointing here, so it has no record of an automatic disable",
        )
    now = current.snapshot()
    changed = [name for name in KEPT if healthy.get(name) != now[name]]
    if changed:
        return False, f"changed since it was last seen healthy ({', '.join(changed)}): a person's edit"
    episode = memo.get("disabled")
    if (
        isinstance(episode, Mapping)
        and episode.get("id") == current.id
        and episode.get("verdict") == "person"
    ):
        return False, str(episode.get("reason"))
    again = memo.get("reenabled")
    if isinstance(again, Mapping) and again.get("id") == current.id and not answers.failing:
        return (
            False,
            f"disabled again after the relay re-enabled it, while the relay answered normally ({answers})",
        )
    if not answers.failing:
        return False, f"disabled while the relay answered Wallarm normally ({answers}): a person's decision"
    return True, f"Wallarm's failure rule disabled it ({answers})"


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
        relay: DeliverOrQueue,
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
            try:
                out["integration"] = self.check_integration()
            except StoreUnavailable as err:
                # The timer goes on to the quiet check and reconciliation.
                log.warning("Watchdog: integration check skipped, Table Storage unavailable: %s", err)
                out["integration"] = {"checked": False, "error": "storage unavailable"}
        if self.settings.quiet_after > timedelta(0):
            out["quiet"] = self.check_quiet()
        return out

    # -- the integration, through Wallarm's API ---------------------------------------------
    def check_integration(self) -> dict[str, Any]:
        assert self.api is not None
        state = self.log.get_watch("integration")
        try:
            client = self.settings.wallarm_client_id or self.api.client_id()
            integrations, malformed = self.api.read_integrations(client)
        except WallarmApiError as err:
            if err.forbidden:
                log.warning(
                    "Watchdog: the Wallarm token may not read integrations; only the quiet check runs"
                )
            else:
                log.warning("Watchdog: Wallarm API unavailable: %s", err)
            return {"checked": False, "error": str(err)}
        ours = self._ours(integrations, state.snapshot)
        if ours is None and malformed:
            # Ours may be the one Wallarm answered malformed: no verdict, no alert, no action.
            log.warning("Watchdog: integration not judged, %d malformed in Wallarm's answer", malformed)
            return {"checked": False, "error": f"{malformed} malformed integrations in the answer"}
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
        self._lift_hold(state)
        if ours is not None and ours.active and not problems:
            state.memo["healthy"] = {**ours.snapshot(), "seen_at": iso_ms(self.clock())}
            state.memo.pop("disabled", None)
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
            return by_id[0]  # still ours, even if its URL was changed away (reported, never re-enabled)
        return hooks[0] if len(hooks) == 1 and not url else None

    def _lift_hold(self, state: WatchState) -> None:
        """A hold ends when a setting or an operator says so, never by itself."""
        hold = state.memo.get("hold")
        if not isinstance(hold, Mapping):
            return
        if not self.settings.reenable:
            state.memo.pop("hold")
            log.warning(
                "Watchdog: re-enable hold on integration %s lifted: WATCHDOG_REENABLE is off", hold.get("id")
            )
            return
        relay = self.state.get()
        since = parse_iso_utc(hold.get("since"))
        if (
            since is not None
            and relay.changed_at is not None
            and relay.changed_at > since
            and relay.changed_by not in ("", "relay")
        ):
            state.memo.pop("hold")
            log.warning(
                "Watchdog: re-enable hold on integration %s lifted: an operator changed the relay's state",
                hold.get("id"),
            )

    def _answers(self, memo: Mapping[str, Any], integration_id: int) -> Answers:
        """The relay's answers to Wallarm over Wallarm's window, or since the relay's own
        re-enable of this integration (minus what that hour held before it)."""
        now = self.clock()
        start = now - DISABLE_WINDOW - timedelta(hours=1)
        before = Answers()
        again = memo.get("reenabled")
        if isinstance(again, Mapping) and again.get("id") == integration_id:
            at = parse_iso_utc(again.get("at"))
            if at is not None and at > start:
                start = at
                before = Answers(_as_count(again.get("hour_ok")), _as_count(again.get("hour_failed")))
        hours = [counts for _, counts in self.counters.read_range(hour_floor(start), hour_floor(now))]
        return Answers.of(hours).minus(before)

    def _reenable(self, integration: Integration, state: WatchState) -> str:
        now = self.clock()
        memo = state.memo
        answers = self._answers(memo, integration.id)
        allowed, why = reenable_verdict(integration, memo, self.settings.integration_url, answers)
        if not allowed:
            if why.startswith("disabled again") and "hold" not in memo:
                memo["hold"] = {
                    "id": integration.id,
                    "since": iso_ms(now),
                    "reason": "a person undid the relay's re-enable",
                }
            elif why.startswith(("disabled while", "changed since")):
                # A person's decision stays one for as long as this disable lasts.
                memo["disabled"] = {
                    "id": integration.id,
                    "seen_at": iso_ms(now),
                    "verdict": "person",
                    "reason": why,
                }
            log.warning("Watchdog: integration %d left disabled: %s", integration.id, why)
            return f"skipped: {why}"
        if state.reenabled_at is not None and now - state.reenabled_at < REENABLE_INTERVAL:
            log.warning(
                "Watchdog: integration %d left disabled: re-enabled less than an hour ago", integration.id
            )
            return "skipped: re-enabled less than an hour ago"
        status, probe = self.probe.run(send_test_event=False)
        if status != 200 or not self.state.get().enabled:
            log.warning(
                "Watchdog: integration %d left disabled: the relay itself is not healthy", integration.id
            )
            return "skipped: the relay's own probe is not healthy"
        assert self.api is not None
        try:
            self.api.enable_integration(integration.id)
        except WallarmApiError as err:
            log.error("Watchdog: re-enabling integration %d failed: %s", integration.id, err)
            return f"failed: {err}"
        hour = Answers.of(c for _, c in self.counters.read_range(hour_floor(now), hour_floor(now)))
        memo["reenabled"] = {
            "id": integration.id,
            "at": iso_ms(now),
            "hour_ok": hour.ok,
            "hour_failed": hour.failed,
        }
        memo.pop("disabled", None)
        state.reenabled_at = now
        state.snapshot = {**integration.snapshot(), "active": True}
        # Saved before the (long) reconcile: killed during it, the next run still knows the
        # relay re-enabled it, so a person undoing that is recognised.
        self.log.save_watch("integration", state)
        self.telemetry.watchdog.add(1, {"problem": "reenabled"})
        log.warning("Watchdog: integration %d re-enabled through the API: %s", integration.id, why)
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


def _as_count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
