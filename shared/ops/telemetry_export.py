"""Application Insights through OpenTelemetry, configured once per worker when Azure says where."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def configure_telemetry_export() -> bool:
    """Export traces, metrics and logs to Application Insights when a connection string is set.

    The distro is imported here, not at module import, to keep cold start short. With identity-based
    ingestion (local auth disabled), APPLICATIONINSIGHTS_AUTHENTICATION_STRING names the identity.
    """
    if not os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING"):
        return False
    try:
        from azure.monitor.opentelemetry import configure_azure_monitor
    except ImportError:
        log.warning("azure-monitor-opentelemetry is not installed; telemetry stays local")
        return False
    credential = None
    client_id = os.environ.get("AZURE_CLIENT_ID")
    if "Authorization=AAD" in os.environ.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", ""):
        from azure.identity import ManagedIdentityCredential

        credential = (
            ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
        )
    # Only the relay's own loggers (shared.*): the host already forwards its own logs.
    configure_azure_monitor(credential=credential, logger_name="shared")
    return True
