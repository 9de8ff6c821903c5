"""Every query of sentinel/ bound with Microsoft's Kusto.Language (npm @kusto/language-service-next).

The workspace is modelled as WallarmSentinel_CL (columns from shared/schema.json), the legacy tables
WallarmEvents unions, and the solution's parser functions; then each rule, hunting query, parser,
connector and workbook query must bind without errors, and each rule's result must carry every
column its entity mappings name and every column its Python model (tests/sentinel_rules.py) reads.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from typing import Any

import pytest
from sentinel_rules import MODELS, NOW, firing_rows
from sentinel_schema import (
    PARSERS_DIR,
    ROOT,
    SENTINEL,
    connector,
    hunting_files,
    load_yaml,
    parser_files,
    rule_files,
)

BINDER = ROOT / "infra" / "checks" / "kql" / "analyze.mjs"  # the same binder .ci/infra runs
PACKAGE = ROOT / "node_modules" / "@kusto" / "language-service-next"


@pytest.fixture(autouse=True)
def _binder_installed() -> None:
    """A missing binder is a failure, never a skip: scripts/setup installs it (npm ci)."""
    if not PACKAGE.is_dir() or shutil.which("node") is None:
        pytest.fail("needs node and npm @kusto/language-service-next: run scripts/setup (npm ci)")


def params(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(name, type, default literal); a string default is quoted as the solution packager does."""
    return [
        (p["Name"], p["Type"], f"'{p['Default']}'" if p["Type"] == "string" else str(p["Default"]))
        for p in doc.get("FunctionParams") or []
    ]


def workspace() -> dict[str, Any]:
    schema = json.loads((ROOT / "shared" / "schema.json").read_text(encoding="utf-8"))
    tables = {schema["table"]: "(" + ", ".join(f"{c['name']}:{c['type']}" for c in schema["columns"]) + ")"}
    union = load_yaml(PARSERS_DIR / "WallarmEvents.yaml")["FunctionQuery"].split("| extend", 1)[0]
    for legacy in sorted(set(re.findall(r"\b\w+_CL\b", union)) - set(tables)):
        tables[legacy] = "(TimeGenerated:datetime, RawData_s:string, EventType_s:string)"
    functions = []
    for path in parser_files():
        doc = load_yaml(path)
        signature = ", ".join(f"{n}:{t}={d}" for n, t, d in params(doc))
        functions.append(
            {"name": doc["FunctionName"], "params": f"({signature})", "body": doc["FunctionQuery"]}
        )
    return {"tables": tables, "functions": functions}


def queries() -> dict[str, str]:
    out: dict[str, str] = {}
    for path in [*rule_files(), *hunting_files()]:
        out[path.relative_to(SENTINEL).as_posix()] = load_yaml(path)["query"]
    for path in parser_files():
        doc = load_yaml(path)
        lets = "".join(f"let {n} = {d};\n" for n, _, d in params(doc))
        out[path.relative_to(SENTINEL).as_posix()] = lets + doc["FunctionQuery"]
    conn = connector()
    texts = [q["query"] for q in conn["sampleQueries"]] + [q["baseQuery"] for q in conn["graphQueries"]]
    texts += [d["lastDataReceivedQuery"] for d in conn["dataTypes"]]
    texts += [v for c in conn["connectivityCriteria"] for v in c["value"]]
    out.update({f"connector[{i}]": t for i, t in enumerate(texts)})
    workbook = json.loads((SENTINEL / "Workbooks" / "WallarmOverview.json").read_text(encoding="utf-8"))
    for item in workbook["items"]:
        if item["type"] == 3:
            # {Tenant} as the workbook expands "All" (selectAllValue '*').
            text = item["content"]["query"].replace("{TimeRange:grain}", "1h").replace("{Tenant}", "'*'")
            out[f"workbook:{item['name']}"] = text
    return out


def bind(texts: dict[str, str]) -> dict[str, dict[str, list[str]]]:
    """Each query's binding errors and result columns, from infra/checks' Kusto.Language binder."""
    ws = workspace()
    functions = [{"name": f["name"], "parameters": f["params"], "body": f["body"]} for f in ws["functions"]]
    request = {
        "contexts": {"workspace": {"tables": ws["tables"], "functions": functions}},
        "queries": [{"id": n, "context": "workspace", "text": t} for n, t in texts.items()],
    }
    result = subprocess.run(
        ["node", str(BINDER)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=ROOT,
    )
    return {
        item["id"]: {
            "errors": [
                f"{d['code']} {d['message']} (at {d['start']})"
                for d in item["diagnostics"]
                if d["severity"] == "Error"
            ],
            "columns": item["columns"],
        }
        for item in json.loads(result.stdout)
    }


@cache
def bound() -> dict[str, dict[str, list[str]]]:
    return bind(queries())


def test_every_query_binds_without_errors() -> None:
    results = bound()
    assert len(results) == len(queries()) >= 20
    errors = {name: r["errors"] for name, r in results.items() if r["errors"]}
    assert errors == {}


def test_binder_reports_unknown_columns() -> None:
    """The check is strict: WallarmEvents' columns are known, so a typo is an error."""
    errors = bind({"typo": "WallarmEvents | where RemoteAdr == '1'"})["typo"]["errors"]
    assert any(e.startswith("KS142") for e in errors)


@pytest.mark.parametrize("path", rule_files(), ids=lambda p: p.stem)
def test_rule_result_has_its_entity_columns(path: Any) -> None:
    doc = load_yaml(path)
    columns = set(bound()[path.relative_to(SENTINEL).as_posix()]["columns"])
    mapped = {f["columnName"] for m in doc["entityMappings"] for f in m["fieldMappings"]}
    assert mapped <= columns


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.path.stem)
def test_rule_result_has_the_columns_its_model_yields(model: Any) -> None:
    """The Python model may only yield columns the real query returns."""
    results = model.run(firing_rows(NOW), NOW)
    assert results
    yielded = {key for result in results for key in result}
    columns = set(bound()[model.path.relative_to(SENTINEL).as_posix()]["columns"])
    assert yielded <= columns
