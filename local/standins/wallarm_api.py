"""Wallarm Cloud stand-in: the API endpoints the relay reads, and a webhook integration that gives up.

HTTP on 127.0.0.1, modelled on the shapes of Wallarm's public API documentation:

* `X-WallarmAPI-Token` header: 401 without a known token; roles as in Wallarm's users table
  (`admin`, `analyst`, `read_only`): every role reads hits, only `admin` sees or changes
  integrations (403 otherwise);
* `POST /v1/user` -> `{"status":200,"body":{"client_id":…}}`;
* `POST /v1/objects/hit`: `filter.clientid` as a number or an array, `filter.time` `[[from, to]]`
  in seconds (`to` may be null), `!`-negated filters (`!experimental`, `!state`, `!type`),
  `limit`/`offset`/`order_by` (`id` or `time`)/`order_desc`; several hits per `request_id`,
  experimental and false-positive hits, and hits that become visible some minutes after their
  `time` (`visible_after`); envelope `{"status":200,"body":[…]}`;
* `GET /v2/integration?clientid=` -> `{"body":{"result":"success","object":[…]}}`;
  `PUT /v2/integration/{id}` with a partial body (`{"active": true}`);
* 429 / 5xx injection (`inject`), with `Retry-After` when asked;
* hostile answers (`inject_fault`, the client's bounds in SECURITY.md): a 30x to another
  server (`redirect`), a body dripped one byte at a time (`drip`), one huge page (`huge`),
  full pages repeating the same ids (`repeat`), full pages of new ids forever (`endless`), a
  raw body as given (`raw`: not JSON, wrong types); `extra_integrations` adds raw objects to the
  integration list. `tokens_seen` lists each token received, so a test can show that one never
  reached this server.

The integration side: `deliver()` sends each pending hit as a `new_hits` notification to the
webhook integration (through `sender`, HTTP by default), retries a notification up to
`attempts_per_notification` times and then drops it (recorded in `undelivered`), and turns the
integration `active: false` once `disable_ratio` of its attempts in the window failed (at least
`disable_min_attempts`), as Wallarm does after 60 % failures in 12 h; an activity-log entry is kept.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from local.standins.server import StandInHandler, StandInLifecycle, ThreadedServer, owner_of
from shared.settings import NUMBERS, WALLARM_DISABLE_RATIO, WALLARM_DISABLE_WINDOW

TOKEN_HEADER = "X-WallarmAPI-Token"
ROLES = ("admin", "analyst", "read_only")

# (status, body, headers) of one delivery of a notification to the webhook.
Sender = Callable[[str, bytes, Mapping[str, str]], int]


@dataclass
class Hit:
    """One hit as Wallarm's cloud holds it: the API's fields plus the webhook-only ones."""

    index: str
    doc: str
    request_id: str
    time: int
    type: str = "sqli"
    ip: str = "198.51.100.7"
    domain: str = "shop.example.com"
    path: str = "/login"
    point: list[Any] = field(default_factory=lambda: ["post", "form_urlencoded", "user"])
    value: str = "' or 1=1 --"
    poolid: int = 1
    statuscode: int = 403
    size: int = 512
    block_status: str = "blocked"
    state: str | None = None
    experimental: bool = False
    method: str = "POST"
    parameter: str = "POST_user"
    visible_after: int = 0  # seconds after `time` before the API (and the webhook) see it

    @property
    def id(self) -> list[str]:
        return [self.index, self.doc]

    def api_view(self, client_id: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "attackid": [self.index.replace("hits", "attacks"), f"a-{self.request_id}"],
            "clientid": client_id,
            "request_id": self.request_id,
            "time": self.time,
            "type": self.type,
            "ip": self.ip,
            "remote_country": None,
            "domain": self.domain,
            "path": self.path,
            "point": self.point,
            "value": self.value,
            "poolid": self.poolid,
            "statuscode": self.statuscode,
            "size": self.size,
            "block_status": self.block_status,
            "stamps": [7965],
            "state": self.state,
            "experimental": self.experimental,
            "aasm_event": False,
            "datacenter": "unknown",
            "tor": "none",
            "node_uuid": "00000000-0000-0000-0000-000000000001",
        }

    def webhook_view(self) -> dict[str, Any]:
        """`details.hit` of a `new_hits` notification (FACTS.md field names)."""
        return {
            "id": self.id,
            "request_id": self.request_id,
            "host": self.domain,
            "path": self.path,
            "method": self.method,
            "type": self.type,
            "remote_addr4": self.ip,
            "remote_addr6": None,
            "remote_port": 41253,
            "remote_country": None,
            "response_status": self.statuscode,
            "response_len": self.size,
            "block_status": self.block_status,
            "point": self.point,
            "parameter": self.parameter,
            "payloads": [self.value],
            "request_time": self.time,
            "create_time": self.time + self.visible_after,
            "applications": [str(self.poolid)],
            "object_type": "hit",
        }


@dataclass
class WebhookIntegration:
    id: int
    url: str
    headers: dict[str, str]
    active: bool = True
    name: str = "Sentinel relay"
    http_method: str = "POST"
    format: str = "json"
    events: dict[str, bool] = field(default_factory=lambda: {"siem": True, "system": True})

    def api_view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "active": self.active,
            "name": self.name,
            "type": "web_hooks",
            "created_at": 1767225600,
            "created_by": "admin@example.com",
            "target": {
                "url": self.url,
                "http_method": self.http_method,
                "format": self.format,
                "headers": dict.fromkeys(self.headers, "********"),  # values never echoed
                "ca_verify": True,
                "timeout": 15,
                "open_timeout": 20,
            },
            "events": [
                {"event": name, "active": on, "with_headers": False} for name, on in self.events.items()
            ],
        }


FAULT_KINDS = ("status", "redirect", "drip", "huge", "repeat", "endless", "raw")


@dataclass
class Fault:
    """One injected answer, for the next `times` calls (to `path` only, when given)."""

    kind: str = "status"
    times: int = 1
    status: int = 500
    retry_after: float | None = None
    location: str = ""  # redirect: where to
    interval: float = 0.5  # drip: seconds between bytes
    size: int = 0  # drip / huge: body bytes
    body: bytes = b""  # raw: the whole answer; status: the envelope's `body` text
    path: str = ""
    hide_length: bool = False  # huge: no Content-Length, the end of the body is the close

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {FAULT_KINDS}")


@dataclass
class _Pending:
    hit: Hit
    attempts: int = 0


class _Handler(StandInHandler):
    server_version = "nginx"

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        owner_of(self)._handle(self, "POST")

    def do_GET(self) -> None:  # noqa: N802
        owner_of(self)._handle(self, "GET")

    def do_PUT(self) -> None:  # noqa: N802
        owner_of(self)._handle(self, "PUT")


def _http_sender(url: str, body: bytes, headers: Mapping[str, str]) -> int:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, method="POST", headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except OSError:
        return 0


class WallarmApiStandIn(StandInLifecycle):
    def __init__(
        self,
        *,
        client_id: int = 4242,
        client_name: str = "Example Corp",
        clock: Callable[[], float] = time.time,
        sender: Sender = _http_sender,
        attempts_per_notification: int = 3,
        disable_ratio: float = WALLARM_DISABLE_RATIO,
        disable_min_attempts: int = NUMBERS["AUTO_DISABLE_MIN_ATTEMPTS"].value,
        disable_window_seconds: float = WALLARM_DISABLE_WINDOW.total_seconds(),
        port: int = 0,
    ) -> None:
        self.client_id = client_id
        self.client_name = client_name
        self.clock = clock
        self.sender = sender
        self.attempts_per_notification = attempts_per_notification
        self.disable_ratio = disable_ratio
        self.disable_min_attempts = disable_min_attempts
        self.disable_window_seconds = disable_window_seconds
        self.tokens: dict[str, str] = {}
        self.hit_store: list[Hit] = []
        self.integrations: dict[int, WebhookIntegration] = {}
        self.undelivered: list[Hit] = []
        self.delivered: list[Hit] = []
        self.activity_log: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status), API calls only
        self._attempts: list[tuple[float, bool]] = []
        self._pending: list[_Pending] = []
        self._faults: list[Fault] = []
        self.extra_integrations: list[Any] = []  # raw objects appended to GET /v2/integration
        self.tokens_seen: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._server = ThreadedServer(_Handler, self, port=port, use_tls=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}"

    # -- test surface -----------------------------------------------------------------------
    def add_token(self, token: str, role: str = "read_only") -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        self.tokens[token] = role

    def add_integration(
        self, url: str, headers: Mapping[str, str] | None = None, **kwargs: Any
    ) -> WebhookIntegration:
        with self._lock:
            integration = WebhookIntegration(len(self.integrations) + 1, url, dict(headers or {}), **kwargs)
            self.integrations[integration.id] = integration
            return integration

    def add_hit(self, hit: Hit, *, notify: bool = True) -> Hit:
        """Store a hit; unless it is experimental, queue its notification for `deliver()`."""
        with self._lock:
            self.hit_store.append(hit)
            if notify and not hit.experimental:
                if self.integrations and not any(i.active for i in self.integrations.values()):
                    self.undelivered.append(hit)  # a disabled integration is sent nothing
                else:
                    self._pending.append(_Pending(hit))
        return hit

    def inject(self, status: int, times: int = 1, *, retry_after: float | None = None) -> None:
        """Answer the next `times` API calls with `status` (e.g. 429, 500, 503)."""
        self.inject_fault(Fault("status", times, status, retry_after))

    def inject_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def stop(self) -> None:
        self._stop.set()  # ends a drip in progress
        super().stop()
        self._stop.clear()

    def deliver(self) -> tuple[int, int]:
        """One delivery round: each visible pending notification is sent once.

        Returns (delivered, failed attempts). A notification that failed
        `attempts_per_notification` times is dropped, as Wallarm does after its third cycle."""
        now = self.clock()
        delivered = failed = 0
        with self._lock:
            pending = [p for p in self._pending if p.hit.time + p.hit.visible_after <= now]
            targets = [i for i in self.integrations.values() if i.active and i.events.get("siem")]
        for item in pending:
            with self._lock:
                live = [t for t in targets if t.active]
                if not live or item not in self._pending:
                    continue  # disabled meanwhile: dropped
            ok = all(self._send(target, item.hit) for target in live)
            with self._lock:
                item.attempts += 1
                self._attempts.append((now, ok))
                if ok:
                    delivered += 1
                    self.delivered.append(item.hit)
                    self._pending.remove(item)
                else:
                    failed += 1
                    if item.attempts >= self.attempts_per_notification:
                        self.undelivered.append(item.hit)
                        self._pending.remove(item)
                self._apply_disable_rule(now, targets)
        return delivered, failed

    def _send(self, target: WebhookIntegration, hit: Hit) -> bool:
        body = [
            {
                "summary": "[Wallarm] New hit detected",
                "details": {
                    "client_name": self.client_name,
                    "cloud": "EU",
                    "notification_type": "new_hits",
                    "hit": hit.webhook_view(),
                },
            }
        ]
        headers = {"Content-Type": "application/json", **target.headers}
        status = self.sender(target.url, json.dumps(body).encode("utf-8"), headers)
        return 200 <= status < 300

    def _apply_disable_rule(self, now: float, targets: list[WebhookIntegration]) -> None:
        window = [ok for at, ok in self._attempts if at > now - self.disable_window_seconds]
        failures = sum(1 for ok in window if not ok)
        if len(window) < self.disable_min_attempts or failures / len(window) < self.disable_ratio:
            return
        # Disabled: nothing more is sent, what was waiting for a retry is dropped.
        self.undelivered.extend(p.hit for p in self._pending)
        self._pending.clear()
        for target in targets:
            if target.active:
                target.active = False
                self.activity_log.append(
                    {
                        "time": int(now),
                        "action_type": "update",
                        "object_type": "Integration",
                        "object_id": target.id,
                        "source": "Unknown",
                        "changed_fields": ["active"],
                    }
                )

    # -- HTTP -------------------------------------------------------------------------------
    def _handle(self, h: StandInHandler, method: str) -> None:
        url = urlsplit(h.path)
        body = h.read_body()
        token = h.headers.get(TOKEN_HEADER)
        with self._lock:
            if token is not None:
                self.tokens_seen.append(token)
        fault = self._next_fault(url.path) if token in self.tokens else None
        if fault is not None and fault.kind != "status":
            status = self._misbehave(h, fault, body)
            with self._lock:
                self.requests.append((method, url.path, status))
            return
        status, payload, headers = self._route(h, method, url.path, parse_qs(url.query), body, fault)
        with self._lock:
            self.requests.append((method, url.path, status))
        h.send_json(status, payload, headers)

    def _next_fault(self, path: str) -> Fault | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.path and fault.path != path:
                    continue
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.pop(i)
                return fault
        return None

    def _misbehave(self, h: StandInHandler, fault: Fault, raw: bytes) -> int:
        """A hostile or broken server's answer, written by hand."""
        if fault.kind == "redirect":
            status = fault.status if 300 <= fault.status < 400 else 302
            h.send_response(status)
            h.send_header("Location", fault.location)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return status
        if fault.kind == "drip":
            body = b'{"status":200,"body":[]}'
            body = b" " * max(fault.size - len(body), 0) + body
            self._head(h, len(body))
            for i in range(len(body)):
                if self._stop.wait(fault.interval):
                    break
                try:
                    h.wfile.write(body[i : i + 1])
                    h.wfile.flush()
                except OSError:
                    break  # the client gave up: that is the point
            h.close_connection = True
            return 200
        if fault.kind == "raw":
            self._head(h, len(fault.body))
            h.wfile.write(fault.body)
            return 200
        request = self._json_or_none(raw)
        limit = int(request.get("limit", 100)) if isinstance(request, dict) else 100
        offset = int(request.get("offset", 0)) if isinstance(request, dict) else 0
        if fault.kind == "huge":
            self._huge(h, fault.size, hide_length=fault.hide_length)
            return 200
        first = 0 if fault.kind == "repeat" else offset  # repeat: the offset is ignored
        page = [self._synthetic(first + i).api_view(self.client_id) for i in range(limit)]
        h.send_json(200, {"status": 200, "body": page})
        return 200

    @staticmethod
    def _json_or_none(raw: bytes) -> Any:
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    @staticmethod
    def _head(h: StandInHandler, length: int) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(length))
        h.end_headers()

    def _synthetic(self, n: int) -> Hit:
        return Hit(
            f"hits_standin_{self.client_id}_v_1", f"syn{n:010d}", f"req-syn{n:010d}", 1_764_072_000 + n
        )

    def _huge(self, h: StandInHandler, size: int, *, hide_length: bool) -> None:
        """One valid page of about `size` bytes, streamed (never held here)."""
        prefix, suffix = b'{"status":200,"body":[', b"]}"
        template = self._synthetic(0).api_view(self.client_id)
        template["value"] = "x" * 900
        item_len = len(json.dumps(template).encode())
        count = max(1, (size - len(prefix) - len(suffix)) // (item_len + 1))
        if hide_length:
            h.send_response(200)
            h.send_header("Content-Type", "application/json; charset=utf-8")
            h.send_header("Connection", "close")
            h.end_headers()
            h.close_connection = True
        else:
            self._head(h, len(prefix) + len(suffix) + count * item_len + (count - 1))
        h.wfile.write(prefix)
        for i in range(count):
            view = self._synthetic(i).api_view(self.client_id)
            view["value"] = "x" * 900
            try:
                h.wfile.write((b"," if i else b"") + json.dumps(view).encode())
            except OSError:
                return
        h.wfile.write(suffix)

    def _route(
        self,
        h: StandInHandler,
        method: str,
        path: str,
        query: dict[str, list[str]],
        raw: bytes,
        fault: Fault | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        role = self.tokens.get(h.headers.get(TOKEN_HEADER) or "")
        if role is None:
            return 401, {"status": 401, "body": "Unauthorized"}, {}
        if fault is not None:
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            detail = fault.body.decode("utf-8", "replace") if fault.body else "Injected"
            return fault.status, {"status": fault.status, "body": detail}, headers
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            return 400, {"status": 400, "body": "Invalid JSON"}, {}
        if method == "POST" and path == "/v1/user":
            return 200, {"status": 200, "body": {"client_id": self.client_id, "role": role}}, {}
        if method == "POST" and path == "/v1/objects/hit":
            return self._hits(payload)
        if path == "/v2/integration" or path.startswith("/v2/integration/"):
            if role != "admin":
                return 403, {"status": 403, "body": "Forbidden"}, {}
            return self._integration(method, path, query, payload)
        return 404, {"status": 404, "body": "Not found"}, {}

    def _hits(self, request: Any) -> tuple[int, Any, dict[str, str]]:
        if not isinstance(request, dict) or not isinstance(request.get("filter"), dict):
            return 400, {"status": 400, "body": "filter is required"}, {}
        flt = request["filter"]
        clients = flt.get("clientid")
        clients = clients if isinstance(clients, list) else [clients]
        if self.client_id not in clients:
            return 200, {"status": 200, "body": []}, {}
        start, end = 0, None
        if isinstance(flt.get("time"), list) and flt["time"]:
            start, end = flt["time"][0][0] or 0, flt["time"][0][1]
        now = self.clock()
        with self._lock:
            hits = [h for h in self.hit_store if h.time + h.visible_after <= now]
        hits = [h for h in hits if h.time >= start and (end is None or h.time <= end)]
        if flt.get("!experimental") is True:
            hits = [h for h in hits if not h.experimental]
        if isinstance(flt.get("!state"), str):
            hits = [h for h in hits if h.state != flt["!state"]]
        not_types = flt.get("!type")
        if isinstance(not_types, list):
            hits = [h for h in hits if h.type not in not_types]
        order = request.get("order_by", "id")
        hits.sort(key=(lambda h: (h.time, h.doc)) if order == "time" else (lambda h: h.doc))
        if request.get("order_desc"):
            hits.reverse()
        limit = int(request.get("limit", 100))
        offset = int(request.get("offset", 0))
        page = hits[offset : offset + limit]
        return 200, {"status": 200, "body": [h.api_view(self.client_id) for h in page]}, {}

    def _integration(
        self, method: str, path: str, query: dict[str, list[str]], payload: Any
    ) -> tuple[int, Any, dict[str, str]]:
        if method == "GET" and path == "/v2/integration":
            if str(self.client_id) not in query.get("clientid", []):
                return 200, {"status": 200, "body": {"result": "success", "object": []}}, {}
            with self._lock:
                objects = [i.api_view() for i in self.integrations.values()] + list(self.extra_integrations)
            return 200, {"status": 200, "body": {"result": "success", "object": objects}}, {}
        if method == "PUT":
            try:
                integration = self.integrations[int(path.rsplit("/", 1)[1])]
            except (KeyError, ValueError):
                return 404, {"status": 404, "body": "Not found"}, {}
            if not isinstance(payload, dict):
                return 400, {"status": 400, "body": "Invalid body"}, {}
            with self._lock:
                if isinstance(payload.get("active"), bool):
                    integration.active = payload["active"]
                    if integration.active:
                        self._attempts.clear()  # Wallarm starts counting afresh
                    self.activity_log.append(
                        {
                            "time": int(self.clock()),
                            "action_type": "update",
                            "object_type": "Integration",
                            "object_id": integration.id,
                            "source": "API token",
                            "changed_fields": ["active"],
                        }
                    )
            return 200, {"status": 200, "body": {"result": "success", "object": integration.api_view()}}, {}
        return 404, {"status": 404, "body": "Not found"}, {}


def main(argv: list[str] | None = None) -> int:
    """Serve the Wallarm Cloud stand-in until Ctrl-C, with `--hits` sample hits of the last hour.

    Point the relay at it with WALLARM_API_URL=<url> and WALLARM_API_TOKEN=<token> (an admin
    token, so the watchdog may read integrations)."""
    import argparse
    import contextlib
    import secrets
    import signal

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=None, help="admin token (default: random, printed)")
    parser.add_argument("--hits", type=int, default=10)
    parser.add_argument("--integration-url", default="http://127.0.0.1:7071/api/wallarm")
    args = parser.parse_args(argv)
    token = args.token or secrets.token_urlsafe(48)[:64]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with WallarmApiStandIn(port=args.port) as standin:
        standin.add_token(token, "admin")
        standin.add_integration(args.integration_url)
        now = int(time.time())
        for i in range(args.hits):
            standin.add_hit(Hit("hits_local_4242_v_1", f"doc{i:05d}", f"req{i // 2}", now - 3600 + 60 * i))
        print(json.dumps({"url": standin.url, "token": token, "client_id": standin.client_id}), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
