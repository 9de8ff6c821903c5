"""One source for the 11 columns: shared/schema.json. The CCF push connector's table and DCR, its
stream name on the page and in the push connection, and the KQL test's CustomTables entry must
all say the same; a drift in any of them fails here."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from sentinel_checks.core import ADDITIONS, ROOT
from sentinel_checks.kql import FROM_KQL, KQL_TESTS

CCF = ROOT / "sentinel" / "Data Connectors" / "Wallarm_ccf"


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def schema() -> dict[str, Any]:
    data: dict[str, Any] = load(ROOT / "shared" / "schema.json")
    return data


def drift(
    source: dict[str, Any], table: dict[str, Any], dcr: dict[str, Any], push: dict[str, Any]
) -> list[str]:
    """Every difference between the schema source and the CCF table, DCR and push connection."""
    problems: list[str] = []
    want = [(c["name"], c["type"]) for c in source["columns"]]
    if table["name"] != source["table"] or table["properties"]["schema"]["name"] != source["table"]:
        problems.append("table name")
    got_table = [(c["name"], c["type"]) for c in table["properties"]["schema"]["columns"]]
    if got_table != want:
        problems.append(f"table columns {got_table} != {want}")
    descriptions = [c.get("description") for c in table["properties"]["schema"]["columns"]]
    if descriptions != [c["description"] for c in source["columns"]]:
        problems.append("table column descriptions")
    streams = dcr["properties"]["streamDeclarations"]
    if list(streams) != [source["stream"]]:
        problems.append(f"DCR streams {list(streams)}")
    else:
        got_stream = [(c["name"], c["type"]) for c in streams[source["stream"]]["columns"]]
        if got_stream != want:
            problems.append(f"DCR stream columns {got_stream} != {want}")
    flows = dcr["properties"]["dataFlows"]
    if [f["outputStream"] for f in flows] != [f"Custom-{source['table']}"] or [
        f["streams"] for f in flows
    ] != [[source["stream"]]]:
        problems.append("DCR data flow")
    if push["properties"]["dcrConfig"]["streamName"] != source["stream"]:
        problems.append("push connection stream name")
    return problems


def test_ccf_table_and_dcr_follow_shared_schema() -> None:
    assert (
        drift(schema(), load(CCF / "table.json"), load(CCF / "DCR.json"), load(CCF / "dataConnector.json"))
        == []
    )


def test_drift_is_caught() -> None:
    """A changed type, a missing column, or a renamed stream in the schema source each fail."""
    table, dcr, push = load(CCF / "table.json"), load(CCF / "DCR.json"), load(CCF / "dataConnector.json")
    retyped = copy.deepcopy(schema())
    retyped["columns"][3]["type"] = "dynamic"
    assert drift(retyped, table, dcr, push)
    fewer = copy.deepcopy(schema())
    fewer["columns"].pop()
    assert drift(fewer, table, dcr, push)
    renamed = copy.deepcopy(schema())
    renamed["stream"] = "Custom-Other"
    assert drift(renamed, table, dcr, push)


def test_connector_page_shows_the_schema_stream() -> None:
    page = load(CCF / "connectorDefinition.json")["properties"]["connectorUiConfig"]
    labels = [
        i["parameters"] for step in page["instructionSteps"] for i in step.get("instructions", [])
        if i["type"] == "CopyableLabel"
    ]  # fmt: skip
    assert {"label": "Stream Name", "value": schema()["stream"]} in labels
    assert page["dataTypes"][0]["name"] == schema()["table"]


def test_kql_custom_table_follows_shared_schema() -> None:
    doc = load(ADDITIONS / KQL_TESTS / "CustomTables" / f"{schema()['table']}.json")
    columns = [(p["Name"], p["Type"]) for p in doc["Properties"]][: len(schema()["columns"])]
    assert columns == [(c["name"], FROM_KQL[c["type"]]) for c in schema()["columns"]]
