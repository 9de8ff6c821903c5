"""Offline KQL check: every query in the repository through Microsoft's Kusto.Language.

Queries are found generically, so new content is covered without registering it:
  - every `*.kql` file,
  - Sentinel YAML (`query` of analytics rules and hunting queries, `ParserQuery` / `FunctionQuery`
    of parsers, with their `ParserParams` / `FunctionParams` declared),
  - queries embedded in Bicep (`query` of alert rules, analytics rules and saved searches,
    `transformKql` of a DCR, the queries of a data connector definition; `${...}` interpolations
    become placeholders),
  - JSON under infra/ and sentinel/: workbook items (`query` of Logs items and parameters, with workbook
    parameters such as `{TimeRange:grain}` substituted) and data connector definitions
    (`baseQuery`, `query`, `lastDataReceivedQuery`, `connectivityCriterias[].value`).

Each query is parsed and bound by Kusto.Language (npm @kusto/language-service-next, run by
kql/analyze.mjs under node) against a schema: the workspace tables (WallarmSentinel_CL from
shared/schema.json, Azure Monitor tables from kql/schemas.json), the Application Insights
classic tables for alerts scoped to the component, or the DCR stream (`source`) for
transformKql. Functions the repository defines (saved searches with a functionAlias, parsers in
YAML) and Sentinel built-ins (kql/schemas.json) are declared, so calls to them bind and their
output columns are known. Syntax errors, unknown tables, columns and functions fail.

    python -m infra.checks.kql_check [FILE ...]      # default: every query in the repository
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from lark.exceptions import LarkError

from infra.checks.bicep_model import Arr, BicepFile, Cond, Expr, Lit, Node, Obj, Ref, bodies, parse_file
from infra.checks.bicep_types import Finding

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
ANALYZER = HERE / "kql" / "analyze.mjs"
SCHEMAS = HERE / "kql" / "schemas.json"
SKIP_DIRS = {"node_modules", ".git", "tests"}
YAML_QUERY_KEYS = ("query", "ParserQuery", "FunctionQuery")
YAML_FUNCTION_NAMES = ("FunctionAlias", "FunctionName", "ParserName", "EquivalentBuiltInParser")
JSON_QUERY_KEYS = {"query", "baseQuery", "lastDataReceivedQuery"}
BICEP_QUERY_KEYS = {"query", "transformKql", "baseQuery", "lastDataReceivedQuery"}
CRITERIA_KEYS = {"connectivityCriteria", "connectivityCriterias"}
_TEMPLATE_NAME = re.compile(r"\{\{(\w+)\}\}")


@dataclass(frozen=True)
class Query:
    path: Path
    line: int  # line of the query's first line in its file (1-based)
    text: str
    context: str = "workspace"  # workspace | appinsights | dcr
    prefix: str = ""  # prepended for analysis (declare query_parameters(...)), not in the file
    one_line: bool = False  # JSON: the whole query is one line of the file (\n escaped)


@dataclass(frozen=True)
class Function:
    name: str
    parameters: str  # "(a:string='x', ...)"
    body: str
    path: Path


@dataclass
class KqlReport:
    problems: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    queries: int = 0
    files: int = 0
    functions: int = 0

    def summary(self) -> str:
        return (
            f"kql: {self.queries} queries in {self.files} files checked with {self.functions} functions "
            f"declared, {len(self.problems)} errors, {len(self.warnings)} warnings"
        )


@dataclass
class Found:
    queries: list[Query] = field(default_factory=list)
    functions: list[Function] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)


# ---- discovery -------------------------------------------------------------------------------


def _kql_files(root: Path) -> Iterator[Path]:
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS]
        yield from (Path(folder) / n for n in names if n.endswith(".kql"))


def default_files(root: Path = ROOT) -> list[Path]:
    """Every file that can hold KQL: *.kql anywhere, and Bicep, YAML, JSON of infra/ and sentinel/."""
    found = set(_kql_files(root))
    for folder in ("infra", "sentinel"):
        for pattern in ("*.bicep", "*.yaml", "*.yml"):
            found.update((root / folder).rglob(pattern))
    for folder in ("infra", "sentinel"):  # infra/: the relay health workbook (infra/workbooks/)
        found.update((root / folder).rglob("*.json"))
    return sorted(p for p in found if "checks" not in p.relative_to(root).parts[:2])


def _line_of(text: str, needle: str, default: int = 1) -> int:
    index = text.find(needle)
    return text.count("\n", 0, index) + 1 if index >= 0 else default


def _json_line(text: str, value: str) -> int:
    """Line of a JSON string value: the whole encoded string if it is found verbatim, else its start."""
    encoded = json.dumps(value, ensure_ascii=False)
    return _line_of(text, encoded, _line_of(text, encoded[1:41]))


def _quoted_at(text: str, index: int) -> bool:
    before = text[:index]
    return before.count('"') % 2 == 1 or before.count("'") % 2 == 1


def _placeholders(text: str, pattern: re.Pattern[str], inside: str, outside: str) -> str:
    """Replace template holes with a string (inside a KQL string literal) or a literal value."""
    out, last = [], 0
    for match in pattern.finditer(text):
        out.append(text[last : match.start()])
        out.append(inside if _quoted_at(text, match.start()) else outside)
        last = match.end()
    out.append(text[last:])
    return "".join(out)


_BICEP_HOLE = re.compile(r"\$\{[^}]*\}")


def _declare(params: str) -> str:
    return f"declare query_parameters({params});\n" if params else ""


def _yaml_params(doc: dict[str, Any]) -> str:
    raw = doc.get("ParserParams") or doc.get("FunctionParams") or []
    parts = []
    for p in raw if isinstance(raw, list) else []:
        if isinstance(p, dict) and p.get("Name") and p.get("Type"):
            default = p.get("Default")
            text = f"{p['Name']}:{p['Type']}"
            if default is not None:
                literal = default if not isinstance(default, bool) else str(default).lower()
                text += (
                    f"={literal}" if p["Type"] != "string" or str(literal)[:1] in "'\"" else f"='{literal}'"
                )
            parts.append(text)
    return ", ".join(parts)


def _from_yaml(path: Path, found: Found) -> None:
    text = path.read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        return
    params = _yaml_params(doc)
    for key in YAML_QUERY_KEYS:
        value = doc.get(key)
        if isinstance(value, str) and value.strip():
            start = _line_of(text, f"\n{key}:") + 1
            block = re.search(rf"(?m)^{key}:\s*[|>]", text) is not None
            found.queries.append(Query(path, start + (1 if block else 0), value, prefix=_declare(params)))
            names = {doc[n] for n in YAML_FUNCTION_NAMES if isinstance(doc.get(n), str)}
            found.functions.extend(Function(name, f"({params})", value, path) for name in sorted(names))


def _workbook_queries(doc: Any, path: Path, text: str, found: Found) -> None:
    time_params = set()
    for node in _walk_json(doc):
        for param in node.get("parameters", []) if isinstance(node.get("parameters"), list) else []:
            if isinstance(param, dict) and param.get("type") == 4 and isinstance(param.get("name"), str):
                time_params.add(param["name"])
    for node in _walk_json(doc):
        query = node.get("query")
        if not isinstance(query, str) or node.get("queryType", 0) != 0 or query.startswith("["):
            continue
        context = (
            "appinsights"
            if str(node.get("resourceType", "")).lower() == "microsoft.insights/components"
            else "workspace"
        )
        line = _json_line(text, query)
        found.queries.append(Query(path, line, _workbook_text(query, time_params), context, one_line=True))


def _workbook_text(query: str, time_params: set[str]) -> str:
    query = re.sub(r"\{(\w+):grain\}", "1h", query)
    query = re.sub(r"\{(\w+):(start|end)\}", "datetime(2024-01-01)", query)
    for name in time_params:
        query = query.replace("{" + name + "}", "> ago(1d)")
    return _placeholders(query, re.compile(r"\{\w+(:\w+)?\}"), "x", "'x'")


def _walk_json(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk_json(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk_json(value)


def _fill(query: str, names: dict[str, Any]) -> str:
    """Data connector templates: {{graphQueriesTableName}} -> the value of that key in the document."""
    return _TEMPLATE_NAME.sub(lambda m: str(names.get(m[1], m[0])), query)


def _connector_queries(doc: Any, path: Path, text: str, found: Found) -> None:
    names = {k: v for node in _walk_json(doc) for k, v in node.items() if isinstance(v, str)}

    def fill(query: str) -> str:
        return _fill(query, names)

    for node in _walk_json(doc):
        candidates = [node[k] for k in JSON_QUERY_KEYS if isinstance(node.get(k), str)]
        criteria = node.get("connectivityCriterias") or node.get("connectivityCriteria") or []
        for criterion in criteria if isinstance(criteria, list) else []:
            values = criterion.get("value") if isinstance(criterion, dict) else None
            candidates.extend(v for v in values or [] if isinstance(v, str))
        for query in candidates:
            if query.strip() and not query.startswith("["):
                line = _json_line(text, query)
                found.queries.append(Query(path, line, fill(query), one_line=True))


def _from_json(path: Path, found: Found) -> None:
    text = path.read_text(encoding="utf-8")
    doc = json.loads(text)
    if isinstance(doc, dict) and str(doc.get("version", "")).startswith("Notebook/"):
        _workbook_queries(doc, path, text, found)
    else:
        _connector_queries(doc, path, text, found)


def _bicep_string(bicep: BicepFile, node: Node) -> tuple[str, int] | None:
    node = bicep.resolve(node)
    if isinstance(node, Lit) and isinstance(node.value, str):
        row = bicep.text.splitlines()[node.line - 1] if node.line else ""
        return node.value, node.line + (1 if "'''" in row else 0)
    if isinstance(node, Expr) and node.text is not None:
        return _placeholders(node.text, _BICEP_HOLE, "x", "0"), node.line
    return None


def _loaded_file(bicep: BicepFile, node: Node) -> Path | None:
    node = bicep.resolve(node)
    if isinstance(node, Expr) and node.call == "loadTextContent" and node.args:
        arg = node.args[0]
        if isinstance(arg, Lit) and isinstance(arg.value, str):
            return (bicep.path.parent / arg.value).resolve()
    return None


def _scope_context(bicep: BicepFile, body: Obj) -> str:
    props = bicep.resolve(body.get("properties") or Obj((), 0))
    scopes = bicep.resolve(props.get("scopes") or Arr((), 0)) if isinstance(props, Obj) else None
    names = [i.name for i in scopes.items if isinstance(i, Ref)] if isinstance(scopes, Arr) else []
    return "appinsights" if any("appinsights" in n.lower() for n in names) else "workspace"


def _pairs(node: Node) -> Iterator[tuple[str | None, Node]]:
    if isinstance(node, Obj):
        for pair in node.pairs:
            yield pair.key, pair.value
            yield from _pairs(pair.value)
    elif isinstance(node, Arr):
        for item in node.items:
            yield from _pairs(item)
    elif isinstance(node, Cond):
        for branch in node.branches:
            yield from _pairs(branch)


def _from_bicep(path: Path, found: Found) -> None:
    bicep = parse_file(path)
    for resource in bicep.resources:
        for body in bodies(resource.body):
            context = _scope_context(bicep, body)
            # Data connector definitions name their table as {{graphQueriesTableName}} and the like.
            names = {
                k: v.value for k, v in _pairs(body) if isinstance(v, Lit) and isinstance(v.value, str) and k
            }
            for key, raw in _pairs(body):
                value = bicep.resolve(raw)
                texts = [_bicep_string(bicep, value)] if key in BICEP_QUERY_KEYS else []
                if key in CRITERIA_KEYS and isinstance(value, Arr):
                    for criterion in value.items:
                        listed = criterion.get("value") if isinstance(criterion, Obj) else None
                        items = listed.items if isinstance(listed, Arr) else ()
                        texts.extend(_bicep_string(bicep, item) for item in items)
                for text in texts:
                    if text is not None:
                        kind = "dcr" if key == "transformKql" else context
                        found.queries.append(Query(path, text[1], _fill(text[0], names), kind))
                if key == "serializedData" and isinstance(value, Lit) and isinstance(value.value, str):
                    _workbook_queries(json.loads(value.value), path, bicep.text, found)
            if resource.type.lower() == "microsoft.operationalinsights/workspaces/savedsearches":
                _saved_function(bicep, body, found)


def _saved_function(bicep: BicepFile, body: Obj, found: Found) -> None:
    props = bicep.resolve(body.get("properties") or Obj((), 0))
    if not isinstance(props, Obj):
        return
    alias = bicep.resolve(props.get("functionAlias") or Lit(None, 0))
    if not (isinstance(alias, Lit) and isinstance(alias.value, str)):
        return
    query = props.get("query") or Lit(None, 0)
    loaded = _loaded_file(bicep, query)
    text = loaded.read_text(encoding="utf-8") if loaded and loaded.exists() else None
    if text is None and (inline := _bicep_string(bicep, query)) is not None:
        text = inline[0]
    params = bicep.resolve(props.get("functionParameters") or Lit("", 0))
    if text is not None:
        declared = params.value if isinstance(params, Lit) and isinstance(params.value, str) else ""
        found.functions.append(Function(alias.value, f"({declared})", text, bicep.path))


def discover(paths: Iterable[Path]) -> Found:
    found = Found()
    for path in paths:
        suffix = path.suffix.lower()
        try:
            if suffix == ".kql":
                found.queries.append(Query(path, 1, path.read_text(encoding="utf-8")))
            elif suffix in (".yaml", ".yml"):
                _from_yaml(path, found)
            elif suffix == ".json":
                _from_json(path, found)
            elif suffix == ".bicep":
                _from_bicep(path, found)
        except (yaml.YAMLError, ValueError, LarkError) as err:  # JSONDecodeError is a ValueError
            found.unreadable.append((path, f"cannot be read: {type(err).__name__}: {str(err)[:200]}"))
    return found


# ---- schemas and analysis --------------------------------------------------------------------


def _schema(parts: list[str], groups: dict[str, str]) -> str:
    columns: dict[str, str] = {}
    for part in parts:
        for column in (groups.get(part) or part).split(","):
            name, _, ctype = column.strip().partition(":")
            columns.setdefault(name, ctype)
    return "(" + ", ".join(f"['{n}']:{t}" for n, t in columns.items()) + ")"


def build_contexts(functions: list[Function], root: Path = ROOT) -> dict[str, Any]:
    spec = json.loads(SCHEMAS.read_text(encoding="utf-8"))
    groups: dict[str, str] = spec["groups"]
    relay = json.loads((root / "shared" / "schema.json").read_text(encoding="utf-8"))
    relay_columns = ", ".join(f"{c['name']}:{c['type']}" for c in relay["columns"])
    workspace = {name: _schema(parts, groups) for name, parts in spec["workspace"].items()}
    workspace[relay["table"]] = _schema([relay_columns, "standard"], groups)
    builtins = []
    for name, fn in spec["functions"].items():
        body = fn.get("body") or f"datatable{_schema([spec['asimTables'][fn['table']]], groups)}[]"
        builtins.append({"name": name, "parameters": f"({fn['parameters']})", "body": body})
    declared: dict[str, dict[str, str]] = {f["name"]: f for f in builtins}
    for fn in functions:  # the repository's own functions win over built-ins of the same name
        declared[fn.name] = {"name": fn.name, "parameters": fn.parameters, "body": fn.body}
    return {
        "workspace": {"tables": workspace, "functions": list(declared.values())},
        "appinsights": {"tables": {n: _schema(p, groups) for n, p in spec["appinsights"].items()}},
        "dcr": {"tables": {"source": _schema([relay_columns], groups)}},
    }


def _position(text: str, offset: int) -> int:
    return text.count("\n", 0, max(offset, 0))


def analyze(queries: list[Query], contexts: dict[str, Any], root: Path = ROOT) -> list[list[dict[str, Any]]]:
    """Kusto.Language's diagnostics of each query."""
    return [item["diagnostics"] for item in _run_analyzer(queries, contexts, root)]


def result_columns(queries: list[Query], contexts: dict[str, Any], root: Path = ROOT) -> list[list[str]]:
    """The result columns of each query, as the binder infers them (e.g. an alert's split column)."""
    return [item["columns"] for item in _run_analyzer(queries, contexts, root)]


def _run_analyzer(queries: list[Query], contexts: dict[str, Any], root: Path) -> list[dict[str, Any]]:
    payload = {
        "contexts": contexts,
        "queries": [
            {"id": i, "context": q.context, "text": q.prefix + q.text} for i, q in enumerate(queries)
        ],
    }
    result = subprocess.run(
        ["node", str(ANALYZER)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        cwd=root,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kql analyzer failed: {result.stderr.strip()[-2000:]}")
    answers = {item["id"]: item for item in json.loads(result.stdout)}
    return [answers[i] for i in range(len(queries))]


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def check_kql(files: Iterable[Path] | None = None, root: Path = ROOT) -> KqlReport:
    """Check the queries in `files` (default: the whole repository). Functions are declared from
    the whole repository plus `files`, so a query calling WallarmEvents binds when checked alone."""
    targets = [p.resolve() for p in files] if files is not None else default_files(root)
    everything = discover(sorted(set(default_files(root)) | set(targets)))
    found = discover(targets)
    report = KqlReport(queries=len(found.queries), files=len({q.path for q in found.queries}))
    report.problems.extend(Finding(_relative(path, root), 1, message) for path, message in found.unreadable)
    contexts = build_contexts(everything.functions, root)
    report.functions = len(contexts["workspace"]["functions"])
    for query, diagnostics in zip(found.queries, analyze(found.queries, contexts, root), strict=True):
        shift = query.prefix.count("\n")
        for d in diagnostics:
            offset = 0 if query.one_line else _position(query.prefix + query.text, d["start"]) - shift
            line = query.line + offset
            problem = Finding(_relative(query.path, root), line, f"{d['code']} {d['message']}")
            (report.problems if d["severity"] == "Error" else report.warnings).append(problem)
    return report


def main(argv: list[str]) -> int:
    report = check_kql([Path(a) for a in argv] or None)
    for problem in report.problems:
        print(f"error {problem}")
    for warning in report.warnings:
        print(f"warning {warning}")
    print(report.summary())
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
