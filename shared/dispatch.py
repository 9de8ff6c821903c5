"""Delivers rows now or keeps them durably for later: the one path every row takes.

Used by the webhook (fresh rows, short budget), the retry worker (queued entries) and the hourly
timer. It turns a delivery report into ledger records, queue moves and the auto-disable decision;
schedules come from policy, storage from store, the API call from delivery.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.clock import Clock, iso_ms
from shared.ingestion import Attempt, ChunkFailure, Deliverer, DeliveryReport
from shared.policy import RetrySchedule, failing_since, is_sustained, next_due, should_auto_disable
from shared.relay_rows import (
    disable_integration_row,
    integration_broken_row,
    integration_recovered_row,
)
from shared.schema import Row
from shared.store.counters import HourlyCounters
from shared.store.ledger import AttemptLedger, AttemptRecord
from shared.store.queue import QueueEntry, RetryQueue
from shared.store.state import IntegrationState, IntegrationStateRepo
from shared.store.tables import StoreUnavailable
from shared.telemetry import Telemetry

log = logging.getLogger(__name__)

# How stale an enabled/disabled flag the hot paths may act on (another instance's change).
STATE_MAX_AGE_SECONDS = 5.0


@dataclass(frozen=True)
class AutoDisableRule:
    """Wallarm's rule (60 % of attempts failed within 12 h, at least `min_attempts`), plus
    `grace`: no attempt may have succeeded for that long, so a blip (role propagation after a
    deploy takes up to 30 min) never disables, while a DCR that stays broken does within the hour."""

    ratio: float = 0.6
    window: timedelta = timedelta(hours=12)
    min_attempts: int = 20
    grace: timedelta = timedelta(minutes=40)


@dataclass
class SubmitResult:
    delivered: int = 0
    queued: int = 0
    parked: int = 0
    quarantined: int = 0
    report: DeliveryReport | None = None


def _records(attempts: Sequence[Attempt], source: str, entry_id: str) -> list[AttemptRecord]:
    return [
        AttemptRecord(
            ok=a.ok,
            status=a.status,
            error=a.error,
            request_id=a.request_id,
            rows=a.rows,
            source=source,
            entry_id=entry_id,
        )
        for a in attempts
    ]


def types_of(rows: Sequence[Row]) -> Counter[str]:
    return Counter(row.get("EventType", "") for row in rows)


class Relay:
    def __init__(
        self,
        deliverer: Deliverer,
        queue: RetryQueue,
        ledger: AttemptLedger,
        counters: HourlyCounters,
        state: IntegrationStateRepo,
        telemetry: Telemetry,
        *,
        schedule: RetrySchedule,
        rule: AutoDisableRule,
        clock: Clock,
    ) -> None:
        self.deliverer = deliverer
        self.queue = queue
        self.ledger = ledger
        self.counters = counters
        self.state = state
        self.telemetry = telemetry
        self.schedule = schedule
        self.rule = rule
        self.clock = clock

    # -- fresh rows -------------------------------------------------------------------------
    def submit(
        self, rows: Sequence[Row], *, source: str, deadline: float | None, record: bool = True
    ) -> SubmitResult:
        """Deliver now, else queue; raises StoreUnavailable only if a row could be neither.

        With `record=False` the caller records `result.report` itself, together with its own
        counters (the webhook does: one counter write per webhook instead of two)."""
        result = SubmitResult()
        if not rows:
            return result
        if not self._enabled():
            self.queue.park(list(rows), reason="integration disabled")
            result.parked = len(rows)
            return result
        with self.telemetry.span("relay.deliver", {"relay.rows": len(rows), "relay.source": source}):
            report = self.deliverer.deliver(rows, deadline)
        result.delivered = len(report.accepted)
        now = self.clock()
        for failure in report.failures:
            entries = self.queue.enqueue(
                failure.rows,
                due_at=next_due(now, self.schedule, 1, failure.retry_after),
                attempt=1,
                reason=failure.message,
                status=failure.status,
                error=failure.error,
                request_id=failure.request_id,
                first_failed_at=now,
            )
            if failure.poison:
                self._quarantine(entries, failure)
                result.quarantined += len(failure.rows)
            else:
                result.queued += len(failure.rows)
        if report.not_attempted:
            self.queue.enqueue(report.not_attempted, due_at=now, reason="webhook time budget spent")
            result.queued += len(report.not_attempted)
        result.report = report
        if record:
            self.record(report, source=source, entry_id="")
        return result

    def _quarantine(self, entries: Sequence[QueueEntry], failure: ChunkFailure) -> None:
        """Park rows that can never succeed as sent, with what an operator needs to act."""
        for entry in entries:
            self.queue.quarantine(
                entry, status=failure.status, error=failure.error, request_id=failure.request_id
            )
        log.error(
            "Quarantined %d rows: status=%s code=%s x-ms-request-id=%s",
            len(failure.rows),
            failure.status,
            failure.error,
            failure.request_id,
        )

    def _enabled(self) -> bool:
        """The state guards delivery, it does not gate it: unreadable state means deliver."""
        try:
            return self.state.get(max_age=STATE_MAX_AGE_SECONDS).enabled
        except StoreUnavailable as err:
            log.warning("Integration state unreadable, delivering anyway: %s", err)
            return True

    # -- queued entries ---------------------------------------------------------------------
    def attempt(self, entry: QueueEntry) -> DeliveryReport:
        """The upload of a claimed entry; `settle` writes its outcome to the store."""
        with self.telemetry.span(
            "relay.retry", {"relay.rows": len(entry.rows), "relay.attempt": entry.attempt}
        ):
            if entry.payload:  # the stored gzipped JSON goes as it is, when it fits one request
                return self.deliverer.deliver_packed(entry.payload, entry.rows)
            return self.deliverer.deliver(entry.rows)

    def settle(self, entry: QueueEntry, report: DeliveryReport) -> bool:
        """Complete, reschedule or quarantine the entry after `attempt`, and record it."""
        now = self.clock()
        if report.all_accepted:
            self.queue.complete(entry)
        else:
            failed = [row for f in report.failures if not f.poison for row in f.rows]
            poison = [f for f in report.failures if f.poison]
            for failure in poison:
                # Only the poison rows go to quarantine; their siblings stay on schedule.
                extra = self.queue.enqueue(
                    failure.rows,
                    due_at=now,
                    attempt=entry.attempt + 1,
                    reason=failure.message,
                    status=failure.status,
                    error=failure.error,
                    request_id=failure.request_id,
                    first_failed_at=entry.first_failed_at,
                )
                self._quarantine(extra, failure)
            if failed:
                last = next(f for f in report.failures if not f.poison)
                self.queue.reschedule(
                    entry,
                    due_at=next_due(now, self.schedule, entry.attempt + 1, last.retry_after),
                    attempt=entry.attempt + 1,
                    status=last.status,
                    error=last.error,
                    request_id=last.request_id,
                    rows=failed if len(failed) != len(entry.rows) else None,
                )
            else:
                self.queue.complete(entry)
        self.record(report, source="retry", entry_id=entry.id)
        return report.all_accepted

    def settle_many(self, settled: Sequence[tuple[QueueEntry, DeliveryReport]]) -> list[bool]:
        """`settle` for several entries. Those delivered without a failed request leave the queue
        together (one transaction) and their requests are counted in one ledger write (only
        failed requests are kept one by one, so nothing per entry is lost); any other goes
        through `settle` on its own. Each request is recorded once, even if the removal fails."""

        def clean_of(report: DeliveryReport) -> bool:
            return report.all_accepted and all(attempt.ok for attempt in report.attempts)

        clean = [(entry, report) for entry, report in settled if clean_of(report)]
        if clean:
            try:
                self.queue.complete_all([entry for entry, _report in clean])
            finally:
                attempts = [attempt for _entry, report in clean for attempt in report.attempts]
                self.record(DeliveryReport(attempts=attempts), source="retry", entry_id="")
        return [True if clean_of(report) else self.settle(entry, report) for entry, report in settled]

    # -- ledger and the auto-disable rule ---------------------------------------------------
    def record(
        self,
        report: DeliveryReport | None,
        *,
        source: str,
        entry_id: str,
        counts: Mapping[str, int] | None = None,
    ) -> None:
        """Ledger and telemetry for each request. A ledger outage never fails a delivery that
        happened: the rows are in Azure; only the failure ratio misses those attempts."""
        try:
            self._record(report, source=source, entry_id=entry_id, counts=counts)
        except StoreUnavailable as err:
            log.warning("Attempt ledger not updated: %s", err)

    def _record(
        self,
        report: DeliveryReport | None,
        *,
        source: str,
        entry_id: str,
        counts: Mapping[str, int] | None,
    ) -> None:
        attempts = report.attempts if report else []
        for attempt in attempts:
            self.telemetry.attempt(attempt.ok, attempt.status, attempt.error, attempt.elapsed, source)
        self.ledger.record_all(_records(attempts, source, entry_id), counts)
        if any(not a.ok for a in attempts):
            self.check_auto_disable()

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
        report = self.deliverer.deliver([row])
        self.record_quietly(report)
        if not report.all_accepted:
            self.queue.park([row], reason="relay event while disabled")

    def record_quietly(self, report: DeliveryReport, source: str = "relay") -> None:
        """Ledger records without re-evaluating the rule (avoids recursion while announcing)."""
        self.ledger.record_all(_records(report.attempts, source, ""))

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
        # The success breaks the failing streak, so the rule cannot re-trip on old failures.
        self.record_quietly(DeliveryReport(attempts=[probe]), source="probe")
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
