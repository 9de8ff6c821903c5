"""Rewrite the KQL test declarations this solution adds to Azure-Sentinel's lists.

    PYTHONPATH=.ci .venv/bin/python -m sentinel_checks.regenerate

CustomTables/WallarmSentinel_CL.json comes from shared/schema.json (plus the standard columns);
the legacy Data Collector tables WallarmEvents unions get a minimal entry; CustomFunctions/*.json
carry each parser's parameters and the result columns Kusto.Language binds for it now.
tests/sentinel/test_sentinel_checks.py and test_schema_drift.py fail when these files drift.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sentinel_checks.core import ROOT, Solution, load_yaml
from sentinel_checks.kql import FROM_KQL, KQL_TESTS, declared_function

STANDARD = [("TenantId", "String"), ("SourceSystem", "String"), ("Type", "String"), ("_ResourceId", "String")]
PARSERS = ("WallarmEvents", "vimWebSessionWallarm", "ASimWebSessionWallarm")  # in dependency order


def _write(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def main() -> int:
    solution = Solution(ROOT / "sentinel")
    base = solution.additions / KQL_TESTS
    schema = json.loads((ROOT / "shared" / "schema.json").read_text(encoding="utf-8"))
    columns = [{"Name": c["name"], "Type": FROM_KQL[c["type"]]} for c in schema["columns"]]
    standard = [{"Name": n, "Type": t} for n, t in STANDARD]
    _write(
        base / "CustomTables" / f"{schema['table']}.json",
        {"Name": schema["table"], "Properties": columns + standard},
    )
    union = load_yaml(solution.root / "Parsers" / "WallarmEvents.yaml")["FunctionQuery"].split("| extend", 1)[
        0
    ]
    for table in sorted(set(re.findall(r"\b\w+_CL\b", union)) - {schema["table"]}):
        legacy = [{"Name": "TimeGenerated", "Type": "DateTime"}, {"Name": "RawData", "Type": "String"}]
        _write(base / "CustomTables" / f"{table}.json", {"Name": table, "Properties": legacy + standard})
    for name in PARSERS:
        _write(
            base / "CustomFunctions" / f"{name}.json",
            declared_function(solution, solution.root / "Parsers" / f"{name}.yaml"),
        )
    print(f"wrote {base}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
