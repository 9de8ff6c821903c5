"""Every environment variable the code reads is in the settings spec or in its documented list of
others (shared.settings.READ_ELSEWHERE), and that list names nothing the code no longer reads
(issue 20, item 9: AZURE_AUTHORITY_HOST, RELAY_URL and RELAY_ADMIN_KEY were read but listed nowhere)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from shared.settings import READ_ELSEWHERE, setting_names

ROOT = Path(__file__).resolve().parents[2]
SCANNED = [
    ROOT / "function_app.py",
    *sorted((ROOT / "shared").rglob("*.py")),
    *sorted((ROOT / "local").rglob("*.py")),
]
_ENV_OBJECTS = {"environ", "env", "os"}  # os.environ.get, env.get (a Mapping of app settings), os.getenv
_READS = {"get", "getenv", "setdefault", "pop", "__getitem__"}
_HOST_SETTING = re.compile(
    r"%([A-Z][A-Z0-9]*_[A-Z0-9_]+)%"
)  # (not strftime's %Y%m)  # a binding expression the Functions host resolves


def _receiver(node: ast.expr) -> str:
    """The last name of `os.environ` / `env` / `self.env`."""
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def env_reads(source: str) -> set[str]:
    """Names read from the environment: literal keys, module constants holding one, or a loop
    variable over a module constant tuple of them (`for name in AZURE_MARKERS: env.get(name)`)."""
    tree = ast.parse(source)
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }

    tuples = {
        target.id: [
            e.value for e in node.value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
        ]
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple | ast.List)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    loops = {
        node.target.id: tuples[node.iter.id]
        for node in ast.walk(tree)
        if isinstance(node, ast.comprehension | ast.For)
        and isinstance(node.target, ast.Name)
        and isinstance(node.iter, ast.Name)
        and node.iter.id in tuples
    }

    def names_of(arg: ast.expr) -> list[str]:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return [arg.value]
        if isinstance(arg, ast.Name):
            return [constants[arg.id]] if arg.id in constants else loops.get(arg.id, [])
        return []

    found: set[str] = set()
    for node in ast.walk(tree):
        key: ast.expr | None = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            if node.func.attr in _READS and _receiver(node.func.value) in _ENV_OBJECTS:
                key = node.args[0]
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and _receiver(node.value) in _ENV_OBJECTS
        ):
            key = node.slice
        for name in names_of(key) if key is not None else []:
            if re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
                found.add(name)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found |= set(_HOST_SETTING.findall(node.value))
    return found


def code_reads() -> dict[str, set[str]]:
    """Environment variable -> the files that read it."""
    reads: dict[str, set[str]] = {}
    for path in SCANNED:
        for name in env_reads(path.read_text(encoding="utf-8")):
            reads.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return reads


def test_the_scanner_finds_each_way_the_code_reads_the_environment() -> None:
    source = """
import os
ENV_BIN = "AZURITE_TABLE_BIN"
a = os.environ.get("ONE")
b = os.environ["TWO"]
c = os.getenv("THREE", "")
d = env.get("FOUR", "")
e = os.environ.get(ENV_BIN)
MARKERS = ("EIGHT", "NINE")
h = any(env.get(n) for n in MARKERS)
i = time.strftime("%Y%m%d%H")
f = self.env["FIVE"]
os.environ.setdefault("SIX", "x")
@app.timer_trigger(schedule="%SEVEN_TIMER%")
def g(): pass
env["WRITTEN"] = "not a read"
other.get("NOT_ENV")
"""
    assert env_reads(source) == {
        "ONE",
        "TWO",
        "THREE",
        "FOUR",
        "AZURITE_TABLE_BIN",
        "FIVE",
        "SIX",
        "SEVEN_TIMER",
        "EIGHT",
        "NINE",
    }


def test_every_environment_variable_the_code_reads_is_listed() -> None:
    unlisted = {name: files for name, files in code_reads().items() if name not in setting_names()}
    assert unlisted == {}, (
        "add each to the spec in shared/settings.py, or to READ_ELSEWHERE with who reads it and why"
    )


def test_the_list_names_nothing_the_code_does_not_read() -> None:
    assert set(READ_ELSEWHERE) - set(code_reads()) == set()


def test_the_issue_names_are_listed() -> None:
    for name in ("AZURE_AUTHORITY_HOST", "RELAY_URL", "RELAY_ADMIN_KEY", "WEBSITE_AUTH_ENABLED"):
        assert name in READ_ELSEWHERE and READ_ELSEWHERE[name]
