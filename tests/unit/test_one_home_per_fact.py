"""One home per fact: a default of shared/settings.py is written there once, nowhere else.

The defaults come from the settings spec itself (NUMBERS, COMPLETENESS_NUMBERS, the dataclasses'
own defaults, the named constants); the rest of the code (shared/, local/, function_app.py) is
read as syntax, and a literal that equals a default, written beside a name that shares a word
with that default's name (`ratio: float = 0.6`, `window=timedelta(hours=12)`, `lease=180`), is a
repeat: change the setting and the copy silently keeps the old value.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shared import limits
from shared import settings as spec

ROOT = Path(__file__).resolve().parents[2]
HOME = ROOT / "shared" / "settings.py"
# The one constants module settings reads (the stages below settings import it instead).
CONSTANTS = ROOT / "shared" / "limits.py"
# Words too general to tie a name to one fact (units, stages, prefixes).
GENERIC = frozenset(
    [
        "seconds",
        "minutes",
        "hours",
        "days",
        "bytes",
        "max",
        "min",
        "the",
        "for",
        "of",
        "a",
        "to",
        "after",
        "run",
        "worker",
        "retry",
        "auto",
        "disable",
        "relay",
        "logs",
        "api",
        "wallarm",
        "reconcile",
        "watchdog",
        "settings",
        "setting",
        "default",
        "value",
    ]
)


@dataclasses.dataclass(frozen=True)
class Fact:
    """One default: where it is defined, the words of its name, and the values it may be written as."""

    name: str
    words: frozenset[str]
    values: tuple[Any, ...]
    every_word: bool = False  # a name must hold all the words (an SDK keyword), not just one

    def named_by(self, name: str) -> bool:
        given = words(name)
        return self.words <= given if self.every_word else bool(self.words & given)


@dataclasses.dataclass(frozen=True)
class Repeat:
    path: str
    line: int
    name: str
    fact: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.name} repeats the default of {self.fact}"


def words(name: str) -> frozenset[str]:
    return frozenset(w for w in re.split(r"[_\W]+", name.lower()) if w and w not in GENERIC)


def _forms(value: Any) -> tuple[Any, ...]:
    """A default as code may write it: as is, and a duration also as its seconds."""
    if isinstance(value, timedelta):
        return (value, value.total_seconds())
    if isinstance(value, str):
        return (value.lower(),)
    return (value,)


def facts() -> list[Fact]:
    """Every default the settings module holds, read from the spec rather than written here."""
    found: list[Fact] = []
    for number in (*spec.NUMBERS.values(), *spec.COMPLETENESS_NUMBERS.values()):
        found.append(
            Fact(
                number.name,
                words(number.name) | words(number.field),
                (*_forms(number.value), number.default),
            )
        )
    numbered = {fact.name for fact in found} | {
        n.field for n in (*spec.NUMBERS.values(), *spec.COMPLETENESS_NUMBERS.values())
    }
    for holder in (
        spec.Settings,
        spec.CompletenessSettings,
        spec.RetryWorkerLimits,
        spec.WallarmApiLimits,
    ):
        for f in dataclasses.fields(holder):
            default = f.default
            if f.name in numbered:
                continue  # a numeric setting's field: its Number above is the fact
            if isinstance(default, bool) or not isinstance(default, int | float | str | timedelta):
                continue  # flags, None, objects: no literal to repeat
            if isinstance(default, str) and len(default) < 2:
                continue
            found.append(Fact(f"{holder.__name__}.{f.name}", words(f.name), _forms(default)))
    found.append(Fact("RECONCILE_DEDUP_TTL", words("dedup_ttl"), _forms(limits.RECONCILE_DEDUP_TTL)))
    for key, bound in limits.TABLE_CLIENT_BOUNDS.items():
        found.append(Fact(f"TABLE_CLIENT_BOUNDS.{key}", words(key), _forms(bound), every_word=True))
    return [fact for fact in found if fact.words]


def _literal(node: ast.expr) -> Any:
    """The value of a literal expression (numbers, strings, arithmetic, timedelta(...)); None else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str):
        return None if isinstance(node.value, bool) else node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _literal(node.operand)
        return -inner if isinstance(inner, int | float) else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult | ast.Add | ast.Sub | ast.Div):
        left, right = _literal(node.left), _literal(node.right)
        if not (isinstance(left, int | float) and isinstance(right, int | float)):
            return None
        ops = {ast.Mult: left * right, ast.Add: left + right, ast.Sub: left - right}
        return ops.get(type(node.op), left / right if right else None)
    if isinstance(node, ast.Call):
        callee = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        if callee != "timedelta":
            return None
        args = [_literal(a) for a in node.args]
        kwargs = {k.arg: _literal(k.value) for k in node.keywords if k.arg}
        if any(not isinstance(v, int | float) for v in (*args, *kwargs.values())):
            return None
        return timedelta(*args, **kwargs)
    return None


def _named_values(tree: ast.AST) -> Iterator[tuple[str, ast.expr, int]]:
    """(name, value, line) of every assignment, keyword argument, parameter default and field."""
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            yield from _targets([node.target], node.value)
        elif isinstance(node, ast.Assign):
            yield from _targets(node.targets, node.value)
        elif isinstance(node, ast.keyword) and node.arg:
            yield node.arg, node.value, node.value.lineno
        elif isinstance(node, ast.arguments):
            positional = [*node.posonlyargs, *node.args]
            for arg, default in zip(
                positional[len(positional) - len(node.defaults) :], node.defaults, strict=True
            ):
                yield arg.arg, default, default.lineno
            for arg, kw_default in zip(node.kwonlyargs, node.kw_defaults, strict=True):
                if kw_default is not None:
                    yield arg.arg, kw_default, kw_default.lineno


def _targets(targets: list[ast.expr], value: ast.expr) -> Iterator[tuple[str, ast.expr, int]]:
    for target in targets:
        name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", None)
        if name:
            yield name, value, value.lineno


def _same(value: Any, forms: tuple[Any, ...]) -> bool:
    if isinstance(value, str):
        return value.lower() in forms
    return any(type(f) is not str and f == value for f in forms)


def repeats_in(source: str, path: str, known: list[Fact]) -> list[Repeat]:
    found = []
    for name, node, line in _named_values(ast.parse(source)):
        value = _literal(node)
        if value is None or value in (0, 1, "", True, False):
            continue  # too common to be one fact's copy
        for fact in known:
            if fact.named_by(name) and _same(value, fact.values):
                found.append(Repeat(path, line, name, fact.name))
    return found


def code_files() -> list[Path]:
    files = [ROOT / "function_app.py", *(ROOT / "shared").rglob("*.py"), *(ROOT / "local").rglob("*.py")]
    return sorted(p for p in files if p not in (HOME, CONSTANTS))


def test_no_default_is_written_twice() -> None:
    known = facts()
    found = [
        str(r)
        for path in code_files()
        for r in repeats_in(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)), known)
    ]
    assert not found, "defaults live once, in settings.py (constants: limits.py):\n" + "\n".join(found)


def test_the_spec_yields_the_facts_it_is_meant_to() -> None:
    """The reader takes its facts from the spec: the rule's, the lease's, the worker's constants."""
    names = {fact.name for fact in facts()}
    assert {
        "AUTO_DISABLE_FAILURE_RATIO",
        "AUTO_DISABLE_WINDOW_HOURS",
        "RETRY_CLAIM_LEASE_SECONDS",
        "RECONCILE_DELAY_MINUTES",
        "RetryWorkerLimits.uploads",
        "CompletenessSettings.wallarm_cloud",
        "RECONCILE_DEDUP_TTL",
    } <= names


# What the code held before the settings became the one home (issue 21), each a planted repeat.
PLANTED = {
    "rule field": ("class AutoDisableRule:\n    ratio: float = 0.6\n", "AUTO_DISABLE_FAILURE_RATIO"),
    "window": (
        "class AutoDisableRule:\n    window: timedelta = timedelta(hours=12)\n",
        "AUTO_DISABLE_WINDOW_HOURS",
    ),
    "lease keyword": ("worker = RetryWorker(lease=180)\n", "RETRY_CLAIM_LEASE_SECONDS"),
    "lease in seconds": ("LEASE = timedelta(minutes=3)\n", "RETRY_CLAIM_LEASE_SECONDS"),
    "probe default": (
        "def __init__(self, *, probe_every: timedelta = timedelta(seconds=30)) -> None: ...\n",
        "RECOVERY_PROBE_SECONDS",
    ),
    "worker constant": ("def __init__(self, uploads: int = 16) -> None: ...\n", "RetryWorkerLimits.uploads"),
    "reconcile delay": (
        "class ReconcileConfig:\n    delay: timedelta = timedelta(minutes=30)\n",
        "RECONCILE_DELAY_MINUTES",
    ),
    "cloud, other case": (
        'class ReconcileConfig:\n    cloud: str = "EU"\n',
        "CompletenessSettings.wallarm_cloud",
    ),
    "dedup ttl": ("DEDUP_TTL = timedelta(hours=48)\n", "RECONCILE_DEDUP_TTL"),
    "table client bound": (
        "service = table_service_from(c, e, None, read_timeout=5)\n",
        "TABLE_CLIENT_BOUNDS.read_timeout",
    ),
    "body limit arithmetic": ("max_body_bytes = 5 * 1024 * 1024\n", "MAX_BODY_BYTES"),
}


@pytest.mark.parametrize("source, fact", PLANTED.values(), ids=PLANTED.keys())
def test_a_planted_repeat_is_caught(source: str, fact: str) -> None:
    found = repeats_in(source, "planted.py", facts())
    assert fact in {r.fact for r in found}, found


@pytest.mark.parametrize(
    "source",
    [
        "ratio = settings.auto_disable_ratio\n",  # read from settings: the point
        "window = timedelta(hours=13)\n",  # another value
        "attempts = 0.6\n",  # the value, but beside another fact's name
        "lease = claim_lease / 2\n",
    ],
)
def test_reading_a_setting_or_another_value_is_no_repeat(source: str) -> None:
    assert repeats_in(source, "clean.py", facts()) == []


def test_a_planted_repeat_in_a_real_module_is_caught(tmp_path: Path) -> None:
    """The scan reads the modules as they are: add the old default back to one and it fails."""
    path = ROOT / "shared" / "health" / "integration_switch.py"
    source = path.read_text(encoding="utf-8").replace("    ratio: float\n", "    ratio: float = 0.6\n", 1)
    assert "ratio: float = 0.6" in source
    found = repeats_in(source, "shared/health/integration_switch.py", facts())
    assert [r.fact for r in found] == ["AUTO_DISABLE_FAILURE_RATIO"]
