"""The CCF push connector page: both paths on one page, the values Wallarm's form needs, the
relay's header story, connectivity queries that hold for rows from either path, and the
project's own publisher identity (this is not a Wallarm product)."""

from __future__ import annotations

import json
import re
from typing import Any

from sentinel_checks import connector as rules
from sentinel_schema import SENTINEL, connector


def instructions(page: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for step in page["instructionSteps"] for i in step.get("instructions", [])]


def test_native_path_deploys_and_shows_every_value_of_wallarms_form() -> None:
    page = connector()
    items = instructions(page)
    assert [i["type"] for i in items].count("DeployPushConnectorButton") == 1
    labels = [i["parameters"] for i in items if i["type"] == "CopyableLabel"]
    fills = [p["fillWith"][0] for p in labels if "fillWith" in p]
    assert fills == [
        "TenantId",
        "ApplicationId",
        "ApplicationSecret",
        "DataCollectionEndpoint",
        "DataCollectionRuleId",
    ]
    mapping = next(
        i["parameters"]["content"]
        for i in items
        if "Mapping onto Wallarm" in i["parameters"].get("content", "")
    )
    for label in labels:
        assert label["label"] in mapping or label.get("value", "") in mapping, label


def test_relay_path_puts_key_and_secret_in_custom_headers_never_in_the_url() -> None:
    relay = next(s for s in connector()["instructionSteps"] if s["title"].startswith("Option B"))
    text = relay["description"]
    assert "`x-functions-key: <function key>`" in text and "`X-Wallarm-Relay-Secret: <shared secret>`" in text
    assert "Never put the key in the URL" in text
    assert not re.search(r"\?code=[^`]", text)


def test_connectivity_queries_hold_for_rows_from_either_path() -> None:
    """Only the table and TimeGenerated: no filter on a value only one path writes."""
    page = connector()
    queries = [v for c in page["connectivityCriteria"] for v in c["value"]]
    queries += [d["lastDataReceivedQuery"] for d in page["dataTypes"]]
    for query in queries:
        assert query.startswith("WallarmSentinel_CL\n")
        assert "where EventType" not in query and "relay" not in query


def test_permissions_follow_the_logs_ingestion_template() -> None:
    permissions = connector()["permissions"]
    assert permissions["resourceProvider"] == rules.LOGS_INGESTION
    assert rules.LOGS_INGESTION_CUSTOM in permissions["customs"]
    assert rules.permission_problem(permissions, "REST_API") is None


def test_publisher_is_the_project_not_wallarm() -> None:
    solution = json.loads((SENTINEL / "Data" / "Solution_Wallarm.json").read_text(encoding="utf-8"))
    metadata = json.loads((SENTINEL / "SolutionMetadata.json").read_text(encoding="utf-8"))
    assert connector()["publisher"] == "wallarm-sentinel-relay contributors"
    assert metadata["providers"] == ["wallarm-sentinel-relay contributors"]
    assert metadata["support"]["name"] == "wallarm-sentinel-relay contributors"
    assert metadata["publisherId"] != "wallarm" and "wallarm.com" not in json.dumps(metadata)
    assert re.fullmatch(r".+ - \S+@\S+", solution["Author"])
    assert "not a Wallarm product" in solution["Description"]
    assert "Azure_Sentinel.svg" not in solution["Logo"] and solution["Logo"].startswith("<svg")
