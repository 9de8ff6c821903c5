"""dataConnectorValidator.ts, ported: connector category, schema, id, data types, permissions.

Microsoft's validator looks only at JSON files with a top-level `id` and `connectivityCriterias`
(classic connector pages); a CCF definition (`kind: Customizable`) has its page under
`properties.connectorUiConfig` and is skipped there. So that a CCF page is held to the same
rules, this port also applies them to `connectorUiConfig`, reading its `connectivityCriteria`
as `connectivityCriterias` (the same list under the CCF name). The JSON schema check applies to
classic pages only, as Microsoft's does; a CCF page is checked for the Data Connector
Definitions API's required fields instead (`ccf_problems`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sentinel_checks.core import Finding, Solution, load_json
from sentinel_checks.schema_port import invalid_schema_message

NAME = "Data Connector"

# REST_API_ConnectorSchema.json: the parts that constrain anything (other nodes only name types).
_STR = {"type": "string"}
_OBJ_REQ = lambda *names: {  # noqa: E731
    "type": "object",
    "properties": dict.fromkeys(names, _STR),
    "required": list(names),
}
REST_API_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": _STR,
        "title": _STR,
        "publisher": _STR,
        "descriptionMarkdown": _STR,
        "graphQueries": {"type": "array", "items": [_OBJ_REQ("metricName", "legend", "baseQuery")]},
        "sampleQueries": {"type": "array", "items": [_OBJ_REQ("description", "query")]},
        "dataTypes": {"type": "array", "items": [_OBJ_REQ("name", "lastDataReceivedQuery")]},
        "connectivityCriterias": {
            "type": "array",
            "items": [
                {
                    "type": "object",
                    "properties": {"type": _STR, "value": {"type": "array", "items": [_STR]}},
                    "required": ["type", "value"],
                }
            ],
        },
        "availability": {
            "type": "object",
            "properties": {"status": {"type": "integer"}, "isPreview": {"type": "boolean"}},
            "required": ["status", "isPreview"],
        },
        "permissions": {"type": "object", "required": ["resourceProvider"]},
        "instructionSteps": {"type": "array"},
    },
    "required": [
        "id", "title", "publisher", "descriptionMarkdown", "graphQueries", "sampleQueries", "dataTypes",
        "connectivityCriterias", "availability", "permissions", "instructionSteps",
    ],
}  # fmt: skip

# permissionsChecker.ts: the templates, as Microsoft's file spells them.
_SHARED_KEYS = {
    "provider": "Microsoft.OperationalInsights/workspaces/sharedKeys",
    "permissionsDisplayText": "read permissions to shared keys for the workspace are required. [See the documentation "
    "to learn more about workspace keys](https://docs.microsoft.com/azure/azure-monitor/platform/agent-windows#obtain"
    "-workspace-id-and-key).",
    "providerDisplayName": "Keys",
    "scope": "Workspace",
    "requiredPermissions": {"action": True},
}
CEF_REST_API = [
    {
        "provider": "Microsoft.OperationalInsights/workspaces",
        "permissionsDisplayText": "read and write permissions are required.",
        "providerDisplayName": "Workspace",
        "scope": "Workspace",
        "requiredPermissions": {"write": True, "read": True, "delete": True},
    },
    _SHARED_KEYS,
]
LOGS_INGESTION = [
    {
        "provider": "Microsoft.OperationalInsights/workspaces",
        "permissionsDisplayText": "Read and write permissions are required to configure the workspace tables.",
        "providerDisplayName": "Workspace",
        "scope": "Workspace",
        "requiredPermissions": {"read": True, "write": True},
    }
]
LOGS_INGESTION_CUSTOM = {
    "name": "Azure Monitor Logs Ingestion API",
    "description": "The sending application requires the Monitoring Metrics Publisher role on the data collection "
    "rule (DCR). Workspace shared keys are not used.",
}
SYSLOG = [
    {
        "provider": "Microsoft.OperationalInsights/workspaces",
        "permissionsDisplayText": "write permission is required.",
        "providerDisplayName": "Workspace",
        "scope": "Workspace",
        "requiredPermissions": {"write": True, "delete": True},
    }
]
SYSLOG_DATA_SOURCES = [
    {
        "provider": "Microsoft.OperationalInsights/workspaces/datasources",
        "permissionsDisplayText": "read and write permissions.",
        "providerDisplayName": "Workspace data sources",
        "scope": "Workspace",
        "requiredPermissions": {"read": True, "write": True},
    }
]
AZURE_FUNCTION = [
    {
        **CEF_REST_API[0],
        "permissionsDisplayText": "read and write permissions on the workspace are required.",
    },
    _SHARED_KEYS,
]
AZURE_FUNCTION_CUSTOM = {
    "name": "Microsoft.Web/sites permissions",
    "description": "Read and write permissions to Azure Functions to create a Function App is required. [See the "
    "documentation to learn more about Azure Functions](https://docs.microsoft.com/azure/azure-functions/).",
}

# getConnectorCategory: (substring of dataTypes[0].name, category), in Microsoft's order.
_BY_NAME = [
    ("CommonSecurityLog", "CEF"), ("Syslog", "Syslog"), ("SecurityAlert(ASC)", "SecurityAlert(ASC)"),
    ("ThreatIntelligenceIndicator", "ThreatIntelligenceIndicator"),
    ("fluentbit_CL (Azure Cloud NGFW by PaloAlto)", "fluentbit_CL (Azure Cloud NGFW by PaloAlto)"),
    ("PowerBIActivity", "PowerBIActivity"),
    ("MicrosoftPurviewInformationProtection", "MicrosoftPurviewInformationProtection"),
    ("AzureActivity", "AzureActivity"), ("Event", "Event"), ("SecurityAlert(OATP)", "SecurityAlert(OATP)"),
    ("AzureDevOpsAuditing", "AzureDevOpsAuditing"), ("AzureDiagnostics", "AzureDiagnostics"),
]  # fmt: skip
_AFTER_CL = [
    ("Dynamics365Activity", "Dynamics365Activity"), ("CrowdstrikeReplicatorV2", "CrowdstrikeReplicatorV2"),
    ("BloodHoundEnterprise", "BloodHoundEnterprise"), ("AwsS3", "AwsS3"), ("AWS", "AWS"),
    ("Corelight", "Corelight"), ("SigninLogs", "AzureActiveDirectory"), ("corelight_bacnet", "CorelightConnectorExporter"),
]  # fmt: skip


def _js_stringify(value: Any) -> str:
    """JSON.stringify without spaces (what the category test searches)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def connector_category(data_types: list[dict[str, Any]], steps: Any) -> str:
    name = str(data_types[0]["name"])
    for needle, category in _BY_NAME:
        if needle in name:
            return category
    if name.endswith("_CL"):
        text = _js_stringify(steps)
        if "[Deploy To Azure]" in text:
            return "Azure_Function"
        if ("meraki" in name or "vCenter" in name) and '"type":"InstallAgent"' in text:
            return "Syslog"
        return "REST_API"
    for needle, category in _AFTER_CL:
        if needle in name:
            return category
    return ""


def permission_problem(permissions: dict[str, Any], category: str) -> str | None:
    """isValidPermissions: the message Microsoft throws, or None."""
    providers = permissions.get("resourceProvider")
    customs = permissions.get("customs") or []
    if category in ("CEF", "Event", "REST_API"):
        logs_ingestion = (
            category == "REST_API"
            and providers == LOGS_INGESTION
            and any(c == LOGS_INGESTION_CUSTOM for c in customs)
        )
        if providers != CEF_REST_API and not logs_ingestion:
            return (
                f"Provided permissions does not match with {category} Template. Please refer template "
                f"https://github.com/Azure/Azure-Sentinel/blob/master/DataConnectors/Templates/Connector_{category}_template.json "
            )
    elif category == "Syslog":
        if providers not in (SYSLOG, SYSLOG_DATA_SOURCES):
            return (
                "Provided permissions does not match with Syslog Connector Template. Please refer template "
                "https://github.com/Azure/Azure-Sentinel/blob/master/DataConnectors/Templates/Connector_Syslog_template.json "
            )
    elif category == "Azure_Function":
        custom_ok = any(
            c.get("name") == AZURE_FUNCTION_CUSTOM["name"]
            and c.get("description") == AZURE_FUNCTION_CUSTOM["description"]
            for c in customs
        )
        if not (providers == AZURE_FUNCTION and custom_ok):
            return (
                "Provided permissions does not match with Azure Function Connector Template. Please refer template "
                "https://github.com/Azure/Azure-Sentinel/blob/master/DataConnectors/Templates/Connector_REST_API_Azure"
                "FunctionApp_template/DataConnector_API_AzureFunctionApp_template.json"
            )
    return None


CCF_REQUIRED = (
    "id", "title", "publisher", "descriptionMarkdown", "graphQueries", "dataTypes", "connectivityCriteria",
    "availability", "permissions", "instructionSteps",
)  # fmt: skip


def ccf_problems(ui: dict[str, Any]) -> list[str]:
    """connectorUiConfig fields the Data Connector Definitions API (2022-09-01-preview) requires."""
    return [f'connectorUiConfig requires property "{k}"' for k in CCF_REQUIRED if k not in ui]


def _page(doc: Any) -> tuple[dict[str, Any], bool] | None:
    """(the connector page, is_ccf) or None when the file is no connector page."""
    if not isinstance(doc, dict):
        return None
    if "id" in doc and "connectivityCriterias" in doc:
        return doc, False
    ui = doc.get("properties", {}).get("connectorUiConfig") if doc.get("kind") == "Customizable" else None
    if isinstance(ui, dict):
        view = {k: v for k, v in ui.items() if k != "connectivityCriteria"}
        view["connectivityCriterias"] = ui.get("connectivityCriteria")
        return view, True
    return None


def check_file(path: Path, rel: str) -> list[Finding]:
    """IsValidDataConnectorSchema for one file (exceptions become findings, as onExecError logs them)."""
    if "Templates" in rel:
        return []
    found = _page(load_json(path))
    if found is None:
        return []
    page, ccf = found
    data_types = page.get("dataTypes") or []
    if not data_types:
        return [Finding(NAME, rel, "Cannot read properties of undefined (reading 'name')")]
    if "Event" in str(data_types[0].get("name", "")):
        return []
    problems: list[str] = []
    category = connector_category(data_types, page.get("instructionSteps"))
    if ccf:
        raw = dict(page)
        raw["connectivityCriteria"] = raw.pop("connectivityCriterias")
        problems += ccf_problems({k: v for k, v in raw.items() if v is not None})
    elif category == "REST_API":
        message = invalid_schema_message(page, REST_API_SCHEMA)
        if message:
            return [Finding(NAME, rel, message)]  # Microsoft's validator stops at the first throw
    if any(ch.isspace() for ch in str(page.get("id", ""))):
        return [*(Finding(NAME, rel, p) for p in problems), Finding(NAME, rel, "Id should not have spaces.")]
    for data_type in data_types:
        name = str(data_type.get("name", ""))
        if " " in name and "CommonSecurityLog" not in name and "Syslog" not in name:
            return [
                *(Finding(NAME, rel, p) for p in problems),
                Finding(NAME, rel, "Data Type should not have spaces."),
            ]
    message = permission_problem(page.get("permissions") or {}, category)
    if message:
        problems.append(message)
    return [Finding(NAME, rel, p) for p in problems]


def check(solution: Solution) -> list[Finding]:
    return [f for path in solution.connectors() for f in check_file(path, solution.rel(path))]
