"""The Wallarm API client against the Wallarm Cloud stand-in: auth by role, paging, hits, faults."""

from __future__ import annotations

import json
import urllib.request

import pytest

from local.standins.wallarm_api import Hit, WallarmApiStandIn
from shared.completeness.wallarm_api import WallarmApi, WallarmApiError

from .conftest import ADMIN_TOKEN, READER_TOKEN, FakeClock

T0 = 1_764_072_000  # 2025-11-25T12:00:00Z


def api(
    standin: WallarmApiStandIn, token: str = READER_TOKEN, sleeps: list[float] | None = None
) -> WallarmApi:
    record = sleeps if sleeps is not None else []
    return WallarmApi(standin.url, token, sleep=record.append, max_retries=3)


def add_hits(standin: WallarmApiStandIn, n: int, start: int = T0, **kwargs: object) -> list[Hit]:
    return [
        standin.add_hit(Hit("hits_prod_4242_202511_v_1", f"doc{i:05d}", f"req{i // 2}", start + i, **kwargs))  # type: ignore[arg-type]
        for i in range(n)
    ]


def test_token_is_required_and_roles_decide_what_it_may_read(wallarm: WallarmApiStandIn) -> None:
    with pytest.raises(WallarmApiError) as refused:
        api(wallarm, "x" * 64).client_id()
    assert refused.value.status == 401 and refused.value.forbidden
    assert api(wallarm).client_id() == wallarm.client_id
    add_hits(wallarm, 2)
    assert len(api(wallarm).hits(wallarm.client_id, T0, T0 + 10)) == 2  # read-only reads hits
    with pytest.raises(WallarmApiError) as forbidden:
        api(wallarm).integrations(wallarm.client_id)  # ... but not integrations
    assert forbidden.value.status == 403
    wallarm.add_token("n" * 64, "analyst")
    with pytest.raises(WallarmApiError):
        api(wallarm, "n" * 64).integrations(wallarm.client_id)
    assert api(wallarm, ADMIN_TOKEN).integrations(wallarm.client_id) == []


def test_clientid_is_accepted_as_a_number_or_an_array(wallarm: WallarmApiStandIn) -> None:
    add_hits(wallarm, 3)
    for clientid in (wallarm.client_id, [wallarm.client_id]):
        body = json.dumps({"filter": {"clientid": clientid, "time": [[T0, None]]}}).encode()
        request = urllib.request.Request(
            wallarm.url + "/v1/objects/hit",
            data=body,
            method="POST",
            headers={"X-WallarmAPI-Token": READER_TOKEN, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request) as response:
            envelope = json.loads(response.read())
        assert envelope["status"] == 200 and len(envelope["body"]) == 3


def test_pages_by_offset_oldest_first_and_keeps_every_hit_of_a_request(wallarm: WallarmApiStandIn) -> None:
    hits = add_hits(wallarm, 1201)
    client = api(wallarm)
    got = client.hits(wallarm.client_id, T0, T0 + 5000)
    assert [h["id"][1] for h in got] == [h.doc for h in hits]
    assert client.calls == 3  # 500 + 500 + 201
    assert sum(1 for h in got if h["request_id"] == "req0") == 2  # two hits, one request


def test_experimental_hits_are_filtered_and_late_hits_appear_later(
    wallarm: WallarmApiStandIn, clock: FakeClock
) -> None:
    add_hits(wallarm, 2)
    wallarm.add_hit(Hit("hits_prod_4242_202511_v_1", "exp", "reqx", T0 + 5, experimental=True))
    now = int(clock().timestamp())
    wallarm.add_hit(Hit("hits_prod_4242_202511_v_1", "late", "reql", now - 60, visible_after=600))
    client = api(wallarm)
    assert [h["id"][1] for h in client.hits(wallarm.client_id, T0, now)] == ["doc00000", "doc00001"]
    clock.advance(600)
    assert "late" in [h["id"][1] for h in client.hits(wallarm.client_id, T0, now)]


def test_429_and_5xx_are_retried_with_backoff_401_is_not(wallarm: WallarmApiStandIn) -> None:
    add_hits(wallarm, 1)
    sleeps: list[float] = []
    wallarm.inject(429, retry_after=7)
    wallarm.inject(503, times=2)
    assert len(api(wallarm, sleeps=sleeps).hits(wallarm.client_id, T0, T0 + 1)) == 1
    assert sleeps == [7.0, 2.0, 4.0]  # Retry-After first, then the doubling backoff
    wallarm.inject(500, times=10)
    with pytest.raises(WallarmApiError) as gave_up:
        api(wallarm).hits(wallarm.client_id, T0, T0 + 1)
    assert gave_up.value.status == 500
    wallarm._faults.clear()
    before = len(wallarm.requests)
    with pytest.raises(WallarmApiError):
        api(wallarm, "x" * 64).hits(wallarm.client_id, T0, T0 + 1)
    assert len(wallarm.requests) == before + 1


def test_integration_turns_inactive_after_failures_and_put_reenables_it(wallarm: WallarmApiStandIn) -> None:
    sent: list[int] = []

    def failing(url: str, body: bytes, headers: object) -> int:
        sent.append(1)
        return 401

    wallarm.sender = failing
    wallarm.disable_min_attempts = 6
    integration = wallarm.add_integration("https://relay.example.net/api/wallarm?code=k")
    add_hits(wallarm, 3)
    for _ in range(3):
        wallarm.deliver()
    assert not integration.active
    assert len(wallarm.undelivered) == 3  # none delivered; dropped when disabled
    assert wallarm.activity_log[-1]["source"] == "Unknown"
    admin = api(wallarm, ADMIN_TOKEN)
    (seen,) = admin.integrations(wallarm.client_id)
    assert seen.active is False and seen.format == "json" and seen.events["siem"] is True
    admin.enable_integration(seen.id)
    assert integration.active and wallarm.activity_log[-1]["source"] == "API token"


def test_notifications_go_over_http_with_the_integrations_headers(wallarm: WallarmApiStandIn) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[tuple[str | None, list[dict[str, object]]]] = []

    class Relay(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.headers.get("X-Wallarm-Relay-Secret"), body))
            ok = self.headers.get("X-Wallarm-Relay-Secret") == "right"
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Relay)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        integration = wallarm.add_integration(f"http://127.0.0.1:{server.server_address[1]}/api/wallarm")
        integration.headers = {"X-Wallarm-Relay-Secret": "wrong"}
        add_hits(wallarm, 1)
        assert wallarm.deliver() == (0, 1)
        integration.headers = {"X-Wallarm-Relay-Secret": "right"}
        assert wallarm.deliver() == (1, 0)
    finally:
        server.shutdown()
        server.server_close()
    secret, body = received[-1]
    assert secret == "right"
    details = body[0]["details"]
    assert isinstance(details, dict) and details["notification_type"] == "new_hits"
    assert details["hit"]["id"] == ["hits_prod_4242_202511_v_1", "doc00000"]
