"""Adapters between azure.functions HTTP types and the relay's own request/response types."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import azure.functions as func

from shared.intake.webhook import WebhookRequest, WebhookResponse, source_ip_from
from shared.ops.routes import Reply, RouteRequest


def serve(route: Callable[[RouteRequest], Reply], req: func.HttpRequest) -> func.HttpResponse:
    """One HTTP trigger: the route of shared/ops/routes.py, called with the request it reads."""
    call = RouteRequest(to_webhook_request(req), dict(req.params), dict(req.route_params), req.method)
    return to_http_response(route(call))


def to_webhook_request(req: func.HttpRequest) -> WebhookRequest:
    headers = {k.lower(): v for k, v in req.headers.items()}
    return WebhookRequest(body=req.get_body() or b"", headers=headers, source_ip=source_ip_from(headers))


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        mimetype="application/json",
        headers=headers or {},
    )


def to_http_response(resp: WebhookResponse) -> func.HttpResponse:
    headers = dict(resp.headers)
    retry_after = resp.body.get("error", {}).get("retry_after_seconds") if "error" in resp.body else None
    if retry_after:
        headers["Retry-After"] = str(retry_after)
    return json_response(resp.status, resp.body, headers)
