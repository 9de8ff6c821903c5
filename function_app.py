"""Azure Functions entry point (Python v2 model): bindings only.

Each trigger calls one function of shared/ops/routes.py, which holds what it does (through
shared/ops/http.py for the HTTP ones); services are built there once per worker, on first use.
"""

from __future__ import annotations

import azure.functions as func

from shared.ops import routes
from shared.ops.http import serve
from shared.ops.routes import services

__all__ = ["app", "services"]

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="wallarm", methods=["POST", "PUT"])
def wallarm_webhook(req: func.HttpRequest) -> func.HttpResponse:
    """Wallarm's webhook URL: https://<app>.azurewebsites.net/api/wallarm?code=<function key>."""
    return serve(routes.webhook, req)


@app.route(route="wallarm/test", methods=["GET", "POST"])
def test_integration(req: func.HttpRequest) -> func.HttpResponse:
    """Like Wallarm's "Test integration": probe the DCR; `?event=true` also writes a test row."""
    return serve(routes.test_integration, req)


@app.route(route="wallarm/{tenant}", methods=["POST", "PUT"])
def tenant_webhook(req: func.HttpRequest) -> func.HttpResponse:
    """A tenant's webhook URL (docs/TENANTS.md): /api/wallarm/<tenant>?code=<function key>."""
    return serve(routes.webhook, req)


@app.route(route="wallarm/{tenant}/test", methods=["GET", "POST"])
def tenant_test_integration(req: func.HttpRequest) -> func.HttpResponse:
    """The tenant's "Test integration": probe its DCR with its own identity."""
    return serve(routes.test_integration, req)


@app.route(route="relay/status", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
def relay_status(req: func.HttpRequest) -> func.HttpResponse:
    return serve(routes.relay_status, req)


@app.route(route="relay/tenants", methods=["GET", "POST"], auth_level=func.AuthLevel.ADMIN)
def relay_tenants(req: func.HttpRequest) -> func.HttpResponse:
    """GET list, POST add (JSON body). Literal, so it wins over relay/{action:alpha}."""
    return serve(routes.tenants_admin, req)


@app.route(route="relay/tenants/{name}", methods=["GET", "PATCH", "DELETE"], auth_level=func.AuthLevel.ADMIN)
def relay_tenant(req: func.HttpRequest) -> func.HttpResponse:
    """GET show (with the last 20 audit rows), PATCH update (JSON body), DELETE remove (?then=…)."""
    return serve(routes.tenants_admin, req)


@app.route(route="relay/tenants/{name}/{op}", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
def relay_tenant_op(req: func.HttpRequest) -> func.HttpResponse:
    """POST rotate-secret, disable (?reason=…), enable."""
    return serve(routes.tenants_admin, req)


@app.route(route="relay/{action:alpha}", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
def relay_admin(req: func.HttpRequest) -> func.HttpResponse:
    """POST relay/disable (?reason=…), relay/enable, relay/replay (?id=…), relay/reconcile (?from=…&to=…)."""
    return serve(routes.relay_admin, req)


@app.timer_trigger(schedule="%RETRY_WORKER_SCHEDULE%", arg_name="timer", run_on_startup=False)
def retry_worker(timer: func.TimerRequest) -> None:
    """Every minute: deliver what is due, for most of the minute."""
    routes.run_retry_worker()


@app.timer_trigger(schedule="%HOURLY_COUNT_SCHEDULE%", arg_name="timer", run_on_startup=False)
def hourly_count(timer: func.TimerRequest) -> None:
    """Top of the hour: one row with the previous hour's counts, then retention clean-up."""
    routes.run_hourly_count()


@app.timer_trigger(schedule="%COMPLETENESS_SCHEDULE%", arg_name="timer", run_on_startup=False)
def completeness(timer: func.TimerRequest) -> None:
    """Hourly: the watchdog, then reconciliation of closed windows."""
    routes.run_completeness()
