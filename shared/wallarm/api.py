"""The few Wallarm API calls reconciliation and the watchdog use (see shared/WALLARM-API.md).

- `POST /v1/user` {} -> `body.client_id` (when WALLARM_CLIENT_ID is not set);
- `POST /v1/objects/hit`: hits of a time window (Unix seconds), experimental hits filtered out
  (`"!experimental": true`, as the webhook never sends them), paged by offset, oldest first;
- `GET /v2/integration?clientid=` and `PUT /v2/integration/{id}` with `{"active": true}`.

Auth is the `X-WallarmAPI-Token` header. 429 and 5xx are retried here with wallarm-go's backoff
(1 s doubling, 30 s cap; `Retry-After` honoured) a bounded number of times; 401/403 are not.
Nothing here logs a token, a body or an id.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

log = logging.getLogger(__name__)

CLOUD_URLS: Final[Mapping[str, str]] = {
    "us": "https://us1.api.wallarm.com",
    "eu": "https://api.wallarm.com",
}
TOKEN_HEADER: Final[str] = "X-WallarmAPI-Token"
HIT_PAGE_SIZE: Final[int] = 500  # what Wallarm's Terraform provider uses
_RETRIED: Final[frozenset[int]] = frozenset({408, 423, 429, 500, 502, 503, 504})


class WallarmApiError(Exception):
    """A call failed for good: `status` is the HTTP status (None: no answer)."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status

    @property
    def forbidden(self) -> bool:
        return self.status in (401, 403)


@dataclass(frozen=True)
class Integration:
    """One integration as `GET /v2/integration` returns it (the fields the watchdog reads)."""

    id: int
    type: str
    name: str
    active: bool
    url: str
    http_method: str
    format: str
    events: Mapping[str, bool]  # event name -> active

    @classmethod
    def from_api(cls, obj: Mapping[str, Any]) -> Integration:
        target = obj.get("target") if isinstance(obj.get("target"), Mapping) else {}
        events: dict[str, bool] = {}
        for event in obj.get("events") or []:
            if isinstance(event, Mapping) and isinstance(event.get("event"), str):
                events[event["event"]] = bool(event.get("active"))
        return cls(
            id=int(obj.get("id") or 0),
            type=str(obj.get("type") or ""),
            name=str(obj.get("name") or ""),
            active=obj.get("active") is True,
            url=str(target.get("url") or "") if isinstance(target, Mapping) else "",
            http_method=str(target.get("http_method") or "") if isinstance(target, Mapping) else "",
            format=str(target.get("format") or "") if isinstance(target, Mapping) else "",
            events=events,
        )

    def snapshot(self) -> dict[str, Any]:
        """What the watchdog compares between runs. No secrets: headers are left out, and so is
        the URL's query (`?code=<function key>`), which may rotate without breaking anything."""
        return {
            "id": self.id,
            "active": self.active,
            "url": self.url.split("?", 1)[0],
            "http_method": self.http_method,
            "format": self.format,
            "events": dict(sorted(self.events.items())),
        }


class WallarmApi:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 30.0,
        max_retries: int = 4,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self.max_retries = max_retries
        self.sleep = sleep
        self._client_id: int | None = None
        self.calls = 0  # HTTP requests sent, retries included (the cost the README states)

    # -- endpoints --------------------------------------------------------------------------
    def client_id(self) -> int:
        """The token's client id, asked once per instance."""
        if self._client_id is None:
            body = self._call("POST", "/v1/user", {})
            client = body.get("client_id") if isinstance(body, Mapping) else None
            if not isinstance(client, int):
                raise WallarmApiError(200, "POST /v1/user: no client_id in the answer")
            self._client_id = client
        return self._client_id

    def hits(
        self, client_id: int, start: int, end: int, *, page_size: int = HIT_PAGE_SIZE
    ) -> list[dict[str, Any]]:
        """Every non-experimental hit with `start <= time <= end` (Unix seconds), oldest first.

        Sorted ascending by time, so hits arriving during paging land on later pages instead of
        shifting the ones already read; a hit seen twice is kept once (by its `id` pair)."""
        hits: list[dict[str, Any]] = []
        seen: set[str] = set()
        offset = 0
        while True:
            request = {
                "filter": {"clientid": [client_id], "time": [[start, end]], "!experimental": True},
                "limit": page_size,
                "offset": offset,
                "order_by": "time",
                "order_desc": False,
            }
            page = self._call("POST", "/v1/objects/hit", request)
            if not isinstance(page, list):
                raise WallarmApiError(200, "POST /v1/objects/hit: body is not a list")
            for hit in page:
                if not isinstance(hit, dict):
                    continue
                key = json.dumps(hit.get("id"), sort_keys=True)
                if hit.get("id") is not None and key in seen:
                    continue
                seen.add(key)
                hits.append(hit)
            if len(page) < page_size:
                return hits
            offset += page_size

    def integrations(self, client_id: int) -> list[Integration]:
        body = self._call("GET", "/v2/integration?" + urlencode({"clientid": client_id}), None)
        objects = body.get("object") if isinstance(body, Mapping) else None
        if not isinstance(objects, list):
            raise WallarmApiError(200, "GET /v2/integration: no object list in the answer")
        return [Integration.from_api(o) for o in objects if isinstance(o, Mapping)]

    def enable_integration(self, integration_id: int) -> None:
        self._call("PUT", f"/v2/integration/{int(integration_id)}", {"active": True})

    # -- transport --------------------------------------------------------------------------
    def _call(self, method: str, path: str, payload: Any) -> Any:
        delay = 1.0
        for attempt in range(self.max_retries + 1):
            status, headers, body = self._send(method, path, payload)
            if status is not None and 200 <= status < 300:
                envelope = _json(body)
                # Wallarm wraps answers as {"status": …, "body": …}.
                return envelope.get("body") if isinstance(envelope, Mapping) else envelope
            retryable = status is None or status in _RETRIED
            if not retryable or attempt == self.max_retries:
                raise WallarmApiError(status, f"{method} {path.split('?')[0]}: {_reason(status, body)}")
            wait = _retry_after(headers) or delay
            log.warning(
                "Wallarm API %s %s answered %s; retrying in %.0f s", method, path.split("?")[0], status, wait
            )
            self.sleep(min(wait, 30.0))
            delay = min(delay * 2, 30.0)
        raise AssertionError("unreachable")

    def _send(self, method: str, path: str, payload: Any) -> tuple[int | None, Mapping[str, str], bytes]:
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={TOKEN_HEADER: self._token, "Accept": "application/json"}
            | ({"Content-Type": "application/json"} if data is not None else {}),
        )
        self.calls += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - https/loopback
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers or {}), err.read()
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            log.warning("Wallarm API %s %s unreachable: %s", method, path.split("?")[0], type(err).__name__)
            return None, {}, b""


def _json(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError as err:
        raise WallarmApiError(200, "the answer is not JSON") from err


def _reason(status: int | None, body: bytes) -> str:
    if status is None:
        return "no answer (connection failed or timed out)"
    if status == 401:
        return "401: the token was refused (WALLARM_API_TOKEN wrong, expired or disabled)"
    if status == 403:
        return "403: the token's role may not do this (integrations need an Administrator token)"
    try:
        envelope = json.loads(body or b"null")
    except ValueError:
        envelope = None
    detail = envelope.get("body") if isinstance(envelope, Mapping) else None
    # Wallarm's error bodies are fixed words ("Not found", "Already exists"); keep them short.
    return f"{status} {str(detail)[:80]}" if isinstance(detail, str) else str(status)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None
