"""The manual reconcile range as closed whole UTC hours (pure; issue 19 findings 1, 5, 6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.completeness.reconcile_range import InvalidRange, RangeLimits, closed_range, parse_instant

NOW = datetime(2026, 11, 25, 16, 10, tzinfo=UTC)
LIMITS = RangeLimits(max_range=timedelta(hours=168), max_age=timedelta(days=90), delay=timedelta(minutes=30))


def hours(frm: str, to: str, limits: RangeLimits = LIMITS) -> list[str]:
    rng = closed_range(parse_instant(frm, "from"), parse_instant(to, "to"), NOW, limits)
    return [s.strftime("%d %H:%M") for s, _ in rng.windows()]


def test_offsets_become_utc_and_partial_hours_are_widened() -> None:
    assert hours("2026-11-25T14:00+02:00", "2026-11-25T15:00+02:00") == ["25 12:00"]
    assert hours("2026-11-25T14:00Z", "2026-11-25T14:01Z") == ["25 14:00"]
    assert hours("2026-11-25T12:59:59Z", "2026-11-25T13:00:01Z") == ["25 12:00", "25 13:00"]
    assert hours("2026-11-25T10:00", "2026-11-25T11:00") == ["25 10:00"]  # no offset: UTC


def test_the_end_is_cut_at_the_last_hour_closed_long_enough() -> None:
    rng = closed_range(
        parse_instant("2026-11-25T14:00Z", "f"), parse_instant("2026-11-26T00:00Z", "t"), NOW, LIMITS
    )
    assert rng.clipped and rng.end == datetime(2026, 11, 25, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("frm", "to"),
    [
        ("2026-11-25T17:00Z", "2026-11-25T18:00Z"),
        ("2026-11-25T15:00Z", "2026-11-25T16:00Z"),
        ("2026-11-25T13:00Z", "2026-11-25T13:00Z"),
        ("2026-08-01T00:00Z", "2026-08-01T01:00Z"),
        ("2026-11-01T00:00Z", "2026-11-25T00:00Z"),
        ("0001-01-01T00:00+01:00", "2026-11-25T00:00Z"),
        ("2026-11-25T00:00Z", "9999-12-31T23:59:59.999999-01:00"),
        ("", "2026-11-25T00:00Z"),
    ],
)
def test_refused_ranges(frm: str, to: str) -> None:
    with pytest.raises(InvalidRange):
        hours(frm, to)


def test_settings_that_reach_before_year_one_do_not_overflow() -> None:
    wide = RangeLimits(
        max_range=timedelta(days=999_999_999), max_age=timedelta(days=999_999), delay=LIMITS.delay
    )
    assert hours("2026-11-25T10:00Z", "9999-12-31T23:59Z", wide) == [f"25 {h}:00" for h in range(10, 15)]
