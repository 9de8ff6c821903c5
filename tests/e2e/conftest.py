"""The relay wired to Azurite and the HTTPS stand-ins, through the same composition root as Azure."""

from __future__ import annotations

import functools
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from store_fixtures import FakeClock, reset_around

import function_app
from local.standins.azurite import Azurite
from local.standins.identity import TokenIssuer
from local.standins.log_query import LogQueryStandIn
from local.standins.logs_ingestion import LogsIngestionStandIn
from local.standins.wallarm_api import WallarmApiStandIn, WebhookIntegration
from shared.intake.webhook import WebhookRequest
from shared.ops.services import Services, build_services
from shared.telemetry import Telemetry

__all__ = ["FakeClock"]  # the tests import it from here

E2E_START = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def relay_env(
    ingestion: LogsIngestionStandIn,
    managed_identity_env: dict[str, str],
    azurite: Azurite,
    unique_prefix: str,
    tls_ca: str,
) -> dict[str, str]:
    """App settings pointing at the stand-ins, with a per-test set of tables."""
    return {
        "LOGS_INGESTION_ENDPOINT": ingestion.endpoint,
        "LOGS_DCR_IMMUTABLE_ID": ingestion.dcr_id,
        "LOGS_STREAM_NAME": ingestion.stream,
        "RELAY_CA_BUNDLE": tls_ca,
        "RELAY_STORAGE_CONNECTION_STRING": azurite.connection_string,
        "RELAY_TABLE_PREFIX": unique_prefix,
        "WEBHOOK_READ_TIMEOUT_SECONDS": "2",
        "WEBHOOK_DELIVERY_BUDGET_SECONDS": "3",
        "WORKER_READ_TIMEOUT_SECONDS": "5",
        **managed_identity_env,
    }


MakeServices = Callable[..., Services]


@pytest.fixture
def make_services(relay_env: dict[str, str]) -> Iterator[MakeServices]:
    def make(clock: FakeClock | None = None, telemetry: Telemetry | None = None, **settings: str) -> Services:
        env = {**relay_env, **settings}
        if clock is None:
            return build_services(env, telemetry=telemetry)
        return build_services(env, clock=clock, sleep=clock.sleep, telemetry=telemetry)

    yield make


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(E2E_START)


Call = Callable[..., func.HttpResponse]


@functools.cache
def functions() -> dict[str, Any]:
    """Indexed once per process, like the host (a second get_functions() call refuses duplicates)."""
    return {str(fn.get_function_name()): fn for fn in function_app.app.get_functions()}


@pytest.fixture
def call(relay_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Call]:
    """Calls a built user function with a real azure.functions.HttpRequest, as the host does."""
    for key, value in relay_env.items():
        monkeypatch.setenv(key, value)
    function_app.services.cache_clear()

    def invoke(
        name: str,
        body: bytes = b"",
        *,
        method: str = "POST",
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        route_params: dict[str, str] | None = None,
    ) -> func.HttpResponse:
        req = func.HttpRequest(
            method=method,
            url=f"https://relay.example/api/{name}",
            body=body,
            headers={"Content-Type": "application/json", **(headers or {})},
            params=params or {},
            route_params=route_params or {},
        )
        response: func.HttpResponse = functions()[name].get_user_function()(req)
        return response

    yield invoke
    function_app.services.cache_clear()


def body_json(resp: func.HttpResponse) -> Any:
    return json.loads(resp.get_body())


# --- completeness (issue 14): Wallarm API and Log Analytics query stand-ins ----------------------
ADMIN_TOKEN = "a" * 64
READER_TOKEN = "r" * 64
WORKSPACE_ID = "00000000-0000-0000-0000-0000000000aa"


@pytest.fixture
def wallarm(clock: FakeClock) -> Iterator[WallarmApiStandIn]:
    """A Wallarm Cloud stand-in on the test's fake clock (admin and read-only tokens)."""
    with WallarmApiStandIn(clock=lambda: clock().timestamp()) as standin:
        standin.add_token(ADMIN_TOKEN, "admin")
        standin.add_token(READER_TOKEN, "read_only")
        yield standin


@pytest.fixture(scope="session")
def log_query_standin(
    token_issuer: TokenIssuer, ingestion_standin: LogsIngestionStandIn
) -> Iterator[LogQueryStandIn]:
    """The query API over the rows the ingestion stand-in accepted."""
    with LogQueryStandIn(
        token_issuer, lambda: ingestion_standin.accepted, workspace_id=WORKSPACE_ID
    ) as standin:
        yield standin


@pytest.fixture
def log_query(log_query_standin: LogQueryStandIn) -> Iterator[LogQueryStandIn]:
    with reset_around(log_query_standin) as standin:
        yield standin


@pytest.fixture
def completeness_env(wallarm: WallarmApiStandIn, log_query: LogQueryStandIn) -> dict[str, str]:
    """Settings that turn reconciliation and the integration check on, against the stand-ins."""
    return {
        "WALLARM_API_TOKEN": ADMIN_TOKEN,
        "WALLARM_API_URL": wallarm.url,
        "LOGS_WORKSPACE_ID": WORKSPACE_ID,
        "LOGS_QUERY_ENDPOINT": log_query.endpoint,
        "WATCHDOG_CHECK_INTEGRATION": "true",
        "WALLARM_INTEGRATION_URL": "https://relay.example.net/api/wallarm",
    }


# --- Wallarm delivering to the relay (completeness, reconcile windows, watchdog) ---------------
SECRET = "right-secret-0123456789"
WRONG = "rotated-secret-987654321"
INDEX = "hits_production_4242_202611_v_1"
HOOK_URL = "https://relay.example.net/api/wallarm?code=function-key"


WallarmRelay = Callable[..., Services]


@pytest.fixture
def wallarm_relay(
    make_services: MakeServices,
    clock: FakeClock,
    wallarm: WallarmApiStandIn,
    completeness_env: dict[str, str],
) -> WallarmRelay:
    """Starts the relay, reconciliation on, as the stand-in Wallarm's webhook target:
    `wallarm_relay(flush=..., **settings)`; `flush` settles each request's bookkeeping before
    Wallarm sees the answer."""

    def start(*, flush: bool = False, **settings: str) -> Services:
        svc = make_services(clock, WEBHOOK_SHARED_SECRET=SECRET, **{**completeness_env, **settings})

        def to_webhook(url: str, body: bytes, headers: Mapping[str, str]) -> int:
            request = WebhookRequest(body, {k.lower(): v for k, v in headers.items()}, "127.0.0.1")
            status = svc.webhook.handle(request).status
            if flush:
                svc.webhook.flush()
            return status

        wallarm.sender = to_webhook
        return svc

    return start


@pytest.fixture
def integration(wallarm: WallarmApiStandIn) -> WebhookIntegration:
    """Wallarm's webhook integration to the relay, with the right secret."""
    return wallarm.add_integration(HOOK_URL, {"X-Wallarm-Relay-Secret": SECRET})


# --- `python -m local.run` in a subprocess (runner, banner, crash tests) ------------------------
ROOT = Path(__file__).resolve().parents[2]
# The caller's own settings of these kinds would leak into the local run's: it gets only its own.
LOCAL_RUN_OWN = ("LOGS_", "RELAY_", "IDENTITY_")


def spawn_local_run(
    args: Sequence[str],
    env: Mapping[str, str],
    ready: str,
    *,
    drop: tuple[str, ...] = LOCAL_RUN_OWN,
    new_session: bool = False,
) -> tuple[subprocess.Popen[str], list[str]]:
    """Starts `python -m local.run`, reads its output until a line says `ready` (or it exits) and
    returns it with those lines; its output is then drained on a thread, so a chatty run never
    blocks on a full pipe."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "local.run", *args],
        cwd=ROOT,
        env={**base, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=new_session,  # its own process group, to be killed as a whole
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if ready in line or proc.poll() is not None:
            break
    assert ready in "".join(lines), "".join(lines)
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc, lines


def local_run_rows(rows_url: str) -> list[dict[str, str]]:
    """The rows a local run's ingestion stand-in accepted (its `rows` URL)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the runner's CA lives in its own temp dir; this only reads rows
    with urllib.request.urlopen(rows_url, context=ctx, timeout=10) as resp:
        data = json.loads(resp.read())
    return list(data["rows"] if isinstance(data, dict) else data)
