"""Both offline checkers pass on the repository and catch errors planted in copies of its files.

The Bicep check (infra/checks/bicep_types.py) reads Microsoft's generated types; the KQL check
(infra/checks/kql_check.py) runs Microsoft's Kusto.Language under node. Each planted error is a
one-line edit of a copy; the test asserts the checker names that file and line.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.checks.bicep_types import Report, check_bicep
from infra.checks.kql_check import KqlReport, check_kql

ROOT = Path(__file__).resolve().parents[2]


def copy_repo(dest: Path) -> Path:
    for folder in ("infra", "sentinel"):
        shutil.copytree(ROOT / folder, dest / folder, ignore=shutil.ignore_patterns("types", "__pycache__"))
    (dest / "shared").mkdir()
    shutil.copy(ROOT / "shared" / "schema.json", dest / "shared" / "schema.json")
    return dest


def plant(path: Path, old: str, new: str) -> int:
    """Replace the first `old` in `path` with `new`; return the line it is on."""
    text = path.read_text()
    assert old in text, f"{path.name}: {old!r} not found"
    index = text.index(old)
    path.write_text(text[:index] + new + text[index + len(old) :])
    return text.count("\n", 0, index) + 1


def assert_reported(report: Report | KqlReport, expected: dict[tuple[str, int], str]) -> None:
    """Each (file, line) has a finding containing its message."""
    items = report.findings if isinstance(report, Report) else report.problems
    for (file, line), message in expected.items():
        found = [str(i) for i in items if i.file == file and i.line == line]
        assert any(message in f for f in found), f"{file}:{line} expected {message!r}, got {found}"


@pytest.fixture(scope="module")
def bicep_report() -> Report:
    return check_bicep()


@pytest.fixture(scope="module")
def kql_report() -> KqlReport:
    return check_kql()


@pytest.fixture
def repo_copy(tmp_path: Path) -> Iterator[Path]:
    yield copy_repo(tmp_path)


def test_bicep_check_passes_on_the_repository(bicep_report: Report) -> None:
    assert [str(f) for f in bicep_report.findings] == []
    assert bicep_report.resources >= 39
    assert bicep_report.properties >= 450


def test_kql_check_passes_on_the_repository(kql_report: KqlReport) -> None:
    assert [str(p) for p in kql_report.problems] == []
    assert kql_report.queries >= 16


def test_bicep_check_catches_planted_errors(repo_copy: Path) -> None:
    storage = repo_copy / "infra" / "modules" / "storage.bicep"
    alerts = repo_copy / "infra" / "modules" / "alerts.bicep"
    sentinel = repo_copy / "sentinel" / "main.bicep"
    main = repo_copy / "infra" / "main.bicep"
    params = repo_copy / "infra" / "main.parameters.json"
    misspelled = plant(storage, "allowBlobPublicAccess: false", "allowBlobPublicAcess: false")
    wrong_enum = plant(storage, "publicAccess: 'None'", "publicAccess: 'Private'")
    read_only = plant(storage, "accessTier: 'Hot'", "primaryEndpoints: {}")
    wrong_case = plant(alerts, "autoMitigate: false", "AutoMitigate: false")
    rule_enum = plant(sentinel, "kind: 'Scheduled'", "kind: 'Everything'")
    nesting = plant(alerts, "windowSize: 'PT15M'", "failingPeriods: 'PT15M'")
    fixed_name = plant(main, "name: 'identity-${resourceToken}'", "name: 'identity'")
    unknown_param = plant(
        main, "    tags: tags\n    deploymentContainerName", "    tag: tags\n    deploymentContainerName"
    )
    unknown_output = plant(main, "storage.outputs.tableEndpoint", "storage.outputs.tableUrl")
    stray_param = plant(params, '"alertEmail"', '"alertMail"')
    dcr = repo_copy / "infra" / "modules" / "dcr.bicep"
    bad_read = plant(dcr, "dcr.properties.immutableId", "dcr.properties.immutableID")
    bad_parent = plant(storage, "parent: blobService", "parent: storage")
    monitoring = repo_copy / "infra" / "modules" / "monitoring.bicep"
    missing_required = plant(monitoring, "    principalId: relayPrincipalId\n", "")

    report = check_bicep(root=repo_copy)

    expected = {
        ("infra/modules/storage.bicep", misspelled): "did you mean 'allowBlobPublicAccess'",
        ("infra/modules/storage.bicep", wrong_enum): "'Private' is not one of",
        ("infra/modules/storage.bicep", read_only): "primaryEndpoints is read-only",
        ("infra/modules/alerts.bicep", wrong_case): "wrong case, the property is 'autoMitigate'",
        ("sentinel/main.bicep", rule_enum): "kind 'Everything' is not one of",
        (
            "infra/modules/alerts.bicep",
            nesting,
        ): "failingPeriods is not a property of ScheduledQueryRuleProperties",
        ("infra/main.bicep", fixed_name - 1): "fixed deployment name 'identity'",
        ("infra/main.bicep", unknown_param): "has no parameter 'tag'",
        ("infra/main.bicep", unknown_output): "has no output 'tableUrl'",
        ("infra/main.parameters.json", stray_param): "'alertMail' is not a parameter",
        ("infra/modules/dcr.bicep", bad_read): "wrong case, the property is 'immutableId'",
        ("infra/modules/storage.bicep", bad_parent): "parent storage is Microsoft.Storage/storageAccounts",
    }
    assert_reported(report, expected)
    missing = [str(f) for f in report.findings if f.file == "infra/modules/monitoring.bicep"]
    assert missing == [
        f"infra/modules/monitoring.bicep:{missing_required - 2}: "
        "relayPublisher.properties: required property 'principalId' is missing"
    ]


@pytest.mark.slow
def test_kql_check_catches_planted_errors(repo_copy: Path) -> None:
    hunting = repo_copy / "sentinel" / "Hunting Queries" / "WallarmHighSeverityEvents.yaml"
    parser = repo_copy / "sentinel" / "Parsers" / "vimWebSessionWallarm.yaml"
    workbook = repo_copy / "sentinel" / "Workbooks" / "WallarmOverview.json"
    alerts = repo_copy / "infra" / "modules" / "alerts.bicep"
    column = plant(hunting, "RemoteAddr, RequestId", "RemoteAddress, RequestId")
    function = plant(parser, "toupper(tostring(Hit.method))", "upper(tostring(Hit.method))")
    syntax = plant(hunting, "| order by TimeGenerated desc", "| order TimeGenerated desc")
    workbook_column = plant(workbook, "count() by Severity", "count() by Severty")
    alert_column = plant(alerts, "(traces | where message has", "(traces | where mesage has")
    # AppMetrics is a workspace table; this alert is scoped to Application Insights (customMetrics).
    app_table = plant(
        alerts, 'customMetrics\n| where name == "relay.queue', 'AppMetrics\n| where name == "relay.queue'
    )

    report = check_kql(root=repo_copy)

    expected = {
        ("sentinel/Hunting Queries/WallarmHighSeverityEvents.yaml", column): "'RemoteAddress' does not refer",
        (
            "sentinel/Parsers/vimWebSessionWallarm.yaml",
            function,
        ): "'upper' does not refer to any known function",
        ("sentinel/Hunting Queries/WallarmHighSeverityEvents.yaml", syntax): "KS",
        ("sentinel/Workbooks/WallarmOverview.json", workbook_column): "'Severty' does not refer",
        ("infra/modules/alerts.bicep", alert_column): "'mesage' does not refer",
        ("infra/modules/alerts.bicep", app_table): "'AppMetrics' does not refer",
    }
    assert_reported(report, expected)


PARSER_YAML = """\
Parser:
  Title: Web Session ASIM filtering parser for Wallarm
  Version: '0.1.0'
ParserName: vimWebSessionWallarmPlanted
EquivalentBuiltInParser: _Im_WebSession_WallarmPlanted
ParserParams:
  - Name: starttime
    Type: datetime
    Default: datetime(null)
  - Name: eventresult
    Type: string
    Default: '*'
  - Name: disabled
    Type: bool
    Default: false
ParserQuery: |
  ASimWebSessionWallarm
  | where not(disabled)
  | where isnull(starttime) or TimeGenerated >= starttime
  | where eventresult == "*" or EventResult == eventresult
"""

HUNTING_YAML = """\
id: 0f6b8a52-0000-4000-8000-000000000001
name: Wallarm sources by result
query: |
  _Im_WebSession_WallarmPlanted(starttime=ago(1d))
  | summarize count() by SrcIpAddr, EventResult, Nope
"""

CONNECTOR = {
    "id": "WallarmRelay",
    "graphQueriesTableName": "WallarmSentinel_CL",
    "graphQueries": [{"metricName": "Total", "legend": "Wallarm", "baseQuery": "{{graphQueriesTableName}}"}],
    "sampleQueries": [{"description": "Latest", "query": "{{graphQueriesTableName}}\n| take 10"}],
    "connectivityCriterias": [
        {
            "type": "IsConnectedQuery",
            "value": [
                "{{graphQueriesTableName}}\n| summarize LastLogReceived = max(TimeGenerated)"
                "\n| project IsConnected = LastLogReceived > ago(30d) and Bogus"
            ],
        }
    ],
}


@pytest.mark.slow
def test_kql_check_reads_sentinel_yaml_parsers_and_connector_definitions(repo_copy: Path) -> None:
    """Content Hub files are found without registration; a YAML parser is declared to its callers."""
    content = repo_copy / "sentinel" / "content"
    content.mkdir()
    (content / "vimWebSessionWallarm.yaml").write_text(PARSER_YAML)
    (content / "hunting-by-result.yaml").write_text(HUNTING_YAML)
    (content / "connector.json").write_text(json.dumps(CONNECTOR, indent=2))

    report = check_kql(root=repo_copy)

    unknown = "does not refer to any known column, table, variable or function."
    assert [str(p) for p in report.problems] == [
        f"sentinel/content/connector.json:21: KS142 The name 'Bogus' {unknown}",
        f"sentinel/content/hunting-by-result.yaml:5: KS142 The name 'Nope' {unknown}",
    ]
    # The parser's own query, the hunting query and the connector's three were all analysed.
    assert report.queries >= 5
