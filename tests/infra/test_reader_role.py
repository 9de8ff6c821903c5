"""Reconciliation's read access: Log Analytics Reader on the workspace, and the settings it needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pycep import BicepParser

INFRA = Path(__file__).resolve().parents[2] / "infra"


def parse_bicep(path: Path) -> dict[str, Any]:
    return dict(BicepParser().parse(file_path=path))


LOG_ANALYTICS_READER = "73c42c96-874c-492b-b04d-ab87d138a893"


def test_relay_identity_gets_log_analytics_reader_on_the_workspace() -> None:
    doc = parse_bicep(INFRA / "modules" / "reader-role.bicep")
    assert doc["variables"]["logAnalyticsReaderRoleId"]["value"] == LOG_ANALYTICS_READER
    assignment = doc["resources"]["relayReader"]
    assert assignment["type"] == "Microsoft.Authorization/roleAssignments"
    assert assignment["config"]["scope"] == "workspace"
    assert assignment["config"]["properties"]["principalType"] == "ServicePrincipal"
    main = parse_bicep(INFRA / "main.bicep")
    assert "readerRole" in main["modules"]
    settings = main["modules"]["functionApp"]["config"]["params"]["relaySettings"]
    assert {"COMPLETENESS_SCHEDULE", "LOGS_WORKSPACE_ID"} <= set(settings)
    assert main["parameters"]["completenessSchedule"]["default"] == "0 20 * * * *"
