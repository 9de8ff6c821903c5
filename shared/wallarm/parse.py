"""Webhook body -> WallarmEvents: JSON array, bare object, NDJSON, legacy 2.x flat objects.

Knows nothing of Azure. Whole-body problems raise `ParseError(status, code, message)`; items
that cannot become an event are returned as `Rejection`s so one bad item does not cost the
batch (Wallarm resends the whole body on any non-2xx, so rejecting it all would loop forever).

Status choices:
- 400 `empty_body`: nothing but whitespace.
- 400 `invalid_encoding`: not UTF-8 (RFC 8259 JSON is UTF-8; a BOM is tolerated).
- 400 `invalid_json`: not JSON and not NDJSON; the message gives line/column, never body text.
- 422 `empty_batch`: `[]`. Syntactically fine but carries nothing; Wallarm never sends it, so
  422 ("understood, unusable") rather than 400 ("malformed").
- 422 `invalid_shape`: top-level scalar, or an array/NDJSON with no object in it.
- 422 `no_usable_events`: objects present, but none has a usable notification type.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from shared.wallarm.events import ParseError, ParseResult, Rejection, WallarmEvent

NDJSON_MEDIA_TYPES: Final[frozenset[str]] = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "application/json-lines",
        "application/jsonlines",
    }
)

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


def parse_body(body: bytes, content_type: str | None) -> ParseResult:
    """Parse one webhook body into events (+ per-item rejections).

    `content_type` only steers NDJSON detection (charset parameters are accepted); a body
    that is one JSON value is parsed as such whatever the header says, because Wallarm sends
    test notifications as an array even on NDJSON integrations.
    """
    text = _decode(body)
    if not text.strip():
        raise ParseError(400, "empty_body", "The request body is empty.")
    items, line_rejections = _load(text, _is_ndjson(content_type))
    return _to_result(items, line_rejections)


def _decode(body: bytes) -> str:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(
            400, "invalid_encoding", f"The body is not valid UTF-8 (byte offset {exc.start})."
        ) from None
    return text.removeprefix("\ufeff")


def _is_ndjson(content_type: str | None) -> bool:
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type in NDJSON_MEDIA_TYPES


def _reject_constant(name: str) -> Any:
    """NaN/Infinity are not JSON; accepting them would make RawData invalid JSON later."""
    raise ValueError(f"non-standard JSON constant {name}")


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_reject_constant)


def _position_message(exc: json.JSONDecodeError, line_offset: int = 0) -> str:
    # exc.msg is json's fixed wording ("Expecting value", ...), never the payload itself.
    return f"Invalid JSON at line {exc.lineno + line_offset}, column {exc.colno}: {exc.msg}."


def _load(text: str, ndjson_declared: bool) -> tuple[list[Any], list[Rejection]]:
    """Return the top-level items, and rejections for NDJSON lines that are not JSON."""
    try:
        value = _loads(text)
    except json.JSONDecodeError as exc:
        # "Extra data" = a complete value followed by more: the signature of NDJSON.
        if ndjson_declared or exc.msg == "Extra data":
            return _load_ndjson(text, first_error=exc)
        raise ParseError(400, "invalid_json", _position_message(exc)) from None
    except (ValueError, RecursionError) as exc:
        raise ParseError(400, "invalid_json", _value_error_message(exc)) from None
    if isinstance(value, list):
        if not value:
            raise ParseError(422, "empty_batch", "The body is an empty JSON array.")
        return value, []
    if isinstance(value, dict):
        return [value], []
    raise ParseError(422, "invalid_shape", "The body must be a JSON object, an array of objects, or NDJSON.")


def _value_error_message(exc: ValueError | RecursionError) -> str:
    if isinstance(exc, RecursionError):
        return "Invalid JSON: nesting too deep."
    return "Invalid JSON: unsupported number or constant."


def _load_ndjson(text: str, first_error: json.JSONDecodeError) -> tuple[list[Any], list[Rejection]]:
    """One value per non-blank line; a broken line is a rejection, unless every line is."""
    items: list[Any] = []
    rejections: list[Rejection] = []
    first_line_error: str | None = None
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        index = len(items) + len(rejections)
        try:
            items.append(_loads(line))
        except json.JSONDecodeError as exc:
            message = _position_message(exc, line_offset=line_no - 1)
            first_line_error = first_line_error or message
            rejections.append(Rejection(index, f"invalid_json: {message}"))
        except (ValueError, RecursionError) as exc:
            message = f"line {line_no}: {_value_error_message(exc)}"
            first_line_error = first_line_error or message
            rejections.append(Rejection(index, f"invalid_json: {message}"))
    if not items:
        raise ParseError(400, "invalid_json", first_line_error or _position_message(first_error))
    return items, rejections


def _to_result(items: list[Any], rejections: list[Rejection]) -> ParseResult:
    events: list[WallarmEvent] = []
    rejected = list(rejections)
    saw_object = False
    for index, item in _indexed(items, rejections):
        if not isinstance(item, dict):
            rejected.append(Rejection(index, f"not_an_object: item is a JSON {_json_kind(item)}"))
            continue
        saw_object = True
        outcome = to_event(item)
        if isinstance(outcome, str):
            rejected.append(Rejection(index, outcome))
        else:
            events.append(outcome)
    rejected.sort(key=lambda r: r.index)
    if not events:
        if not saw_object:
            raise ParseError(422, "invalid_shape", "The body contains no JSON object.")
        reasons = sorted({r.reason.split(":", 1)[0] for r in rejected})
        raise ParseError(
            422,
            "no_usable_events",
            f"No item is a usable Wallarm notification ({', '.join(reasons)}).",
        )
    return ParseResult(events=events, rejected=rejected)


def _indexed(items: list[Any], rejections: list[Rejection]) -> list[tuple[int, Any]]:
    """Give parsed items their position in the body, skipping indexes taken by bad lines."""
    taken = {r.index for r in rejections}
    result: list[tuple[int, Any]] = []
    index = 0
    for item in items:
        while index in taken:
            index += 1
        result.append((index, item))
        index += 1
    return result


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


def to_event(obj: Mapping[str, Any]) -> WallarmEvent | str:
    """One JSON object -> a WallarmEvent, or the rejection reason (a short code + detail)."""
    details = obj.get("details")
    if isinstance(details, dict):
        return _modern_event(obj, details)
    if details is not None:
        return "invalid_details: 'details' is not an object"
    return _legacy_event(obj)


def _text(value: Any) -> str:
    """Envelope strings; tolerate null/missing (client_name is documented as possibly empty)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _type_name(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _modern_event(obj: Mapping[str, Any], details: Mapping[str, Any]) -> WallarmEvent | str:
    notification_type = _type_name(details.get("notification_type"))
    if notification_type is None:
        notification_type = next(
            (t for key, t in _DETAILS_KEY_TO_TYPE if isinstance(details.get(key), dict)), None
        )
    if notification_type is None:
        return "missing_notification_type: details.notification_type is absent or not a string"
    return WallarmEvent(
        notification_type=notification_type,
        summary=_text(obj.get("summary")),
        description=_text(obj.get("description")),
        client_name=_text(details.get("client_name")),
        details=details,
        raw=obj,
    )


def _legacy_event(obj: Mapping[str, Any]) -> WallarmEvent | str:
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
    return "missing_notification_type: no 'details' and not a recognisable Wallarm 2.x object"


def _legacy(obj: Mapping[str, Any], notification_type: str, details: Mapping[str, Any]) -> WallarmEvent:
    return WallarmEvent(
        notification_type=notification_type,
        summary=_text(obj.get("summary")),
        description=_text(obj.get("description")),
        client_name=_text(obj.get("client_name")),
        details=details,
        raw=obj,
        legacy=True,
    )
