"""A webhook body becomes rows: parsed, then each event selected and mapped, once. Pure."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from shared.intake.events import ParseResult, Rejection
from shared.intake.mapping import map_event
from shared.intake.parse import parse_body
from shared.intake.selection import Selection, select
from shared.schema import Row


@dataclass(frozen=True)
class BodyRows:
    rows: list[Row]
    filtered: Counter[str]  # notification type -> events the selection left out
    rejected: list[Rejection]  # items that are no event, or whose mapping failed
    items: int  # items in the body


def read_rows(body: bytes, selection: Selection, received_at: datetime) -> BodyRows:
    """Raises ParseError when the whole body is unusable."""
    parsed = parse_body(body)
    rows, filtered, rejected = to_rows(parsed, selection, received_at)
    return BodyRows(rows, filtered, rejected, len(parsed.events) + len(parsed.rejected))


def to_rows(
    parsed: ParseResult, selection: Selection, received_at: datetime
) -> tuple[list[Row], Counter[str], list[Rejection]]:
    """Select and map each event; an item whose mapping fails is rejected alone, never the batch."""
    rows: list[Row] = []
    filtered: Counter[str] = Counter()
    rejected = list(parsed.rejected)
    for index, event in enumerate(parsed.events):
        try:
            chosen = select(event, selection)
            if chosen is None:
                filtered[event.notification_type] += 1
                continue
            rows.append(map_event(chosen, received_at))
        except (ValueError, TypeError, OverflowError, RecursionError, MemoryError) as err:
            rejected.append(Rejection(index, f"mapping_failed: {type(err).__name__}"))
    return rows, filtered, rejected
