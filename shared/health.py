"""Like Wallarm's "Test integration" button: check the settings and the DCR, explain failures."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared.delivery import Attempt, Deliverer
from shared.relay_events import test_integration_row
from shared.settings import Settings

_ADVICE = {
    401: "The token was refused. Check that the identity (AZURE_CLIENT_ID for a user-assigned identity) "
    "belongs to the DCR's tenant.",
    403: "The identity may not write to this DCR: grant it 'Monitoring Metrics Publisher' on the DCR. "
    "Role assignments can take up to 30 minutes to take effect.",
    404: "The DCR or stream was not found: check LOGS_DCR_IMMUTABLE_ID (the DCR's immutableId, dcr-…), "
    "LOGS_STREAM_NAME (Custom-WallarmSentinel_CL) and that LOGS_INGESTION_ENDPOINT belongs to this DCR "
    "(or its DCE).",
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
            "AZURE_CLIENT_SECRET."
        )
    return "The ingestion endpoint could not be reached: check LOGS_INGESTION_ENDPOINT and outbound network."


class IntegrationCheck:
    def __init__(self, settings: Settings, deliverer: Deliverer, clock: Callable[[], datetime]) -> None:
        self.settings = settings
        self.deliverer = deliverer
        self.clock = clock

    def run(self, *, send_test_event: bool) -> tuple[int, dict[str, Any]]:
        rows = [test_integration_row(self.clock())] if send_test_event else []
        attempt = self.deliverer.probe(rows)
        body: dict[str, Any] = {
            "ok": attempt.ok,
            "sent": "test event" if send_test_event else "empty probe (no row written)",
            "status": attempt.status,
            "error": attempt.error or None,
            "x_ms_request_id": attempt.request_id or None,
            "advice": advice_for(attempt),
            "config": {
                "endpoint": self.settings.logs_endpoint,
                "dcr_immutable_id": self.settings.dcr_immutable_id,
                "stream": self.settings.stream_name,
                "identity": "user-assigned " + self.settings.azure_client_id
                if self.settings.azure_client_id
                else "system-assigned",
            },
        }
        return (200 if attempt.ok else 502), body
