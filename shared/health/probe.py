"""Like Wallarm's "Test integration" button: check the settings and the DCR, explain failures."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from shared.clock import Clock
from shared.health.attempts import Attempt, Sender
from shared.health.relay_rows import test_integration_row
from shared.store.tables import StoreUnavailable

log = logging.getLogger(__name__)

_ADVICE = {
    401: "The token was refused. Check that the identity (AZURE_CLIENT_ID for a user-assigned identity) "
    "belongs to the DCR's tenant.",
    403: "The identity may not write to this DCR: grant it 'Monitoring Metrics Publisher' on the DCR. "
    "Role assignments can take up to 30 minutes to take effect.",
    404: "The DCR or stream was not found: check LOGS_DCR_IMMUTABLE_ID (the DCR's immutableId, dcr-…), "
    "LOGS_STREAM_NAME (the DCR's input stream: Custom- and the table name) and that "
    "LOGS_INGESTION_ENDPOINT belongs to this DCR (or its DCE).",
    413: "The request was too large for the Logs Ingestion API (1 MB per call).",
    429: "The DCR is throttled (12,000 requests or 2 GB per minute); retries honour Retry-After.",
}


def advice_for(attempt: Attempt) -> str:
    if attempt.ok:
        return "The Logs Ingestion API accepted the request."
    if attempt.status in _ADVICE:
        return _ADVICE[attempt.status]
    if attempt.status is not None and attempt.status >= 500:
        return "Azure Monitor returned a server error; the relay retries on Wallarm's schedule."
    if attempt.error == "authentication_error":
        return (
            "No token could be obtained: on Azure, enable the managed identity (and set AZURE_CLIENT_ID "
            "for a user-assigned one); for an app registration set AZURE_TENANT_ID, AZURE_CLIENT_ID and "
            "AZURE_CLIENT_SECRET; for a local run against a real workspace, sign in with `az login` "
            "(or `azd auth login`) as a user who holds the data roles, and set AZURE_TENANT_ID to the "
            "workspace's tenant if you have several."
        )
    return "The ingestion endpoint could not be reached: check LOGS_INGESTION_ENDPOINT and outbound network."


_STORAGE_ADVICE = {
    401: "Table Storage refused the identity's token: check that the identity (AZURE_CLIENT_ID for a "
    "user-assigned one) belongs to the storage account's tenant.",
    403: "The identity may not write the relay's tables: grant it 'Storage Table Data Contributor' on the "
    "storage account. Role assignments can take up to 30 minutes to take effect.",
    404: "A relay table is missing: restart the app, which creates its tables at start-up "
    "(RELAY_TABLE_PREFIX names them).",
}


def storage_advice(error: StoreUnavailable | None) -> str:
    if error is None:
        return "Table Storage accepted a write: events Azure Monitor refuses are queued for retry."
    consequence = " Until then, events Azure Monitor refuses get 503 and Wallarm resends them."
    if error.status in _STORAGE_ADVICE:
        return _STORAGE_ADVICE[error.status] + consequence
    if error.status is not None:
        return "Table Storage is throttled or failing; the relay retries on its own." + consequence
    return (
        "Table Storage could not be reached: check RELAY_STORAGE_TABLE_ENDPOINT (or "
        "RELAY_STORAGE_CONNECTION_STRING) and outbound network." + consequence
    )


def storage_unavailable_body(error: StoreUnavailable) -> dict[str, Any]:
    """The 503 answer of a route that needs Table Storage (admin routes, start-up)."""
    return {
        "error": {
            "code": "storage_unavailable",
            "message": "Table Storage is unavailable: the relay's state and queue cannot be read or "
            "written now. " + storage_advice(error),
            "status": error.status,
            "storage_error": error.error_code or None,
            "x_ms_request_id": error.request_id or None,
            "retry_after_seconds": 30,
        }
    }


class DcrProbe:
    """Ingestion and storage health. The answer names statuses, codes and advice, never resources:
    endpoint, DCR, stream and identity stay in the app settings, out of an HTTP answer."""

    def __init__(self, deliverer: Sender, storage_probe: Callable[[], None], clock: Clock) -> None:
        self.deliverer = deliverer
        self.storage_probe = storage_probe
        self.clock = clock

    def run(self, *, send_test_event: bool) -> tuple[int, dict[str, Any]]:
        """200 when Azure Monitor accepts and Table Storage can queue; 502 / 503 name which failed."""
        rows = [test_integration_row(self.clock())] if send_test_event else []
        attempt = self.deliverer.probe(rows)
        storage_error: StoreUnavailable | None = None
        try:
            self.storage_probe()
        except StoreUnavailable as err:
            storage_error = err
            log.warning("Probe: Table Storage unavailable (%s)", err)
        body: dict[str, Any] = {
            "ok": attempt.ok and storage_error is None,
            "sent": "test event" if send_test_event else "empty probe (no row written)",
            "ingestion": {
                "ok": attempt.ok,
                "status": attempt.status,
                "error": attempt.error or None,
                "x_ms_request_id": attempt.request_id or None,
                "advice": advice_for(attempt),
            },
            "storage": {
                "ok": storage_error is None,
                "status": storage_error.status if storage_error else None,
                "error": (storage_error.error_code or "unreachable") if storage_error else None,
                "x_ms_request_id": (storage_error.request_id or None) if storage_error else None,
                "advice": storage_advice(storage_error),
            },
        }
        if not attempt.ok:
            return 502, body
        return (503 if storage_error else 200), body
