"""Azure Functions entry point (Python v2 model): wiring only.

Services are built once per worker on first use (not at import, so the host indexes the functions
fast and a settings error is reported as a clear 500 instead of "0 functions loaded").
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable

import azure.functions as func

from shared.health.probe import storage_unavailable_body
from shared.ops.admin import InvalidInput, parse_ids, parse_reason
from shared.ops.http import json_response, settings_error_body, to_http_response, to_webhook_request
from shared.ops.services import Services, build_services
from shared.settings import SettingsError, load_settings
from shared.store.tables import StoreUnavailable

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
log = logging.getLogger("shared.function_app")


@functools.cache
def services() -> Services:
    from shared.ops.telemetry_export import configure_telemetry_export

    # Settings first: the exporter would trip over an unresolved Key Vault reference with a ValueError.
    load_settings(os.environ)
    configure_telemetry_export()
    return build_services()


def _with_services(handle: Callable[[Services], func.HttpResponse]) -> func.HttpResponse:
    """Invalid settings become a 500 whose body lists each problem and its fix; Table Storage
    out of reach (at start-up, or for an admin call) a 503 that says so."""
    try:
        return handle(services())
    except SettingsError as err:
        log.error("%s", err)
        return json_response(500, settings_error_body(err))
    except StoreUnavailable as err:  # also while starting: the relay creates its tables then
        log.error("Answered 503: %s", err)
        return json_response(503, storage_unavailable_body(err), {"Retry-After": "30"})


@app.route(route="wallarm", methods=["POST", "PUT"])
def wallarm_webhook(req: func.HttpRequest) -> func.HttpResponse:
    """Wallarm's webhook URL: https://<app>.azurewebsites.net/api/wallarm?code=<function key>."""
    return _with_services(lambda svc: to_http_response(svc.webhook.handle(to_webhook_request(req))))


@app.route(route="wallarm/test", methods=["GET", "POST"])
def test_integration(req: func.HttpRequest) -> func.HttpResponse:
    """Like Wallarm's "Test integration": probe the DCR; `?event=true` also writes a test row."""
    send_event = req.params.get("event", "").lower() in ("1", "true")

    def probe(svc: Services) -> func.HttpResponse:
        refused = svc.webhook.refuse_caller(to_webhook_request(req))  # the webhook's own guards
        if refused is not None:
            log.warning("Probe refused: %s", refused.body["error"]["code"])
            return to_http_response(refused)
        return json_response(*svc.health.run(send_test_event=send_event))

    return _with_services(probe)


@app.route(route="relay/status", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
def relay_status(req: func.HttpRequest) -> func.HttpResponse:
    return _with_services(lambda svc: json_response(200, _status(svc)))


def _status(svc: Services) -> dict[str, object]:
    status = svc.admin.status()
    if svc.completeness is not None:
        status["completeness"] = svc.completeness.status()
    return status


@app.route(route="relay/{action:alpha}", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
def relay_admin(req: func.HttpRequest) -> func.HttpResponse:
    """POST relay/disable (?reason=…), relay/enable, relay/replay (?id=…), relay/reconcile (?from=…&to=…)."""
    return _with_services(lambda svc: _admin_action(svc, req))


def _admin_action(svc: Services, req: func.HttpRequest) -> func.HttpResponse:
    admin = svc.admin
    action = req.route_params.get("action", "")
    by = admin.caller(req.headers)
    try:
        if action == "disable":
            return json_response(200, admin.disable(by, parse_reason(req.params.get("reason", ""))))
        if action == "enable":
            return json_response(200, admin.enable(by))
        if action == "replay":
            return json_response(200, admin.replay_quarantined(parse_ids(req.params.get("id", ""))))
        if action == "reconcile" and svc.completeness is not None:
            p = req.params
            return json_response(*svc.completeness.reconcile_range(p.get("from", ""), p.get("to", ""), by))
    except InvalidInput as err:
        log.warning("Admin %s refused: %s", action, err.code)  # the code only, never the value
        return json_response(400, {"error": {"code": err.code, "message": err.message}})
    return json_response(
        404, {"error": {"code": "unknown_action", "message": "use disable, enable, replay or reconcile"}}
    )


@app.timer_trigger(schedule="%RETRY_WORKER_SCHEDULE%", arg_name="timer", run_on_startup=False)
def retry_worker(timer: func.TimerRequest) -> None:
    """Every minute: deliver what is due, for most of the minute (see shared/delivery/retry_worker.py)."""
    svc = services()
    run = svc.worker.run(svc.settings.worker_run_for)
    if run.attempted or run.recovered:  # an idle run says nothing: no log line per empty minute
        log.info("Retry worker: %d attempted, %d delivered", run.attempted, run.delivered)


@app.timer_trigger(schedule="%HOURLY_COUNT_SCHEDULE%", arg_name="timer", run_on_startup=False)
def hourly_count(timer: func.TimerRequest) -> None:
    """Top of the hour: one row with the previous hour's counts, then retention clean-up."""
    svc = services()
    svc.hourly.report_previous_hour()
    svc.retention.purge()


@app.timer_trigger(schedule="%COMPLETENESS_SCHEDULE%", arg_name="timer", run_on_startup=False)
def completeness(timer: func.TimerRequest) -> None:
    """Hourly: the watchdog, then reconciliation of closed windows (see shared/completeness/timer.py)."""
    svc = services()
    if svc.completeness is not None:
        svc.completeness.run_timer()
