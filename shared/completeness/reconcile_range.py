"""A manual reconcile range, checked and cut to closed whole UTC hours (pure; no I/O).

The completeness log keys a window by its UTC start, and the timer skips every `ok` hour, so a
range must never record an hour it did not cover whole, an hour that has not closed, or an hour in
a caller's local time. Offsets are converted to UTC first; a range is widened to whole hours
(a partial hour is reconciled whole, which is harmless: hits are claimed one by one); its end is
cut at the last hour that closed RECONCILE_DELAY ago (as the timer does: a webhook's fresh hit is
only claimed in the dedup store once it is that old). Dates that do not fit (`0001-01-01T00:00+01:00`
is before year 1 in UTC) are a refused range, never an OverflowError.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.clock import hour_floor

HOUR = timedelta(hours=1)
MAX_TEXT = 64


class InvalidRange(ValueError):
    """Answered 400 `invalid_range`; the message names the limit, never repeats the input."""


@dataclass(frozen=True)
class RangeLimits:
    max_range: timedelta
    max_age: timedelta
    delay: timedelta


@dataclass(frozen=True)
class ClosedRange:
    start: datetime
    end: datetime
    clipped: bool  # the request reached past the last closed hour

    def windows(self) -> list[tuple[datetime, datetime]]:
        out: list[tuple[datetime, datetime]] = []
        cursor = self.start
        while cursor < self.end:
            out.append((cursor, cursor + HOUR))
            cursor += HOUR
        return out


def back(now: datetime, span: timedelta) -> datetime:
    """`now - span`, or the earliest date when a setting reaches before year 1."""
    try:
        return now - span
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


def parse_instant(text: str, name: str) -> datetime:
    """ISO 8601 (UTC when no offset) as an aware UTC datetime."""
    raw = text.strip()
    if not raw or len(raw) > MAX_TEXT:
        raise InvalidRange(f"{name} is required: an ISO 8601 time such as 2026-11-25T10:00:00Z")
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except ValueError:
        raise InvalidRange(f"{name} is not an ISO 8601 time (e.g. 2026-11-25T10:00:00Z)") from None
    except OverflowError:
        raise InvalidRange(f"{name} is outside the dates this relay can reconcile") from None


def closed_range(start: datetime, end: datetime, now: datetime, limits: RangeLimits) -> ClosedRange:
    """The whole closed UTC hours of [start, end), or InvalidRange saying which limit it breaks."""
    if end <= start:
        raise InvalidRange("to must be after from")
    if start >= now:
        raise InvalidRange("from is in the future")
    last_end = hour_floor(back(now, limits.delay))
    if start >= last_end:
        raise InvalidRange(
            f"no hour in the range has closed long enough: an hour is reconciled "
            f"{_minutes(limits.delay)} min (RECONCILE_DELAY_MINUTES) after it ends"
        )
    if start < back(now, limits.max_age):
        raise InvalidRange(
            f"from is more than {_days(limits.max_age)} days ago (RECONCILE_MAX_AGE_DAYS; "
            "Wallarm keeps hits 3 months on free plans, 6 on paid)"
        )
    clipped = end > last_end
    first = hour_floor(start)
    stop = last_end if clipped else hour_floor(end)
    if stop < end and not clipped:
        stop += HOUR  # a partial last hour is reconciled whole
    if stop - first > limits.max_range:
        hours = int((stop - first) / HOUR)
        raise InvalidRange(
            f"the range covers {hours} hours; at most {int(limits.max_range / HOUR)} "
            "per request (RECONCILE_MAX_RANGE_HOURS)"
        )
    return ClosedRange(first, stop, clipped)


def _minutes(span: timedelta) -> str:
    return f"{span.total_seconds() / 60:g}"


def _days(span: timedelta) -> str:
    return f"{span.total_seconds() / 86400:g}"
