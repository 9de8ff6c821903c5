"""Time: the injected clock's type, the epoch, the UTC hour, and the relay's two ISO 8601 spellings."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

Clock = Callable[[], datetime]
"""Returns the current time, UTC aware. Injected so tests use a fake clock."""

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def utc_now() -> datetime:
    """The real clock."""
    return datetime.now(UTC)


def iso_utc(when: datetime) -> str:
    """A row's ``TimeGenerated``: UTC with ``Z``, fractions only when there are any (naive = UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_iso_utc(text: object) -> datetime | None:
    """A row's ``TimeGenerated`` read back (naive = UTC); None when it is not an ISO 8601 time."""
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        # An offset can carry year 1 or 9999 across the calendar's edge (OverflowError).
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def iso_ms(when: datetime) -> str:
    """A time in the relay's JSON answers and logs: always milliseconds, ``Z`` for UTC."""
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def hour_floor(when: datetime) -> datetime:
    """The start of `when`'s hour in UTC: windows, counters and hourly rows are UTC hours, so a
    time given with another offset lands in the same hour as its UTC equivalent."""
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
