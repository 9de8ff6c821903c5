"""Offline Bicep check against Microsoft's generated resource types.

Every resource body in infra/ and sentinel/ is checked against the `types.json` that
Azure/bicep-types-az generates for its provider and exact API version (stored under
infra/checks/types/, see SOURCE.md there): property names and their case, nesting, required and
read-only properties, enum (string literal) values, literal types and integer/string bounds,
that extension resources have a `scope`, that `parent` has the parent type, and that property
reads (`x.properties.a.b` in outputs and settings) exist. Module calls are checked against the module files
(parameters passed and required, outputs read, deployment names not fixed), and
infra/main.parameters.json against main.bicep's parameters.

What it cannot see (values computed at deploy time, functions, region rules, ARM-side
validation) still needs `az bicep build` and `azd provision --preview` (infra/README.md).

    python -m infra.checks.bicep_types [FILE.bicep ...]     # default: every file in infra/, sentinel/
"""

from __future__ import annotations

import difflib
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from lark.exceptions import LarkError

from infra.checks.bicep_model import (
    Arr,
    BicepFile,
    Cond,
    Lit,
    Node,
    Obj,
    Param,
    Ref,
    Resource,
    bodies,
    parse_file,
)

ROOT = Path(__file__).resolve().parents[2]
TYPES_DIR = Path(__file__).resolve().parent / "types"
DEFAULT_DIRS = ("infra", "sentinel")

REQUIRED, READ_ONLY = 1, 2
EXTENSION_SCOPE = 16
# Keys Bicep adds to every resource body; they are not in the provider's types.
BICEP_KEYWORDS = {"parent", "scope", "dependsOn"}


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    resources: int = 0
    properties: int = 0
    modules: int = 0

    def summary(self) -> str:
        return (
            f"bicep types: {self.files} files, {self.resources} resources, {self.properties} properties, "
            f"{self.modules} module calls checked, {len(self.findings)} problems"
        )


# ---- types.json ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeFile:
    path: Path
    types: list[dict[str, Any]]

    def get(self, ref: dict[str, str]) -> dict[str, Any]:
        target = ref["$ref"]
        if not target.startswith("#/"):
            raise ValueError(f"{self.path}: cross-file reference {target} is not supported")
        return self.types[int(target[2:])]


@cache
def _resource_index(types_dir: Path) -> dict[str, list[tuple[TypeFile, dict[str, Any]]]]:
    index: dict[str, list[tuple[TypeFile, dict[str, Any]]]] = {}
    for path in sorted(types_dir.rglob("types.json")):
        tf = TypeFile(path, json.loads(path.read_text(encoding="utf-8")))
        for entry in tf.types:
            if entry.get("$type") == "ResourceType":
                index.setdefault(entry["name"].lower(), []).append((tf, entry))
    return index


# ---- the checker -----------------------------------------------------------------------------


def _describe(node: Node) -> str:
    if isinstance(node, Lit):
        return repr(node.value)
    return type(node).__name__.lower()


def _literal_matches(value: str | int | bool, t: dict[str, Any]) -> bool:
    kind = t["$type"]
    if kind == "StringLiteralType":
        return bool(value == t["value"])
    if kind == "StringType":
        return isinstance(value, str)
    if kind == "IntegerType":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "BooleanType":
        return isinstance(value, bool)
    return kind == "AnyType"


class Checker:
    def __init__(self, root: Path = ROOT, types_dir: Path = TYPES_DIR) -> None:
        self.root = root
        self.index = _resource_index(types_dir)
        self.report = Report()
        self._file: BicepFile | None = None

    # -- findings

    def _rel(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.root))
        except ValueError:
            return str(path)

    def _suppressed(self, line: int, code: str) -> bool:
        """True when the line above is `#disable-next-line` naming `code` (as Bicep honours it)."""
        assert self._file is not None
        lines = self._file.path.read_text(encoding="utf-8").splitlines()
        above = lines[line - 2].strip() if 2 <= line <= len(lines) + 1 else ""
        return above.startswith("#disable-next-line") and code in above.split()[1:]

    def fail(self, line: int, message: str, bicep: BicepFile | None = None) -> None:
        where = bicep or self._file
        assert where is not None
        self.report.findings.append(Finding(self._rel(where.path), line, message))

    # -- resources

    def check_file(self, bicep: BicepFile) -> None:
        self._file = bicep
        self.report.files += 1
        for resource in bicep.resources:
            self.check_resource(resource)
            self._check_parent(bicep, resource)
        self._check_reads(bicep)

    def _check_parent(self, bicep: BicepFile, resource: Resource) -> None:
        """`parent: x` must be the resource type one level up (storageAccounts for blobServices)."""
        for body in bodies(resource.body):
            parent = body.get("parent")
            if not isinstance(parent, Ref):
                continue
            owner = next((r for r in bicep.resources if r.symbol == parent.name), None)
            expected = resource.type.rsplit("/", 1)[0].lower()
            if owner is not None and owner.type.lower() != expected:
                self.fail(
                    parent.line, f"{resource.symbol}: parent {owner.symbol} is {owner.type}, not {expected}"
                )

    def _check_reads(self, bicep: BicepFile) -> None:
        """`x.properties.a.b` read from a resource must exist in its type (outputs, settings)."""
        symbols = {r.symbol: r for r in bicep.resources}
        for number, row in enumerate(bicep.text.splitlines(), 1):
            for match in _PROPERTY_READ.finditer(row.split("//", 1)[0]):
                resource = symbols.get(match[1])
                located = (
                    self.index.get(f"{resource.type}@{resource.api_version}".lower()) if resource else None
                )
                if resource is None or not located:
                    continue
                self.report.properties += 1
                tf, rtype = located[0]
                self._check_path(tf, tf.get(rtype["body"]), match[2].split("."), f"{match[1]}", number)

    def _check_path(self, tf: TypeFile, t: dict[str, Any], path: list[str], where: str, line: int) -> None:
        for segment in path:
            if t["$type"] == "DiscriminatedObjectType":
                props = dict(t.get("baseProperties", {}))
                for ref in t["elements"].values():
                    props.update(tf.get(ref).get("properties", {}))
            elif t["$type"] == "ObjectType":
                props = t.get("properties", {})
            else:
                return  # any, string, ...: nothing more to check
            where = f"{where}.{segment}"
            if segment in props:
                t = tf.get(props[segment]["type"])
                continue
            if t.get("additionalProperties") is not None:
                return
            by_lower = {name.lower(): name for name in props}
            hint = (
                f": wrong case, the property is '{by_lower[segment.lower()]}'"
                if segment.lower() in by_lower
                else ""
            )
            self.fail(line, f"{where} is not a property of {t.get('name', 'this object')}{hint}")
            return

    def _resource_type(self, resource: Resource) -> tuple[TypeFile, dict[str, Any]] | None:
        key = f"{resource.type}@{resource.api_version}".lower()
        found = self.index.get(key)
        if not found:
            self.fail(
                resource.line,
                f"{resource.symbol}: no stored types for {resource.type}@{resource.api_version}: copy its "
                "types.json from Azure/bicep-types-az into infra/checks/types/ (see SOURCE.md there)",
            )
            return None
        return found[0]

    def check_resource(self, resource: Resource) -> None:
        self.report.resources += 1
        located = self._resource_type(resource)
        if located is None:
            return
        tf, rtype = located
        body_type = tf.get(rtype["body"])
        for body in bodies(resource.body):
            if resource.existing:
                for pair in body.pairs:
                    self.report.properties += 1
                    if pair.key not in ("name", "scope", "parent"):
                        self.fail(
                            pair.line,
                            f"{resource.symbol}: '{pair.key}' is not allowed on an existing resource",
                        )
                continue
            writable = rtype.get("writableScopes", rtype.get("scopeType", 0))
            if writable == EXTENSION_SCOPE and body.get("scope") is None:
                self.fail(
                    resource.line,
                    f"{resource.symbol}: {resource.type} is an extension resource and needs scope:",
                )
            self._check_object(body, body_type, tf, resource.symbol, top_level=True)

    def _check(self, node: Node, t: dict[str, Any], tf: TypeFile, path: str) -> None:
        assert self._file is not None
        node = self._file.resolve(node)
        if isinstance(node, Cond):
            for branch in node.branches:
                self._check(branch, t, tf, path)
            return
        if isinstance(node, Lit) and node.value is None:
            return  # null: ARM treats it as "not set"
        kind = t["$type"]
        if kind in ("ObjectType", "DiscriminatedObjectType"):
            if isinstance(node, Obj):
                self._check_object(node, t, tf, path)
            elif isinstance(node, Lit | Arr):
                self.fail(node.line, f"{path}: expected an object, got {_describe(node)}")
        elif kind == "ArrayType":
            if isinstance(node, Arr):
                for item in node.items:
                    self._check(item, tf.get(t["itemType"]), tf, f"{path}[]")
            elif isinstance(node, Lit | Obj):
                self.fail(node.line, f"{path}: expected an array, got {_describe(node)}")
        elif kind in ("UnionType", "StringLiteralType", "StringType", "IntegerType", "BooleanType"):
            self._check_scalar(node, t, tf, path)

    def _options(self, t: dict[str, Any], tf: TypeFile) -> list[dict[str, Any]]:
        if t["$type"] == "UnionType":
            return [opt for ref in t["elements"] for opt in self._options(tf.get(ref), tf)]
        return [t]

    def _check_scalar(self, node: Node, t: dict[str, Any], tf: TypeFile, path: str) -> None:
        assert self._file is not None
        options = self._options(t, tf)
        if isinstance(node, Obj | Arr):
            wanted = "object" if isinstance(node, Obj) else "array"
            if not any(
                o["$type"] in ("ObjectType", "DiscriminatedObjectType", "ArrayType", "AnyType")
                for o in options
            ):
                self.fail(node.line, f"{path}: expected {self._expected(options)}, got an {wanted}")
                return
            for option in options:
                if option["$type"] in ("ObjectType", "DiscriminatedObjectType", "ArrayType"):
                    self._check(node, option, tf, path)
                    return
            return
        candidates: list[tuple[Node, str | int | bool]] = []
        if isinstance(node, Lit) and node.value is not None:
            candidates.append((node, node.value))
        elif isinstance(node, Ref) and node.name in self._file.params:
            # A parameter restricted by @allowed: every allowed value must fit the property.
            param: Param = self._file.params[node.name]
            candidates.extend(
                (node, allowed.value)
                for allowed in param.allowed
                if isinstance(allowed, Lit) and allowed.value is not None
            )
        for where, value in candidates:
            if not any(_literal_matches(value, o) for o in options):
                hint = ""
                literals = [o["value"] for o in options if o["$type"] == "StringLiteralType"]
                close = [v for v in literals if isinstance(value, str) and v.lower() == value.lower()]
                if close:
                    hint = f" (case: {close[0]!r})"
                self.fail(where.line, f"{path}: {value!r} is not {self._expected(options)}{hint}")
                continue
            self._check_bounds(where, value, options, path)

    def _check_bounds(
        self, node: Node, value: str | int | bool, options: list[dict[str, Any]], path: str
    ) -> None:
        for o in options:
            if o["$type"] == "IntegerType" and isinstance(value, int) and not isinstance(value, bool):
                low, high = o.get("minValue"), o.get("maxValue")
                if (low is not None and value < low) or (high is not None and value > high):
                    self.fail(node.line, f"{path}: {value} is outside [{low}, {high}]")
            if o["$type"] == "StringType" and isinstance(value, str):
                low, high = o.get("minLength"), o.get("maxLength")
                if (low is not None and len(value) < low) or (high is not None and len(value) > high):
                    self.fail(node.line, f"{path}: length {len(value)} is outside [{low}, {high}]")

    @staticmethod
    def _expected(options: list[dict[str, Any]]) -> str:
        names = []
        for o in options:
            kind = o["$type"]
            names.append(
                repr(o["value"]) if kind == "StringLiteralType" else kind.removesuffix("Type").lower()
            )
        return "one of " + ", ".join(names) if len(names) > 1 else names[0]

    def _properties(self, obj: Obj, t: dict[str, Any], tf: TypeFile, path: str) -> dict[str, Any] | None:
        """The object's properties; None when its discriminator value is unknown (reported once)."""
        if t["$type"] == "ObjectType":
            return dict(t.get("properties", {}))
        props = dict(t.get("baseProperties", {}))
        assert self._file is not None
        raw = obj.get(t["discriminator"])
        selector = self._file.resolve(raw) if raw is not None else None
        elements: dict[str, dict[str, str]] = t["elements"]
        if isinstance(selector, Lit) and isinstance(selector.value, str):
            if selector.value not in elements:
                self.fail(
                    selector.line,
                    f"{path}: {t['discriminator']} {selector.value!r} is not one of "
                    + ", ".join(sorted(elements)),
                )
                return None
            props.update(tf.get(elements[selector.value]).get("properties", {}))
        else:  # unknown at build time: accept the properties of any variant
            for ref in elements.values():
                props.update(tf.get(ref).get("properties", {}))
        return props

    def _check_object(
        self, obj: Obj, t: dict[str, Any], tf: TypeFile, path: str, *, top_level: bool = False
    ) -> None:
        props = self._properties(obj, t, tf, path)
        if props is None:
            self.report.properties += len(obj.pairs)
            return
        extra = t.get("additionalProperties")
        by_lower = {name.lower(): name for name in props}
        for pair in obj.pairs:
            self.report.properties += 1
            if pair.key is None or (top_level and pair.key in BICEP_KEYWORDS):
                if pair.key is None and extra is not None:
                    self._check(pair.value, tf.get(extra), tf, f"{path}.*")
                continue
            where = f"{path}.{pair.key}"
            if pair.key in props:
                spec = props[pair.key]
                flags = spec.get("flags", 0)
                if flags & READ_ONLY and not flags & REQUIRED:
                    self.fail(pair.line, f"{where} is read-only (set by Azure)")
                    continue
                self._check(pair.value, tf.get(spec["type"]), tf, where)
            elif pair.key.lower() in by_lower:
                self.fail(pair.line, f"{where}: wrong case, the property is '{by_lower[pair.key.lower()]}'")
            elif extra is not None:
                self._check(pair.value, tf.get(extra), tf, where)
            else:
                if self._suppressed(pair.line, "BCP037"):
                    continue  # Bicep's own way to accept a property the published type lacks
                near = difflib.get_close_matches(pair.key, list(props), n=1)
                hint = f" (did you mean '{near[0]}'?)" if near else ""
                self.fail(pair.line, f"{where} is not a property of {t.get('name', 'this object')}{hint}")
        present = {pair.key for pair in obj.pairs}
        for name, spec in props.items():
            flags = spec.get("flags", 0)
            if flags & REQUIRED and not flags & READ_ONLY and name not in present:
                self.fail(obj.line, f"{path}: required property '{name}' is missing")

    # -- modules and parameter files

    def check_modules(self, bicep: BicepFile) -> None:
        self._file = bicep
        for module in bicep.modules:
            self.report.modules += 1
            target = (bicep.path.parent / module.path).resolve()
            if not target.exists():
                self.fail(module.line, f"module {module.symbol}: {module.path} does not exist")
                continue
            callee = parse_file(target)
            for body in bodies(module.body):
                self._check_module_call(bicep, module.symbol, body, callee)
        for symbol, output, line in _output_reads(bicep.text):
            called = next((m for m in bicep.modules if m.symbol == symbol), None)
            if called is None:
                continue
            callee = parse_file((bicep.path.parent / called.path).resolve())
            if output not in callee.outputs:
                self.fail(line, f"{symbol}.outputs.{output}: {called.path} has no output '{output}'")

    def _check_module_call(self, bicep: BicepFile, symbol: str, body: Obj, callee: BicepFile) -> None:
        name = bicep.resolve(body.get("name") or Lit(None, body.line))
        if isinstance(name, Lit):
            self.fail(
                body.line,
                f"module {symbol}: fixed deployment name {name.value!r} collides between environments "
                "sharing a resource group: derive it from the resource token",
            )
        params = bicep.resolve(body.get("params") or Obj((), body.line))
        if not isinstance(params, Obj):
            return
        passed = {pair.key for pair in params.pairs}
        for pair in params.pairs:
            self.report.properties += 1
            declared = callee.params.get(pair.key or "")
            if declared is None:
                self.fail(pair.line, f"module {symbol}: {callee.path.name} has no parameter '{pair.key}'")
                continue
            self._check_param_value(bicep, symbol, declared, pair.value)
        for pname, declared in callee.params.items():
            if not declared.has_default and pname not in passed:
                self.fail(
                    body.line,
                    f"module {symbol}: required parameter '{pname}' of {callee.path.name} is not passed",
                )

    def _check_param_value(self, bicep: BicepFile, symbol: str, declared: Param, raw: Node) -> None:
        value = bicep.resolve(raw)
        kinds = {"string": str, "int": int, "bool": bool}
        if isinstance(value, Lit) and value.value is not None and declared.type in kinds:
            expected = kinds[declared.type]
            if not isinstance(value.value, expected) or (expected is int and isinstance(value.value, bool)):
                self.fail(
                    value.line, f"module {symbol}: '{declared.name}' is {declared.type}, got {value.value!r}"
                )
            elif declared.allowed and value.value not in [
                a.value for a in declared.allowed if isinstance(a, Lit)
            ]:
                self.fail(
                    value.line, f"module {symbol}: {value.value!r} is not allowed for '{declared.name}'"
                )
        if (isinstance(value, Obj) and declared.type not in ("object", "?")) or (
            isinstance(value, Arr) and declared.type not in ("array", "?")
        ):
            self.fail(
                value.line, f"module {symbol}: '{declared.name}' is {declared.type}, got {_describe(value)}"
            )

    def check_parameters_file(self, params_file: Path, bicep: BicepFile) -> None:
        data = json.loads(params_file.read_text(encoding="utf-8"))
        names = data.get("parameters", {})
        text = params_file.read_text(encoding="utf-8")
        for name in names:
            self.report.properties += 1
            if name not in bicep.params:
                line = next((i for i, row in enumerate(text.splitlines(), 1) if f'"{name}"' in row), 1)
                self.report.findings.append(
                    Finding(self._rel(params_file), line, f"'{name}' is not a parameter of {bicep.path.name}")
                )
        for name, param in bicep.params.items():
            if not param.has_default and name not in names:
                self.fail(
                    param.line, f"required parameter '{name}' has no value in {params_file.name}", bicep
                )


_PROPERTY_READ = re.compile(r"\b([A-Za-z_]\w*)!?\.(properties(?:\.[A-Za-z_]\w*)+)")
_OUTPUT_READ = re.compile(r"\b([A-Za-z_]\w*)!?\.outputs\.([A-Za-z_]\w*)")


def _output_reads(text: str) -> Iterator[tuple[str, str, int]]:
    for number, row in enumerate(text.splitlines(), 1):
        for match in _OUTPUT_READ.finditer(row.split("//", 1)[0]):
            yield match[1], match[2], number


def default_files(root: Path = ROOT) -> list[Path]:
    return sorted(p for d in DEFAULT_DIRS for p in (root / d).rglob("*.bicep"))


def check_bicep(
    files: Iterable[Path] | None = None, root: Path = ROOT, types_dir: Path = TYPES_DIR
) -> Report:
    """Check Bicep files (default: all of infra/ and sentinel/); a main.parameters.json next to a
    checked file is checked against it."""
    checker = Checker(root, types_dir)
    for path in list(files) if files is not None else default_files(root):
        try:
            bicep = parse_file(path)
        except LarkError as err:
            line = getattr(err, "line", 1)
            where = line if isinstance(line, int) else 1
            message = f"does not parse: {str(err).splitlines()[0]}"
            checker.report.findings.append(Finding(checker._rel(path), where, message))
            continue
        checker.check_file(bicep)
        checker.check_modules(bicep)
        params_file = path.with_suffix(".parameters.json")
        if params_file.exists():
            checker.check_parameters_file(params_file, bicep)
    return checker.report


def main(argv: list[str]) -> int:
    report = check_bicep([Path(a) for a in argv] or None)
    for finding in report.findings:
        print(finding)
    print(report.summary())
    return 1 if report.findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
