"""What each Functions trigger does: one function per route or timer, free of azure.functions.

function_app.py only binds these to triggers (shared/ops/http.py adapts the HTTP types), so the
routes are plain functions of the relay's own request and answer types.
Services are built once per worker on first use (not at import, so the host indexes the functions
fast and a settings error is reported as a clear 500 instead of "0 functions loaded").
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from shared.delivery.retry_worker import WorkerRun
from shared.health.probe import storage_unavailable_body
from shared.intake.webhook import WebhookRequest, WebhookResponse, error
from shared.limits import TENANT_LIMITS
from shared.ops.admin import InvalidInput, parse_ids, parse_reason
from shared.ops.services import Services, build_services
from shared.ops.tenant_admin import TenantAdmin
from shared.settings import KEYVAULT_FIX, SettingsError, load_settings
from shared.store.tables import StoreUnavailable
from shared.telemetry import DEFAULT_TENANT, current_tenant
from shared.tenancy.directory import TenantUnavailable

log = logging.getLogger(__name__)

Reply = WebhookResponse
"""Every route's answer: status, JSON body, headers (a body's retry_after_seconds becomes Retry-After)."""


@dataclass(frozen=True)
class RouteRequest:
    """One HTTP call as the routes see it: the webhook's request, the query and the route's values."""

    request: WebhookRequest
    params: Mapping[str, str] = field(default_factory=dict)
    route_params: Mapping[str, str] = field(default_factory=dict)
    method: str = "POST"


def settings_error_body(error: SettingsError) -> dict[str, Any]:
    """The 500 answer of every route while the settings are invalid (the probe's too): each problem
    with its fix. An unresolved Key Vault reference gets its own code, since its fix is on the vault,
    not in the settings."""
    body: dict[str, Any] = {"code": "misconfigured", "problems": error.problems}
    if error.unresolved:
        body = {
            "code": "keyvault_reference_unresolved",
            "settings": list(error.unresolved),
            "advice": KEYVAULT_FIX[:1].upper() + KEYVAULT_FIX[1:] + ".",
            "problems": error.problems,
        }
    return {"error": body}


@functools.cache
def services() -> Services:
    from shared.ops.telemetry_export import configure_telemetry_export

    # Settings first: the exporter would trip over an unresolved Key Vault reference with a ValueError.
    load_settings(os.environ)
    configure_telemetry_export()
    return build_services()


def with_services(handle: Callable[[Services], Reply]) -> Reply:
    """Invalid settings become a 500 whose body lists each problem and its fix; Table Storage
    out of reach (at start-up, or for an admin call) a 503 that says so."""
    try:
        return handle(services())
    except SettingsError as err:
        log.error("%s", err)
        return Reply(500, settings_error_body(err))
    except StoreUnavailable as err:  # also while starting: the relay creates its tables then
        log.error("Answered 503: %s", err)
        return Reply(503, storage_unavailable_body(err))  # its retry_after_seconds: Retry-After


# One answer for every webhook route that serves no tenant (never added, being removed, not built, or
# a name that is no slug at all): it does not say which, and it is reached in the time of a wrong
# secret's 401 (the lookup is a dictionary read, and a refusal's work is done: bench/tenant_doors.py).
NO_SUCH_ROUTE = error(404, "not_found", "no webhook at this URL: check the URL Wallarm calls")


def with_tenant(call: RouteRequest, handle: Callable[[Services], Reply]) -> Reply:
    """Run ``handle`` with the services of the route's tenant (``/api/wallarm/{tenant}``), or of
    the default tenant on today's routes; the tenant's log lines carry its name."""
    name = call.route_params.get("tenant")

    def pick(svc: Services) -> Reply:
        if name is None:
            return in_tenant(svc, handle)
        try:
            target = svc.tenants.directory.get(name) if svc.tenants is not None else None
        except TenantUnavailable:
            # Its secret cannot be checked, so the caller is unknown: the unknown route's answer,
            # never a 503 that would tell that the name exists. Wallarm resends any non-2xx; the
            # cause is logged and shown by `relayctl status --tenant NAME`.
            log.error("Webhook for a tenant whose services are not built: answered as an unknown route")
            target = None
        if target is None:
            svc.webhook.refuse_unknown_route(call.request)  # the work a known tenant's refusal does
            return NO_SUCH_ROUTE
        return in_tenant(target, handle)

    return with_services(pick)


def in_tenant(svc: Services, handle: Callable[[Services], Reply]) -> Reply:
    token = current_tenant.set(svc.tenant)
    try:
        return handle(svc)
    finally:
        current_tenant.reset(token)


def webhook(call: RouteRequest) -> Reply:
    return with_tenant(call, lambda svc: svc.webhook.handle(call.request))


def test_integration(call: RouteRequest) -> Reply:
    """Like Wallarm's "Test integration": probe the DCR; `?event=true` also writes a test row."""
    send_event = call.params.get("event", "").lower() in ("1", "true")

    def probe(svc: Services) -> Reply:
        refused = svc.webhook.refuse_caller(call.request)  # the webhook's own guards
        if refused is not None:
            log.warning("Probe refused: %s", refused.body["error"]["code"])
            return refused
        return Reply(*svc.health.run(send_test_event=send_event))

    return with_tenant(call, probe)


ALL_TENANTS = "all"


def admin_tenant(svc: Services, params: Mapping[str, str], handle: Callable[[Services], Reply]) -> Reply:
    """An admin call for ``?tenant=<name>`` (the default tenant when absent)."""
    name = params.get("tenant", "") or DEFAULT_TENANT
    if name == DEFAULT_TENANT:
        return in_tenant(svc, handle)
    try:
        target = svc.tenants.directory.get(name) if svc.tenants is not None else None
    except TenantUnavailable as err:
        return error(503, "tenant_unavailable", f"its services could not be built: {err.cause}")
    if target is None:
        return error(404, "unknown_tenant", "no such tenant: relayctl tenant list names them")
    return in_tenant(target, handle)


def relay_status(call: RouteRequest) -> Reply:
    def answer(svc: Services) -> Reply:
        if call.params.get("tenant", "") == ALL_TENANTS:
            every = svc.tenants.every(svc) if svc.tenants is not None else [svc]
            return Reply(200, {"tenants": {each.tenant: status(each) for each in every}})
        return admin_tenant(svc, call.params, lambda target: Reply(200, status(target)))

    return with_services(answer)


def status(svc: Services) -> dict[str, object]:
    body: dict[str, object] = {**svc.admin.status(), "completeness": svc.completeness.status()}
    if svc.tenant != DEFAULT_TENANT:
        body = {"tenant": svc.tenant, **body}
    elif svc.tenants is not None and (added := svc.tenants.names()):
        body["tenants"] = [DEFAULT_TENANT, *added]
    return body


def relay_admin(call: RouteRequest) -> Reply:
    """POST relay/disable (?reason=…), relay/enable, relay/replay (?id=…), relay/reconcile (?from=…&to=…)."""

    def act(svc: Services) -> Reply:
        tenant = call.params.get("tenant", "").strip()
        action = call.route_params.get("action", "")
        if tenant not in ("", DEFAULT_TENANT) and action in ("disable", "enable") and svc.tenant_admin:
            # On the tenant's own tables, audited, and without its services: a tenant whose
            # secret or destination is broken can still be disabled.
            by = svc.admin.caller(call.request.headers)
            return tenant_action(
                svc.tenant_admin, by, replace(call, route_params={"name": tenant, "op": action})
            )
        return admin_tenant(svc, call.params, lambda one: admin_action(one, call))

    return with_services(act)


def admin_action(svc: Services, call: RouteRequest) -> Reply:
    admin, params = svc.admin, call.params
    action = call.route_params.get("action", "")
    by = admin.caller(call.request.headers)
    try:
        if action == "disable":
            return Reply(200, admin.disable(by, parse_reason(params.get("reason", ""))))
        if action == "enable":
            return Reply(200, admin.enable(by))
        if action == "replay":
            return Reply(200, admin.replay_quarantined(parse_ids(params.get("id", ""))))
        if action == "reconcile":
            return Reply(*svc.completeness.reconcile_range(params.get("from", ""), params.get("to", ""), by))
    except InvalidInput as err:
        log.warning("Admin %s refused: %s", action, err.code)  # the code only, never the value
        return Reply(400, {"error": {"code": err.code, "message": err.message}})
    return Reply(
        404, {"error": {"code": "unknown_action", "message": "use disable, enable, replay or reconcile"}}
    )


MAX_ADMIN_BODY_BYTES = 64 * 1024
TENANT_OPS = ("rotate-secret", "disable", "enable")


def refused(err: InvalidInput) -> Reply:
    """A refused admin call: its status (400 unless said), code, message, and each problem's fix."""
    error: dict[str, object] = {"code": err.code, "message": err.message}
    problems = getattr(err, "problems", None)
    if problems:
        error["problems"] = problems
    return Reply(getattr(err, "status", 400), {"error": error})


def json_body(call: RouteRequest) -> dict[str, object]:
    """The call's JSON object body; InvalidInput when it is not one (never echoing it)."""
    if len(call.request.body) > MAX_ADMIN_BODY_BYTES:
        raise InvalidInput("invalid_body", f"the body is larger than {MAX_ADMIN_BODY_BYTES} bytes")
    try:
        body = json.loads(call.request.body or b"{}")
    except (ValueError, RecursionError):  # not JSON, or nested deeper than json can go
        body = None
    if not isinstance(body, dict):
        raise InvalidInput("invalid_body", 'the body must be a JSON object, e.g. {"settings": {…}}')
    return body


def tenants_admin(call: RouteRequest) -> Reply:
    """relay/tenants (GET list, POST add), relay/tenants/{name} (GET show, PATCH update, DELETE
    remove ?then=drain|export), relay/tenants/{name}/{op} (POST rotate-secret, disable ?reason=, enable)."""

    def act(svc: Services) -> Reply:
        assert svc.tenant_admin is not None  # the default tenant's services always carry it
        return tenant_action(svc.tenant_admin, svc.admin.caller(call.request.headers), call)

    return with_services(act)


def tenant_action(tenants: TenantAdmin, by: str, call: RouteRequest) -> Reply:
    name, op, method = call.route_params.get("name"), call.route_params.get("op"), call.method.upper()
    try:
        if name is None:
            if method == "GET":
                return Reply(200, tenants.list())
            return Reply(201, tenants.add(json_body(call), by))
        if op is None:
            if method == "GET":
                return Reply(200, tenants.show(name))
            if method == "PATCH":
                return Reply(200, tenants.update(name, json_body(call), by))
            return Reply(200, tenants.remove(name, by, call.params.get("then", "").strip().lower()))
        if op == "rotate-secret":
            return Reply(200, tenants.rotate_secret(name, by))
        if op == "disable":
            return Reply(200, tenants.disable(name, by, call.params.get("reason", "")))
        if op == "enable":
            return Reply(200, tenants.enable(name, by))
    except InvalidInput as err:
        log.warning("Tenant %s refused: %s", op or method, err.code)  # the code only, never a value
        return refused(err)
    return Reply(404, {"error": {"code": "unknown_action", "message": f"use one of {', '.join(TENANT_OPS)}"}})


def run_retry_worker() -> None:
    """Every minute: deliver what is due, for most of the minute (see shared/delivery/retry_worker.py);
    with several tenants, the minute is shared fairly among them (shared/tenancy/drain.py)."""
    svc = services()
    if svc.tenants is None or not svc.tenants.names():
        _log_run(svc.worker.run(svc.settings.worker_run_for))
        return
    every = svc.tenants.every(svc)
    workers = {each.tenant: each.worker.run for each in every}
    report = svc.tenants.drain.run(workers, svc.settings.worker_run_for)
    for turn in report.turns:
        if turn.result is not None:
            with_tenant_log(turn.tenant, functools.partial(_log_run, turn.result))
    finish_removals(svc)


def _log_run(run: WorkerRun) -> None:
    if run.attempted or run.recovered:  # an idle run says nothing: no log line per empty minute
        log.info("Retry worker: %d attempted, %d delivered", run.attempted, run.delivered)


def with_tenant_log(tenant: str, action: Callable[[], None]) -> None:
    token = current_tenant.set(tenant)
    try:
        action()
    finally:
        current_tenant.reset(token)


def finish_removals(svc: Services) -> None:
    """A tenant removed with `then=drain` leaves the registry once its queue is empty."""
    if svc.tenants is None or svc.tenants.finish_removal is None:
        return
    for name in svc.tenants.removing():
        with_tenant_log(name, functools.partial(svc.tenants.finish_removal, name))


def for_each_tenant(action: Callable[[Services], object]) -> None:
    """Run a timer's work for every tenant, a few at a time; one tenant's failure is logged and the
    others go on (their state is their own)."""
    svc = services()
    every = svc.tenants.every(svc) if svc.tenants is not None else [svc]
    if len(every) == 1:
        action(svc)
        return

    def one(each: Services) -> object:
        token = current_tenant.set(each.tenant)
        try:
            return action(each)
        except (StoreUnavailable, OSError) as err:
            log.error("Timer work failed for one tenant: %s", type(err).__name__)
            return None
        finally:
            current_tenant.reset(token)

    with ThreadPoolExecutor(max_workers=TENANT_LIMITS.timer_slots, thread_name_prefix="tenant-timer") as pool:
        list(pool.map(one, every))


def run_hourly_count() -> None:
    """Top of the hour: one row with the previous hour's counts, then retention clean-up (per tenant)."""

    def hourly(svc: Services) -> None:
        svc.hourly.report_previous_hour()
        svc.retention.purge()

    for_each_tenant(hourly)


def run_completeness() -> None:
    """Hourly: the watchdog, then reconciliation of closed windows (see shared/completeness/timer.py)."""
    for_each_tenant(lambda svc: svc.completeness.run_timer())
