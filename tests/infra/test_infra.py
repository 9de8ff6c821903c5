"""Static checks of infra/ (Bicep) and sentinel/ (Bicep + KQL), runnable without Azure.

No Bicep compiler can run here, so these tests parse every .bicep file with pycep and check
what a reviewer would otherwise check by eye: one schema (shared/schema.json) feeds the table,
the DCR stream, the Python mapping and the KQL views; role ids; no secret-looking outputs;
API versions not older than a floor per resource type. checkov runs separately (.venv-infra).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

from shared import schema as py_schema

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
SENTINEL = ROOT / "sentinel"
SCHEMA_JSON = ROOT / "shared" / "schema.json"
BICEP_FILES = sorted([*INFRA.rglob("*.bicep"), *SENTINEL.rglob("*.bicep")])
# KQL sources: .kql files and the Content Hub parser YAML (FunctionQuery) of sentinel/.
KQL_FILES = sorted([*SENTINEL.rglob("*.kql"), *(SENTINEL / "Parsers").glob("*.yaml")])

MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
STORAGE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
STORAGE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"

# Oldest API version accepted per resource type. Raise a floor when you move a resource to a newer
# version; a new resource type must be added here (the test fails for unknown types).
MIN_API_VERSION: dict[str, date] = {
    "Microsoft.Authorization/roleAssignments": date(2022, 4, 1),
    "Microsoft.Insights/actionGroups": date(2023, 1, 1),
    "Microsoft.Insights/components": date(2020, 2, 2),
    "Microsoft.Insights/dataCollectionEndpoints": date(2023, 3, 11),
    "Microsoft.Insights/dataCollectionRules": date(2023, 3, 11),
    "Microsoft.Insights/metricAlerts": date(2018, 3, 1),
    "Microsoft.Insights/scheduledQueryRules": date(2023, 12, 1),
    "Microsoft.Insights/workbooks": date(2023, 6, 1),
    "Microsoft.KeyVault/vaults": date(2023, 7, 1),
    "Microsoft.KeyVault/vaults/secrets": date(2023, 7, 1),
    "Microsoft.ManagedIdentity/userAssignedIdentities": date(2023, 1, 31),
    "Microsoft.OperationalInsights/workspaces": date(2023, 9, 1),
    "Microsoft.OperationalInsights/workspaces/savedSearches": date(2020, 8, 1),
    "Microsoft.OperationalInsights/workspaces/tables": date(2023, 9, 1),
    "Microsoft.SecurityInsights/alertRules": date(2024, 3, 1),
    "Microsoft.SecurityInsights/dataConnectorDefinitions": date(2024, 9, 1),
    "Microsoft.SecurityInsights/onboardingStates": date(2024, 3, 1),
    "Microsoft.Storage/storageAccounts": date(2023, 5, 1),
    "Microsoft.Storage/storageAccounts/blobServices": date(2023, 5, 1),
    "Microsoft.Storage/storageAccounts/blobServices/containers": date(2023, 5, 1),
    "Microsoft.Web/serverfarms": date(2024, 4, 1),
    "Microsoft.Web/sites": date(2024, 4, 1),
    "Microsoft.Web/sites/basicPublishingCredentialsPolicies": date(2024, 4, 1),
    "Microsoft.Web/sites/config": date(2024, 4, 1),
}

# App settings the relay reads (shared/settings.py, function_app.py); names must match exactly.
RELAY_APP_SETTINGS = (
    "LOGS_INGESTION_ENDPOINT",
    "LOGS_DCR_IMMUTABLE_ID",
    "LOGS_STREAM_NAME",
    "LOGS_INGESTION_AUDIENCE",
    "AZURE_CLIENT_ID",
    "RELAY_STORAGE_TABLE_ENDPOINT",
    "WEBHOOK_SHARED_SECRET",
    "WEBHOOK_SECRET_HEADER",
    "ALLOWED_SOURCE_NETWORKS",
    "HOURLY_COUNT_SCHEDULE",
    "RETRY_WORKER_SCHEDULE",
    "COMPLETENESS_SCHEDULE",
    "LOGS_WORKSPACE_ID",
    "WALLARM_API_TOKEN",
)

# Types whose newest API version is a preview (no GA version has the properties used).
PREVIEW_ONLY: dict[str, str] = {"Microsoft.Insights/diagnosticSettings": "2021-05-01-preview"}

SECRET_LIKE = re.compile(r"key|secret|password|connectionstring|sas|token|credential", re.IGNORECASE)
MARKER_BEGIN = "// <schema-columns>"
MARKER_END = "// </schema-columns>"


# ---- helpers -------------------------------------------------------------------------------


def parse_bicep(path: Path) -> dict[str, Any]:
    """pycep's JSON view of one Bicep file (raises on a syntax error)."""
    result: dict[str, Any] = dict(BicepParser().parse(file_path=path))
    return result


def resources(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from doc.get("resources", {}).items()


def body(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource body, unwrapping conditions and loops (pycep nests them as config.config)."""
    config: dict[str, Any] = resource["config"]
    while "config" in config and ("condition" in config or "loop_type" in config):
        config = config["config"]
    return config


def schema_doc(path: Path = SCHEMA_JSON) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def kql_schema_columns(text: str) -> list[str] | None:
    """Column names between the schema-columns markers of a KQL file; None without markers."""
    if MARKER_BEGIN not in text:
        return None
    block = text.split(MARKER_BEGIN, 1)[1].split(MARKER_END, 1)[0]
    names: list[str] = []
    for line in block.splitlines()[1:]:  # the marker line itself may carry a trailing note
        code = line.split("//", 1)[0].strip().rstrip(",").strip()
        if code:
            names.append(re.split(r"\s*=\s*", code, maxsplit=1)[0].strip())
    return names


def column_drift(schema_path: Path, python_columns: Sequence[str], kql_paths: Iterable[Path]) -> list[str]:
    """Every place whose column list differs from schema.json; empty when all agree."""
    expected = [c["name"] for c in schema_doc(schema_path)["columns"]]
    problems: list[str] = []
    if list(python_columns) != expected:
        problems.append(f"shared.schema.COLUMNS {list(python_columns)} != schema.json {expected}")
    for path in kql_paths:
        listed = kql_schema_columns(path.read_text(encoding="utf-8"))
        if listed is not None and listed != expected:
            problems.append(f"{path.name}: {listed} != schema.json {expected}")
    return problems


def api_date(version: str) -> date:
    match = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", version)
    assert match, f"not a GA api version: {version}"
    return date(int(match[1]), int(match[2]), int(match[3]))


def expr_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


# ---- parsing -------------------------------------------------------------------------------


def test_bicep_files_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in BICEP_FILES}
    assert {"infra/main.bicep", "sentinel/main.bicep"} <= names
    assert len(list((INFRA / "modules").glob("*.bicep"))) >= 8


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_bicep_file_parses(path: Path) -> None:
    doc = parse_bicep(path)
    assert doc.get("resources") or doc.get("modules"), f"{path} declares nothing"


def test_local_modules_and_loaded_files_exist() -> None:
    for path in BICEP_FILES:
        text = path.read_text(encoding="utf-8")
        for ref in re.findall(r"^module \w+ '([^']+)'", text, flags=re.MULTILINE):
            assert (path.parent / ref).is_file(), f"{path.name}: module {ref} missing"
        for ref in re.findall(r"load(?:Json|Text)Content\('([^']+)'\)", text):
            assert (path.parent / ref).is_file(), f"{path.name}: {ref} missing"


# ---- one schema ----------------------------------------------------------------------------


def test_main_loads_schema_json_once() -> None:
    doc = parse_bicep(INFRA / "main.bicep")
    loaders = [
        (name, var["value"]["function"]["parameters"]["file_path"])
        for name, var in doc["variables"].items()
        if isinstance(var["value"], dict)
        and var["value"].get("function", {}).get("type") == "load_json_content"
    ]
    assert loaders == [("schema", "../shared/schema.json")]
    assert (INFRA / "../shared/schema.json").resolve() == SCHEMA_JSON.resolve()


@pytest.mark.parametrize("var_name", ["tableColumns", "streamColumns"])
def test_column_vars_are_loops_over_schema_columns(var_name: str) -> None:
    value = parse_bicep(INFRA / "main.bicep")["variables"][var_name]["value"]
    array = value["loop_type"]["detail"]["array_name"]["operator"]["operands"]
    assert array == {"operand_1": "schema", "operand_2": "columns"}
    assert {"name", "type"} <= set(value["config"])


def test_table_and_dcr_modules_take_columns_from_schema() -> None:
    modules = parse_bicep(INFRA / "main.bicep")["modules"]
    table = modules["table"]["config"]["params"]
    dcr = modules["dcr"]["config"]["params"]
    assert table["columns"] == "tableColumns"
    assert table["tableName"]["operator"]["operands"] == {"operand_1": "schema", "operand_2": "table"}
    assert dcr["streamColumns"] == "streamColumns"
    assert dcr["streamName"]["operator"]["operands"] == {"operand_1": "schema", "operand_2": "stream"}
    settings = modules["functionApp"]["config"]["params"]["relaySettings"]
    assert settings["LOGS_STREAM_NAME"]["operator"]["operands"] == {
        "operand_1": "schema",
        "operand_2": "stream",
    }


def test_table_module_uses_column_param_on_analytics_plan() -> None:
    doc = parse_bicep(INFRA / "modules" / "table.bicep")
    (table,) = [
        body(r) for _, r in resources(doc) if r["type"] == "Microsoft.OperationalInsights/workspaces/tables"
    ]
    assert table["properties"]["plan"] == "Analytics"
    assert table["properties"]["schema"]["columns"] == "columns"


def test_dcr_is_direct_with_source_transform_to_the_stream() -> None:
    doc = parse_bicep(INFRA / "modules" / "dcr.bicep")
    (dcr,) = [body(r) for _, r in resources(doc) if r["type"] == "Microsoft.Insights/dataCollectionRules"]
    assert dcr["kind"] == "Direct"
    assert dcr["properties"]["streamDeclarations"] == {"'${streamName}'": {"columns": "streamColumns"}}
    (flow,) = dcr["properties"]["dataFlows"]
    assert flow["transformKql"] == "source"
    assert flow["outputStream"] == "streamName"
    assert flow["streams"] == ["streamName"]


def test_no_bicep_file_spells_out_a_column() -> None:
    """infra/ takes columns only from schema.json: a literal column name would be a second copy.

    (sentinel/ names columns in entity mappings; test_sentinel_entity_mappings_use_schema_columns.)
    """
    own_columns = [c for c in py_schema.COLUMNS if c != "TimeGenerated"]
    for path in sorted(INFRA.rglob("*.bicep")):
        text = path.read_text(encoding="utf-8")
        for column in own_columns:
            assert not re.search(rf"'{column}'", text), f"{path.name} spells out column {column}"


def test_schema_agrees_everywhere() -> None:
    assert column_drift(SCHEMA_JSON, py_schema.COLUMNS, KQL_FILES) == []
    assert schema_doc()["stream"] == py_schema.STREAM == f"Custom-{py_schema.TABLE}"


def test_wallarm_events_function_enumerates_the_columns() -> None:
    listed = kql_schema_columns((SENTINEL / "Parsers" / "WallarmEvents.yaml").read_text(encoding="utf-8"))
    assert listed == list(py_schema.COLUMNS)


@pytest.fixture()
def copies(tmp_path: Path) -> tuple[Path, list[Path]]:
    """Temporary copies of schema.json and the KQL files, to mutate one place at a time."""
    schema_copy = tmp_path / "schema.json"
    shutil.copy(SCHEMA_JSON, schema_copy)
    kql_copies = []
    for path in KQL_FILES:
        target = tmp_path / path.name
        shutil.copy(path, target)
        kql_copies.append(target)
    return schema_copy, kql_copies


def test_drift_detected_when_only_schema_json_changes(copies: tuple[Path, list[Path]]) -> None:
    schema_copy, kql_copies = copies
    assert column_drift(schema_copy, py_schema.COLUMNS, kql_copies) == []
    doc = schema_doc(schema_copy)
    doc["columns"][8]["name"] = "SourceIp"  # RemoteAddr renamed in schema.json only
    schema_copy.write_text(json.dumps(doc), encoding="utf-8")
    problems = column_drift(schema_copy, py_schema.COLUMNS, kql_copies)
    assert any("shared.schema.COLUMNS" in p for p in problems)
    assert any("WallarmEvents.yaml" in p for p in problems)


def test_drift_detected_when_only_kql_changes(copies: tuple[Path, list[Path]]) -> None:
    schema_copy, kql_copies = copies
    (kql,) = [p for p in kql_copies if p.name == "WallarmEvents.yaml"]
    kql.write_text(kql.read_text(encoding="utf-8").replace("    Url,\n", "    Uri,\n", 1), encoding="utf-8")
    problems = column_drift(schema_copy, py_schema.COLUMNS, kql_copies)
    assert len(problems) == 1 and "WallarmEvents.yaml" in problems[0]


def test_drift_detected_when_only_python_changes(copies: tuple[Path, list[Path]]) -> None:
    schema_copy, kql_copies = copies
    reordered = [*py_schema.COLUMNS[:-2], py_schema.COLUMNS[-1], py_schema.COLUMNS[-2]]
    problems = column_drift(schema_copy, reordered, kql_copies)
    assert len(problems) == 1 and "shared.schema.COLUMNS" in problems[0]


def test_sentinel_entity_mappings_use_schema_columns() -> None:
    """Entities map the table's own columns or columns the rule's query computes (tests/sentinel)."""
    rules = sorted((SENTINEL / "Analytic Rules").glob("*.yaml"))
    text = "".join(p.read_text(encoding="utf-8") for p in rules)
    mapped = set(re.findall(r"columnName: (\w+)", text))
    assert mapped, "analytics rules map no entities"
    assert {"RemoteAddr", "Url"} <= mapped
    assert all(c in py_schema.COLUMNS or re.search(rf"\b{c} = ", text) for c in mapped)


def test_workbook_is_valid_serialized_data() -> None:
    workbook = json.loads((SENTINEL / "Workbooks" / "WallarmOverview.json").read_text(encoding="utf-8"))
    assert workbook["version"] == "Notebook/1.0"
    queries = [i["content"]["query"] for i in workbook["items"] if i["type"] == 3]
    assert queries and all(q.startswith("WallarmEvents") for q in queries)


def test_sentinel_content_present() -> None:
    text = (SENTINEL / "main.bicep").read_text(encoding="utf-8")
    for loaded in ("Parsers/WallarmEvents.yaml", "Analytic Rules/", "Hunting Queries/", "Workbooks/"):
        assert f"('{loaded}" in text
    assert "functionAlias: wallarmEventsParser.FunctionAlias" in text
    assert "union isfuzzy=true" in (SENTINEL / "Parsers" / "WallarmEvents.yaml").read_text(encoding="utf-8")


# ---- identity, roles, settings ---------------------------------------------------------------


def _role_assignment_scopes(path: Path) -> list[str]:
    doc = parse_bicep(path)
    return [
        body(r)["scope"] for _, r in resources(doc) if r["type"] == "Microsoft.Authorization/roleAssignments"
    ]


@pytest.mark.parametrize(("module", "scope"), [("dcr.bicep", "dcr"), ("monitoring.bicep", "appInsights")])
def test_monitoring_metrics_publisher_assigned(module: str, scope: str) -> None:
    doc = parse_bicep(INFRA / "modules" / module)
    assert doc["variables"]["monitoringMetricsPublisherRoleId"]["value"] == MONITORING_METRICS_PUBLISHER
    assert scope in _role_assignment_scopes(INFRA / "modules" / module)


def test_storage_roles_and_no_shared_keys() -> None:
    doc = parse_bicep(INFRA / "modules" / "storage.bicep")
    assert set(doc["variables"]["roles"]["value"].values()) == {
        STORAGE_TABLE_DATA_CONTRIBUTOR,
        STORAGE_BLOB_DATA_OWNER,
        STORAGE_QUEUE_DATA_CONTRIBUTOR,
    }
    loop = doc["resources"]["relayRoles"]["config"]["loop_type"]["detail"]["array_name"]
    assert loop == {"function": {"type": "items", "parameters": {"arg_1": "roles"}}}
    assert "storage" in _role_assignment_scopes(INFRA / "modules" / "storage.bicep")
    account = body(doc["resources"]["storage"])["properties"]
    assert account["allowSharedKeyAccess"] is False
    assert account["minimumTlsVersion"] == "TLS1_2"


def test_function_app_is_flex_python_311_with_identity_storage() -> None:
    doc = parse_bicep(INFRA / "modules" / "functionapp.bicep")
    plan = body(doc["resources"]["plan"])
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    site = body(doc["resources"]["site"])
    assert site["identity"]["type"] == "UserAssigned"
    config = site["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert config["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"
    host = doc["variables"]["hostSettings"]["value"]
    assert host["AzureWebJobsStorage__credential"] == "managedidentity"
    assert host["AzureWebJobsStorage__accountName"] == "storageAccountName"
    assert host["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert host["AZURE_CLIENT_ID"] == "identityClientId"
    assert "APPLICATIONINSIGHTS_AUTHENTICATION_STRING" in host
    assert not any(k == "AzureWebJobsStorage" or k.endswith("ConnectionString") for k in host)


def test_app_insights_has_local_auth_disabled() -> None:
    doc = parse_bicep(INFRA / "modules" / "monitoring.bicep")
    props = body(doc["resources"]["appInsights"])["properties"]
    assert props["DisableLocalAuth"] is True
    assert props["WorkspaceResourceId"] == "workspaceResourceId"


def test_every_relay_setting_is_set() -> None:
    main = parse_bicep(INFRA / "main.bicep")["modules"]["functionApp"]["config"]["params"]["relaySettings"]
    host = parse_bicep(INFRA / "modules" / "functionapp.bicep")["variables"]["hostSettings"]["value"]
    assert set(RELAY_APP_SETTINGS) <= set(main) | set(host)
    defaults = parse_bicep(INFRA / "main.bicep")["parameters"]
    assert defaults["webhookSecretHeader"]["default"] == "X-Wallarm-Relay-Secret"
    assert defaults["hourlyCountSchedule"]["default"] == "0 0 * * * *"
    assert defaults["retryWorkerSchedule"]["default"] == "0 * * * * *"
    assert defaults["allowedSourceNetworks"]["default"] == ""


def test_relay_reads_every_setting_infra_sets() -> None:
    """Catches a rename on either side: each setting infra sets is read somewhere in the app."""
    sources = [ROOT / "function_app.py", *sorted((ROOT / "shared").rglob("*.py"))]
    code = "\n".join(p.read_text(encoding="utf-8") for p in sources if p.is_file())
    missing = [name for name in RELAY_APP_SETTINGS if name not in code]
    assert missing == []


# ---- outputs and API versions --------------------------------------------------------------


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_secret_like_outputs(path: Path) -> None:
    for name, output in parse_bicep(path).get("outputs", {}).items():
        assert not SECRET_LIKE.search(name), f"{path.name}: output {name}"
        assert not SECRET_LIKE.search(expr_text(output["value"])), f"{path.name}: output {name} value"
        assert not any("secure" in expr_text(d) for d in output.get("decorators", []))


def test_main_outputs_what_the_relay_and_operator_need() -> None:
    outputs = parse_bicep(INFRA / "main.bicep")["outputs"]
    required = {"LOGS_INGESTION_ENDPOINT", "LOGS_DCR_IMMUTABLE_ID", "LOGS_STREAM_NAME", "WEBHOOK_URL"}
    assert required <= set(outputs)
    assert outputs["WEBHOOK_URL"]["value"] == "https://${functionApp.outputs.defaultHostName}/api/wallarm"


def _all_resource_versions() -> list[tuple[str, str, str]]:
    found = []
    for path in BICEP_FILES:
        for name, resource in resources(parse_bicep(path)):
            found.append((f"{path.name}:{name}", resource["type"], resource["api_version"]))
    return found


def test_api_versions_not_older_than_floor() -> None:
    found = _all_resource_versions()
    assert len(found) > 20
    for where, rtype, version in found:
        if rtype in PREVIEW_ONLY:
            assert version == PREVIEW_ONLY[rtype], f"{where}: {rtype}@{version}"
            continue
        assert rtype in MIN_API_VERSION, f"{where}: add {rtype} to MIN_API_VERSION"
        assert api_date(version) >= MIN_API_VERSION[rtype], f"{where}: {rtype}@{version} is too old"


def test_api_version_floor_rejects_old_and_preview() -> None:
    assert api_date("2024-03-11") >= MIN_API_VERSION["Microsoft.Insights/dataCollectionRules"]
    assert api_date("2021-09-01") < MIN_API_VERSION["Microsoft.Insights/dataCollectionRules"]
    with pytest.raises(AssertionError):
        api_date("2023-02-01-preview")


# Site config keys a Flex Consumption app accepts (Microsoft's Flex samples set only these); ARM
# rejects others (ftpsState, remoteDebuggingEnabled, ...) with error 51021 in enforcing regions.
FLEX_SITE_CONFIG = {"minTlsVersion", "cors", "ipSecurityRestrictions", "ipSecurityRestrictionsDefaultAction"}


def test_flex_site_config_sets_only_flex_supported_keys() -> None:
    from infra.checks.bicep_model import Obj, bodies, parse_file

    app = parse_file(INFRA / "modules" / "functionapp.bicep")
    (site,) = [r for r in app.resources if r.type == "Microsoft.Web/sites"]
    (body,) = bodies(site.body)
    properties = body.get("properties")
    assert isinstance(properties, Obj)
    site_config = properties.get("siteConfig")
    assert isinstance(site_config, Obj)
    keys = {pair.key or "" for pair in site_config.pairs}
    assert keys <= FLEX_SITE_CONFIG, f"not supported on Flex Consumption: {sorted(keys - FLEX_SITE_CONFIG)}"


def test_developer_role_assignments_take_the_principal_type_from_a_parameter() -> None:
    for name in ("dcr.bicep", "storage.bicep"):
        text = (INFRA / "modules" / name).read_text()
        assert "principalType: 'User'" not in text, name
        assert "principalType: developerPrincipalType" in text, name


def test_infra_and_relay_know_the_same_cloud_audiences() -> None:
    from infra.checks.bicep_model import Lit, Obj, parse_file
    from shared.settings import INGESTION_AUDIENCES

    audiences = parse_file(INFRA / "main.bicep").variables["ingestionAudiences"]
    assert isinstance(audiences, Obj)
    in_bicep = {p.value.value for p in audiences.pairs if isinstance(p.value, Lit)}
    assert in_bicep == set(INGESTION_AUDIENCES.values())
