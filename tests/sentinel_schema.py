"""Offline checks of sentinel/ equivalent to the Azure-Sentinel repository's own validation.

The template structure rules are the port in .ci/sentinel_checks/detection.py (Microsoft's C#
schema tests); this module adds the solution's own rules (every template names this solution's
connector and its data types) and the file helpers the tests share.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import yaml
from sentinel_checks.detection import (
    TACTICS,
    TECHNIQUES_BY_TACTIC,
    duplicated_ids,
    duration,
)
from sentinel_checks.detection import hunting_problems as _hunting_structure
from sentinel_checks.detection import rule_problems as _rule_structure

ROOT = Path(__file__).resolve().parents[1]
SENTINEL = ROOT / "sentinel"
RULES_DIR = SENTINEL / "Analytic Rules"
HUNTING_DIR = SENTINEL / "Hunting Queries"
PARSERS_DIR = SENTINEL / "Parsers"
ASIM_DIR = SENTINEL / "asim"
CONNECTOR_FILE = SENTINEL / "Data Connectors" / "Wallarm_ccf" / "connectorDefinition.json"
SOLUTION_FILE = SENTINEL / "Data" / "Solution_Wallarm.json"


CONNECTOR_KEYS: Final[frozenset[str]] = frozenset(
    {"id", "title", "publisher", "descriptionMarkdown", "graphQueries", "sampleQueries", "dataTypes",
     "connectivityCriteria", "availability", "permissions", "instructionSteps"}
)  # fmt: skip


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name}: not a YAML mapping"
    return data


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yaml"))


def hunting_files() -> list[Path]:
    return sorted(HUNTING_DIR.glob("*.yaml"))


def parser_files() -> list[Path]:
    return sorted([*PARSERS_DIR.glob("*.yaml"), *ASIM_DIR.glob("*.yaml")])


def connector() -> dict[str, Any]:
    """The CCF connector definition's connectorUiConfig (the page the gallery shows)."""
    data: dict[str, Any] = json.loads(CONNECTOR_FILE.read_text(encoding="utf-8"))["properties"][
        "connectorUiConfig"
    ]
    return data


def _connector_ref_problems(doc: Mapping[str, Any]) -> list[str]:
    conn = connector()
    types = {d["name"] for d in conn["dataTypes"]}
    refs = doc.get("requiredDataConnectors")
    if not refs:
        return ["requiredDataConnectors is empty"]
    problems = []
    for ref in refs:
        if ref.get("connectorId") != conn["id"]:
            problems.append(f"requiredDataConnectors names {ref.get('connectorId')!r}, not {conn['id']!r}")
        unknown = [t for t in ref.get("dataTypes", []) if t not in types]
        problems += [f"data type {t!r} not in the connector" for t in unknown]
    return problems


def parser_problems(doc: Mapping[str, Any]) -> list[str]:
    """The Solutions parser schema (Function, Category, FunctionName, FunctionAlias, FunctionQuery)."""
    required = ("id", "Function", "Category", "FunctionName", "FunctionAlias", "FunctionQuery")
    problems = [f"missing {k}" for k in required if k not in doc]
    function = doc.get("Function") or {}
    problems += [f"Function.{k} missing" for k in ("Title", "Version", "LastUpdated") if not function.get(k)]
    if not re.compile(r"^\d+\.\d+\.\d+$").match(str(function.get("Version", ""))):
        problems.append("Function.Version is not a.b.c")
    if doc.get("FunctionName") != doc.get("FunctionAlias"):
        problems.append("FunctionName and FunctionAlias differ")
    for param in doc.get("FunctionParams") or []:
        if set(param) != {"Name", "Type", "Default"}:
            problems.append(f"FunctionParams entry {param} needs exactly Name, Type, Default")
    return problems


def connector_problems(doc: Mapping[str, Any]) -> list[str]:
    """The CCF connectorUiConfig fields (Data Connector Definitions API)."""
    problems = [f"missing {k}" for k in sorted(CONNECTOR_KEYS - doc.keys())]
    criteria = doc.get("connectivityCriteria") or []
    if not any(c.get("type") == "IsConnectedQuery" and c.get("value") for c in criteria):
        problems.append("no IsConnectedQuery connectivity criterion")
    for data_type in doc.get("dataTypes") or []:
        if "max(TimeGenerated)" not in data_type.get("lastDataReceivedQuery", ""):
            problems.append(f"{data_type.get('name')}: lastDataReceivedQuery must take max(TimeGenerated)")
    if not doc.get("sampleQueries"):
        problems.append("no sampleQueries")
    return problems


def rule_problems(doc: Mapping[str, Any]) -> list[str]:
    """Microsoft's structure rules plus: the template names this solution's connector."""
    return _rule_structure(doc) + _connector_ref_problems(doc)


def hunting_problems(doc: Mapping[str, Any]) -> list[str]:
    return _hunting_structure(doc) + _connector_ref_problems(doc)


__all__ = ["TACTICS", "TECHNIQUES_BY_TACTIC", "duplicated_ids", "duration"]
