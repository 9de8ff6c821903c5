"""Adapters between azure.functions HTTP types and the relay's own request/response types."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func

from shared.intake.webhook import WebhookRequest, WebhookResponse, source_ip_from


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
