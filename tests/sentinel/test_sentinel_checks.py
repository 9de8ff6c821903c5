"""The ported Azure-Sentinel validators (.ci/sentinel_checks): 0 errors on sentinel/, and each
rule fails on a planted error with Microsoft's message.

Each planted test copies sentinel/ and pr_additions/ to a temporary folder, breaks one thing,
and runs the one validator that must catch it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from sentinel_checks import asim, connector, content, detection, kql, workbook
from sentinel_checks.__main__ import run
from sentinel_checks.core import ADDITIONS, ROOT, Finding, Solution

SENTINEL = ROOT / "sentinel"
CCF = "Data Connectors/Wallarm_ccf/connectorDefinition.json"
RULE = "Analytic Rules/WallarmAttacksExceeded.yaml"
VIM = "Parsers/vimWebSessionWallarm.yaml"
WB = "Workbooks/WallarmOverview.json"
META = "Workbooks/WorkbooksMetadata.json"


@pytest.fixture
def copy(tmp_path: Path) -> Solution:
    shutil.copytree(SENTINEL, tmp_path / "sentinel")
    shutil.copytree(ADDITIONS, tmp_path / "additions")
    return Solution(tmp_path / "sentinel", tmp_path / "additions")


def edit_json(path: Path, change: Callable[[Any], Any]) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    change(doc)  # edits in place (its return value is ignored)
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")


def edit_yaml(path: Path, change: Callable[[Any], Any]) -> None:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


def ui(doc: Any) -> Any:
    return doc["properties"]["connectorUiConfig"]


def messages(findings: list[Finding]) -> str:
    return "\n".join(f.message for f in findings if f.severity == "error")


def test_the_solution_passes_every_validator() -> None:
    findings, lines = run(Solution(SENTINEL))
    assert [str(f) for f in findings if f.severity == "error"] == []
    assert len(lines) == 6


# ---- data connector (dataConnectorValidator.ts, permissionsChecker.ts) -------------------------


def _rest_api_message() -> str:
    return "Provided permissions does not match with REST_API Template."


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: ui(d)["permissions"]["resourceProvider"][0]["requiredPermissions"].update(delete=True), _rest_api_message()),
        (lambda d: ui(d)["permissions"]["resourceProvider"][0].update(permissionsDisplayText="read and write permissions on the workspace are required."), _rest_api_message()),
        (lambda d: ui(d)["permissions"].update(customs=ui(d)["permissions"]["customs"][1:]), _rest_api_message()),
        (lambda d: ui(d).update(id="Wallarm Push"), "Id should not have spaces."),
        (lambda d: ui(d)["dataTypes"][0].update(name="Wallarm Sentinel_CL"), "Data Type should not have spaces."),
        (lambda d: ui(d)["instructionSteps"][0].update(description="[Deploy To Azure](https://aka.ms/x)"),
         "Provided permissions does not match with Azure Function Connector Template."),
        (lambda d: ui(d).pop("connectivityCriteria"), 'connectorUiConfig requires property "connectivityCriteria"'),
    ],
    ids=["delete", "wording", "no-logs-ingestion-custom", "id-space", "datatype-space", "azure-function-kind", "ccf-required"],
)  # fmt: skip
def test_connector_rules_fail_on_planted_errors(copy: Solution, change: Any, expected: str) -> None:
    edit_json(copy.root / CCF, change)
    assert expected in messages(connector.check(copy))


def test_classic_connector_page_gets_the_json_schema(copy: Solution) -> None:
    page = ui(json.loads((copy.root / CCF).read_text(encoding="utf-8")))
    page["connectivityCriterias"] = page.pop("connectivityCriteria")
    del page["availability"]
    (copy.root / "Data Connectors" / "Classic.json").write_text(json.dumps(page), encoding="utf-8")
    assert 'Invalid Schema. Validation errors: instance requires property "availability"' in messages(
        connector.check(copy)
    )


def test_connector_category_follows_microsoft() -> None:
    assert connector.connector_category([{"name": "X_CL"}], []) == "REST_API"
    assert connector.connector_category([{"name": "X_CL"}], [{"d": "[Deploy To Azure]"}]) == "Azure_Function"
    assert connector.connector_category([{"name": "CommonSecurityLog"}], []) == "CEF"
    assert connector.permission_problem({"resourceProvider": connector.CEF_REST_API}, "REST_API") is None


# ---- workbook template and metadata ------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "change", "expected"),
    [
        (WB, lambda d: d.update(fromTemplateId="sentinel-UserWorkbook"), 'Value for "fromTemplateId" must be other than "sentinel-UserWorkbook".'),
        (WB, lambda d: d.update(fromTemplateId="sentinel-Other"), 'not the workbook\'s own id "sentinel-WallarmOverview"'),
        (WB, lambda d: d["fallbackResourceIds"].append("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/x"),
         "A workbook template must not contain any references to resources."),
        (META, lambda d: d[0].update(previewImagesFileNames=["WallarmOverviewWhite.png"]),
         "Preview images must contain at least one white or light background image and one black or dark background image."),
        (META, lambda d: d[0].update(previewImagesFileNames=["WallarmOverviewBlack.jpg", "WallarmOverviewWhite.png"]),
         "All preview images must be png files"),
        (META, lambda d: d[0].update(previewImagesFileNames=["WallarmOverview1.png"]),
         'All preview image file names must include either "Black", "Dark", "White" or "Light"'),
        (META, lambda d: d[0].update(previewImagesFileNames=["NoneBlack.png", "WallarmOverviewWhite.png"]),
         "Can't locate preview image file NoneBlack.png under the Workbooks/Images/Preview directory"),
        (META, lambda d: d[0].update(logoFileName="missing.svg"), "Can't locate logo image file missing.svg"),
        (META, lambda d: d.append(dict(d[0])), "WorkbooksMetadata keys must be unique. Remove any duplicate keys."),
        (META, lambda d: d[0].update(colour="red"), 'instance[0] is not allowed to have the additional property "colour"'),
        (META, lambda d: d[0].pop("subtitle"), 'instance[0] requires property "subtitle"'),
        (META, lambda d: d[0].update(dataTypesDependencies=[""]), "does not meet minimum length of 1. Description: A value of a data type dependency can't be an empty string."),
        (META, lambda d: d.clear(), "no WorkbooksMetadata entry for this workbook template"),
    ],
    ids=["default-template-id", "not-own-id", "resource", "no-dark", "jpg", "no-colour", "no-preview-file", "no-logo",
         "duplicate-key", "extra-property", "missing-property", "empty-dependency", "no-entry"],
)  # fmt: skip
def test_workbook_rules_fail_on_planted_errors(
    copy: Solution, where: str, change: Any, expected: str
) -> None:
    edit_json(copy.additions / where if where == META else copy.root / where, change)
    assert expected in messages(workbook.check(copy))


# ---- detection schema and connector ids --------------------------------------------------------


def test_unlisted_connector_id_fails(copy: Solution) -> None:
    valid = copy.additions / ".script/tests/detectionTemplateSchemaValidation/ValidConnectorIds.json"
    valid.write_text("[]", encoding="utf-8")
    assert "doesn't have valid connectorIds:'WallarmPush'. If a new connector is used" in messages(
        detection.check(copy)
    )


def test_duplicate_template_id_and_non_yaml_fail(copy: Solution) -> None:
    first = yaml.safe_load((copy.root / RULE).read_text(encoding="utf-8"))["id"]
    edit_yaml(copy.root / "Analytic Rules/WallarmIntegrationBroken.yaml", lambda d: d.update(id=first))
    (copy.root / "Analytic Rules" / "notes.txt").write_text("x", encoding="utf-8")
    found = messages(detection.check(copy))
    assert f"There should not be 2 templates with the same ID, but the id {first} is duplicated." in found
    assert "All the files in detections folder are supposed to end with .yaml" in found


def test_rule_structure_fails(copy: Solution) -> None:
    edit_yaml(copy.root / RULE, lambda d: d.update(severity="Critical", tactics=["Hacking"]))
    found = messages(detection.check(copy))
    assert "severity 'Critical' not in" in found and "unknown tactic 'Hacking'" in found


# ---- KQL validation ----------------------------------------------------------------------------


def test_kql_fails_on_the_old_parser_default(copy: Solution) -> None:
    text = (copy.root / VIM).read_text(encoding="utf-8").replace("Default: '*'", "Default: \"'*'\"")
    (copy.root / VIM).write_text(text, encoding="utf-8")
    found = [f for f in kql.check(copy) if f.path == VIM]
    assert found, "''*'' must not compile"


def test_kql_needs_the_custom_table_and_functions(copy: Solution) -> None:
    folder = copy.additions / kql.KQL_TESTS
    (folder / "CustomTables" / "WallarmSentinel_CL.json").unlink()
    (folder / "CustomFunctions" / "WallarmEvents.json").unlink()
    edit_yaml(copy.root / RULE, lambda d: d.update(query=d["query"] + "\n| extend Typo = RemoteAdr"))
    found = kql.check(copy)
    paths = {f.path for f in found}
    assert f"{CCF}#0" in paths  # the connector page queries WallarmSentinel_CL: unknown table
    assert RULE in paths  # WallarmEvents unknown, and the typo


def test_custom_functions_match_the_parsers() -> None:
    """The CustomFunctions files are what the parsers return now (regenerate: PYTHONPATH=.ci python -m sentinel_checks.regenerate)."""
    solution = Solution(SENTINEL)
    for name in ("WallarmEvents", "vimWebSessionWallarm", "ASimWebSessionWallarm"):
        declared = json.loads((ADDITIONS / kql.KQL_TESTS / "CustomFunctions" / f"{name}.json").read_text())
        assert kql.declared_function(solution, SENTINEL / "Parsers" / f"{name}.yaml") == declared


# ---- non-ASCII, documentation links, branding, solution metadata, ID change --------------------


def test_content_rules_fail_on_planted_errors(copy: Solution) -> None:
    rule = copy.root / RULE
    rule.write_text(
        rule.read_text(encoding="utf-8").replace("description: |", "description: |\n  caf\u00e9 "),
        encoding="utf-8",
    )
    connector_file = copy.root / CCF
    edit_json(
        connector_file,
        lambda d: ui(d).update(
            descriptionMarkdown="Send to Sentinel, see https://docs.microsoft.com/en-us/azure/x"
        ),
    )
    edit_json(
        copy.root / "SolutionMetadata.json",
        lambda d: d.update(
            support={"name": "x", "tier": "Community", "email": "not-an-email"},
            categories={"domains": ["Security \u2013 Network"], "verticals": ["Gaming"]},
        ),
    )
    found = messages(content.check(copy))
    assert "$WallarmAttacksExceeded.yaml includes the non ascii char:\u00e9 string index:" in found
    assert f"Documentation links should not include locale: {CCF}, " in found
    assert "The string 'Sentinel' is invalid. It should be preceded by 'Microsoft' at index" in found
    assert "Invalid email format for support email: not-an-email" in found
    assert "Invalid domains: [Security \u2013 Network] verticals: [Gaming] provided." in found


def test_support_object_needs_a_contact() -> None:
    assert content.support_problem({"name": "x"}) == (
        'The support object must have either "email" or "link" field and the value should not be empty.'
    )
    assert (
        content.support_problem({"name": "x", "link": "ftp://x"})
        == "Invalid url format for support link: ftp://x"
    )


def test_id_change_is_caught_in_a_diff() -> None:
    old, new = "11111111-2222-3333-4444-555555555555", "aaaaaaaa-2222-3333-4444-555555555555"
    diff = f"--- a/x.yaml\n+++ b/x.yaml\n@@ -1 +1 @@\n-id: {old}\n+id: {new}\n"
    assert content.id_change_problem(diff, "x.yaml") is not None
    assert content.id_change_problem("--- a\n+++ b\n-name: a\n+name: b\n", "x.yaml") is None


# ---- ASIM schema and data testers --------------------------------------------------------------


def test_asim_schema_tester_reports_missing_mandatory_and_type_mismatch() -> None:
    table = asim.fields("WebSession")
    columns = {"EventCount": "long", "Src": "string"}
    results = asim.schema_results(columns, table)
    assert "(0) Error: Missing mandatory field [Dst]" in results
    assert (
        "(0) Error: type mismatch for column [EventCount]. It is currently long and should be int" in results
    )
    assert (
        "(0) Error: Missing field [DvcDomainType] is mandatory when field [DvcDomain] exists" not in results
    )


def test_asim_data_tester_needs_wallarm_in_the_vendor_list() -> None:
    row = {
        "EventVendor": "Wallarm",
        "EventProduct": "Wallarm",
        "SrcIpAddr": "300.1.1.1",
        "EventResult": "Success",
    }
    columns = dict.fromkeys(row, "string")
    plain = asim.data_results([row], columns, asim.fields("WebSession"))
    assert any("invalid value(s)" in r and "[EventVendor]" in r for r in plain)
    assert any("[SrcIpAddr] of type [IP Address]" in r for r in plain)
    added = asim.data_results(
        [row], columns, asim.fields("WebSession", asim.additions_csv(Solution(SENTINEL)))
    )
    assert not any("[EventVendor]" in r or "[EventProduct]" in r for r in added)
