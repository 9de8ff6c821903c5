"""Findings, the solution's files, and small loaders shared by the validators."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
ADDITIONS = HERE / "pr_additions"
MICROSOFT = HERE / "microsoft"


@dataclass(frozen=True)
class Finding:
    """One validator message about one file (`path` relative to the solution folder)."""

    validator: str
    path: str
    message: str
    severity: str = "error"  # "error" fails the run; "warning" is reported only

    def __str__(self) -> str:
        return f"{self.severity} [{self.validator}] {self.path}: {self.message}"


@dataclass(frozen=True)
class Solution:
    """A Content Hub solution folder (sentinel/ here; Solutions/<Name>/ in Azure-Sentinel)."""

    root: Path
    additions: Path = ADDITIONS

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def files(self, *suffixes: str) -> list[Path]:
        return sorted(p for p in self.root.rglob("*") if p.is_file() and p.name.endswith(suffixes))

    def folder(self, name: str, *suffixes: str) -> list[Path]:
        base = self.root / name
        return (
            sorted(p for p in base.rglob("*") if p.is_file() and p.name.endswith(suffixes))
            if base.is_dir()
            else []
        )

    def rules(self) -> list[Path]:
        return self.folder("Analytic Rules", ".yaml")

    def hunting(self) -> list[Path]:
        return self.folder("Hunting Queries", ".yaml")

    def parsers(self) -> list[Path]:
        return self.folder("Parsers", ".yaml")

    def connectors(self) -> list[Path]:
        return self.folder("Data Connectors", ".json")

    def workbooks(self) -> list[Path]:
        return sorted((self.root / "Workbooks").glob("*.json")) if (self.root / "Workbooks").is_dir() else []


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def walk(node: Any) -> Iterator[Any]:
    """Every value in a JSON/YAML tree, depth first."""
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)
