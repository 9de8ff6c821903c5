"""shared.delivery.policy: Wallarm's resend schedule, Retry-After, the auto-disable rule, poison statuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.delivery.policy import (
    DEFAULT_SCHEDULE,
    RetrySchedule,
    is_poison,
    next_due,
    parse_duration,
)
from shared.health.rule import should_auto_disable

S = timedelta(seconds=1)
M = timedelta(minutes=1)
NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


# -- the default schedule is Wallarm's, exactly ------------------------------------------------


def test_default_schedule_is_wallarms_three_cycles_then_every_30_minutes() -> None:
    assert DEFAULT_SCHEDULE.cycles == (
        (1 * S, 3 * S, 5 * S, 10 * S, 10 * S),
        (0 * S, 1 * S, 3 * S, 5 * S, 30 * S),
        (1 * M, 1 * M, 3 * M, 5 * M, 10 * M, 30 * M),
    )
    assert DEFAULT_SCHEDULE.then_every == 30 * M
    assert len(DEFAULT_SCHEDULE.steps) == 16


@pytest.mark.parametrize(
    ("failed", "delay"),
    [
        (1, 1 * S),
        (2, 3 * S),
        (5, 10 * S),
        (6, 0 * S),  # second cycle starts at once
        (10, 30 * S),
        (11, 1 * M),
        (15, 10 * M),
        (16, 30 * M),  # last listed step
        (17, 30 * M),  # then every 30 minutes
        (1000, 30 * M),
    ],
)
def test_delay_after_indexes_the_steps_from_one(failed: int, delay: timedelta) -> None:
    assert DEFAULT_SCHEDULE.delay_after(failed) == delay


@pytest.mark.parametrize("failed", [0, -3])
def test_delay_after_fewer_than_one_failure_is_the_first_step(failed: int) -> None:
    assert DEFAULT_SCHEDULE.delay_after(failed) == 1 * S


def test_steady_interval_is_used_past_a_custom_schedule() -> None:
    schedule = RetrySchedule.parse("2s; every 5m")
    assert [schedule.delay_after(n) for n in (1, 2, 3)] == [2 * S, 5 * M, 5 * M]


# -- parse / str ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "1s,3s,5s,10s,10s; 0s,1s,3s,5s,30s; 1m,1m,3m,5m,10m,30m; every 30m",
        "1s; every 1h",
        "500ms,1.5s,90s; 2h; every 45s",
        "every 10s",
    ],
)
def test_parse_str_round_trip(text: str) -> None:
    schedule = RetrySchedule.parse(text)
    assert RetrySchedule.parse(str(schedule)) == schedule


def test_str_of_the_default_schedule_reads_like_the_setting() -> None:
    assert str(DEFAULT_SCHEDULE) == "1s,3s,5s,10s,10s; 0s,1s,3s,5s,30s; 1m,1m,3m,5m,10m,30m; every 30m"


def test_parse_is_lenient_about_spaces_and_empty_parts() -> None:
    assert RetrySchedule.parse(" 1s , 2s ;; every 1m ") == RetrySchedule(((1 * S, 2 * S),), 1 * M)


def test_parse_str_round_trip_for_large_or_precise_values() -> None:
    schedule = RetrySchedule.parse("1234567s; every 10.1234567s")
    assert RetrySchedule.parse(str(schedule)) == schedule


@pytest.mark.parametrize(
    ("text", "unit"),
    [("10", 10 * S), ("250ms", timedelta(milliseconds=250)), ("1.5m", 90 * S), ("2h", 2 * 60 * M)],
)
def test_parse_duration_units(text: str, unit: timedelta) -> None:
    assert parse_duration(text) == unit


@pytest.mark.parametrize("text", ["1s,3s", "1s; 30m", "", "   "])
def test_parse_without_every_says_how_to_end_the_schedule(text: str) -> None:
    with pytest.raises(ValueError, match=r"'; every <duration>'"):
        RetrySchedule.parse(text)


@pytest.mark.parametrize("text", ["1s; every 0s", "every 0m"])
def test_parse_refuses_a_zero_steady_interval(text: str) -> None:
    with pytest.raises(ValueError, match="positive"):
        RetrySchedule.parse(text)


@pytest.mark.parametrize(
    ("text", "bad"),
    [("1s,3x; every 30m", "3x"), ("1s; every 30d", "30d"), ("-1s; every 1m", "-1s"), ("1s; every", "")],
)
def test_parse_names_the_bad_duration(text: str, bad: str) -> None:
    with pytest.raises(ValueError, match="is not a duration like 10s, 1m or 1h") as info:
        RetrySchedule.parse(text)
    assert f"{bad}' is not" in str(info.value)


# -- next_due and Retry-After -----------------------------------------------------------------


def test_next_due_follows_the_schedule() -> None:
    assert next_due(NOW, DEFAULT_SCHEDULE, 4) == NOW + 10 * S


def test_next_due_honours_a_larger_retry_after() -> None:
    assert next_due(NOW, DEFAULT_SCHEDULE, 1, retry_after=42.5) == NOW + timedelta(seconds=42.5)


@pytest.mark.parametrize("retry_after", [0.0, 0.5, 10.0])
def test_next_due_ignores_a_smaller_or_equal_retry_after(retry_after: float) -> None:
    assert next_due(NOW, DEFAULT_SCHEDULE, 4, retry_after=retry_after) == NOW + 10 * S


def test_next_due_with_retry_after_past_the_steady_interval() -> None:
    assert next_due(NOW, DEFAULT_SCHEDULE, 30, retry_after=3600) == NOW + 60 * M


# -- auto-disable -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempts", "failures", "expected"),
    [
        (100, 60, True),  # exactly 60 %
        (5, 3, True),  # exactly 60 % (3/5 in floating point)
        (10000, 5999, False),  # 59.99 %
        (100, 100, True),
        (100, 0, False),
    ],
)
def test_should_auto_disable_ratio_boundary(attempts: int, failures: int, expected: bool) -> None:
    assert should_auto_disable(attempts, failures, ratio=0.6, min_attempts=1) is expected


def test_should_auto_disable_zero_attempts_with_no_minimum_does_not_divide_by_zero() -> None:
    assert should_auto_disable(0, 0, ratio=0.6, min_attempts=0) is False


def test_should_auto_disable_below_min_attempts() -> None:
    assert should_auto_disable(19, 19, ratio=0.6, min_attempts=20) is False
    assert should_auto_disable(20, 12, ratio=0.6, min_attempts=20) is True


# -- poison -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "rows"), [(400, 5), (400, 1), (413, 1), (413, 0), (422, 3)])
def test_poison(status: int, rows: int) -> None:
    assert is_poison(status, rows) is True


@pytest.mark.parametrize(
    ("status", "rows"),
    [(413, 2), (413, 500), (401, 1), (403, 1), (404, 1), (408, 1), (429, 1)]
    + [(s, 1) for s in (500, 502, 503, 504)]
    + [(None, 1), (None, 0), (204, 1)],
)
def test_not_poison(status: int | None, rows: int) -> None:
    assert is_poison(status, rows) is False
