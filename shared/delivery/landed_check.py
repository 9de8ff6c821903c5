"""Which rows of a doubtful upload are already in the table, asked of the workspace before a resend.

An upload that timed out or lost its connection, or whose worker died mid-way, may have landed:
the Logs Ingestion API has no idempotency key, so a blind resend can write every row twice. The
retry worker asks Log Analytics first and resends only what it does not find.

A row is found by ``hash_sha256(RawData)``: the relay writes RawData itself (trimmed under the
API's 64 KB field limit, so it lands unchanged), and for a hit it holds the hit's id pair. Copies
are counted, so two identical rows in one entry need two in the table. The query covers the rows'
own TimeGenerated range (Azure replaces a TimeGenerated older than two days, or more than one day
ahead, with the receive time, so such rows are looked for up to now, or back from it).

A miss is not proof (FACTS.md: rows are usually queryable 20 s to 3 min after upload, sometimes
later), so the check runs only ``LANDED_CHECK_DELAY_SECONDS`` after the doubtful upload; a row
that shows up even later than that is written twice, as without the check. A failed or partial
query answers None: the caller resends everything (at-least-once, counted as possible duplicates);
so does an answer the SDK cannot read or of another shape than asked, never taken for "nothing
found"; such a check is first tried again for up to ``CHECK_PATIENCE``. All the queries of one
entry end within ``CHECK_BUDGET_SECONDS`` even when the answer trickles in (a per-read timeout
never fires then).
Needs Log Analytics Reader on the workspace, as reconciliation does (infra/modules/reader-role.bicep).
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, TypeVar

from shared.clock import parse_iso_utc
from shared.schema import Row

if TYPE_CHECKING:
    from azure.monitor.query import LogsQueryClient, LogsQueryResult

T = TypeVar("T")

log = logging.getLogger(__name__)

TABLE: Final[str] = "WallarmSentinel_CL"
# Hashes per query: 200 x 66 characters keeps a query near 14 KB, far under the API's limits.
HASHES_PER_QUERY: Final[int] = 200
MARGIN: Final[timedelta] = timedelta(minutes=5)
# All the queries of one entry: past this the check gives up and the rows are resent.
CHECK_BUDGET_SECONDS: Final[float] = 60.0
# A check the workspace could not answer (a token outage, a 5xx, a slow answer) is tried again
# every CHECK_RETRY for up to CHECK_PATIENCE after it could first run, before a blind resend: a
# wait of minutes beats a duplicate, and nothing waits longer than that for a human.
CHECK_RETRY: Final[timedelta] = timedelta(seconds=60)
CHECK_PATIENCE: Final[timedelta] = timedelta(minutes=10)
CHECK_UNAVAILABLE: Final[str] = "landed_check_unavailable"
"""The error an entry records when its landed check is put off (no request was made)."""
REPLACED_AFTER: Final[timedelta] = timedelta(days=2) - timedelta(hours=1)
EPOCH: Final[datetime] = datetime(1970, 1, 1, tzinfo=UTC)
LATEST: Final[datetime] = datetime(9999, 12, 30, tzinfo=UTC)
COLUMNS: Final[list[str]] = ["RawHash", "Copies"]  # the answer's columns, in this order


def raw_hash(row: Row) -> str | None:
    """KQL's ``hash_sha256(RawData)``: SHA-256 of the string's UTF-8 bytes, lower-case hex."""
    raw = row.get("RawData")
    return hashlib.sha256(raw.encode("utf-8")).hexdigest() if isinstance(raw, str) else None


def query_for(hashes: Sequence[str]) -> str:
    """The KQL that counts the table's rows with each RawData hash (hex only: nothing to escape)."""
    listed = ", ".join(f'"{h}"' for h in hashes)
    return (
        f"{TABLE}"
        " | extend RawHash = hash_sha256(RawData)"
        f" | where RawHash in ({listed})"
        " | summarize Copies = count() by RawHash"
    )


def timespan_for(rows: Sequence[Row], now: datetime) -> tuple[datetime, datetime]:
    """The TimeGenerated range to look in: the rows' own, with a margin; up to now when a row is
    old enough for Azure to have replaced its time, or has none the relay can read; back over
    the last two days when a row is ahead of now (far enough ahead, Azure replaces it too)."""
    times = [parse_iso_utc(row.get("TimeGenerated")) for row in rows]
    # A hit's time is the attacker's to set (up to 9999-12-31): held inside the calendar, so
    # that the margins below never step past it (no row the relay maps is older than 1970).
    known = [min(max(t, EPOCH), LATEST) for t in times if t is not None]
    if not known or len(known) != len(times):
        return now - timedelta(days=2) - MARGIN, now + MARGIN
    start, end = min(known) - MARGIN, max(known) + MARGIN
    if now - min(known) > REPLACED_AFTER:
        end = max(end, now + MARGIN)
    if max(known) > now:
        # Azure also retimes a row more than a day ahead of its receive time, which lies before
        # now; a row ahead of now may have been (how far ahead of the upload is not known here).
        start, end = min(start, now - timedelta(days=2) - MARGIN), max(end, now + MARGIN)
    return start, end


def mark_found(hashes: Sequence[str | None], copies: Counter[str]) -> list[bool]:
    """Per row, whether the table holds it: the first ``copies[h]`` rows of each hash are found."""
    left = Counter(copies)
    found: list[bool] = []
    for h in hashes:
        hit = h is not None and left[h] > 0
        if hit and h is not None:
            left[h] -= 1
        found.append(hit)
    return found


class LandedCheck:
    """Asks the workspace which rows of an entry already landed (``delay``: see the module doc)."""

    def __init__(self, client: LogsQueryClient, workspace_id: str, *, delay: timedelta) -> None:
        self.client = client
        self.workspace_id = workspace_id
        self.delay = delay

    def ready_at(self, doubt_since: datetime) -> datetime:
        """When rows of an upload that may have landed at ``doubt_since`` are worth asking about."""
        return doubt_since + self.delay

    def found(self, rows: Sequence[Row], now: datetime) -> list[bool] | None:
        """Per row, True if the table already holds it; None if the workspace could not say."""
        hashes = [raw_hash(row) for row in rows]
        distinct = sorted({h for h in hashes if h is not None})
        timespan = timespan_for(rows, now)
        copies: Counter[str] = Counter()
        give_up_at = time.monotonic() + CHECK_BUDGET_SECONDS
        for start in range(0, len(distinct), HASHES_PER_QUERY):
            asked = distinct[start : start + HASHES_PER_QUERY]
            counted = self._copies(asked, timespan, give_up_at - time.monotonic())
            if counted is None:
                return None
            copies.update(counted)
        return mark_found(hashes, copies)

    def _copies(
        self, asked: list[str], timespan: tuple[datetime, datetime], budget: float
    ) -> Counter[str] | None:
        """The table's copies of each ``asked`` hash; None (logged) if the workspace did not say."""
        from azure.core.exceptions import AzureError

        if budget <= 0:
            log.warning("Landed check: Log Analytics too slow for this entry")
            return None
        query = query_for(asked)
        try:
            result = within(
                budget, lambda: self.client.query_workspace(self.workspace_id, query, timespan=timespan)
            )
        except TimeoutError:
            log.warning("Landed check: Log Analytics too slow for this entry")
            return None
        except AzureError as err:
            log.warning(
                "Landed check: Log Analytics query failed (%s)",
                getattr(err, "status_code", None) or type(err).__name__,
            )
            return None
        except Exception as err:  # noqa: BLE001 - an answer the SDK could not read (not JSON, a redirect)
            log.warning("Landed check: unreadable Log Analytics answer (%s)", type(err).__name__)
            return None
        return counted_copies(result, set(asked))


def counted_copies(result: LogsQueryResult | Any, asked: set[str]) -> Counter[str] | None:
    """The copies an answer counts per asked hash; None (logged) unless it is a complete answer
    of exactly the asked shape: one table, columns RawHash and Copies, a hex string and a
    positive count per row. Anything else is not read as "not found"."""
    from azure.monitor.query import LogsQueryStatus

    if getattr(result, "status", None) != LogsQueryStatus.SUCCESS:
        log.warning("Landed check: Log Analytics returned a partial result")
        return None
    tables = list(getattr(result, "tables", None) or [])
    if len(tables) != 1 or list(getattr(tables[0], "columns", None) or []) != COLUMNS:
        log.warning("Landed check: unexpected answer shape")
        return None
    copies: Counter[str] = Counter()
    for row in tables[0].rows:
        value, count = (row[0], row[1]) if len(row) == 2 else (None, None)
        if not isinstance(value, str) or type(count) is not int or count <= 0:
            log.warning("Landed check: unexpected answer shape")
            return None
        if value in asked:
            copies[value] += count
    return copies


def within(seconds: float, call: Callable[[], T]) -> T:
    """``call()`` on a daemon thread, waited for at most ``seconds`` (TimeoutError past that).

    An HTTP read timeout is per read: an answer that trickles in a byte at a time never trips it.
    A query is read-only, so one given up on is left to end on its own; the thread, a daemon,
    never holds the process. The caller's context (its tenant, for log lines) goes with it."""
    outcome: list[Any] = []
    context = contextvars.copy_context()

    def run() -> None:
        try:
            outcome.append((True, context.run(call)))
        except BaseException as err:  # noqa: BLE001 - handed to the caller
            outcome.append((False, err))

    thread = threading.Thread(target=run, name="landed-check-query", daemon=True)
    thread.start()
    thread.join(seconds)
    if not outcome:
        raise TimeoutError(f"no answer within {seconds:.1f} s")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value
