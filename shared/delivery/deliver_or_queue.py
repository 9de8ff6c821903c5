"""Delivers rows now or keeps them durably for later: the one path every row takes.

Used by the webhook (fresh rows, short budget), the retry worker (queued entries), the hourly
timer and the completeness jobs. It turns a delivery report into queue moves and adds the
attempts to the caller's `RequestTally`; schedules come from policy, storage from store, the API call
from ingestion, the write of the tally from ledger_writer, the on/off decision from integration_switch.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

from shared.clock import Clock
from shared.delivery.ingestion import ChunkFailure, Deliverer, DeliveryReport, Packed
from shared.delivery.landed_check import CHECK_PATIENCE, CHECK_RETRY, CHECK_UNAVAILABLE, LandedCheck, raw_hash
from shared.delivery.policy import RetrySchedule, next_due
from shared.health.ledger_writer import LedgerWriter
from shared.health.request_tally import RequestTally
from shared.schema import Row
from shared.store.queue import QueueEntry, RetryQueue
from shared.store.state import IntegrationStateRepo
from shared.store.tables import StoreUnavailable
from shared.telemetry import Telemetry

log = logging.getLogger(__name__)

# How stale an enabled/disabled flag the hot paths may act on (another instance's change).
STATE_MAX_AGE_SECONDS = 5.0

# The last failure of an entry queued after its upload read-timed out or lost its connection
# (``ingestion.describe_failure``): Azure may have accepted those rows, so a resend may duplicate.
UNCERTAIN_ERROR = "response_error"


@dataclass
class SubmitResult:
    delivered: int = 0
    queued: int = 0
    parked: int = 0
    quarantined: int = 0


def types_of(rows: Sequence[Row]) -> Counter[str]:
    return Counter(row.get("EventType", "") for row in rows)


class DeliverOrQueue:
    def __init__(
        self,
        deliverer: Deliverer,
        queue: RetryQueue,
        state: IntegrationStateRepo,
        ledger_writer: LedgerWriter,
        telemetry: Telemetry,
        *,
        schedule: RetrySchedule,
        clock: Clock,
        landed: LandedCheck | None = None,
    ) -> None:
        """`landed`: asks the workspace before a doubtful resend (None: no workspace configured,
        resend at once, at-least-once)."""
        self.deliverer = deliverer
        self.queue = queue
        self.state = state
        self.ledger_writer = ledger_writer
        self.telemetry = telemetry
        self.schedule = schedule
        self.clock = clock
        self.landed = landed

    # -- fresh rows -------------------------------------------------------------------------
    def send(
        self,
        rows: Sequence[Row],
        *,
        source: str,
        deadline: float | None = None,
        counts: Mapping[str, int] | None = None,
    ) -> SubmitResult:
        """`submit` for a caller with nothing else to tally: opens the tally and writes it."""
        tally = RequestTally(source)
        result = self.submit(rows, tally=tally, deadline=deadline)
        tally.add(counts or {})
        self.ledger_writer.write(tally)
        return result

    def submit(
        self,
        rows: Sequence[Row],
        *,
        tally: RequestTally,
        deadline: float | None,
        packed: Sequence[Packed] | None = None,
        in_doubt: bool = False,
    ) -> SubmitResult:
        """Deliver now, else queue; raises StoreUnavailable only if a row could be neither.

        The attempts go into `tally`, which its opener writes (`LedgerWriter.write`) once it has added
        its own counts: one counter write per request. `packed`: the same rows already cut and
        serialised (`ingestion.pack`), done while the caller waited for something else.
        `in_doubt`: the rows may be in the table already (a resent body whose first processing
        stopped mid-way); with a landed check they are queued for it, not uploaded now."""
        result = SubmitResult()
        if not rows:
            return result
        landed = self.landed if in_doubt else None
        if not self._enabled():
            doubt = self.clock() if landed is not None else None
            self.queue.park(list(rows), reason="integration disabled", doubt_since=doubt)
            result.parked = len(rows)
            return result
        if landed is not None:
            now = self.clock()
            self.queue.enqueue(
                rows,
                due_at=landed.ready_at(now),
                reason="resent body whose first processing stopped mid-way",
                doubt_since=now,
            )
            result.queued = len(rows)
            return result
        with self.telemetry.span("relay.deliver", {"relay.rows": len(rows), "relay.source": tally.source}):
            report = (
                self.deliverer.deliver(rows, deadline)
                if packed is None
                else self.deliverer.deliver_chunks(packed, deadline)
            )
        tally.add_report(report)
        result.delivered = len(report.accepted)
        now = self.clock()
        for failure in report.failures:
            doubt = self._doubt(failure, now)
            entries = self.queue.enqueue(
                failure.rows,
                due_at=self._due(now, 1, failure, doubt),
                attempt=1,
                reason=failure.message,
                status=failure.status,
                error=failure.error,
                request_id=failure.request_id,
                first_failed_at=now,
                doubt_since=doubt,
            )
            if failure.poison:
                self._quarantine(entries, failure)
                result.quarantined += len(failure.rows)
            else:
                result.queued += len(failure.rows)
        if report.not_attempted:
            self.queue.enqueue(report.not_attempted, due_at=now, reason="webhook time budget spent")
            result.queued += len(report.not_attempted)
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

    def _doubt(
        self, failure: ChunkFailure, now: datetime, entry: QueueEntry | None = None
    ) -> datetime | None:
        """When an upload may have landed unseen (read timeout, dropped connection): now; a
        check put off keeps the entry's own doubt."""
        if failure.error == CHECK_UNAVAILABLE and entry is not None:
            return entry.doubt_since
        return now if failure.error == UNCERTAIN_ERROR else None

    def _due(self, now: datetime, attempt: int, failure: ChunkFailure, doubt: datetime | None) -> datetime:
        """The schedule's next step; for a doubtful upload not before the landed check may run."""
        due = next_due(now, self.schedule, attempt, failure.retry_after)
        if doubt is not None and self.landed is not None:
            due = max(due, self.landed.ready_at(doubt))
        return due

    def check_wait(self, entry: QueueEntry) -> datetime | None:
        """When a claimed entry's landed check may run, if not yet (the rows of its doubtful
        upload could still be on their way into the workspace); None: it may go now."""
        if self.landed is None or entry.doubt_since is None:
            return None
        ready = self.landed.ready_at(entry.doubt_since)
        return ready if ready > self.clock() else None

    def _enabled(self) -> bool:
        """The state guards delivery, it does not gate it: unreadable state means deliver."""
        try:
            return self.state.get(max_age=STATE_MAX_AGE_SECONDS).enabled
        except StoreUnavailable as err:
            log.warning("Integration state unreadable, delivering anyway: %s", err)
            return True

    # -- queued entries ---------------------------------------------------------------------
    def attempt(self, entry: QueueEntry) -> DeliveryReport:
        """The upload of a claimed entry; `settle` writes its outcome to the store. An entry in
        doubt (its last upload may have landed) first asks the workspace, and only the rows not
        found there are sent."""
        with self.telemetry.span(
            "relay.retry", {"relay.rows": len(entry.rows), "relay.attempt": entry.attempt}
        ):
            if self._in_doubt(entry):
                found = self._found(entry)
                if found is not None:
                    return self._resend_missing(entry, found)
                if self._may_wait(entry):
                    return self._check_later(entry)
            if entry.payload:  # the stored gzipped JSON goes as it is, when it fits one request
                return self.deliverer.deliver_packed(entry.payload, entry.rows)
            return self.deliverer.deliver(entry.rows)

    def _in_doubt(self, entry: QueueEntry) -> bool:
        return self.landed is not None and entry.doubt_since is not None and bool(entry.rows)

    def _found(self, entry: QueueEntry) -> list[bool] | None:
        assert self.landed is not None  # _in_doubt
        with self.telemetry.span("relay.landed_check", {"relay.rows": len(entry.rows)}):
            return self.landed.found(entry.rows, self.clock())

    def _may_wait(self, entry: QueueEntry) -> bool:
        """Whether a check the workspace could not answer may be tried again before a blind resend."""
        assert self.landed is not None and entry.doubt_since is not None  # _in_doubt
        return self.clock() < self.landed.ready_at(entry.doubt_since) + CHECK_PATIENCE

    @staticmethod
    def _check_later(entry: QueueEntry) -> DeliveryReport:
        """No request made: the rows wait CHECK_RETRY for another check, still in doubt."""
        message = "the workspace could not say which rows landed; checking again"
        retry = CHECK_RETRY.total_seconds()
        failure = ChunkFailure(entry.rows, None, CHECK_UNAVAILABLE, "", retry, False, message)
        return DeliveryReport(failures=[failure])

    def _resend_missing(self, entry: QueueEntry, found: list[bool]) -> DeliveryReport:
        confirmed = [row for row, hit in zip(entry.rows, found, strict=True) if hit]
        missing = [row for row, hit in zip(entry.rows, found, strict=True) if not hit]
        if confirmed:
            self.telemetry.count_events("landed_confirmed", types_of(confirmed))
            log.info(
                "Retry worker: %d of %d rows of a doubtful upload are already in the table; not resent",
                len(confirmed),
                len(entry.rows),
            )
        report = self.deliverer.deliver(missing) if missing else DeliveryReport()
        return replace(report, accepted=confirmed + report.accepted, checked=True, confirmed=confirmed)

    def settle(self, entry: QueueEntry, report: DeliveryReport, retry: StoreRetry | None = None) -> bool:
        """Complete, reschedule or quarantine the entry after `attempt`, and record it.

        The request is counted first (once, whatever the store does next); each queue write is
        then retried by `retry` on a storage outage, and a write that succeeded is never redone
        (a retried poison enqueue would quarantine its rows twice)."""
        self.ledger_writer.write(RequestTally.of(report, source="retry", entry_id=entry.id))
        store = retry or StoreRetry.once()
        now = self.clock()
        if report.all_accepted:
            store.run(lambda: self.queue.complete(entry))
            return True
        failed = [row for f in report.failures if not f.poison for row in f.rows]
        for failure in report.failures:
            if failure.poison:  # only the poison rows go to quarantine; their siblings stay on schedule
                self._settle_poison(entry, failure, store)
        if failed:
            clear = [f for f in report.failures if not f.poison]
            last = clear[0]
            # Any chunk that may have landed keeps the whole entry in doubt, not only the first.
            doubt = next((d for f in clear if (d := self._doubt(f, now, entry)) is not None), None)
            # A check put off made no request: the entry keeps its place in the schedule.
            attempt = entry.attempt if last.error == CHECK_UNAVAILABLE else entry.attempt + 1
            store.run(
                lambda: self.queue.reschedule(
                    entry,
                    due_at=self._due(now, attempt, last, doubt),
                    attempt=attempt,
                    status=last.status,
                    error=last.error,
                    request_id=last.request_id,
                    rows=failed if len(failed) != len(entry.rows) else None,
                    doubt_since=doubt,
                )
            )
        else:
            store.run(lambda: self.queue.complete(entry))
        return False

    def _settle_poison(self, entry: QueueEntry, failure: ChunkFailure, store: StoreRetry) -> None:
        now = self.clock()
        extra = store.run(
            lambda: self.queue.enqueue(
                failure.rows,
                due_at=now,
                attempt=entry.attempt + 1,
                reason=failure.message,
                status=failure.status,
                error=failure.error,
                request_id=failure.request_id,
                first_failed_at=entry.first_failed_at,
            )
        )
        store.run(lambda: self._quarantine(extra, failure))

    def settle_many(
        self, settled: Sequence[tuple[QueueEntry, DeliveryReport]], retry: StoreRetry | None = None
    ) -> list[bool]:
        """`settle` for several entries. Those delivered without a failed request leave the queue
        together (one transaction) and their requests are counted in one ledger write (only
        failed requests are kept one by one, so nothing per entry is lost); any other goes
        through `settle` on its own. Each request is recorded once, even if the removal fails.

        With `retry`, a storage outage retries the removal (never the upload: the rows are in
        Azure) until `retry.until`; an entry left unsettled comes due again after its lease and
        its rows are sent twice (issue 24, defect 1)."""

        def clean_of(report: DeliveryReport) -> bool:
            return report.all_accepted and all(attempt.ok for attempt in report.attempts)

        store = retry or StoreRetry.once()
        self._count_possible_duplicates(settled)
        clean = [(entry, report) for entry, report in settled if clean_of(report)]
        if clean:
            attempts = [attempt for _entry, report in clean for attempt in report.attempts]
            self.ledger_writer.write(RequestTally.of(DeliveryReport(attempts=attempts), source="retry"))
            store.run(lambda: self.queue.complete_all([entry for entry, _report in clean]))
        return [True if clean_of(report) else self.settle(entry, report, store) for entry, report in settled]

    def _count_possible_duplicates(self, settled: Sequence[tuple[QueueEntry, DeliveryReport]]) -> None:
        """Rows resent after an upload that timed out or lost its connection may now be in the
        table twice (at-least-once; README, "When a duplicate row is possible"): counted as
        events of outcome ``possible_duplicate`` and logged (a count, never a value)."""
        by_type: Counter[str] = Counter()
        for entry, report in settled:
            if report.checked:
                # The workspace was asked first: nothing it holds was sent again, except a row it
                # could not be asked about (no RawData string to hash), resent as without a check.
                by_type.update(
                    str(row.get("EventType", "")) for row in report.accepted if raw_hash(row) is None
                )
                continue
            if entry.last_error == UNCERTAIN_ERROR or entry.doubt_since is not None:
                landed = report.accepted or (entry.rows if report.all_accepted else [])
                by_type.update(str(row.get("EventType", "")) for row in landed)
        if by_type:
            self.telemetry.count_events("possible_duplicate", by_type)
            log.warning(
                "Retry worker: %d rows resent after an upload that timed out or lost its connection; "
                "they may be in the table twice",
                sum(by_type.values()),
            )


T = TypeVar("T")


@dataclass(frozen=True)
class StoreRetry:
    """Retries one store write on `StoreUnavailable` with backoff (1 s doubling to 15 s) until
    `until`, then lets the last error out. The writes it guards are ETag-guarded, so a retry of a
    write whose answer was lost is a logged lost race, not a second effect."""

    until: datetime | None
    clock: Clock | None = None
    sleep: Callable[[float], None] | None = None

    @staticmethod
    def once() -> StoreRetry:
        return StoreRetry(None)

    def run(self, write: Callable[[], T]) -> T:
        delay = 1.0
        while True:
            try:
                return write()
            except StoreUnavailable as err:
                if self.until is None or self.clock is None or self.sleep is None:
                    raise
                left = (self.until - self.clock()).total_seconds()
                if left <= 0:
                    raise
                log.warning("Settle not stored, retrying in %.0f s: %s", min(delay, left), err)
                self.sleep(min(delay, left))
                delay = min(delay * 2, 15.0)
