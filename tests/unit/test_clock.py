"""shared.clock's ISO reader: any stored text gives a UTC time or None, never an exception."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.clock import iso_utc, parse_iso_utc


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01T00:00:00+01:00",  # UTC would be year 0
        "9999-12-31T23:59:59-01:00",  # UTC would be year 10000
        "0001-01-01T00:00:00+23:59",
        "",
        "x" * 100_000,
        "2026-13-01T00:00:00Z",
    ],
)
def test_a_time_beyond_the_calendar_or_not_a_time_reads_as_none(text: str) -> None:
    assert parse_iso_utc(text) is None


def test_an_offset_or_naive_time_reads_as_the_same_instant_in_utc() -> None:
    assert parse_iso_utc("2026-12-05T10:00:00+05:30") == datetime(2026, 12, 5, 4, 30, tzinfo=UTC)
    assert parse_iso_utc("2026-12-05T10:00:00") == datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    assert parse_iso_utc(None) is None


@given(st.text())
def test_any_text_reads_as_a_utc_time_or_none(text: str) -> None:
    when = parse_iso_utc(text)
    assert when is None or when.tzinfo is UTC


@given(st.datetimes(timezones=st.timezones()))
def test_what_iso_utc_writes_reads_back_as_the_same_instant(when: datetime) -> None:
    try:
        written = iso_utc(when)
    except OverflowError:
        return  # the writer's own edge: mapping only passes times from 1970 to 5138
    # Compared in UTC: a local time in a DST gap never equals an instant in another zone.
    assert parse_iso_utc(written) == when.astimezone(UTC)
