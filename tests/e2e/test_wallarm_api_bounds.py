"""Issue 19, findings 3, 4 and 8: the Wallarm API client against a hostile or broken server.

The stand-in misbehaves on purpose (`inject_fault`): a redirect to another server, a body dripped
one byte at a time, one huge page, pages that repeat their ids or never end, bodies that are not
JSON or have the wrong types. Each case ends in a `WallarmApiError`, within its bounds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from local.standins.wallarm_api import Fault, Hit, WallarmApiStandIn
from shared.completeness.wallarm_api import WallarmApi, WallarmApiError
from shared.settings import WallarmApiLimits

from .conftest import ADMIN_TOKEN, READER_TOKEN

T0 = 1_764_072_000


def client(standin: WallarmApiStandIn, token: str = READER_TOKEN, **limits: Any) -> WallarmApi:
    return WallarmApi(
        standin.url, token, sleep=lambda _: None, max_retries=1, limits=WallarmApiLimits(**limits)
    )


@pytest.fixture
def trap() -> Iterator[WallarmApiStandIn]:
    """Another server, on another port: it must never see the token."""
    with WallarmApiStandIn() as other:
        yield other


# -- finding 3: the token goes to one host only ---------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/v1/user"), ("GET", "/v2/integration"), ("POST", "/v1/objects/hit")]
)
def test_a_redirect_is_not_followed_and_the_token_stays_home(
    wallarm: WallarmApiStandIn, trap: WallarmApiStandIn, method: str, path: str
) -> None:
    wallarm.inject_fault(Fault("redirect", status=302, location=trap.url + path, path=path))
    api = client(wallarm, ADMIN_TOKEN)
    calls = {
        "/v1/user": api.client_id,
        "/v2/integration": lambda: api.integrations(wallarm.client_id),
        "/v1/objects/hit": lambda: api.hits(wallarm.client_id, T0, T0 + 10),
    }
    with pytest.raises(WallarmApiError) as refused:
        calls[path]()
    assert refused.value.status == 302 and "redirect" in str(refused.value)
    assert trap.tokens_seen == [] and trap.requests == []


def test_a_307_is_not_followed_either(wallarm: WallarmApiStandIn, trap: WallarmApiStandIn) -> None:
    wallarm.inject_fault(Fault("redirect", status=307, location=trap.url + "/v1/user"))
    with pytest.raises(WallarmApiError) as refused:
        client(wallarm).client_id()
    assert refused.value.status == 307 and trap.tokens_seen == []


# -- finding 4: bounded reads ------------------------------------------------------------------
def test_a_dripped_body_ends_at_the_deadline_not_at_the_last_byte(wallarm: WallarmApiStandIn) -> None:
    """One byte every 0.5 s for 100 bytes (50 s): the call ends at its 1 s deadline per attempt."""
    wallarm.inject_fault(Fault("drip", times=2, size=100, interval=0.5))
    api = client(wallarm, request_seconds=1, call_seconds=30)
    started = time.monotonic()
    with pytest.raises(WallarmApiError) as cut:
        api.hits(wallarm.client_id, T0, T0 + 10)
    assert cut.value.status is None and api.calls == 2  # retried once, cut again
    assert time.monotonic() - started < 45  # far below the 100 s both drips would take


def test_the_call_deadline_bounds_retries_too(wallarm: WallarmApiStandIn) -> None:
    wallarm.inject_fault(Fault("drip", times=50, size=100, interval=0.5))
    api = WallarmApi(
        wallarm.url,
        READER_TOKEN,
        sleep=lambda _: None,
        max_retries=50,
        limits=WallarmApiLimits(request_seconds=1, call_seconds=2.5),
    )
    with pytest.raises(WallarmApiError):
        api.hits(wallarm.client_id, T0, T0 + 10)
    assert api.calls <= 4  # not 51


@pytest.mark.parametrize("hide_length", [False, True])
def test_a_huge_page_is_dropped_past_the_cap(wallarm: WallarmApiStandIn, hide_length: bool) -> None:
    """36 MB announced (refused before reading) or streamed without a length (read to the cap)."""
    wallarm.inject_fault(Fault("huge", size=36_000_000, hide_length=hide_length))
    api = client(wallarm, answer_bytes=1_000_000)
    with pytest.raises(WallarmApiError) as too_big:
        api.hits(wallarm.client_id, T0, T0 + 10)
    assert "larger than 1000000 bytes" in str(too_big.value)


def paging_stopped(wallarm: WallarmApiStandIn, fault: str, **limits: Any) -> tuple[str, int]:
    """Pages the hits of a window under an endless `fault`: why the client stopped, after how many pages."""
    wallarm.inject_fault(Fault(fault, times=10_000, path="/v1/objects/hit"))
    api = client(wallarm, **limits)
    with pytest.raises(WallarmApiError) as stopped:
        api.hits(wallarm.client_id, T0, T0 + 10)
    return str(stopped.value), api.pages


def test_pages_that_repeat_their_ids_stop_paging(wallarm: WallarmApiStandIn) -> None:
    why, pages = paging_stopped(wallarm, "repeat")
    assert "no new hit id" in why and pages == 2


def test_endless_full_pages_stop_at_the_page_limit(wallarm: WallarmApiStandIn) -> None:
    why, pages = paging_stopped(wallarm, "endless", pages=5)
    assert "more than 5 pages" in why and pages == 5


def test_endless_pages_stop_at_the_byte_limit_of_a_window(wallarm: WallarmApiStandIn) -> None:
    why, pages = paging_stopped(wallarm, "endless", window_bytes=1_000_000)
    assert "bytes in one window" in why and pages < 10


def test_the_default_limits_still_page_a_normal_window(wallarm: WallarmApiStandIn) -> None:
    for i in range(1201):
        wallarm.add_hit(Hit("hits_prod_4242_202511_v_1", f"doc{i:05d}", f"req{i}", T0 + i))
    api = WallarmApi(wallarm.url, READER_TOKEN)
    assert len(api.hits(wallarm.client_id, T0, T0 + 5000)) == 1201 and api.pages == 3


# -- finding 8: malformed answers are WallarmApiError, never ValueError/TypeError ------------
@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[" * 100_000,  # json.loads raises RecursionError, not ValueError
        b'{"status":200,"body":5}',
        b'{"status":200,"body":{"object":"x"}}',
        b"\xff\xfe",
    ],
)
def test_a_body_of_the_wrong_shape_is_an_api_error(wallarm: WallarmApiStandIn, body: bytes) -> None:
    api = client(wallarm, ADMIN_TOKEN)
    for call in (
        lambda: api.hits(wallarm.client_id, T0, T0 + 10),
        lambda: api.integrations(wallarm.client_id),
        api.client_id,
    ):
        wallarm.inject_fault(Fault("raw", body=body))
        with pytest.raises(WallarmApiError):
            call()


@pytest.mark.parametrize("client_id", ["4242", True, -1, 4.2, None])
def test_a_client_id_of_the_wrong_type_is_an_api_error(wallarm: WallarmApiStandIn, client_id: object) -> None:
    import json

    body = json.dumps({"status": 200, "body": {"client_id": client_id}}).encode()
    wallarm.inject_fault(Fault("raw", body=body))
    with pytest.raises(WallarmApiError):
        client(wallarm).client_id()


def test_one_malformed_integration_is_skipped_and_the_rest_are_read(wallarm: WallarmApiStandIn) -> None:
    ours = wallarm.add_integration("https://relay.example.net/api/wallarm")
    good = ours.api_view()
    wallarm.extra_integrations = [
        {**good, "id": "abc"},
        {**good, "id": 8, "events": 5},
        {**good, "id": 9, "target": "x"},
        {**good, "id": 10, "active": "yes"},
        {**good, "id": 11, "name": {"x": 1}},
        {**good, "id": 12, "events": [{"event": 5}]},
        "not an object",
        None,
    ]
    found, malformed = client(wallarm, ADMIN_TOKEN).read_integrations(wallarm.client_id)
    assert [i.id for i in found] == [ours.id] and malformed == 8


def test_hits_that_are_not_objects_are_skipped(wallarm: WallarmApiStandIn) -> None:
    import json

    page = [5, "x", None, {"id": ["i", "a"], "time": "not a number"}, {"id": "abc"}]
    wallarm.inject_fault(Fault("raw", body=json.dumps({"status": 200, "body": page}).encode()))
    got = client(wallarm).hits(wallarm.client_id, T0, T0 + 10)
    assert got == [{"id": ["i", "a"], "time": "not a number"}, {"id": "abc"}]


def test_a_loopback_api_is_never_reached_through_a_proxy(
    wallarm: WallarmApiStandIn, trap: WallarmApiStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain http to the stand-in through a proxy would hand the proxy the token."""
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, trap.url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert client(wallarm).client_id() == wallarm.client_id
    assert trap.tokens_seen == [] and trap.requests == []


def test_an_error_body_never_reaches_the_message_unless_it_is_a_plain_word(
    wallarm: WallarmApiStandIn,
) -> None:
    wallarm.inject_fault(Fault("status", status=404, body=b"Not found"))
    with pytest.raises(WallarmApiError, match="404 Not found"):
        client(wallarm).client_id()
    wallarm.inject_fault(Fault("status", status=404, body=b"x\nWARNING token=secret-value"))
    with pytest.raises(WallarmApiError) as err:
        client(wallarm).client_id()
    assert "secret-value" not in str(err.value) and "\n" not in str(err.value)
