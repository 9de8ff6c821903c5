"""Which hits the WallarmSentinel_CL table already holds, by their `id` pair (Log Analytics query).

The relay's identity needs **Log Analytics Reader** on the workspace (infra/reader-role.bicep).
Rows take the hit's own time as TimeGenerated, so the query's timespan is the hit window with a
small margin; a window older than two days is queried up to now, because Azure replaces a
TimeGenerated older than two days with the receive time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from shared.completeness.api_hits import hit_key
from shared.limits import RECONCILE_QUERY_BOUNDS

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.monitor.query import LogsQueryClient

AUDIENCE: Final[str] = "https://api.loganalytics.io"
# One row per distinct (hit id pair as a JSON array string, e.g. ["hits_…","Vr0…"], RequestId).
# A row whose RawData lost the id (trimmed to a summary over 64 KB, or a 2.x flat hit) still
# has its RequestId: every API hit of that request then counts as present (never a duplicate).
HIT_IDS_QUERY: Final[str] = (
    "WallarmSentinel_CL"
    ' | where EventType == "new_hits"'
    " | extend HitId = tostring(parse_json(RawData).details.hit.id)"
    " | distinct HitId, RequestId"
)
MARGIN: Final[timedelta] = timedelta(minutes=5)
INGESTION_TIME_LIMIT: Final[timedelta] = timedelta(days=2)


@dataclass
class Presence:
    """What the table holds: hit id keys, and request ids of hit rows whose id was lost."""

    keys: set[str] = field(default_factory=set)
    request_ids: set[str] = field(default_factory=set)

    def holds(self, key: str, request_id: object) -> bool:
        return key in self.keys or (isinstance(request_id, str) and request_id in self.request_ids)


class QueryFailed(Exception):
    """The workspace could not be queried (403: grant Log Analytics Reader; 404: workspace id)."""


def build_query_client(
    endpoint: str,
    credential: TokenCredential,
    *,
    ca_bundle: str | None = None,
    bounds: Mapping[str, float] = RECONCILE_QUERY_BOUNDS,
) -> LogsQueryClient:
    from azure.monitor.query import LogsQueryClient

    kwargs: dict[str, Any] = {**bounds, "retry_total": int(bounds["retry_total"])}
    if ca_bundle:
        kwargs["connection_verify"] = ca_bundle
    return LogsQueryClient(credential, endpoint=endpoint, audience=AUDIENCE, logging_enable=False, **kwargs)


class WorkspaceHits:
    def __init__(self, client: LogsQueryClient, workspace_id: str) -> None:
        self.client = client
        self.workspace_id = workspace_id

    def hit_keys(self, start: datetime, end: datetime, now: datetime) -> Presence:
        """The hits of new_hits rows timed in [start, end]: id keys, and bare request ids."""
        from azure.core.exceptions import AzureError
        from azure.monitor.query import LogsQueryStatus

        query_end = end + MARGIN
        if now - start > INGESTION_TIME_LIMIT - timedelta(hours=1):
            query_end = max(query_end, now + MARGIN)
        try:
            result = self.client.query_workspace(
                self.workspace_id, HIT_IDS_QUERY, timespan=(start - MARGIN, query_end)
            )
        except AzureError as err:
            status = getattr(err, "status_code", None)
            raise QueryFailed(f"Log Analytics query failed ({status or type(err).__name__})") from err
        if result.status != LogsQueryStatus.SUCCESS:
            # A partial result could hide present rows, and then hits would be added twice.
            raise QueryFailed("Log Analytics query returned a partial result")
        presence = Presence()
        for table in result.tables:
            for row in table.rows:
                key = _key_of(row[0])
                if key:
                    presence.keys.add(key)
                elif isinstance(row[1], str) and row[1]:
                    presence.request_ids.add(row[1])
        return presence


def _key_of(value: Any) -> str | None:
    try:
        return hit_key(json.loads(value)) if isinstance(value, str) else None
    except ValueError:
        return None
