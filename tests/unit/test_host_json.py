"""host.json: logging never at Trace, sampling never drops errors, and the deploy package stays lean."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_log_levels_are_never_trace() -> None:
    levels = json.loads((ROOT / "host.json").read_text())["logging"]["logLevel"]
    assert levels["default"] in ("Information", "Warning")
    assert "Trace" not in levels.values() and "Debug" not in levels.values()


def test_sampling_keeps_exceptions_and_requests() -> None:
    sampling = json.loads((ROOT / "host.json").read_text())["logging"]["applicationInsights"][
        "samplingSettings"
    ]
    excluded = sampling["excludedTypes"].split(";")
    assert "Exception" in excluded and "Request" in excluded


def test_deploy_requirements_are_pinned_and_lean() -> None:
    lines = [ln.strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()]
    reqs = [ln for ln in lines if ln and not ln.startswith("#")]
    assert all("==" in r for r in reqs), reqs
    names = {r.split("==")[0].lower() for r in reqs}
    assert not names & {"pytest", "trustme", "ruff", "mypy", "checkov", "pycep-parser"}


def test_dev_only_folders_are_not_deployed() -> None:
    ignored = set((ROOT / ".funcignore").read_text().split())
    assert {"tests", "local", "bench", "infra", "sentinel", "node_modules"} <= ignored
