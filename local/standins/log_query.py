"""Log Analytics query API stand-in (HTTPS, 127.0.0.1) over the ingestion stand-in's rows.

Speaks `POST /v1/workspaces/{workspaceId}/query` with `{"query", "timespan", "workspaces"}` and
answers `{"tables":[{"name":"PrimaryResult","columns":[{"name","type"}],"rows":[[…]]}]}`, as
the Log Analytics API reference documents, so the real `LogsQueryClient` runs against it:

* bearer token from the shared `TokenIssuer`, audience `https://api.loganalytics.io`: 401
  (`InvalidAuthenticationToken`) otherwise; unknown workspace: 404 (`WorkspaceNotFoundError`);
  a role assignment can be withdrawn with `deny(True)`: 403 (`InsufficientAccessError`);
* `timespan` (`start/end`, ISO 8601) filters rows on `TimeGenerated`, as the service does;
* the query language is a small KQL subset, enough for the relay's queries: `<table>`, then
  `| where Col == "text"`, `| extend Name = tostring(parse_json(Col).a.b)`,
  `| where isnotempty(Name)`, `| distinct A[, B]`, `| project A[, B]`, `| count`,
  `| extend H = hash_sha256(Col)`, `| where H in ("a", "b")`, `| summarize N = count() by H`. Anything
  else is a 400 `BadArgumentError` (a test then shows the query needs a real workspace);
* faults: `inject(status, body=…)` answers the next queries with any status and raw body (an
  unexpected shape, a partial error, a redirect); `inject_delay(seconds)` holds them first;
  `inject_trickle(seconds)` sends a valid answer one byte per `seconds` (a read timeout per read
  never fires);
* Azure's retiming (FACTS.md): with `retime_like_azure()`, a row whose TimeGenerated is more
  than 2 days before or 1 day after its arrival is shown with its arrival time instead;
* ingestion latency: with `delay_visibility(seconds)` a row is queryable only `seconds` after the
  stand-in first saw it (at a query, or at `observe()` right after an upload), as Log Analytics
  shows rows 20 s to 3 min after upload, and sometimes much later.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from local.standins.identity import TokenError, TokenIssuer
from local.standins.server import StandInHandler, StandInLifecycle, ThreadedServer, owner_of, take_fault

AUDIENCE = "https://api.loganalytics.io"
DEFAULT_WORKSPACE_ID = "00000000-0000-0000-0000-0000000000aa"
TABLE = "WallarmSentinel_CL"

_WHERE_EQ = re.compile(r'^where\s+(\w+)\s*==\s*"([^"]*)"$')
_WHERE_NOT_EMPTY = re.compile(r"^where\s+isnotempty\((\w+)\)$")
_EXTEND_JSON = re.compile(r"^extend\s+(\w+)\s*=\s*tostring\(parse_json\((\w+)\)((?:\.\w+)+)\)$")
_COLUMNS = re.compile(r"^(distinct|project)\s+(\w+(?:\s*,\s*\w+)*)$")
_EXTEND_SHA256 = re.compile(r"^extend\s+(\w+)\s*=\s*hash_sha256\((\w+)\)$")
_WHERE_IN = re.compile(r'^where\s+(\w+)\s+in\s*\(((?:\s*"[^"]*"\s*,?)*)\)$')
_SUMMARIZE_COUNT = re.compile(r"^summarize\s+(\w+)\s*=\s*count\(\)\s+by\s+(\w+)$")


class QueryError(ValueError):
    pass


@dataclass
class _Fault:
    """One injected answer: held ``delay`` s, then ``status`` with ``body`` (raw bytes), or the
    real answer sent a byte every ``trickle`` s; ``headers`` are added (a ``Location``)."""

    times: int = 1
    delay: float = 0.0
    status: int | None = None
    body: bytes = b""
    headers: dict[str, str] | None = None
    trickle: float = 0.0


def _tostring(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _path(value: Any, names: list[str]) -> Any:
    for name in names:
        value = value.get(name) if isinstance(value, dict) else None
    return value


def run_query(query: str, rows: list[dict[str, Any]]) -> tuple[list[dict[str, str]], list[list[Any]]]:
    """Evaluate the supported KQL subset; returns (columns, rows) of the primary result."""
    stages = [s.strip() for s in query.strip().split("|")]
    if stages[0] != TABLE:
        raise QueryError(f"'{stages[0]}' is not a table of this workspace")
    current: list[dict[str, Any]] = [dict(r) for r in rows]
    columns = list(rows[0]) if rows else []
    for stage in stages[1:]:
        if m := _WHERE_EQ.match(stage):
            current = [r for r in current if _tostring(r.get(m[1])) == m[2]]
        elif m := _WHERE_NOT_EMPTY.match(stage):
            current = [r for r in current if _tostring(r.get(m[1]))]
        elif m := _EXTEND_JSON.match(stage):
            names = m[3].strip(".").split(".")
            for r in current:
                try:
                    parsed = json.loads(r.get(m[2]) or "null")
                except ValueError:
                    parsed = None
                r[m[1]] = _tostring(_path(parsed, names))
            columns.append(m[1])
        elif m := _EXTEND_SHA256.match(stage):
            for r in current:  # KQL: SHA-256 of the string's UTF-8 bytes, lower-case hex
                r[m[1]] = hashlib.sha256(_tostring(r.get(m[2])).encode("utf-8")).hexdigest()
            columns.append(m[1])
        elif m := _WHERE_IN.match(stage):
            wanted = set(re.findall(r'"([^"]*)"', m[2]))
            current = [r for r in current if _tostring(r.get(m[1])) in wanted]
        elif m := _SUMMARIZE_COUNT.match(stage):
            counts: dict[str, int] = {}
            for r in current:
                key = _tostring(r.get(m[2]))
                counts[key] = counts.get(key, 0) + 1
            return [{"name": m[2], "type": "string"}, {"name": m[1], "type": "long"}], [
                [key, n] for key, n in counts.items()
            ]
        elif m := _COLUMNS.match(stage):
            columns = [c.strip() for c in m[2].split(",")]
            projected = [{c: r.get(c) for c in columns} for r in current]
            if m[1] == "distinct":
                seen: dict[str, dict[str, Any]] = {}
                for r in projected:
                    seen.setdefault(json.dumps(r, sort_keys=True), r)
                projected = list(seen.values())
            current = projected
        elif stage == "count":
            return [{"name": "Count", "type": "long"}], [[len(current)]]
        else:
            raise QueryError(f"the stand-in does not support '{stage.split()[0] if stage else stage}'")
    types = [{"name": c, "type": "datetime" if c == "TimeGenerated" else "string"} for c in columns]
    return types, [[r.get(c) for c in columns] for r in current]


def _in_timespan(row: dict[str, Any], timespan: str | None) -> bool:
    if not timespan:
        return True
    start_s, _, end_s = timespan.partition("/")
    try:
        start = datetime.fromisoformat(start_s.replace("Z", "+00:00"))
        end = datetime.fromisoformat(end_s.replace("Z", "+00:00"))
        when = datetime.fromisoformat(str(row.get("TimeGenerated")).replace("Z", "+00:00"))
    except ValueError:
        return False
    return start <= when < end


def _retimed(row: dict[str, Any], arrived: float) -> dict[str, Any]:
    """The row as Azure stores it: a TimeGenerated older than 2 days or more than 1 day ahead of
    its arrival (or unreadable) becomes the arrival time."""
    at = datetime.fromtimestamp(arrived, UTC)
    try:
        when = datetime.fromisoformat(str(row.get("TimeGenerated")).replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        kept = at - timedelta(days=2) <= when <= at + timedelta(days=1)
    except (ValueError, OverflowError):
        kept = False
    return row if kept else dict(row, TimeGenerated=at.isoformat().replace("+00:00", "Z"))


class _Handler(StandInHandler):
    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        owner_of(self)._post(self)


class LogQueryStandIn(StandInLifecycle):
    def __init__(
        self,
        issuer: TokenIssuer,
        rows: Callable[[], list[dict[str, Any]]],
        *,
        workspace_id: str = DEFAULT_WORKSPACE_ID,
        port: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.rows = rows
        self.clock = clock
        self._delay = 0.0
        self._retime = False
        self._seen: dict[str, list[float]] = {}  # a row's JSON -> when each copy was first seen
        self.workspace_id = workspace_id
        self.queries: list[str] = []
        self._denied = False
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._server = ThreadedServer(_Handler, self, port=port, use_tls=True)

    @property
    def endpoint(self) -> str:
        return self._server.base_url

    def deny(self, denied: bool) -> None:
        """Answer 403, as when the identity lacks Log Analytics Reader on the workspace."""
        self._denied = denied

    def inject(
        self, status: int, *, body: bytes = b"", times: int = 1, headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next ``times`` queries with ``status`` and the raw ``body``."""
        with self._lock:
            self._faults.append(_Fault(times=times, status=status, body=body, headers=headers))

    def inject_delay(self, seconds: float, *, times: int = 1) -> None:
        """Hold the next ``times`` queries ``seconds`` before answering them."""
        with self._lock:
            self._faults.append(_Fault(times=times, delay=seconds))

    def inject_trickle(self, seconds_per_byte: float, *, times: int = 1) -> None:
        """Send the next ``times`` answers one byte every ``seconds_per_byte``."""
        with self._lock:
            self._faults.append(_Fault(times=times, trickle=seconds_per_byte))

    def delay_visibility(self, seconds: float, clock: Callable[[], float] | None = None) -> None:
        """Rows become queryable `seconds` after they are first seen (0: at once)."""
        with self._lock:
            self._delay = seconds
            if clock is not None:
                self.clock = clock

    def retime_like_azure(self, clock: Callable[[], float] | None = None) -> None:
        """Show a row's arrival time as its TimeGenerated when Azure would have replaced it (off
        by default: most tests keep their fixtures' old times and a hand-moved relay clock)."""
        with self._lock:
            self._retime = True
            if clock is not None:
                self.clock = clock

    def observe(self) -> None:
        """Note the rows uploaded so far as arrived now (call right after an upload)."""
        self._visible(self.rows())

    def _visible(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        now = self.clock()
        out: list[dict[str, Any]] = []
        counts: dict[str, int] = {}
        with self._lock:
            for row in rows:
                key = json.dumps(row, sort_keys=True, default=str)
                n = counts[key] = counts.get(key, 0) + 1
                seen = self._seen.setdefault(key, [])
                if len(seen) < n:
                    seen.append(now)
                if seen[n - 1] + self._delay <= now:
                    out.append(_retimed(row, seen[n - 1]) if self._retime else row)
        return out

    def reset(self) -> None:
        with self._lock:
            self.queries.clear()
            self._denied = False
            self._faults.clear()
            self._delay = 0.0
            self._retime = False
            self._seen.clear()
            self.clock = time.time

    def _post(self, h: StandInHandler) -> None:
        headers = {"x-ms-request-id": str(uuid.uuid4())}
        body = h.read_body()
        path = urlsplit(h.path).path
        auth = h.headers.get("Authorization", "")
        try:
            if not auth.startswith("Bearer "):
                raise TokenError("InvalidAuthenticationToken", "Authentication required.")
            self.issuer.verify(auth[len("Bearer ") :], AUDIENCE)
        except TokenError as err:
            h.send_json(401, {"error": {"code": err.code, "message": str(err)}}, headers)
            return
        if path != f"/v1/workspaces/{self.workspace_id}/query":
            h.send_json(
                404, {"error": {"code": "WorkspaceNotFoundError", "message": "Workspace not found."}}, headers
            )
            return
        with self._lock:
            fault = take_fault(self._faults, None)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.status is not None:
            h.send_response(fault.status)
            for name, value in {"Content-Type": "application/json", **(fault.headers or {})}.items():
                h.send_header(name, value)
            h.send_header("Content-Length", str(len(fault.body)))
            h.end_headers()
            h.wfile.write(fault.body)
            return
        if self._denied:
            message = "The provided credentials have insufficient access to perform the requested operation"
            h.send_json(403, {"error": {"code": "InsufficientAccessError", "message": message}}, headers)
            return
        try:
            request = json.loads(body or b"{}")
            query = str(request["query"])
            with self._lock:
                self.queries.append(query)
            rows = [r for r in self._visible(self.rows()) if _in_timespan(r, request.get("timespan"))]
            columns, result = run_query(query, rows)
        except (ValueError, KeyError, TypeError) as err:
            h.send_json(400, {"error": {"code": "BadArgumentError", "message": str(err)[:200]}}, headers)
            return
        answer = {"tables": [{"name": "PrimaryResult", "columns": columns, "rows": result}]}
        if fault is None or not fault.trickle:
            h.send_json(200, answer, headers)
            return
        data = json.dumps(answer).encode("utf-8")
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        for i in range(len(data)):
            h.wfile.write(data[i : i + 1])
            h.wfile.flush()
            time.sleep(fault.trickle)
