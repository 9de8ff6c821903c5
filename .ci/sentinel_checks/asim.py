"""ASimSchemaTester and ASimDataTester (ASIM/dev/ASimTester/Testers), ported to Python.

Both read the field table ASimTester.csv; microsoft/ASimTester_WebSession.csv holds its WebSession
rows and the Common rows WebSession lacks (the testers take the selected schema's row first, then
Common's). pr_additions/ASIM/dev/ASimTester/ASimTester.csv lists what this solution's pull request
adds to the enumerated lists (the vendor and product names), since the data tester rejects a
vendor that is not listed.

Schema tester: the parser's result columns and types (bound by Kusto.Language) against the
fields: missing mandatory / conditional / alias fields and type mismatches are errors, missing
recommended ones warnings, optional ones and extra columns info. Data tester: the values of the
rows a parser returns (here: rows produced by the parser's Python model in the tests) against
the field types, enumerations and logical types; "(0) Error"s fail, the rest inform.
"""

from __future__ import annotations

import csv
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentinel_checks.core import MICROSOFT, Finding, Solution

FIELDS_CSV = MICROSOFT / "ASimTester_WebSession.csv"
MAC = re.compile(r"^[a-fA-F0-9]{2}(:[a-fA-F0-9]{2}){5}$")
FQDN = re.compile(r"^([_a-zA-Z0-9][_a-zA-Z0-9-]{0,62}\.)+[a-zA-Z]{2,63}$")
DOMAIN = re.compile(r"^([_a-zA-Z0-9][_a-zA-Z0-9-]{0,62}\.)*[a-zA-Z]{2,63}$")
HOSTNAME = re.compile(r"^[a-zA-Z0-9-]{1,61}$")


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    cls: str
    logical: str
    values: str
    aliased: str


def fields(schema: str = "WebSession", additions: Path | None = None) -> dict[str, Field]:
    """arg_min by priority: the schema's own row, else Common's."""
    rows: dict[str, Field] = {}
    with FIELDS_CSV.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["Schema"] not in (schema, "Common"):
                continue
            field = Field(
                row["ColumnName"],
                row["ColumnType"],
                row["Class"],
                row["LogicalType"],
                row["ListOfValues"],
                row["Aliased"],
            )
            if row["Schema"] == schema or field.name not in rows:
                rows[field.name] = field
    if additions and additions.exists():
        with additions.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                old = rows.get(row["ColumnName"])
                if row["Schema"] == schema and old:
                    joined = "|".join(v for v in (old.values, row["AddToListOfValues"]) if v)
                    rows[old.name] = Field(old.name, old.type, old.cls, old.logical, joined, old.aliased)
    return rows


def additions_csv(solution: Solution) -> Path:
    return solution.additions / "ASIM" / "dev" / "ASimTester" / "ASimTester.csv"


def schema_results(columns: Mapping[str, str], table: Mapping[str, Field]) -> list[str]:
    """ASimSchemaTester's Result lines for a parser with these result columns (name -> KQL type)."""
    out: list[str] = []
    present = set(columns)
    for f in table.values():
        if f.name in present:
            continue
        parent = table.get(f.aliased)
        parent_cls = parent.cls if parent else ""
        if f.cls == "Mandatory":
            out.append(f"(0) Error: Missing mandatory field [{f.name}]")
        elif f.cls == "Recommended":
            out.append(f"(1) Warning: Missing recommended field [{f.name}]")
        elif f.cls == "Conditional" and parent_cls == "Mandatory":
            out.append(
                f"(0) Error: Missing field [{f.name}] is mandatory when mandatory column [{f.aliased}] exists"
            )
        elif f.cls == "Conditional" and f.aliased in present:
            out.append(f"(0) Error: Missing field [{f.name}] is mandatory when field [{f.aliased}] exists")
        elif f.cls == "Alias":
            exists = f.aliased in present
            kind = {"Mandatory": "mandatory", "Recommended": "recommended"}.get(parent_cls, "optional")
            if kind == "mandatory" or exists:
                state = "existing" if exists else "missing"
                out.append(
                    f"(0) Error: Missing {kind} alias [{f.name}] aliasing {state} column [{f.aliased}]"
                )
            else:
                out.append(
                    f"(2) Info: Missing {kind} alias [{f.name}] aliasing non-existent column [{f.aliased}]"
                )
        elif f.cls == "Optional":
            out.append(f"(2) Info: Missing optional field [{f.name}]")
    for name, kind in columns.items():
        known = table.get(name)
        if known is None:
            out.append(f"(2) Info: extra unnormalized column [{name}]")
        elif kind != known.type:
            out.append(
                f"(0) Error: type mismatch for column [{name}]. It is currently {kind} and should be {known.type}"
            )
    return sorted(out)


def _has(values: str, value: str) -> bool:
    """KQL `has`: the value is a whole term of the list (case-insensitive)."""
    terms = {t.lower() for t in re.split(r"[^0-9A-Za-z_]+", values) if t}
    words = [t.lower() for t in re.split(r"[^0-9A-Za-z_]+", value) if t]
    return bool(words) and all(w in terms for w in words) and value.lower() in values.lower()


def _ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _invalid(f: Field, value: str) -> bool:
    if value == "":
        return False
    logical = f.logical
    if logical == "Enumerated":
        return f.values != "" and not _has(f.values, value)
    checks = {
        "MAC Address": lambda v: MAC.match(v) is not None,
        "IP Address": _ip,
        "FQDN": lambda v: FQDN.match(v) is not None,
        "Domain": lambda v: DOMAIN.match(v) is not None,
        "Hostname": lambda v: HOSTNAME.match(v) is not None or _ip(v),
        "RiskLevel": lambda v: v.lstrip("-").isdigit() and 0 <= int(v) <= 100,
    }
    check = checks.get(logical)
    return check is not None and not check(value)


def data_results(
    rows: Iterable[Mapping[str, Any]], columns: Mapping[str, str], table: Mapping[str, Field]
) -> list[str]:
    """ASimDataTester's Result lines for these rows (values as the parser returns them)."""
    rows = list(rows)
    total = len(rows) or 1
    empties: dict[tuple[str, str], int] = {}
    invalid: dict[str, list[str]] = {}
    out: set[str] = set()
    for row in rows:
        for name, raw in row.items():
            f = table.get(name)
            if f is None:
                continue
            kind = columns.get(name, "")
            if f.type and raw is not None and kind and kind != f.type:
                out.add(
                    f"(0) Error: type mismatch for column [{name}]. It is currently [{kind}] and should be [{f.type}] (Schema:WebSession)"
                )
                continue
            value = "" if raw is None else str(raw)
            if value == "" and f.cls in ("Mandatory", "Recommended", "Optional"):
                empties[(f.cls, name)] = empties.get((f.cls, name), 0) + 1
            elif _invalid(f, value):
                invalid.setdefault(name, []).append(value)
    for (cls, name), count in empties.items():
        level = "(1) Warning" if cls == "Mandatory" else "(2) Info"
        out.add(
            f"{level}: Empty value in {count} records ({round(count / total * 100, 2)}%)  in {cls.lower()} field [{name}] (Schema:WebSession)"
        )
    for name, values in invalid.items():
        f = table[name]
        distinct = sorted(set(values))[:10]
        out.add(
            f"(0) Error: {len(set(values))} invalid value(s) (up to 10 listed) in {len(values)} records "
            f"({round(len(values) / total * 100, 2)}%) for field [{name}] of type [{f.logical}]: {distinct} (Schema:WebSession)"
        )
    return sorted(out)


def check(solution: Solution) -> list[Finding]:
    """The schema tester on every WebSession parser of the solution (result columns bound by Kusto)."""
    from sentinel_checks import kql
    from sentinel_checks.core import load_yaml

    table = fields("WebSession", additions_csv(solution))
    bound = kql.parser_columns(solution)
    findings: list[Finding] = []
    for path in solution.parsers():
        doc = load_yaml(path)
        rel = solution.rel(path)
        if "WebSession" not in str(doc.get("FunctionName", "")):
            continue
        if rel not in bound:
            findings.append(
                Finding("ASIM Schema Tester", rel, "the parser does not compile: see KQL Validation")
            )
            continue
        names, types = bound[rel]
        for line in schema_results(dict(zip(names, types, strict=True)), table):
            if line.startswith("(0)"):
                findings.append(Finding("ASIM Schema Tester", rel, line))
            elif line.startswith("(1)"):
                findings.append(Finding("ASIM Schema Tester", rel, line, "warning"))
    return findings
