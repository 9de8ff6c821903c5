"""sentinel/ as a Content Hub solution: schema checks (as Azure-Sentinel's CI does them), the
solution metadata, and main.bicep deploying exactly the YAML/JSON content (one source)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser
from sentinel_schema import (
    CONNECTOR_FILE,
    SENTINEL,
    SOLUTION_FILE,
    connector,
    connector_problems,
    duplicated_ids,
    duration,
    hunting_files,
    hunting_problems,
    load_yaml,
    parser_files,
    parser_problems,
    rule_files,
    rule_problems,
)

MAIN_BICEP = SENTINEL / "main.bicep"


def rel(path: Path) -> str:
    return path.relative_to(SENTINEL).as_posix()


# ---- schema checks ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", rule_files(), ids=lambda p: p.stem)
def test_analytic_rule_schema(path: Path) -> None:
    assert rule_problems(load_yaml(path)) == []


@pytest.mark.parametrize("path", hunting_files(), ids=lambda p: p.stem)
def test_hunting_query_schema(path: Path) -> None:
    assert hunting_problems(load_yaml(path)) == []


@pytest.mark.parametrize("path", parser_files(), ids=lambda p: p.stem)
def test_parser_schema(path: Path) -> None:
    assert parser_problems(load_yaml(path)) == []


def test_connector_schema() -> None:
    assert connector_problems(connector()) == []


def test_ids_are_unique() -> None:
    docs = [load_yaml(p) for p in [*rule_files(), *hunting_files(), *parser_files()]]
    assert duplicated_ids(docs) == []


def test_rules_cover_the_issue_list() -> None:
    names = sorted(load_yaml(p)["name"] for p in rule_files())
    assert len(names) == 8
    queries = "\n".join(load_yaml(p)["query"] for p in rule_files())
    for event_type in (
        "new_hits",
        "attacks_exceeded",
        "ip_blocked",
        "api_structure_changed",
        "create_user",
        "update_user",
        "delete_integration",
        "integration_broken",
        "relay_hourly_stats",
    ):
        assert f'"{event_type}"' in queries, event_type


def _broken(doc: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out.update(changes)
    return out


def test_schema_checks_reject_bad_rules() -> None:
    """The checks catch what Azure-Sentinel's validation catches (each mutation fails alone)."""
    good = load_yaml(rule_files()[0])

    def ip(identifier: str = "Address", column: str = "RemoteAddr") -> list[dict[str, Any]]:
        return [{"entityType": "IP", "fieldMappings": [{"identifier": identifier, "columnName": column}]}]

    cases = {
        "unknown tactic": _broken(good, tactics=["Recon"]),
        "belongs to none of the tactics": _broken(good, tactics=["Impact"], relevantTechniques=["T1190"]),
        "is not T####": _broken(good, relevantTechniques=["1190"]),
        "no tactics": _broken(good, tactics=[]),
        "unknown entity type": _broken(good, entityMappings=[{"entityType": "Ip", "fieldMappings": []}]),
        "not allowed": _broken(good, entityMappings=ip("Ip")),
        "does not appear in the query": _broken(good, entityMappings=ip(column="SrcIp")),
        "query must be": _broken(good, query="x" * 10_001),
        "queryPeriod is shorter": _broken(good, queryFrequency="1h", queryPeriod="30m"),
        "queryFrequency must be": _broken(good, queryFrequency="PT1H"),
        "severity": _broken(good, severity="Critical"),
        "triggerOperator": _broken(good, triggerOperator="GreaterThan"),
        "id is not": _broken(good, id="rule-1"),
        "missing kind": {k: v for k, v in good.items() if k != "kind"},
        "requiredDataConnectors names": _broken(good, requiredDataConnectors=[{"connectorId": "X"}]),
        "1 to 5 mappings": _broken(good, entityMappings=ip() * 6),
    }
    for expected, doc in cases.items():
        problems = rule_problems(doc)
        assert any(expected in p for p in problems), (expected, problems)


# ---- solution metadata ------------------------------------------------------------------------


def test_solution_data_file_lists_every_content_file() -> None:
    solution = json.loads(SOLUTION_FILE.read_text(encoding="utf-8"))
    listed = {
        key: sorted(solution[key])
        for key in ("Analytic Rules", "Hunting Queries", "Parsers", "Workbooks", "Data Connectors")
    }
    assert listed["Analytic Rules"] == [rel(p) for p in rule_files()]
    assert listed["Hunting Queries"] == [rel(p) for p in hunting_files()]
    assert listed["Parsers"] == sorted(rel(p) for p in (SENTINEL / "Parsers").glob("*.yaml"))
    assert listed["Workbooks"] == sorted(rel(p) for p in (SENTINEL / "Workbooks").glob("*.json"))
    assert listed["Data Connectors"] == [rel(CONNECTOR_FILE)]
    assert (SENTINEL / solution["Metadata"]).is_file()
    assert re.fullmatch(r"\d+\.\d+\.\d+", solution["Version"])
    assert solution["Name"] and solution["Author"] and solution["Description"]


def test_solution_metadata_and_release_notes() -> None:
    solution = json.loads(SOLUTION_FILE.read_text(encoding="utf-8"))
    meta = json.loads((SENTINEL / solution["Metadata"]).read_text(encoding="utf-8"))
    for key in ("publisherId", "offerId", "firstPublishDate", "providers", "categories", "support"):
        assert meta.get(key), key
    notes = (SENTINEL / "ReleaseNotes.md").read_text(encoding="utf-8")
    assert f"| {solution['Version']} " in notes


def test_workbook_has_workspace_parameter() -> None:
    workbook = json.loads((SENTINEL / "Workbooks" / "WallarmOverview.json").read_text(encoding="utf-8"))
    params = next(i for i in workbook["items"] if i["type"] == 9)["content"]["parameters"]
    workspace = next(p for p in params if p["name"] == "Workspace")
    assert workspace["type"] == 5 and workspace["isRequired"]
    workspaces_only = {"microsoft.operationalinsights/workspaces": True}
    assert workspace["typeSettings"]["resourceTypeFilter"] == workspaces_only
    queries = [i["content"] for i in workbook["items"] if i["type"] == 3]
    assert queries and all(q["crossComponentResources"] == ["{Workspace}"] for q in queries)


# ---- main.bicep deploys the same content (no second copy) -------------------------------------


def bicep() -> dict[str, Any]:
    doc: dict[str, Any] = dict(BicepParser().parse(file_path=MAIN_BICEP))
    return doc


def body(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource's body, below any loop or condition wrapper."""
    config: dict[str, Any] = resource["config"]
    while "properties" not in config and isinstance(config.get("config"), dict):
        config = config["config"]
    return config


def loaded_files(node: Any) -> list[str]:
    """Every file a load*Content function reads, anywhere in the parse tree."""
    found: list[str] = []
    if isinstance(node, dict):
        function = node.get("function")
        if isinstance(function, dict) and str(function.get("type", "")).startswith("load_"):
            found.append(function["parameters"]["file_path"])
        for value in node.values():
            found += loaded_files(value)
    elif isinstance(node, list):
        for value in node:
            found += loaded_files(value)
    return found


def accessor(node: Any) -> str:
    """`rule.query`-style text of a pycep property accessor (other nodes as JSON)."""
    if isinstance(node, dict) and "operator" in node and node["operator"]["type"] == "property_accessor":
        ops = node["operator"]["operands"]
        return f"{accessor(ops['operand_1'])}.{ops['operand_2']}"
    return node if isinstance(node, str) else json.dumps(node, sort_keys=True)


def test_main_bicep_loads_every_content_file() -> None:
    loaded = set(loaded_files(bicep()))
    expected = {rel(p) for p in [*rule_files(), *hunting_files(), *parser_files()]}
    expected |= {rel(CONNECTOR_FILE), "Workbooks/WallarmOverview.json"}
    assert loaded == expected


def test_main_bicep_spells_out_no_content() -> None:
    text = re.sub(r"//.*", "", MAIN_BICEP.read_text(encoding="utf-8"))
    assert not re.search(r"\|\s*(where|extend|summarize|project)\b", text), "a query is written in main.bicep"
    for literal in ("InitialAccess", "'High'", "'Medium'", "columnName", "PT15M", "Reconnaissance"):
        assert literal not in text, literal


def test_rule_properties_come_from_the_yaml() -> None:
    """Query, frequency, period, severity, tactics, techniques and entities are read from each YAML."""
    rules = bicep()["resources"]["rules"]
    props = body(rules)["properties"]
    assert rules["config"]["loop_type"]["detail"]["item_name"] == "rule"
    for arm, yaml_key in {
        "displayName": "name",
        "description": "description",
        "severity": "severity",
        "query": "query",
        "tactics": "tactics",
        "techniques": "relevantTechniques",
        "entityMappings": "entityMappings",
        "eventGroupingSettings": "eventGroupingSettings",
        "triggerThreshold": "triggerThreshold",
        "templateVersion": "version",
    }.items():
        assert accessor(props[arm]) == f"rule.{yaml_key}", arm
    for arm in ("queryFrequency", "queryPeriod", "triggerOperator"):
        assert f'"operand_2": "{arm}"' in json.dumps(props[arm]), arm


def iso_duration(text: str) -> str:
    """What main.bicep's expression makes of a YAML duration (`15m` -> `PT15M`, `1d` -> `P1D`)."""
    return f"P{text.upper()}" if text.endswith("d") else f"PT{text.upper()}"


def test_rule_durations_convert_to_iso8601() -> None:
    for path in rule_files():
        doc = load_yaml(path)
        for key in ("queryFrequency", "queryPeriod"):
            converted = iso_duration(doc[key])
            assert re.fullmatch(r"P\d+D|PT\d+[HM]", converted), (path.name, converted)
            assert duration(doc[key]) is not None


def _bicep_strings() -> dict[str, str]:
    """The string variables of main.bicep with ${var} interpolation resolved."""
    raw = {k: v["value"] for k, v in bicep()["variables"].items() if isinstance(v["value"], str)}

    def resolve(text: str) -> str:
        return re.sub(r"\$\{(\w+)\}", lambda m: resolve(raw[m[1]]), text).replace("\\'", "'")

    return {k: resolve(v) for k, v in raw.items()}


def render_params(doc: dict[str, Any]) -> str:
    """FunctionParams as the solution packager renders them: a string default is quoted."""

    def default(p: dict[str, Any]) -> str:
        return f"'{p['Default']}'" if p["Type"] == "string" else str(p["Default"])

    return ", ".join(f"{p['Name']}:{p['Type']}={default(p)}" for p in doc.get("FunctionParams") or [])


def test_parser_parameters_match_the_yaml() -> None:
    """The only literals in main.bicep (functionParameters) equal the YAML FunctionParams."""
    strings = _bicep_strings()
    resources = bicep()["resources"]
    checked = 0
    for resource in resources.values():
        props = body(resource).get("properties", {})
        if "functionAlias" not in props:
            continue
        source = accessor(props["query"]).split(".")[0]
        yaml_file = {
            v: loaded_files(d)[0] for v, d in bicep()["variables"].items() if loaded_files(d) and v == source
        }[source]
        expected = render_params(load_yaml(SENTINEL / yaml_file))
        actual = strings.get(str(props.get("functionParameters", "")), "")
        assert actual == expected, yaml_file
        checked += 1
    assert checked == 5


def test_data_connector_page_maps_the_connector_json() -> None:
    page = bicep()["resources"]["dataConnectorPage"]
    assert page["type"] == "Microsoft.SecurityInsights/dataConnectorDefinitions"
    ui = body(page)["properties"]["connectorUiConfig"]
    assert accessor(ui["connectivityCriteria"]) == "connector.connectivityCriteria"
    for key in ("title", "publisher", "descriptionMarkdown", "graphQueries", "sampleQueries", "dataTypes"):
        assert accessor(ui[key]) == f"connector.{key}"
    for key in ("availability", "permissions", "instructionSteps", "id"):
        assert accessor(ui[key]) == f"connector.{key}"


ASIM_WEB_SESSION_PARAMETERS = (
    "starttime",
    "endtime",
    "srcipaddr_has_any_prefix",
    "ipaddr_has_any_prefix",
    "url_has_any",
    "httpuseragent_has_any",
    "eventresultdetails_in",
    "eventresult",
    "disabled",
)


def test_asim_parsers_take_the_standard_parameters_and_are_registered() -> None:
    """_Im_WebSession calls Im_WebSessionCustom with these names; it must pass them all to ours."""
    vim = load_yaml(SENTINEL / "Parsers" / "vimWebSessionWallarm.yaml")
    names = [p["Name"] for p in vim["FunctionParams"]]
    assert set(ASIM_WEB_SESSION_PARAMETERS) <= set(names) and "pack" in names
    assert [
        p["Name"] for p in load_yaml(SENTINEL / "Parsers" / "ASimWebSessionWallarm.yaml")["FunctionParams"]
    ] == [
        "disabled",
        "pack",
    ]
    custom = load_yaml(SENTINEL / "asim" / "Im_WebSessionCustom.yaml")
    assert {p["Name"] for p in custom["FunctionParams"]} >= set(ASIM_WEB_SESSION_PARAMETERS)
    call = custom["FunctionQuery"].split("vimWebSessionWallarm(", 1)[1].split(")", 1)[0]
    assert set(re.findall(r"(\w+)=\1\b", call)) >= set(ASIM_WEB_SESSION_PARAMETERS)
    assert (
        "ASimWebSessionWallarm("
        in load_yaml(SENTINEL / "asim" / "ASim_WebSessionCustom.yaml")["FunctionQuery"]
    )
    text = MAIN_BICEP.read_text(encoding="utf-8")
    assert "param registerAsimCustomParsers bool" in text
