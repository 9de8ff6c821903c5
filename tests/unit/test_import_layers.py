"""The imports of `shared/` run one way: each stage imports only stages below it, no files import
each other in a loop, and the webhook's dedup is written from one module (issue 21)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "shared"
# Lowest first. "vocabulary" is every module directly under shared/ but settings.
LAYERS = ("vocabulary", "store", "health", "delivery", "intake", "settings", "completeness", "tenancy", "ops")


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) >= 2 and (SHARED / parts[1]).is_dir():
        return parts[1]
    return "settings" if parts[-1] == "settings" else "vocabulary"


def _imports() -> dict[str, set[str]]:
    """Every `shared.*` module each module imports, at any depth (a function's lazy import too)."""
    modules = {_module(p): p for p in SHARED.rglob("*.py")}
    out: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("shared"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("shared"))
        out[name] = {m for m in found if m in modules and m != name}
    return out


def test_no_stage_imports_a_stage_above_it() -> None:
    upward = sorted(
        (name, target)
        for name, targets in _imports().items()
        for target in targets
        if LAYERS.index(_layer(target)) > LAYERS.index(_layer(name))
    )
    assert upward == []


def test_no_modules_import_each_other_in_a_loop() -> None:
    graph = _imports()
    loops: list[list[str]] = []

    def visit(node: str, path: list[str], on_path: set[str], done: set[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in on_path:
                loops.append([*path[path.index(nxt) :], nxt])
            elif nxt not in done:
                visit(nxt, [*path, nxt], on_path | {nxt}, done)
        done.add(node)

    done: set[str] = set()
    for start in sorted(graph):
        if start not in done:
            visit(start, [start], {start}, done)
    assert loops == []


def test_the_webhooks_dedup_is_written_from_one_module() -> None:
    writers = sorted(name for name, targets in _imports().items() if "shared.store.dedup" in targets)
    intake = [name for name in writers if name.startswith("shared.intake.")]
    assert intake == ["shared.intake.dedup"]
