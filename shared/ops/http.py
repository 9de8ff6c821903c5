"""Adapters between azure.functions HTTP types and the relay's own request/response types."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func

from shared.intake.webhook import WebhookRequest, WebhookResponse, source_ip_from
from shared.settings import KEYVAULT_FIX, SettingsError


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
