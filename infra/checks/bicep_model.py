"""Bicep source -> a small value model that keeps literals, references and line numbers apart.

pycep's grammar (a maintained Bicep grammar for lark) parses the file; its JSON transformer loses
the difference between `'name'` (a literal) and `name` (a reference), so this walks the raw lark
tree instead. Anything the checkers cannot evaluate offline (function calls, operators,
interpolated strings) becomes `Expr`, which type checks accept as unknown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from lark import Token, Tree
from pycep import BicepParser


@dataclass(frozen=True)
class Lit:
    value: str | int | bool | None
    line: int


@dataclass(frozen=True)
class Ref:
    name: str
    line: int


@dataclass(frozen=True)
class Expr:
    """A value known only at deploy time. `text` is set for interpolated strings ('a${b}c')."""

    line: int
    text: str | None = None
    call: str | None = None
    args: tuple[Node, ...] = ()


@dataclass(frozen=True)
class Pair:
    key: str | None  # None: an interpolated key ('${x}')
    value: Node
    line: int


@dataclass(frozen=True)
class Obj:
    pairs: tuple[Pair, ...]
    line: int

    def get(self, key: str) -> Node | None:
        return next((p.value for p in self.pairs if p.key == key), None)


@dataclass(frozen=True)
class Arr:
    items: tuple[Node, ...]
    line: int


@dataclass(frozen=True)
class Cond:
    """`c ? a : b`, an `if (...)` body or a `for` body: the value is one of `branches`."""

    branches: tuple[Node, ...]
    line: int


Node = Lit | Ref | Expr | Obj | Arr | Cond


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    has_default: bool
    allowed: tuple[Node, ...]
    line: int


@dataclass(frozen=True)
class Resource:
    symbol: str
    type: str  # Microsoft.X/y
    api_version: str
    existing: bool
    body: Node  # Obj, or Cond around it (if / for)
    line: int


@dataclass(frozen=True)
class Module:
    symbol: str
    path: str
    body: Node
    line: int


@dataclass
class BicepFile:
    path: Path
    text: str
    params: dict[str, Param] = field(default_factory=dict)
    variables: dict[str, Node] = field(default_factory=dict)
    resources: list[Resource] = field(default_factory=list)
    modules: list[Module] = field(default_factory=list)
    outputs: dict[str, int] = field(default_factory=dict)

    def resolve(self, node: Node, depth: int = 0) -> Node:
        """Follow references to variables (not parameters: their values are unknown)."""
        while isinstance(node, Ref) and node.name in self.variables and depth < 20:
            node = self.variables[node.name]
            depth += 1
        return node


_PARSER: BicepParser | None = None
_INTERPOLATION = re.compile(r"(?<!\\)\$\{")


def _parser() -> BicepParser:
    global _PARSER
    if _PARSER is None:
        _PARSER = BicepParser()
    return _PARSER


def _line(item: Tree[Token] | Token) -> int:
    if isinstance(item, Token):
        return item.line or 0
    return getattr(item.meta, "line", 0) if not item.meta.empty else 0


def _unquote(raw: str) -> str:
    body = raw[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r", "t": "\t"}.get(m[1], m[1]), body)


def _multiline(raw: str) -> str:
    body = raw[3:-3]
    # Bicep drops one line break right after the opening '''.
    if body.startswith("\r\n"):
        return body[2:]
    return body[1:] if body.startswith("\n") else body


def _string(token: Token) -> Node:
    if token.type == "STRING":
        return Ref(str(token), token.line or 0)
    raw = str(token)
    if _INTERPOLATION.search(raw):
        return Expr(token.line or 0, text=_unquote(raw))
    return Lit(_unquote(raw), token.line or 0)


def convert(item: Tree[Token] | Token | None) -> Node:
    if item is None:
        return Lit(None, 0)
    if isinstance(item, Token):
        if item.type == "MULTI_LINE_STRING":
            return Lit(_multiline(str(item)), item.line or 0)
        return _string(item)
    line, kind, kids = _line(item), item.data, item.children
    if kind == "string":
        return _string(kids[0])  # type: ignore[arg-type]
    if kind == "multi_line_string":
        return Lit(_multiline(str(kids[0])), line)
    if kind == "int_type":
        return Lit(int(str(kids[0])), line)
    if kind in ("true", "false"):
        return Lit(kind == "true", line)
    if kind == "null":
        return Lit(None, line)
    if kind == "array":
        return Arr(tuple(convert(k) for k in kids if not isinstance(k, Token)), line)
    if kind == "object":
        pairs = []
        for pair in kids:
            if not isinstance(pair, Tree) or pair.data != "pair":
                continue  # nested child resources are checked nowhere else either
            key_tree, value = pair.children[0], pair.children[1]
            key_token = key_tree.children[0] if isinstance(key_tree, Tree) else key_tree
            key_node = _string(key_token) if isinstance(key_token, Token) else Ref("?", line)
            key = (
                key_node.name
                if isinstance(key_node, Ref)
                else (str(key_node.value) if isinstance(key_node, Lit) else None)
            )
            pairs.append(Pair(key, convert(value), _line(key_tree)))
        return Obj(tuple(pairs), line)
    if kind == "function":
        name = str(kids[0]).rstrip("(").strip()
        return Expr(line, call=name, args=tuple(convert(k) for k in kids[1:] if isinstance(k, Tree | Token)))
    if kind == "operator":
        inner = kids[0]
        if isinstance(inner, Tree) and inner.data == "conditional":
            return Cond((convert(inner.children[1]), convert(inner.children[2])), line)
        return Expr(line)
    if kind == "loop":
        return Cond((convert(kids[-1]),), line)
    if kind == "deploy_condition":
        return Cond((convert(kids[-1]),), line)
    return Expr(line)


def _decorators(tree: Tree[Token] | None) -> dict[str, Node]:
    found: dict[str, Node] = {}
    if tree is None:
        return found
    for deco in tree.children:
        if isinstance(deco, Tree) and deco.children:
            name = str(deco.children[0]).strip()
            found[name] = convert(deco.children[1]) if len(deco.children) > 1 else Lit(None, 0)
    return found


def parse_file(path: Path) -> BicepFile:
    text = path.read_text(encoding="utf-8")
    return parse_text(text, path)


def parse_text(text: str, path: Path) -> BicepFile:
    tree = _parser().lark_parser.parse(text)
    result = BicepFile(path=path, text=text)
    for element in tree.children:
        if not isinstance(element, Tree):
            continue
        kids = element.children
        if element.data == "param":
            decorators = _decorators(kids[0])  # type: ignore[arg-type]
            allowed = decorators.get("allowed")
            data_type = kids[2]
            base = data_type.children[0] if isinstance(data_type, Tree) else None
            type_name = str(base.children[0]) if isinstance(base, Tree) else "?"
            result.params[str(kids[1])] = Param(
                str(kids[1]),
                type_name,
                kids[3] is not None,
                allowed.items if isinstance(allowed, Arr) else (),
                _line(element),
            )
        elif element.data == "var":
            result.variables[str(kids[1])] = convert(kids[-1])
        elif element.data == "output":
            result.outputs[str(kids[1])] = _line(element)
        elif element.data == "resource":
            type_api = _unquote(str(kids[2].children[0]))  # type: ignore[union-attr]
            rtype, _, version = type_api.partition("@")
            result.resources.append(
                Resource(str(kids[1]), rtype, version, kids[3] is not None, convert(kids[4]), _line(element))
            )
        elif element.data == "module":
            path_token = kids[2].children[0]  # type: ignore[union-attr]
            result.modules.append(
                Module(str(kids[1]), _unquote(str(path_token)), convert(kids[3]), _line(element))
            )
    return result


def bodies(node: Node) -> list[Obj]:
    """The object(s) a resource or module body can be (through if / for / ?:)."""
    if isinstance(node, Obj):
        return [node]
    if isinstance(node, Cond):
        return [obj for branch in node.branches for obj in bodies(branch)]
    return []
