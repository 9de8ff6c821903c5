"""Webhook body -> WallarmEvents: JSON array, bare object, NDJSON, legacy 2.x flat objects.

The body decides, never the declared Content-Type: Wallarm does not document its media type and
customers may set any header (even `application/xml`). This module is the one place that knows
how a body is recognised:

1. the whole body is one JSON value: an array (each element an item) or an object (one item);
2. otherwise it is NDJSON: lines end at `\\n` (a trailing `\\r` is dropped) and nowhere else, so a
   raw U+2028, U+2029 or U+0085 inside a string stays inside its line; a line that is an array
   contributes each of its elements.

Every JSON object becomes an event. An object that is not a recognisable Wallarm notification
becomes an event of type `UNRECOGNIZED` (mapped to a row with the object in RawData), so nothing
that reached the relay is dropped silently. Only non-objects (numbers, strings, nested arrays)
and broken NDJSON lines are returned as `Rejection`s, counted and logged; one bad item never
costs the batch (Wallarm resends the whole body on any non-2xx).

Numbers and constants that JSON cannot carry to RawData are kept as their text: a float beyond
double range (`1e400`), an integer longer than Python converts (4,300 digits) and the
non-standard `NaN`/`Infinity` become strings, so RawData is always strict JSON.

Whole-body errors (`ParseError`):
- 400 `empty_body`: nothing but whitespace.
- 400 `invalid_encoding`: not UTF-8 (RFC 8259 JSON is UTF-8; a BOM is tolerated).
- 400 `invalid_json`: neither JSON nor NDJSON; the message gives line/column, never body text.
- 422 `empty_batch`: `[]`. Syntactically fine but carries nothing.
- 422 `invalid_shape`: a top-level scalar, or no object anywhere in the body.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from shared.intake.events import ParseError, ParseResult, Rejection, WallarmEvent

# The event type of an object that is JSON but not a Wallarm notification (documented in README).
UNRECOGNIZED: Final[str] = "unrecognized"

# Wallarm 2.x (until mid-2021) posted the hit itself, flat; these keys identify one.
_LEGACY_HIT_KEYS: Final[frozenset[str]] = frozenset(
    {"request_id", "remote_addr4", "remote_addr6", "payloads", "point", "block_status"}
)

# Modern envelopes always carry the type; these sub-objects let us infer it when it is missing.
_DETAILS_KEY_TO_TYPE: Final[tuple[tuple[str, str], ...]] = (
    ("hit", "new_hits"),
    ("security_issue", "security_issue"),
    ("vuln", "vuln"),
)

# Python refuses to turn longer digit strings into int (sys.int_info.default_max_str_digits).
_MAX_INT_DIGITS: Final[int] = 4000
_TYPE_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_WS: Final = re.compile(r"[ \t\n\r]*")
# Tokens that matter when skipping a value too deep to decode: strings (with escapes) and brackets.
_TOKEN: Final = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def _parse_float(text: str) -> float | str:
    value = float(text)
    return value if math.isfinite(value) else text


def _parse_int(text: str) -> int | str:
    return int(text) if len(text) <= _MAX_INT_DIGITS else text


_DECODER: Final = json.JSONDecoder(
    parse_float=_parse_float, parse_int=_parse_int, parse_constant=lambda name: name
)


def parse_body(body: bytes) -> ParseResult:
    """Parse one webhook body into events (+ per-item rejections)."""
    text = _decode(body)
    if not text or text.isspace():  # as `not text.strip()`, without copying the body
        raise ParseError(400, "empty_body", "The request body is empty.")
    items, rejections = _load(text)
    return _to_result(items, rejections)


def _decode(body: bytes) -> str:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(
            400, "invalid_encoding", f"The body is not valid UTF-8 (byte offset {exc.start})."
        ) from None
    return text.removeprefix("\ufeff")


def _position_message(exc: json.JSONDecodeError, line_offset: int = 0) -> str:
    # exc.msg is json's fixed wording ("Expecting value", ...), never the payload itself.
    return f"Invalid JSON at line {exc.lineno + line_offset}, column {exc.colno}: {exc.msg}."


_TOO_DEEP: Final[str] = "nesting_too_deep: the item is nested deeper than the parser allows (~900 levels)"


def _load(text: str) -> tuple[list[tuple[int, Any]], list[Rejection]]:
    """The body's items, each with its position, and rejections for what is not JSON."""
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        return _load_ndjson(text, first_error=exc)
    except RecursionError:
        if text.lstrip().startswith("["):
            loaded = _load_array_by_element(text)
            if loaded is not None:
                return loaded
        return _load_ndjson(text, first_error=None)
    if isinstance(value, list):
        if not value:
            raise ParseError(422, "empty_batch", "The body is an empty JSON array.")
        return list(enumerate(value)), []
    if isinstance(value, dict):
        return [(0, value)], []
    raise ParseError(422, "invalid_shape", "The body must be a JSON object, an array of objects, or NDJSON.")


def _load_array_by_element(text: str) -> tuple[list[tuple[int, Any]], list[Rejection]] | None:
    """A JSON array with an element too deep to decode: decode element by element, so only that
    element is rejected. None when the body is not one array (NDJSON of arrays, say)."""
    items: list[tuple[int, Any]] = []
    rejections: list[Rejection] = []
    pos = _WS.match(text, text.index("[") + 1).end()  # type: ignore[union-attr]
    index = 0
    while pos < len(text) and text[pos] != "]":
        try:
            value, pos = _DECODER.raw_decode(text, pos)
            items.append((index, value))
        except RecursionError:
            pos = _skip_value(text, pos)
            rejections.append(Rejection(index, _TOO_DEEP))
        except (json.JSONDecodeError, ParseError):
            return None
        index += 1
        pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
        if pos < len(text) and text[pos] == ",":
            pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
    if pos >= len(text) or text[pos + 1 :].strip():
        return None
    return items, rejections


def _skip_value(text: str, pos: int) -> int:
    """End of the array/object starting at `pos`, found without recursion."""
    depth = 0
    for token in _TOKEN.finditer(text, pos):
        kind = token.group()
        if kind in "[{":
            depth += 1
        elif kind in "]}":
            depth -= 1
            if depth == 0:
                return token.end()
    raise ParseError(400, "invalid_json", "Invalid JSON: unterminated array or object.")


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """NDJSON lines, numbered from 1: split at LF only (never at U+2028/U+2029/U+0085/VT/FF)."""
    for number, line in enumerate(text.split("\n"), start=1):
        yield number, line.removesuffix("\r")


def _load_ndjson(
    text: str, first_error: json.JSONDecodeError | None
) -> tuple[list[tuple[int, Any]], list[Rejection]]:
    """One value per non-blank line; a broken line is a rejection, unless every line is."""
    items: list[tuple[int, Any]] = []
    rejections: list[Rejection] = []
    first_line_error: str | None = None
    index = 0
    for line_no, line in _lines(text):
        if not line.strip():
            continue
        try:
            value = _DECODER.decode(line)
        except json.JSONDecodeError as exc:
            message = _position_message(exc, line_offset=line_no - 1)
            first_line_error = first_line_error or message
            rejections.append(Rejection(index, f"invalid_json: {message}"))
            index += 1
            continue
        except RecursionError:
            first_line_error = first_line_error or f"line {line_no}: nesting too deep"
            rejections.append(Rejection(index, _TOO_DEEP))
            index += 1
            continue
        # A line holding an array contributes each of its elements.
        for element in value if isinstance(value, list) else [value]:
            items.append((index, element))
            index += 1
    if not items:
        # Nothing parsed line by line either: most likely one broken JSON document.
        message = _position_message(first_error) if first_error else first_line_error or "Invalid JSON."
        raise ParseError(400, "invalid_json", message)
    return items, rejections


def _to_result(items: list[tuple[int, Any]], rejections: list[Rejection]) -> ParseResult:
    events: list[WallarmEvent] = []
    rejected = list(rejections)
    for index, item in items:
        if isinstance(item, dict):
            events.append(to_event(item))
        else:
            rejected.append(Rejection(index, f"not_an_object: item is a JSON {_json_kind(item)}"))
    rejected.sort(key=lambda r: r.index)
    if not events:
        raise ParseError(422, "invalid_shape", "The body contains no JSON object.")
    return ParseResult(events=events, rejected=rejected)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def to_event(obj: Mapping[str, Any]) -> WallarmEvent:
    """One JSON object -> a WallarmEvent; one that is no Wallarm notification is `UNRECOGNIZED`."""
    details = obj.get("details")
    if isinstance(details, dict):
        return _modern_event(obj, details)
    if details is None:
        legacy = _legacy_event(obj)
        if legacy is not None:
            return legacy
    return _unrecognized(obj)


def _text(value: Any) -> str:
    """Envelope strings; tolerate null/missing (client_name is documented as possibly empty)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    return ""  # an object or array: it is in RawData, not worth a column


def _type_name(value: Any) -> str | None:
    """A usable notification type: an identifier (it becomes EventType, a counter and a metric
    dimension, so a blank, huge or odd value is no type at all)."""
    if isinstance(value, str) and _TYPE_NAME.fullmatch(value.strip()):
        return value.strip()
    return None


def _modern_event(obj: Mapping[str, Any], details: Mapping[str, Any]) -> WallarmEvent:
    notification_type = _type_name(details.get("notification_type"))
    if notification_type is None:
        notification_type = next(
            (t for key, t in _DETAILS_KEY_TO_TYPE if isinstance(details.get(key), dict)), UNRECOGNIZED
        )
    return _event(obj, notification_type, details, client_name=details.get("client_name"))


def _unrecognized(obj: Mapping[str, Any]) -> WallarmEvent:
    return _event(obj, UNRECOGNIZED, {}, client_name=obj.get("client_name"))


def _legacy_event(obj: Mapping[str, Any]) -> WallarmEvent | None:
    """Wallarm 2.x posted flat objects: the hit itself, or `{title, threat, link, ...}` vulns.

    They are normalised into the modern `details` shape (`details.hit` / `details.vuln`) so
    the mapping has one code path; `raw` stays the flat object as received.
    """
    explicit = _type_name(obj.get("notification_type"))
    if explicit is not None:
        details: dict[str, Any] = {k: v for k, v in obj.items() if k not in ("summary", "description")}
        return _legacy(obj, explicit, details)
    if obj.get("object_type") == "hit" or len(_LEGACY_HIT_KEYS & obj.keys()) >= 2:
        return _legacy(obj, "new_hits", {"notification_type": "new_hits", "hit": obj})
    if "threat" in obj and ("title" in obj or "link" in obj):
        vuln = {k: v for k, v in obj.items() if k != "summary"}
        details = {"notification_type": "vuln", "vuln": vuln, "vuln_link": obj.get("link")}
        return _legacy(obj, "vuln", details)
    return None


def _legacy(obj: Mapping[str, Any], notification_type: str, details: Mapping[str, Any]) -> WallarmEvent:
    return _event(obj, notification_type, details, client_name=obj.get("client_name"), legacy=True)


def _event(
    obj: Mapping[str, Any],
    notification_type: str,
    details: Mapping[str, Any],
    *,
    client_name: object,
    legacy: bool = False,
) -> WallarmEvent:
    """The event of one received object: its summary and description are always top-level."""
    return WallarmEvent(
        notification_type=notification_type,
        summary=_text(obj.get("summary")),
        description=_text(obj.get("description")),
        client_name=_text(client_name),
        details=details,
        raw=obj,
        legacy=legacy,
    )
