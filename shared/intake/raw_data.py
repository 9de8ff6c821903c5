"""RawData: the whole event as strict JSON, under the Logs Ingestion field limit. Pure.

Attack payloads are attacker-controlled, so everything here is bounded: no recursion a payload
can exhaust (traversals use explicit stacks, depth is capped at `MAX_DEPTH`), and the work per
event is linear in its size (the string-trimming search is only tried on events of at most
`MAX_TRIM_NODES` values; wider ones go straight to the identity summary).

Over the limit, RawData is trimmed in this order until it fits:
1. shorten the longest strings (payloads, headers) to a common cap, found by bisection;
2. an identity summary: the fields that find the event again (summary, notification_type, ids,
   addresses, host/path, ...) first, then other scalar fields while they fit;
3. only the truncation marker.
Whenever RawData is not the event as received, `_relay_truncated: true` and the original size
(`_relay_original_bytes`) are added. Numbers are never NaN/Infinity (strict JSON).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping
from typing import Any, Final

# Logs Ingestion truncates field values over 64 KB; stay under it with a margin.
FIELD_LIMIT_BYTES: Final[int] = 65_000
TRUNCATED_KEY: Final[str] = "_relay_truncated"
ORIGINAL_BYTES_KEY: Final[str] = "_relay_original_bytes"
MAX_DEPTH: Final[int] = 128
MAX_TRIM_NODES: Final[int] = 5_000
DEPTH_MARK: Final[str] = "…[nested too deep]"
_STRING_MARK: Final[str] = "…[truncated]"
_ID_STRING_BYTES: Final[int] = 1024
_ID_LIST_ITEMS: Final[int] = 16
_ID_MIN_ROOM: Final[int] = 32
_SCAN_KEYS: Final[int] = 20_000  # keys looked at per object when filling the summary
# Fields that identify an event, looked up at the top level, in `details` and in its sub-objects.
IDENTITY_KEYS: Final[tuple[str, ...]] = (
    "summary",
    "notification_type",
    "client_name",
    "cloud",
    "id",
    "request_id",
    "remote_addr4",
    "remote_addr6",
    "remote_port",
    "remote_country",
    "ip",
    "host",
    "domain",
    "path",
    "method",
    "http_method",
    "endpoint_path",
    "application",
    "type",
    "block_status",
    "response_status",
    "point",
    "parameter",
    "title",
    "threat",
    "risk",
    "trigger_name",
    "reason",
    "expire_at",
    "change_type",
    "link",
    "vuln_link",
    "security_issue_link",
    "request_time",
    "create_time",
    "discovered_by",
    "status",
    "description",
)


# Built once: json.dumps with options builds a new encoder on every call.
_COMPACT: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_COMPACT_ASCII: Final = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def dump_sized(value: Any) -> tuple[str, int]:
    """Compact strict JSON and its size in UTF-8 bytes; lone surrogates become ASCII escapes so
    the text is always valid UTF-8. ASCII text (most events) is measured without encoding it."""
    text = _COMPACT.encode(value)
    if text.isascii():
        return text, len(text)
    try:
        return text, len(text.encode("utf-8"))
    except UnicodeEncodeError:
        text = _COMPACT_ASCII.encode(value)
        return text, len(text)


def dump(value: Any) -> bytes:
    """Compact strict JSON (UTF-8); lone surrogates become ASCII escapes to stay valid."""
    return dump_sized(value)[0].encode("utf-8")


def cut_utf8(text: str, limit: int) -> str:
    """Cut to at most `limit` UTF-8 bytes without splitting a character."""
    if len(text) * 4 <= limit:  # no character takes more than 4 bytes
        return text
    if text.isascii():
        return text[:limit]
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


def _number(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


def bounded_copy(root: Mapping[str, Any], *, string_cap: int | None = None) -> tuple[dict[str, Any], bool]:
    """A copy safe to serialise: depth capped at MAX_DEPTH, non-finite floats as text, strings
    over `string_cap` UTF-8 bytes shortened. Iterative. Returns (copy, whether anything changed)."""
    changed = False
    out: dict[str, Any] = {}
    stack: list[tuple[Any, Any, int]] = [(root, out, 1)]
    while stack:
        src, dst, depth = stack.pop()
        pairs = src.items() if isinstance(src, Mapping) else enumerate(src)
        for key, value in pairs:
            new: Any = value
            if isinstance(value, (Mapping, list)):
                if depth >= MAX_DEPTH:
                    new, changed = DEPTH_MARK, True
                else:
                    new = {} if isinstance(value, Mapping) else []
                    stack.append((value, new, depth + 1))
            elif isinstance(value, str):
                if string_cap is not None and len(value) * 4 > string_cap:
                    cut = cut_utf8(value, string_cap)
                    if len(cut) < len(value):
                        new, changed = cut + _STRING_MARK, True
            elif isinstance(value, float) and not math.isfinite(value):
                new, changed = _number(value), True
            if isinstance(dst, dict):
                dst[key] = new
            else:
                dst.append(new)
    return out, changed


def _shape(root: Mapping[str, Any], node_limit: int) -> tuple[int, int, list[str]]:
    """(values counted up to node_limit, max depth seen, the string values seen)."""
    nodes = depth_max = 0
    strings: list[str] = []
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack and nodes < node_limit:
        value, depth = stack.pop()
        nodes += 1
        if isinstance(value, Mapping):
            depth_max = max(depth_max, depth)
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            depth_max = max(depth_max, depth)
            stack.extend((v, depth + 1) for v in value)
        elif isinstance(value, str):
            strings.append(value)
    return nodes, depth_max, strings


def _marked(value: Mapping[str, Any], original: int) -> dict[str, Any]:
    return {**value, TRUNCATED_KEY: True, ORIGINAL_BYTES_KEY: original}


def raw_data(raw: Mapping[str, Any], limit: int = FIELD_LIMIT_BYTES) -> str:
    """Compact strict JSON of the event; over `limit` bytes, trimmed to valid JSON that fits."""
    try:
        text, original = dump_sized(raw)
        if original <= limit:
            return text
        safe: Mapping[str, Any] = raw
    except (RecursionError, ValueError):  # deeper than json can go, or NaN/Infinity floats
        safe, _ = bounded_copy(raw)
        text, original = dump_sized(safe)
        if original <= limit:
            return dump(_marked(safe, original)).decode("utf-8")
    nodes, depth, strings = _shape(safe, MAX_TRIM_NODES + 1)
    trimmed: bytes | None = None
    if nodes <= MAX_TRIM_NODES and depth <= MAX_DEPTH:
        trimmed = _trim_strings(safe, original, limit, strings)
    if trimmed is None:
        trimmed = dump(identity_summary(safe, original, limit))
    if len(trimmed) > limit:
        trimmed = dump({TRUNCATED_KEY: True, ORIGINAL_BYTES_KEY: original})
    return trimmed.decode("utf-8")


def _trim_strings(raw: Mapping[str, Any], original: int, limit: int, strings: list[str]) -> bytes | None:
    """Shorten the longest strings to one common cap so the event fits.

    The cap comes from the strings' serialised sizes (sorted, with prefix sums: no trial dumps),
    then one real dump checks it; escapes can make the estimate short, so the cap shrinks and is
    checked again a few times at most. Linear in the event's size."""
    sizes = sorted(len(dump(text)) for text in strings)
    fixed = original - sum(sizes)  # everything that is not a string value
    budget = limit - fixed - 64 - len(dump({TRUNCATED_KEY: True, ORIGINAL_BYTES_KEY: original}))
    cap = _largest_cap(sizes, budget, len(dump(_STRING_MARK)))
    for _ in range(6):
        if cap <= 0:
            return None
        data = dump(_marked(bounded_copy(raw, string_cap=cap)[0], original))
        if len(data) <= limit:
            return data
        cap = int(cap * min(0.9, limit / len(data)))
    return None


def _largest_cap(sizes: list[int], budget: int, mark: int) -> int:
    """The largest cap c with sum(min(size, c + mark)) <= budget, for sizes sorted ascending."""
    total = 0
    for index, size in enumerate(sizes):
        longer = len(sizes) - index  # these strings get capped if c < size
        if total + size * longer <= budget:
            total += size
            continue
        return max((budget - total) // longer - mark, 0)
    return max(sizes, default=0)


def _identity_value(value: Any) -> Any | None:
    """A value worth keeping in the summary: a scalar or a short list of scalars; else None."""
    if isinstance(value, str):
        return cut_utf8(value, _ID_STRING_BYTES)
    if isinstance(value, float):
        return _number(value)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, list) and len(value) <= _ID_LIST_ITEMS:
        items = [_identity_value(v) for v in value if not isinstance(v, (Mapping, list))]
        return items if len(items) == len(value) else None
    return None


class _Budget:
    def __init__(self, limit: int) -> None:
        self.left = limit

    def put(self, target: dict[str, Any], key: str, value: Any) -> bool:
        cost = len(dump({key: value})) + 1
        if cost > self.left:
            return False
        target[key] = value
        self.left -= cost
        return True


def _fill(target: dict[str, Any], source: Mapping[str, Any], budget: _Budget, keys: Any) -> None:
    for key in itertools.islice(keys, _SCAN_KEYS):
        if key in target or not isinstance(key, str) or key not in source:
            continue
        value = _identity_value(source[key])
        if value is not None:
            budget.put(target, key, value)
        if budget.left < _ID_MIN_ROOM:
            return


def identity_summary(raw: Mapping[str, Any], original: int, limit: int) -> dict[str, Any]:
    """Identifying fields first (top level, `details`, its sub-objects), then other scalars while
    they fit. Bounded: dictionary look-ups for the identity keys, one pass for the rest."""
    budget = _Budget(limit - 200)  # room for the markers and the nesting
    top: dict[str, Any] = {}
    _fill(top, raw, budget, IDENTITY_KEYS)
    details = raw.get("details")
    sub: dict[str, dict[str, Any]] = {}
    if isinstance(details, Mapping):
        inner: dict[str, Any] = {}
        top["details"] = inner
        _fill(inner, details, budget, IDENTITY_KEYS)
        for name in ("hit", "vuln", "security_issue"):
            if isinstance(details.get(name), Mapping):
                inner[name] = sub[name] = {}
                _fill(sub[name], details[name], budget, IDENTITY_KEYS)
        _fill(inner, details, budget, details.keys())
        for name, target in sub.items():
            _fill(target, details[name], budget, details[name].keys())
    _fill(top, raw, budget, raw.keys())
    return _marked(top, original)
