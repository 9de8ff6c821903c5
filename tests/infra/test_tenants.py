"""Several tenants in infra/ (issue 22, docs/TENANTS.md): destinations, alerts and workbooks per tenant.

No Bicep compiler runs here, so the expressions that decide which DCR gets its role from the
deployment, and which gets a printed `az role assignment create` line, are evaluated from pycep's
parse tree by a small interpreter of the few Bicep functions they use. The tests therefore run
the template's own expressions, not a copy of their logic.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

from infra.checks.kql_check import build_contexts, discover, result_columns

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
KEY_VAULT_SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
DESTINATION_KEYS = {"name", "dcrResourceId", "dceResourceId"}

RELAY_SUBSCRIPTION = "11111111-1111-1111-1111-111111111111"
OTHER_SUBSCRIPTION = "22222222-2222-2222-2222-222222222222"
RELAY_PRINCIPAL = "33333333-3333-3333-3333-333333333333"


def dcr_id(subscription: str, group: str, name: str) -> str:
    return (
        f"/subscriptions/{subscription}/resourceGroups/{group}"
        f"/providers/Microsoft.Insights/dataCollectionRules/{name}"
    )


SAME_SUB = {"name": "contoso", "dcrResourceId": dcr_id(RELAY_SUBSCRIPTION.upper(), "rg-contoso", "dcr-c")}
OTHER_SUB = {"name": "fabrikam", "dcrResourceId": dcr_id(OTHER_SUBSCRIPTION, "rg-fab", "dcr-f")}
WITH_DCE = {
    "name": "tailspin",
    "dcrResourceId": dcr_id(RELAY_SUBSCRIPTION, "rg-tail", "dcr-t"),
    "dceResourceId": f"/subscriptions/{RELAY_SUBSCRIPTION}/resourceGroups/rg-net"
    "/providers/Microsoft.Insights/dataCollectionEndpoints/dce-t",
}


def parse_bicep(path: Path) -> dict[str, Any]:
    return dict(BicepParser().parse(file_path=path))


@pytest.fixture(scope="module")
def main() -> dict[str, Any]:
    return parse_bicep(INFRA / "main.bicep")


# ---- a tiny interpreter of pycep's expression tree --------------------------------------------

_HOLE = re.compile(r"\$\{([A-Za-z_][\w.]*)\}")


class Bicep:
    """Evaluates main.bicep's variables and outputs for given parameters and deployment values."""

    def __init__(self, doc: Mapping[str, Any], names: Mapping[str, Any]) -> None:
        self.doc = doc
        self.names = dict(names)

    def variable(self, name: str) -> Any:
        if name not in self.names:
            self.names[name] = self.value(self.doc["variables"][name]["value"], {})
        return self.names[name]

    def lookup(self, name: str, scope: Mapping[str, Any]) -> Any:
        if name in scope:
            return scope[name]
        if name in self.names or name in self.doc.get("variables", {}):
            return self.variable(name)
        raise KeyError(name)

    def dotted(self, path: str, scope: Mapping[str, Any]) -> Any:
        head, *rest = path.split(".")
        value = self.lookup(head, scope)
        for part in rest:
            value = value[part]
        return value

    def text(self, literal: str, scope: Mapping[str, Any]) -> str:
        literal = literal.replace("\\n", "\n").replace("\\'", "'")
        return _HOLE.sub(lambda m: str(self.dotted(m[1], scope)), literal)

    def value(self, node: Any, scope: Mapping[str, Any]) -> Any:
        if isinstance(node, str):
            try:
                return self.lookup(node, scope)
            except KeyError:
                return self.text(node, scope)
        if isinstance(node, (int, bool)) or node is None:
            return node
        if isinstance(node, list):
            return [self.value(item, scope) for item in node]
        if "loop_type" in node:
            detail = node["loop_type"]["detail"]
            items = self.lookup(detail["array_name"], scope)
            return [self.value(node["config"], {**scope, detail["item_name"]: item}) for item in items]
        if "operator" in node:
            return self.operator(node["operator"], scope)
        if "function" in node:
            return self.function(node["function"], scope)
        return {key: self.value(item, scope) for key, item in node.items()}

    def operator(self, op: Mapping[str, Any], scope: Mapping[str, Any]) -> Any:
        kind, args = op["type"], op["operands"]
        if kind == "property_accessor":
            return self.value(args["operand_1"], scope)[args["operand_2"]]
        if kind == "index_accessor":
            return self.value(args["operand_1"], scope)[self.value(args["operand_2"], scope)]
        if kind == "equals":
            return self.value(args["operand_1"], scope) == self.value(args["operand_2"], scope)
        if kind == "conditional":
            branch = "true_value" if self.value(args["condition"], scope) else "false_value"
            return self.value(args[branch], scope)
        raise NotImplementedError(kind)

    def function(self, fn: Mapping[str, Any], scope: Mapping[str, Any]) -> Any:
        kind, args = fn["type"], fn["parameters"]
        if kind == "split":
            return str(self.value(args["input_string"], scope)).split(self.value(args["delimiter"], scope))
        if kind == "to_lower":
            return str(self.value(args["string_to_change"], scope)).lower()
        if kind == "join":
            return self.value(args["delimiter"], scope).join(self.value(args["input_array"], scope))
        if kind == "contains":
            return args["item_to_find"] in self.value(args["container"], scope)
        if kind == "subscription":
            return {"subscriptionId": self.names["subscription().subscriptionId"]}
        if kind == "filter":
            detail = args["expression"]["detail"]
            items = self.value(args["input_array"], scope)
            return [i for i in items if self.value(detail["expression"], {**scope, detail["var_1"]: i})]
        raise NotImplementedError(kind)


def deploy(main: dict[str, Any], destinations: list[dict[str, str]]) -> Bicep:
    return Bicep(
        main,
        {
            "destinations": destinations,
            "subscription().subscriptionId": RELAY_SUBSCRIPTION,
            "identity": {"outputs": {"principalId": RELAY_PRINCIPAL}},
        },
    )


def module_deployments(main: dict[str, Any], bicep: Bicep) -> list[dict[str, Any]]:
    """The destinationRoles module instances: scope (subscription, group) and params, per item."""
    module = main["modules"]["destinationRoles"]["config"]
    detail = module["loop_type"]["detail"]
    out = []
    for item in bicep.lookup(detail["array_name"], {}):
        scope = {detail["item_name"]: item}
        rg = module["config"]["scope"]["function"]["parameters"]
        params = {k: v for k, v in module["config"]["params"].items() if k != "relayPrincipalId"}
        out.append(
            {
                "subscription": bicep.value(rg["subscription_id"], scope),
                "resourceGroup": bicep.value(rg["resource_group_name"], scope),
                "name": bicep.value(module["config"]["name"].split("-${take")[0], scope),
                **{k: bicep.value(v, scope) for k, v in params.items()},
            }
        )
    return out


# ---- the role on each DCR in this subscription ------------------------------------------------


def test_no_destinations_grants_nothing_and_prints_nothing(main: dict[str, Any]) -> None:
    assert main["parameters"]["destinations"]["type"] == "array"
    assert main["parameters"]["destinations"]["default"] == []
    bicep = deploy(main, [])
    assert module_deployments(main, bicep) == []
    assert bicep.value(main["outputs"]["DESTINATION_ROLE_COMMANDS"]["value"], {}) == ""
    assert bicep.value(main["outputs"]["DESTINATION_ROLES"]["value"], {}) == []


def test_each_same_subscription_dcr_gets_the_role_at_its_own_resource_group(main: dict[str, Any]) -> None:
    bicep = deploy(main, [SAME_SUB, OTHER_SUB, WITH_DCE])
    assert module_deployments(main, bicep) == [
        {
            "subscription": RELAY_SUBSCRIPTION.upper(),
            "resourceGroup": "rg-contoso",
            "name": "dest-role-contoso",
            "tenantName": "contoso",
            "dcrResourceId": SAME_SUB["dcrResourceId"],
            "dceResourceId": "",
        },
        {
            "subscription": RELAY_SUBSCRIPTION,
            "resourceGroup": "rg-tail",
            "name": "dest-role-tailspin",
            "tenantName": "tailspin",
            "dcrResourceId": WITH_DCE["dcrResourceId"],
            "dceResourceId": WITH_DCE["dceResourceId"],
        },
    ]
    params = main["modules"]["destinationRoles"]["config"]["config"]["params"]
    principal = json.dumps(params["relayPrincipalId"])
    assert all(f'"{part}"' in principal for part in ("identity", "outputs", "principalId"))
    # The same DCRs get their own rows-dropped alert.
    alert_dcrs = main["modules"]["alerts"]["config"]["params"]["destinationDcrs"]
    assert alert_dcrs["loop_type"]["detail"]["array_name"] == "sameSubscriptionDestinations"


def test_the_module_assigns_monitoring_metrics_publisher_on_the_dcr_with_a_stable_name() -> None:
    doc = parse_bicep(INFRA / "modules" / "destination-role.bicep")
    assert doc["variables"]["monitoringMetricsPublisherRoleId"]["value"] == MONITORING_METRICS_PUBLISHER
    dcr = doc["resources"]["dcr"]
    assert dcr["type"] == "Microsoft.Insights/dataCollectionRules"
    assert dcr["existing"] is True
    assignment = doc["resources"]["relayPublisher"]
    assert assignment["type"] == "Microsoft.Authorization/roleAssignments"
    config = assignment["config"]
    assert config["scope"] == "dcr"
    assert config["properties"]["principalId"] == "relayPrincipalId"
    assert config["properties"]["principalType"] == "ServicePrincipal"
    guid = config["name"]["function"]
    assert guid["type"] == "guid"
    assert guid["parameters"]["base_string"]["operator"]["operands"] == {
        "operand_1": "dcr",
        "operand_2": "id",
    }
    assert guid["parameters"]["extra_string_1"] == "relayPrincipalId"
    assert guid["parameters"]["extra_string_2"] == "monitoringMetricsPublisherRoleId"


# ---- the printed role assignment for the others -----------------------------------------------


def test_other_subscriptions_get_the_exact_az_command(main: dict[str, Any]) -> None:
    other_tenant = {
        "name": "woodgrove",
        "dcrResourceId": dcr_id("44444444-4444-4444-4444-444444444444", "rg", "d"),
    }
    bicep = deploy(main, [SAME_SUB, OTHER_SUB, WITH_DCE, other_tenant])
    commands = bicep.value(main["outputs"]["DESTINATION_ROLE_COMMANDS"]["value"], {})
    assert commands.splitlines() == [
        f"az role assignment create --assignee-object-id {RELAY_PRINCIPAL} --assignee-principal-type "
        f'ServicePrincipal --role "Monitoring Metrics Publisher" --scope {d["dcrResourceId"]}'
        for d in (OTHER_SUB, other_tenant)
    ]
    roles = bicep.value(main["outputs"]["DESTINATION_ROLES"]["value"], {})
    assert [(r["name"], r["roleAssignedByDeployment"]) for r in roles] == [
        ("contoso", True),
        ("fabrikam", False),
        ("tailspin", True),
        ("woodgrove", False),
    ]
    principal = json.dumps(main["outputs"]["RELAY_PRINCIPAL_ID"]["value"])
    assert all(f'"{part}"' in principal for part in ("identity", "outputs", "principalId"))


# ---- no secrets in the parameters; tenants are data, not settings -----------------------------


def test_a_destination_is_read_for_its_name_and_resource_ids_only() -> None:
    text = (INFRA / "main.bicep").read_text(encoding="utf-8")
    read = set(re.findall(r"\b(?:destination|d)\.(\w+)", text))
    read |= set(re.findall(r"contains\(destination, '(\w+)'\)", text))
    assert read == DESTINATION_KEYS
    assert "@secure" not in (INFRA / "modules" / "destination-role.bicep").read_text(encoding="utf-8")


def test_no_parameter_but_the_two_secure_ones_carries_a_secret(main: dict[str, Any]) -> None:
    secure = {
        name
        for name, param in main["parameters"].items()
        if any(d.get("type") == "secure" for d in param.get("decorators", []))
    }
    assert secure == {"webhookSharedSecret", "wallarmApiToken"}
    secret_like = re.compile(r"secret|token|password|certificate|clientsecret|key$", re.IGNORECASE)
    plain = [n for n in main["parameters"] if secret_like.search(n) and n not in secure]
    assert plain == ["webhookSecretKeyVaultUri", "webhookSecretHeader"]  # a reference and a header name
    params = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert "destinations" not in params  # azd: the default [] unless the operator adds a list


def test_tenants_add_no_app_setting(main: dict[str, Any]) -> None:
    settings = main["modules"]["functionApp"]["config"]["params"]["relaySettings"]
    assert not [name for name in settings if "TENANT" in name or "DESTINATION" in name]


def test_the_relay_reads_tenant_secret_references_and_nobody_is_made_officer() -> None:
    vault = parse_bicep(INFRA / "modules" / "keyvault.bicep")
    assert vault["variables"]["keyVaultSecretsUserRoleId"]["value"] == KEY_VAULT_SECRETS_USER
    assert vault["resources"]["secretsUser"]["config"]["scope"] == "vault"
    for path in INFRA.rglob("*.bicep"):
        assert KEY_VAULT_SECRETS_OFFICER not in path.read_text(encoding="utf-8"), path.name


# ---- alerts per tenant ------------------------------------------------------------------------


def test_every_log_alert_returns_a_tenant_column_and_splits_on_it() -> None:
    alerts_path = INFRA / "modules" / "alerts.bicep"
    alerts = parse_bicep(alerts_path)
    kind = "Microsoft.Insights/scheduledQueryRules"
    rules = [r["config"] for r in alerts["resources"].values() if r["type"] == kind]
    assert len(rules) == 4
    for rule in rules:
        [criterion] = rule["properties"]["criteria"]["allOf"]
        assert criterion["dimensions"] == "tenantDimensions"
    [dimension] = alerts["variables"]["tenantDimensions"]["value"]
    assert dimension == {"name": "tenant", "operator": "Include", "values": "alertTenants"}
    assert alerts["parameters"]["alertTenants"]["default"] == ["*"]

    found = discover([alerts_path])
    columns = result_columns(found.queries, build_contexts(found.functions))
    assert len(columns) == len(rules)
    assert all("tenant" in c for c in columns), columns


# ---- workbooks per tenant ---------------------------------------------------------------------


def _parameter(workbook: dict[str, Any], name: str) -> dict[str, Any]:
    [item] = [i for i in workbook["items"] if i["type"] == 9]
    [param] = [p for p in item["content"]["parameters"] if p["name"] == name]
    return param


def test_the_health_workbook_has_a_tenant_dropdown_applied_to_every_query() -> None:
    workbook = json.loads((INFRA / "workbooks" / "relay-health.json").read_text(encoding="utf-8"))
    tenant = _parameter(workbook, "Tenant")
    assert (tenant["type"], tenant["multiSelect"], tenant["defaultValue"]) == (2, True, "value::all")
    assert tenant["typeSettings"]["selectAllValue"] == "*"
    assert 'customDimensions["tenant"]' in tenant["query"]
    queries = [i["content"]["query"] for i in workbook["items"] if i["type"] == 3]
    assert len(queries) >= 5
    for query in queries:
        assert 'coalesce(tostring(customDimensions["tenant"]), "default")' in query
        assert "| where '*' in ({Tenant}) or tenant in ({Tenant})" in query
        assert "by tenant" in query
    module = parse_bicep(INFRA / "modules" / "workbook.bicep")
    config = module["resources"]["workbook"]["config"]
    assert config["properties"]["sourceId"] == "appInsightsId"
    assert "healthWorkbook" in parse_bicep(INFRA / "main.bicep")["modules"]


def test_the_sentinel_workbook_filters_every_query_by_tenant_client_name() -> None:
    path = ROOT / "sentinel" / "Workbooks" / "WallarmOverview.json"
    workbook = json.loads(path.read_text(encoding="utf-8"))
    tenant = _parameter(workbook, "Tenant")
    assert "ClientName" in tenant["query"] and tenant["typeSettings"]["selectAllValue"] == "*"
    for item in workbook["items"]:
        if item["type"] == 3:
            assert "| where '*' in ({Tenant}) or ClientName in ({Tenant})" in item["content"]["query"]
