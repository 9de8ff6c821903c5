"""Several tenants end to end (issue 22, items 2, 3, 4 and 6): the relay's own composition and
routes (``shared.ops.routes``, and the host's bindings in function_app) on Azurite, with one Logs
Ingestion stand-in per destination (its own DCR) and identities that differ per destination: alpha
writes with the relay's managed identity, bravo with an app secret of another Entra tenant (its
secret read from the Key Vault stand-in), charlie with a federated identity credential in a third.
Every DCR grants exactly its own (appid, tid): anything else gets 403 there.

Counts and orderings only, never timings (performance is measured by bench/tenants.py).
"""

from __future__ import annotations

import hmac
import inspect
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import azure.functions as func
import pytest

from local.standins.identity import SYSTEM_CLIENT_ID, TokenIssuer
from local.standins.logs_ingestion import LogsIngestionStandIn
from local.tenant_world import TenantWorld, event_body, landed_events
from shared.intake.webhook import WebhookRequest
from shared.ops import routes
from shared.ops.routes import NO_SUCH_ROUTE, Reply, RouteRequest
from shared.ops.services import Services, build_services
from shared.ops.tenant_admin import TenantRefused
from shared.telemetry import Telemetry

from .conftest import FakeClock, functions
from .test_telemetry import Captured
from .test_telemetry import captured as captured  # the fixture

TENANTS = ["alpha", "bravo", "charlie"]
DEFAULT_SECRET = "default-tenant-secret-0123456789"
HEADER = "x-wallarm-relay-secret"
# Short runs and steps, so a queue drains within a few worker runs; TRIPS: the rule trips at once.
FAST = {
    "RETRY_WORKER_RUN_SECONDS": "2",
    "RECOVERY_PROBE_SECONDS": "1",
    "RETRY_POLL_SECONDS": "0.1",
    "RETRY_SCHEDULE": "1s,1s; every 2s",
}
TRIPS = {"AUTO_DISABLE_GRACE_MINUTES": "0", "AUTO_DISABLE_MIN_ATTEMPTS": "5"}


@pytest.fixture(scope="module")
def world(token_issuer: TokenIssuer) -> Iterator[TenantWorld]:
    with TenantWorld(token_issuer, TENANTS) as each:
        yield each


Relay = Callable[..., Services]


@pytest.fixture
def relay(
    world: TenantWorld,
    relay_env: dict[str, str],
    ingestion: LogsIngestionStandIn,
    token_issuer: TokenIssuer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Relay]:
    """``relay(telemetry=None, clock=None, **settings)``: the relay's services, built by the composition root
    from these settings and served by the routes (as function_app's services), with the three
    tenants added through the tenant operations. The default tenant keeps today's settings."""
    world.reset()
    ingestion.allow(ingestion.dcr_id, SYSTEM_CLIENT_ID, token_issuer.tenant_id)

    def start(
        telemetry: Telemetry | None = None, clock: FakeClock | None = None, **settings: str
    ) -> Services:
        env = {**relay_env, **world.env(), "WEBHOOK_SHARED_SECRET": DEFAULT_SECRET, **settings}
        if clock is None:
            svc = build_services(env, telemetry=telemetry)
        else:
            svc = build_services(env, telemetry=telemetry, clock=clock, sleep=clock.sleep)
        monkeypatch.setattr(routes, "services", lambda: svc)
        assert svc.tenant_admin is not None
        for name in TENANTS:
            svc.tenant_admin.add(world.destinations[name].body(), "alice")
        return svc

    yield start
    world.reset()


def hook(tenant: str | None, body: bytes, secret: str) -> Reply:
    """Wallarm's webhook to ``/api/wallarm/{tenant}`` (``/api/wallarm`` for None)."""
    request = WebhookRequest(body, {"content-type": "application/json", HEADER: secret}, "127.0.0.1")
    params = {} if tenant is None else {"tenant": tenant}
    return routes.webhook(RouteRequest(request, route_params=params))


def send(world: TenantWorld, tenant: str, numbers: range) -> Reply:
    return hook(tenant, event_body(tenant, numbers), world.destinations[tenant].secret)


def ids(tenant: str, numbers: range) -> set[str]:
    return {f"{tenant}-{n}" for n in numbers}


def admin(params: dict[str, str] | None = None, **route: str) -> RouteRequest:
    return RouteRequest(WebhookRequest(b"", {}, "127.0.0.1"), params=params or {}, route_params=route)


def worker_until(done: Callable[[], bool], runs: int = 30) -> int:
    """Run the retry worker (its timer's function) until ``done()``; the runs it took."""
    for n in range(1, runs + 1):
        routes.run_retry_worker()
        if done():
            return n
    raise AssertionError(f"not done after {runs} retry worker runs")


def pending(svc: Services, tenant: str) -> int:
    one = svc.tenants.directory.get(tenant) if svc.tenants is not None else None
    assert one is not None
    queue = routes.status(one)["queue"]
    assert isinstance(queue, dict)
    return int(queue["pending_entries"]) + int(queue["parked_entries"])


# --- a. each tenant's events in its own DCR, written by its own identity -----------------------


def test_each_tenant_lands_in_its_own_dcr_with_its_own_identity_and_the_default_is_unchanged(
    relay: Relay, world: TenantWorld, ingestion: LogsIngestionStandIn, token_issuer: TokenIssuer
) -> None:
    relay()
    for n, name in enumerate(TENANTS):
        assert send(world, name, range(n * 10, n * 10 + 3)).status == 200
    default = hook(None, event_body("default", range(3)), DEFAULT_SECRET)
    assert default.status == 200

    for n, name in enumerate(TENANTS):
        d = world.destinations[name]
        assert set(landed_events(d.ingestion)) == ids(name, range(n * 10, n * 10 + 3))
        assert {(r.status, r.client_id, r.tenant_id) for r in d.ingestion.requests} == {(204, *d.identity)}
    assert set(landed_events(ingestion)) == ids("default", range(3))
    assert {(r.client_id, r.tenant_id) for r in ingestion.requests} == {
        (SYSTEM_CLIENT_ID, token_issuer.tenant_id)
    }
    # Three identities of three Entra tenants, none used on another's DCR (no 403 anywhere).
    assert len({d.identity for d in world.destinations.values()}) == 3


def test_the_host_binding_routes_the_tenant_from_the_url(relay: Relay, world: TenantWorld) -> None:
    relay()
    d = world.destinations["bravo"]
    req = func.HttpRequest(
        method="POST",
        url="https://relay.example/api/wallarm/bravo",
        body=event_body("bravo", range(2)),
        headers={"Content-Type": "application/json", "X-Wallarm-Relay-Secret": d.secret},
        params={},
        route_params={"tenant": "bravo"},
    )
    response: func.HttpResponse = functions()["tenant_webhook"].get_user_function()(req)
    assert response.status_code == 200
    assert set(landed_events(d.ingestion)) == ids("bravo", range(2))


# --- b. bad input: one answer for every route that serves no tenant ----------------------------

NOT_TENANTS = [
    "nobody",
    "Alpha",
    "a" * 5000,
    "zürich-ü",
    "../alpha",
    "alpha/test",
    "..%2Falpha",
    "default",
    "all",
]


def host_call(name: str, body: bytes, secret: str) -> func.HttpResponse:
    req = func.HttpRequest(
        method="POST",
        url="https://relay.example/api/wallarm/x",
        body=body,
        headers={"Content-Type": "application/json", "X-Wallarm-Relay-Secret": secret},
        params={},
        route_params={"tenant": name},
    )
    response: func.HttpResponse = functions()["tenant_webhook"].get_user_function()(req)
    return response


def test_unknown_and_malformed_tenants_get_the_same_404_byte_for_byte(
    relay: Relay, world: TenantWorld, caplog: pytest.LogCaptureFixture
) -> None:
    relay()
    body = event_body("alpha", range(1))
    answers = [host_call(name, body, world.destinations["alpha"].secret) for name in NOT_TENANTS]
    first = answers[0]
    assert first.status_code == 404
    assert json.loads(first.get_body()) == NO_SUCH_ROUTE.body
    for answer in answers:
        assert (answer.status_code, answer.get_body(), dict(answer.headers)) == (
            first.status_code,
            first.get_body(),
            dict(first.headers),
        )
    text = first.get_body().decode()
    assert not any(name in text for name in TENANTS)
    assert world.destinations["alpha"].ingestion.requests == []  # nothing was delivered anywhere
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert not any(n in logged for n in NOT_TENANTS[1:] if len(n) > 3)


def test_a_wrong_secret_gets_401_and_another_tenants_secret_is_just_a_wrong_one(
    relay: Relay, world: TenantWorld, caplog: pytest.LogCaptureFixture
) -> None:
    relay()
    body = event_body("bravo", range(1))
    random = host_call("bravo", body, "not-the-secret-at-all-0123456789")
    alphas = host_call("bravo", body, world.destinations["alpha"].secret)
    defaults = host_call("bravo", body, DEFAULT_SECRET)
    assert random.status_code == alphas.status_code == defaults.status_code == 401
    assert random.get_body() == alphas.get_body() == defaults.get_body()
    text = random.get_body().decode()
    assert not any(name in text for name in TENANTS) and json.loads(text)["error"]["code"] == "wrong_secret"
    assert world.destinations["bravo"].ingestion.requests == []
    secrets = [d.secret for d in world.destinations.values()] + [DEFAULT_SECRET]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert not any(s in logged for s in secrets)


def test_an_unknown_tenant_and_a_wrong_secret_take_the_same_path_to_the_secret_comparison(
    relay: Relay, world: TenantWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Structural, not timed: both reach one constant-time comparison of the caller's secret, from
    the same guard (``WebhookHandler.refuse_caller``), and neither delivers or reads the body."""
    relay()
    compared: list[str] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        caller = inspect.stack()[1]
        if caller.filename.endswith(("shared/intake/webhook.py", "shared/ops/routes.py")):
            compared.append(caller.function)  # the stand-ins' own token checks are not the relay's
        return real(a, b)

    body = event_body("bravo", range(1))
    monkeypatch.setattr(hmac, "compare_digest", spy)
    unknown = hook("nobody", body, "some-guess-0123456789abcdef")
    unknown_path, compared[:] = list(compared), []
    wrong = hook("bravo", body, "some-guess-0123456789abcdef")
    wrong_path = list(compared)
    monkeypatch.undo()
    assert (unknown.status, wrong.status) == (404, 401)
    assert unknown_path == wrong_path == ["refuse_caller"]


# --- c. isolation: alpha's DCR down, bravo's events land; alpha recovers on its own --------------


def test_a_tenant_whose_dcr_is_down_delays_no_other_and_recovers_on_its_own(
    relay: Relay, world: TenantWorld
) -> None:
    svc = relay(**FAST, **TRIPS)
    a, b = world.destinations["alpha"].ingestion, world.destinations["bravo"].ingestion
    a.set_outage(503)
    stop = threading.Event()

    def worker() -> None:  # the timer, while the outage lasts: alpha's retries fail beside bravo
        while not stop.is_set():
            routes.run_retry_worker()

    timer = threading.Thread(target=worker, daemon=True)
    timer.start()
    a_status, b_status = [], []
    try:
        for n in range(20):
            a_status.append(send(world, "alpha", range(n * 5, n * 5 + 5)).status)
            b_status.append(send(world, "bravo", range(n * 5, n * 5 + 5)).status)
            stop.wait(1)
        b_landed_while_a_down = landed_events(b)
        a_landed_while_down = landed_events(a)
    finally:
        stop.set()
        timer.join()
    assert b_status == [200] * 20  # landed before the answer, all while alpha is down
    assert set(b_landed_while_a_down) == ids("bravo", range(100))
    assert a_landed_while_down == {} and set(a_status) <= {202}
    assert {r.status for r in a.requests} == {503}  # alpha's webhook and worker attempts all failed

    alpha_status = routes.relay_status(admin({"tenant": "alpha"})).body
    bravo_status = routes.relay_status(admin({"tenant": "bravo"})).body
    assert alpha_status["tenant"] == "alpha" and alpha_status["failure_window"]["failures"] > 0
    assert bravo_status["failure_window"]["failures"] == 0 and bravo_status["state"] == "enabled"
    assert alpha_status["state"] in ("enabled", "auto_disabled")  # the rule, if it fired: alpha's
    default_status = routes.relay_status(admin()).body
    assert default_status["state"] == "enabled" and default_status["failure_window"]["failures"] == 0

    a.set_outage(None)
    worker_until(lambda: pending(svc, "alpha") == 0 and len(landed_events(a)) == 100)
    landed_a, landed_b = landed_events(a), landed_events(b)
    assert {e: len(t) for e, t in landed_a.items()} == dict.fromkeys(ids("alpha", range(100)), 1)
    assert {e: len(t) for e, t in landed_b.items()} == dict.fromkeys(ids("bravo", range(100)), 1)
    assert routes.relay_status(admin({"tenant": "alpha"})).body["state"] == "enabled"
    for d in world.destinations.values():  # nothing in another's DCR, nothing by another's identity
        assert {(r.client_id, r.tenant_id) for r in d.ingestion.requests} <= {d.identity}
    assert landed_events(world.destinations["charlie"].ingestion) == {}


# --- d. fairness: alpha's backlog drains beside bravo's and charlie's events ---------------------


def test_a_backlog_does_not_starve_the_others_drain(relay: Relay, world: TenantWorld) -> None:
    svc = relay(**FAST)
    w = world.destinations
    for d in w.values():
        d.ingestion.set_outage(503)
    for n in range(300):  # 3,000 events queued for alpha
        assert send(world, "alpha", range(n * 10, n * 10 + 10)).status == 202
    for name in ("bravo", "charlie"):
        for n in range(10):
            assert send(world, name, range(n * 3, n * 3 + 3)).status == 202
    for d in w.values():
        d.ingestion.set_outage(None)

    assert svc.tenants is not None
    every = svc.tenants.every(svc)
    workers = {each.tenant: each.worker.run for each in every}
    report: list[Any] = []
    drain = threading.Thread(
        target=lambda: report.append(svc.tenants.drain.run(workers, svc.settings.worker_run_for))  # type: ignore[union-attr]
    )
    drain.start()
    steady = [
        send(world, name, range(100 + n, 101 + n)).status for n in range(3) for name in ("bravo", "charlie")
    ]
    drain.join()
    worker_until(lambda: all(pending(svc, t) == 0 for t in TENANTS))

    landed = {name: landed_events(w[name].ingestion) for name in TENANTS}
    a_done = max(max(t) for t in landed["alpha"].values())
    assert len(landed["alpha"]) == 3000 and all(len(t) == 1 for t in landed["alpha"].values())
    assert steady == [200] * 6
    for name in ("bravo", "charlie"):
        mine = ids(name, range(30)) | ids(name, range(100, 103))
        assert set(landed[name]) == mine and all(len(t) == 1 for t in landed[name].values())
        assert max(max(t) for t in landed[name].values()) <= a_done  # landed before alpha's backlog finished
    (run,) = report
    assert {t.tenant for t in run.turns} == {"default", *TENANTS}
    assert all(run.of(name) for name in TENANTS)


# --- e. telemetry: a tenant dimension on metrics and log records, never a secret ----------------


def test_metrics_and_log_records_carry_the_tenant_and_no_secret(
    relay: Relay, world: TenantWorld, captured: Captured, caplog: pytest.LogCaptureFixture
) -> None:
    relay(telemetry=captured.telemetry)
    caplog.set_level(logging.INFO)
    for name in TENANTS:
        assert send(world, name, range(2)).status == 200
    assert hook("bravo", event_body("bravo", range(5, 6)), "wrong-secret-0123456789abcdef").status == 401
    assert hook(None, event_body("default", range(1)), DEFAULT_SECRET).status == 200

    received = {
        t: sum(v for a, v in captured.points("relay.events", tenant=t) if a.get("outcome") == "received")
        for t in TENANTS
    }
    assert received == dict.fromkeys(TENANTS, 2)
    assert (
        sum(v for a, v in captured.points("relay.events", tenant="default") if a.get("outcome") == "received")
        == 1
    )
    refused = [r for r in caplog.records if r.getMessage() == "Webhook refused: wrong_secret"]
    assert [getattr(r, "tenant", None) for r in refused] == ["bravo"]
    secrets = [d.secret for d in world.destinations.values()] + [DEFAULT_SECRET]
    for record in caplog.records:
        assert hasattr(record, "tenant")
        assert not any(s in record.getMessage() for s in secrets)
    dimensions = {
        str(a.get("tenant")) for _, a in [(v, a) for a, v in captured.tagged_points("relay.events")]
    }
    assert dimensions >= {"default", *TENANTS}


# --- f. status per tenant and for all ----------------------------------------------------------


def test_status_for_all_lists_every_tenant_with_its_own_figures(relay: Relay, world: TenantWorld) -> None:
    relay()
    world.destinations["charlie"].ingestion.set_outage(503)
    assert send(world, "charlie", range(4)).status == 202
    assert send(world, "alpha", range(4)).status == 200

    every = routes.relay_status(admin({"tenant": "all"}))
    assert every.status == 200
    tenants = every.body["tenants"]
    assert set(tenants) == {"default", *TENANTS}
    assert tenants["charlie"]["queue"]["pending_entries"] == 1
    assert tenants["charlie"]["failure_window"]["failures"] >= 1
    for name in ("default", "alpha", "bravo"):
        assert tenants[name]["queue"]["pending_entries"] == 0
        assert tenants[name]["failure_window"]["failures"] == 0
    one = routes.relay_status(admin({"tenant": "alpha"}))
    assert one.status == 200 and one.body["tenant"] == "alpha" and "tenants" not in one.body
    assert one.body["queue"] == tenants["alpha"]["queue"]
    assert routes.relay_status(admin({"tenant": "nobody"})).status == 404


# --- g. removal: refused with queued entries unless told; drained, then dropped -----------------


def test_removal_with_queued_entries_drains_then_drops_the_tenant(
    relay: Relay, world: TenantWorld, clock: FakeClock
) -> None:
    svc = relay(clock=clock, **FAST)
    a = world.destinations["alpha"].ingestion
    a.set_outage(503)
    assert send(world, "alpha", range(5)).status == 202
    delete = RouteRequest(
        WebhookRequest(b"", {}, "127.0.0.1"), route_params={"name": "alpha"}, method="DELETE"
    )

    refused = routes.tenants_admin(delete)
    assert refused.status == 409 and refused.body["error"]["code"] == "tenant_has_queued_events"
    assert send(world, "alpha", range(5, 8)).status == 202  # still served: nothing changed

    drained = routes.tenants_admin(replace(delete, params={"then": "drain"}))
    assert drained.status == 200 and drained.body["removing"] is True
    gone = send(world, "alpha", range(8, 9))
    assert (gone.status, gone.body) == (404, NO_SUCH_ROUTE.body)  # at once, on this instance

    a.set_outage(None)
    assert svc.tenant_admin is not None
    listed = svc.tenant_admin.list

    worker_until(lambda: len(landed_events(a)) == 8)
    routes.run_retry_worker()
    # Drained, but kept until every instance has re-read the registry (one may still queue for it).
    assert [t["name"] for t in listed()["tenants"]] == TENANTS
    clock.advance(timedelta(minutes=1))
    routes.run_retry_worker()
    assert [t["name"] for t in listed()["tenants"]] == ["bravo", "charlie"]
    assert set(landed_events(a)) == ids("alpha", range(8))
    assert all(len(t) == 1 for t in landed_events(a).values())
    with pytest.raises(TenantRefused):
        svc.tenant_admin.show("alpha")
    actions = [row["action"] for row in svc.tenant_admin.audit("alpha")["audit"]]
    assert actions[:2] == ["remove", "remove"]
