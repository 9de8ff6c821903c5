"""Which rows of a doubtful upload are already in the table, asked of the workspace before a resend.

An upload that timed out or lost its connection, or whose worker died mid-way, may have landed:
the Logs Ingestion API has no idempotency key, so a blind resend can write every row twice. The
retry worker asks Log Analytics first and resends only what it does not find.

A row is found by ``hash_sha256(RawData)``: the relay writes RawData itself (trimmed under the
API's 64 KB field limit, so it lands unchanged), and for a hit it holds the hit's id pair. Copies
are counted, so two identical rows in one entry need two in the table. The query covers the rows'
own TimeGenerated range (Azure replaces a TimeGenerated older than two days with the receive
time, so such rows are looked for up to now).

A miss is not proof (FACTS.md: rows are usually queryable 20 s to 3 min after upload, sometimes
later), so the check runs only ``LANDED_CHECK_DELAY_SECONDS`` after the doubtful upload; a row
that shows up even later than that is written twice, as without the check. A failed or partial
query answers None: the caller resends everything (at-least-once, counted as possible duplicates).
Needs Log Analytics Reader on the workspace, as reconciliation does (infra/modules/reader-role.bicep).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from shared.clock import parse_iso_utc
from shared.schema import Row

if TYPE_CHECKING:
    from azure.monitor.query import LogsQueryClient

log = logging.getLogger(__name__)

TABLE: Final[str] = "WallarmSentinel_CL"
# Hashes per query: 200 x 66 characters keeps a query near 14 KB, far under the API's limits.
HASHES_PER_QUERY: Final[int] = 200
MARGIN: Final[timedelta] = timedelta(minutes=5)
# All the queries of one entry: past this the check gives up and the rows are resent.
CHECK_BUDGET_SECONDS: Final[float] = 60.0
REPLACED_AFTER: Final[timedelta] = timedelta(days=2) - timedelta(hours=1)


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
    old enough for Azure to have replaced its time, or has none the relay can read."""
    times = [parse_iso_utc(row.get("TimeGenerated")) for row in rows]
    known = [t for t in times if t is not None]
    if not known or len(known) != len(times):
        return now - timedelta(days=2) - MARGIN, now + MARGIN
    start, end = min(known) - MARGIN, max(known) + MARGIN
    if now - min(known) > REPLACED_AFTER:
        end = max(end, now + MARGIN)
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

    def found(self, rows: Sequence[Row], now: datetime) -> list[bool] | None:
        """Per row, True if the table already holds it; None if the workspace could not say."""
        from azure.core.exceptions import AzureError
        from azure.monitor.query import LogsQueryStatus

        hashes = [raw_hash(row) for row in rows]
        distinct = sorted({h for h in hashes if h is not None})
        timespan = timespan_for(rows, now)
        copies: Counter[str] = Counter()
        give_up_at = time.monotonic() + CHECK_BUDGET_SECONDS
        for start in range(0, len(distinct), HASHES_PER_QUERY):
            if time.monotonic() > give_up_at:
                log.warning("Landed check: Log Analytics too slow for this entry; resending without it")
                return None
            query = query_for(distinct[start : start + HASHES_PER_QUERY])
            try:
                result = self.client.query_workspace(self.workspace_id, query, timespan=timespan)
            except AzureError as err:
                log.warning(
                    "Landed check: Log Analytics query failed (%s); resending without it",
                    getattr(err, "status_code", None) or type(err).__name__,
                )
                return None
            if result.status != LogsQueryStatus.SUCCESS:
                log.warning("Landed check: Log Analytics returned a partial result; resending without it")
                return None
            asked = set(distinct[start : start + HASHES_PER_QUERY])
            for table in result.tables:
                for row in table.rows:
                    value, count = (row[0], row[1]) if len(row) == 2 else (None, None)
                    if not isinstance(value, str) or not isinstance(count, int):
                        log.warning("Landed check: unexpected answer shape; resending without it")
                        return None
                    if value in asked and count > 0:
                        copies[value] += count
        return mark_found(hashes, copies)
