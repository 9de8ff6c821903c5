"""On or off: Wallarm's auto-disable rule, self-healing after it, and the operator's switch.

Every change of the integration state goes through here, and each one is announced in Sentinel
with a relay row (`integration_broken`, `integration_recovered`, `disable_integration`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.clock import Clock, iso_ms
from shared.health.attempts import Attempt, Sender
from shared.health.relay_rows import (
    disable_integration_row,
    integration_broken_row,
    integration_recovered_row,
)
from shared.health.request_tally import RequestTally
from shared.health.rule import failing_since, is_sustained, should_auto_disable
from shared.schema import Row
from shared.store.ledger import AttemptLedger
from shared.store.queue import RetryQueue
from shared.store.state import IntegrationState, IntegrationStateRepo
from shared.telemetry import Telemetry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AutoDisableRule:
    """Wallarm's rule (`ratio` of attempts failed within `window`, at least `min_attempts`), plus
    `grace`: no attempt may have succeeded for that long, so a blip (role propagation after a
    deploy takes up to 30 min) never disables, while a DCR that stays broken does within the hour.
    The values (Wallarm's 60 % in 12 h by default) are the AUTO_DISABLE_* settings, read by the
    composition root."""

    ratio: float
    window: timedelta
    min_attempts: int
    grace: timedelta


class IntegrationSwitch:
    def __init__(
        self,
        state: IntegrationStateRepo,
        ledger: AttemptLedger,
        queue: RetryQueue,
        announcer: Sender,
        telemetry: Telemetry,
        *,
        rule: AutoDisableRule,
        clock: Clock,
    ) -> None:
        self.state = state
        self.ledger = ledger
        self.queue = queue
        self.announcer = announcer
        self.telemetry = telemetry
        self.rule = rule
        self.clock = clock

    # -- the auto-disable rule --------------------------------------------------------------
    def failure_window(self) -> tuple[int, int]:
        window = self.ledger.failure_window(self.rule.window)
        return window.attempts, window.failures

    def failure_streak(self) -> tuple[int, int, datetime | None]:
        """Attempts and failures over the rule's window, and since when nothing has succeeded
        (None: the newest attempts include a success), from one read of the ledger's buckets."""
        buckets = self.ledger.buckets(self.rule.window)
        return (
            sum(b.attempts for b in buckets),
            sum(b.failures for b in buckets),
            failing_since([(b.start, b.attempts, b.failures) for b in buckets]),
        )

    def check_auto_disable(self) -> bool:
        attempts, failures, since = self.failure_streak()
        if attempts:
            self.telemetry.gauge("relay.failure_ratio_12h", failures / attempts)
        if not should_auto_disable(
            attempts, failures, ratio=self.rule.ratio, min_attempts=self.rule.min_attempts
        ):
            return False
        if not is_sustained(since, self.clock(), self.rule.grace):
            return False
        current = self.state.get()
        if not current.enabled:
            return False
        reason = (
            f"{failures}/{attempts} delivery attempts failed in {self.rule.window}, "
            f"none succeeded since {iso_ms(since) if since else '?'}"
        )
        if self.state.set(False, "auto_disabled", reason, "relay", expected=current) is None:
            return False  # another instance disabled it first and raised the event
        self.telemetry.disabled.add(1, {"mode": "auto_disabled"})
        log.error("integration_broken: Sentinel integration auto-disabled (%s)", reason)
        hours = self.rule.window.total_seconds() / 3600
        self._announce(integration_broken_row(self.clock(), attempts, failures, hours))
        return True

    def _announce(self, row: Row) -> None:
        """Best effort to Sentinel right away; parked otherwise so re-enabling delivers it."""
        report = self.announcer.deliver([row])
        # Recorded without re-evaluating the rule: announcing must not recurse into it.
        self._record_quietly(RequestTally.of(report, source="relay"))
        if not report.all_accepted:
            self.queue.park([row], reason="relay event while disabled")

    def _record_quietly(self, tally: RequestTally) -> None:
        self.ledger.record_all(tally.records())

    # -- self-healing -----------------------------------------------------------------------
    def resume(self, *, pull_limit: int = 1000) -> int:
        """Make waiting entries due now. Entry ids are time-ordered in both partitions, so with one
        due time the claims follow arrival order: queued entries, then those parked meanwhile."""
        pulled = self.queue.pull_forward(pull_limit)
        parked = self.queue.unpark_all(due_at=self.clock())
        return pulled + parked

    def recover(self, probe: Attempt) -> bool:
        """After an automatic disable, the first successful probe re-enables the integration.

        A manual disable is left alone: only an operator's enable ends it."""
        current = self.state.get()
        if current.mode != "auto_disabled":
            return False
        updated = self.state.set(
            True, "enabled", "recovered: the Logs Ingestion API accepted a probe", "relay", expected=current
        )
        if updated is None:
            return False  # another instance recovered first (or an operator acted)
        # The probe's success, which breaks the failing streak so the rule cannot re-trip on old
        # failures, is already in the ledger: the worker records every probe before this call.
        resumed = self.resume()
        self.telemetry.recovered.add(1)
        log.warning(
            "integration_recovered: auto-disable lifted after a successful probe; %d entries resumed", resumed
        )
        self._announce(integration_recovered_row(self.clock(), current.changed_at, resumed))
        return True

    # -- operator actions -------------------------------------------------------------------
    def set_enabled(self, enabled: bool, *, by: str, reason: str) -> IntegrationState:
        for _ in range(5):
            current = self.state.get()
            if current.enabled == enabled:
                return current
            mode = "enabled" if enabled else "disabled"
            updated = self.state.set(enabled, mode, reason, by, expected=current)
            if updated is None:
                continue
            if enabled:
                moved = self.resume()
                log.warning("Integration re-enabled by %s; %d entries resumed", by, moved)
            else:
                self.telemetry.disabled.add(1, {"mode": "disabled"})
                log.warning("Integration disabled by %s", by)
                self._announce(disable_integration_row(self.clock(), by, reason))
            return updated
        raise RuntimeError("integration state kept changing; try again")
