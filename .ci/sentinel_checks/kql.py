"""KqlValidationTests, ported: every query compiles with the tables and functions declared.

Azure-Sentinel's C# test binds each detection, hunting query and parser with Kusto.Language
against the built-in tables plus `.script/tests/KqlvalidationsTests/CustomTables/*.json`
(`{"Name", "Properties": [{"Name", "Type"}]}`) and the functions in `CustomFunctions/*.json`
(`{"FunctionName", "FunctionParameters", "FunctionResultColumns"}`); a function is known only by
its result columns. A parser's own query is bound with its parameters as `let` statements, with
string defaults quoted the way the solution packager quotes them (so `Default: "'*'"` becomes
`''*''` and fails, as it does in Microsoft's run). The same Kusto.Language build that
infra/checks uses (npm @kusto/language-service-next) does the binding.
"""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

from sentinel_checks.core import ROOT, Finding, Solution, load_json, load_yaml

ANALYZER = ROOT / "infra" / "checks" / "kql" / "analyze.mjs"
KQL_TESTS = Path(".script") / "tests" / "KqlvalidationsTests"
# Kusto.Language / .NET type names used by CustomTables and CustomFunctions -> KQL scalar types.
TO_KQL = {
    "String": "string", "DateTime": "datetime", "Dynamic": "dynamic", "Int32": "int", "Int64": "long",
    "Double": "real", "Boolean": "bool", "Guid": "guid", "TimeSpan": "timespan", "Decimal": "decimal",
    "Real": "real", "Bool": "bool", "Int": "int", "Long": "long",
}  # fmt: skip
FROM_KQL = {
    "string": "String", "datetime": "DateTime", "dynamic": "Dynamic", "int": "Int32", "long": "Int64",
    "real": "Double", "bool": "Boolean", "guid": "Guid", "timespan": "TimeSpan", "decimal": "Decimal",
}  # fmt: skip
NULL_DEFAULT = {
    "string": "''", "datetime": "datetime(null)", "dynamic": "dynamic(null)", "bool": "false", "int": "int(null)",
    "long": "long(null)", "real": "real(null)", "timespan": "timespan(null)", "guid": "guid(null)",
}  # fmt: skip


def packaged_default(kind: str, default: Any) -> str:
    """A FunctionParams default as the generated function carries it (strings quoted)."""
    if isinstance(default, bool):
        return str(default).lower()
    return f"'{default}'" if kind == "string" else str(default)


def _columns(properties: list[dict[str, Any]]) -> str:
    return (
        "("
        + ", ".join(f"['{p['Name']}']:{TO_KQL.get(p['Type'], p['Type'].lower())}" for p in properties)
        + ")"
    )


def custom_tables(solution: Solution) -> dict[str, str]:
    folder = solution.additions / KQL_TESTS / "CustomTables"
    tables = {}
    for path in sorted(folder.glob("*.json")):
        doc = load_json(path)
        tables[doc["Name"]] = _columns(doc["Properties"])
    return tables


def custom_functions(solution: Solution) -> list[dict[str, str]]:
    folder = solution.additions / KQL_TESTS / "CustomFunctions"
    out = []
    for path in sorted(folder.glob("*.json")):
        doc = load_json(path)
        params = ", ".join(
            f"{p['Name']}:{p['Type']}"
            + ("" if p.get("IsRequired") else f"={NULL_DEFAULT.get(p['Type'], 'dynamic(null)')}")
            for p in doc.get("FunctionParameters") or []
        )
        out.append(
            {
                "name": doc["FunctionName"],
                "parameters": f"({params})",
                "body": f"datatable{_columns(doc['FunctionResultColumns'])}[]",
            }
        )
    return out


def analyze(
    tables: dict[str, str], functions: list[dict[str, str]], queries: dict[str, str]
) -> dict[str, dict[str, Any]]:
    payload = {
        "contexts": {"ws": {"tables": tables, "functions": functions}},
        "queries": [{"id": name, "context": "ws", "text": text} for name, text in queries.items()],
    }
    return _run(json.dumps(payload, sort_keys=True))


@functools.lru_cache(maxsize=8)
def _run(payload: str) -> dict[str, dict[str, Any]]:
    """One node run per distinct request (the KQL check and the ASIM tester share theirs)."""
    result = subprocess.run(
        ["node", str(ANALYZER)],
        input=payload,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kql analyzer failed: {result.stderr.strip()[-2000:]}")
    return {item["id"]: item for item in json.loads(result.stdout)}


def parser_query(doc: dict[str, Any]) -> str:
    params = doc.get("FunctionParams") or doc.get("ParserParams") or []
    lets = "".join(
        f"let {p['Name']} = {packaged_default(p['Type'], p['Default'])};\n" for p in params if "Default" in p
    )
    return lets + str(doc.get("FunctionQuery") or doc.get("ParserQuery") or "")


def solution_queries(solution: Solution) -> dict[str, str]:
    queries = {solution.rel(p): str(load_yaml(p)["query"]) for p in [*solution.rules(), *solution.hunting()]}
    for path in [*solution.parsers(), *solution.folder("asim", ".yaml")]:
        queries[solution.rel(path)] = parser_query(load_yaml(path))
    for path in solution.connectors():  # DataConnectorFilesLoader: the connector page's queries
        doc = load_json(path)
        page = doc.get("properties", {}).get("connectorUiConfig", doc) if isinstance(doc, dict) else {}
        texts = [q.get("baseQuery", "") for q in page.get("graphQueries") or []]
        texts += [q.get("query", "") for q in page.get("sampleQueries") or []]
        texts += [d.get("lastDataReceivedQuery", "") for d in page.get("dataTypes") or []]
        for criterion in page.get("connectivityCriteria") or page.get("connectivityCriterias") or []:
            texts += [v for v in criterion.get("value") or [] if isinstance(v, str)]
        for i, text in enumerate(t for t in texts if t):
            queries[f"{solution.rel(path)}#{i}"] = text
    return queries


def errors(item: dict[str, Any]) -> list[str]:
    return [
        f"{d['code']} {d['message']} (at {d['start']})"
        for d in item["diagnostics"]
        if d["severity"] == "Error"
    ]


def check(solution: Solution) -> list[Finding]:
    results = analyze(custom_tables(solution), custom_functions(solution), solution_queries(solution))
    return [Finding("KQL Validation", name, e) for name, item in results.items() for e in errors(item)]


def parser_columns(solution: Solution) -> dict[str, tuple[list[str], list[str]]]:
    """Each parser's result columns and types, from the same binding `check` does."""
    results = analyze(custom_tables(solution), custom_functions(solution), solution_queries(solution))
    return {
        name: (item["columns"], item["columnTypes"])
        for name, item in results.items()
        if name.startswith("Parsers/") and not errors(item)
    }


def declared_function(solution: Solution, parser: Path) -> dict[str, Any]:
    """The CustomFunctions document a parser needs: its parameters and its bound result columns."""
    doc = load_yaml(parser)
    name = str(doc.get("FunctionName") or doc.get("ParserName"))
    results = analyze(
        custom_tables(solution),
        [f for f in custom_functions(solution) if f["name"] != name],
        {name: parser_query(doc)},
    )
    item = results[name]
    if errors(item):
        raise ValueError(f"{name} does not compile: {errors(item)}")
    params = [
        {"Name": p["Name"], "Type": p["Type"], "IsRequired": False} for p in doc.get("FunctionParams") or []
    ]
    columns = [
        {"Name": c, "Type": FROM_KQL[t]} for c, t in zip(item["columns"], item["columnTypes"], strict=True)
    ]
    return {"FunctionName": name, "FunctionParameters": params, "FunctionResultColumns": columns}
