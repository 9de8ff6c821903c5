"""The typed form of one Wallarm notification object, as parsed from a webhook body."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class WallarmEvent:
    """One notification object: `{summary, description, details: {notification_type, ...}}`.

    `raw` is the object exactly as received (it becomes RawData); the other fields are
    conveniences read from it. Legacy 2.x flat objects are normalised into the same shape.
    """

    notification_type: str
    summary: str
    description: str
    client_name: str
    details: Mapping[str, Any]
    raw: Mapping[str, Any]
    legacy: bool = False


@dataclass(frozen=True)
class Rejection:
    """An item of a body that could not be turned into an event (counted and logged, never data)."""

    index: int
    reason: str


@dataclass(frozen=True)
class ParseResult:
    events: list[WallarmEvent]
    rejected: list[Rejection] = field(default_factory=list)


class ParseError(Exception):
    """The whole body is unusable: maps to one HTTP status and a JSON error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
