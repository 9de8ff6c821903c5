"""Run every ported validator on sentinel/ and print one line per finding, then a summary.

    PYTHONPATH=.ci .venv/bin/python -m sentinel_checks [SOLUTION_DIR]
Exit status 1 when any error is found (warnings do not fail).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from sentinel_checks import asim, connector, content, detection, kql, workbook
from sentinel_checks.core import ROOT, Finding, Solution

VALIDATORS: list[tuple[str, Callable[[Solution], list[Finding]]]] = [
    ("Data Connector (dataConnectorValidator.ts)", connector.check),
    ("Workbook template and metadata (workbookTemplatesValidator.ts, workbooksMetadataValidator.ts)", workbook.check),
    ("Detection schema and connector ids (detectionTemplateSchemaValidation)", detection.check),
    ("KQL validation (KqlvalidationsTests, CustomTables/CustomFunctions)", kql.check),
    ("Non-ASCII, documentation links, ID change, solution (branding, support, domains)",
     lambda s: content.check(s, content.base_ref())),
    ("ASIM schema tester (ASimSchemaTester)", asim.check),
]  # fmt: skip


def run(solution: Solution) -> tuple[list[Finding], list[str]]:
    findings: list[Finding] = []
    lines: list[str] = []
    for title, validate in VALIDATORS:
        start = time.monotonic()
        found = validate(solution)
        errors = sum(f.severity == "error" for f in found)
        lines.append(
            f"{title}: {errors} error(s), {len(found) - errors} warning(s) ({time.monotonic() - start:.1f} s)"
        )
        findings += found
    return findings, lines


def main(argv: list[str]) -> int:
    solution = Solution(Path(argv[0]).resolve() if argv else ROOT / "sentinel")
    findings, lines = run(solution)
    for finding in findings:
        print(finding)
    for line in lines:
        print(line)
    if content.base_ref() is None:
        print("ID change: not checked (no base ref; set SENTINEL_BASE_REF or fetch main)")
    errors = sum(f.severity == "error" for f in findings)
    print(f"sentinel checks: {errors} error(s), {len(findings) - errors} warning(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
