"""local.ncrontab against the NCRONTAB examples of the Azure Functions timer trigger docs
(learn.microsoft.com, "Timer trigger for Azure Functions", NCRONTAB expressions) and NCrontab's
own grammar (github.com/atifaziz/NCrontab: CrontabFieldImpl.cs, CrontabSchedule.cs)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from local.ncrontab import NcrontabError, Schedule, parse, resolve
from local.run import SCHEDULE_DEFAULTS

ROOT = Path(__file__).resolve().parents[2]
MONDAY = datetime(2026, 1, 5, 0, 0, 0, tzinfo=UTC)  # Monday 5 January 2026, midnight UTC


def occurrences(schedule: Schedule, start: datetime, count: int) -> list[datetime]:
    out = [schedule.next_after(start)]
    while len(out) < count:
        out.append(schedule.next_after(out[-1]))
    return out


def at(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 1) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


# The docs' table "NCRONTAB examples": expression, when triggered.
def test_once_every_five_minutes() -> None:
    got = occurrences(parse("0 */5 * * * *"), MONDAY, 3)
    assert got == [at(5, 0, 5), at(5, 0, 10), at(5, 0, 15)]


def test_once_at_the_top_of_every_hour() -> None:
    assert occurrences(parse("0 0 * * * *"), MONDAY, 2) == [at(5, 1), at(5, 2)]


def test_once_every_two_hours() -> None:
    assert occurrences(parse("0 0 */2 * * *"), MONDAY, 3) == [at(5, 2), at(5, 4), at(5, 6)]


def test_once_every_hour_from_9_am_to_5_pm() -> None:
    got = occurrences(parse("0 0 9-17 * * *"), MONDAY, 10)
    assert got == [at(5, h) for h in range(9, 18)] + [at(6, 9)]


def test_at_9_30_every_day() -> None:
    assert occurrences(parse("0 30 9 * * *"), MONDAY, 2) == [at(5, 9, 30), at(6, 9, 30)]


def test_at_9_30_every_weekday() -> None:
    got = occurrences(parse("0 30 9 * * 1-5"), MONDAY, 6)
    assert got == [at(d, 9, 30) for d in (5, 6, 7, 8, 9, 12)]  # Mon-Fri, then the next Monday


def test_at_9_30_every_monday_in_january() -> None:
    got = occurrences(parse("0 30 9 * Jan Mon"), MONDAY, 5)
    assert got == [at(d, 9, 30) for d in (5, 12, 19, 26)] + [datetime(2027, 1, 4, 9, 30, tzinfo=UTC)]


# The docs' table of field types.
def test_a_specific_value_all_values_a_range_a_set_and_an_interval() -> None:
    assert occurrences(parse("0 5 * * * *"), MONDAY, 2) == [at(5, 0, 5), at(5, 1, 5)]
    assert occurrences(parse("0 * 5 * * *"), MONDAY, 2) == [at(5, 5, 0), at(5, 5, 1)]
    assert occurrences(parse("5-7 * * * * *"), MONDAY, 4) == [
        at(5, 0, 0, 5),
        at(5, 0, 0, 6),
        at(5, 0, 0, 7),
        at(5, 0, 1, 5),
    ]
    assert occurrences(parse("5,8,10 * * * * *"), MONDAY, 3) == [at(5, 0, 0, s) for s in (5, 8, 10)]


def test_names_in_english_any_case_full_or_abbreviated() -> None:
    """ "Names are in English … case-insensitive … can be abbreviated" (NCrontab: any prefix)."""
    expected = parse("0 30 9 * 1 1").next_after(MONDAY)
    for text in ("0 30 9 * January Monday", "0 30 9 * jan mon", "0 30 9 * JANUARY MON", "0 30 9 * Janu Mo"):
        assert parse(text).next_after(MONDAY) == expected
    assert parse("0 0 0 * * Sun").next_after(MONDAY) == at(11, 0)  # Sunday = 0


def test_the_issues_ten_second_completeness_schedule() -> None:
    got = occurrences(parse("*/10 * * * * *"), MONDAY, 3)
    assert got == [MONDAY + timedelta(seconds=s) for s in (10, 20, 30)]


def test_next_is_strictly_after_and_in_utc_from_any_time_zone() -> None:
    schedule = parse("0 20 * * * *")
    assert schedule.next_after(at(5, 10, 20)) == at(5, 11, 20)
    berlin = datetime(2026, 1, 5, 11, 0, tzinfo=timezone(timedelta(hours=1)))  # 10:00 UTC
    assert schedule.next_after(berlin) == at(5, 10, 20)
    assert schedule.next_after(berlin).tzinfo == UTC


def test_day_of_month_and_day_of_week_must_both_match() -> None:
    """NCrontab checks the day of week after the date (classic cron would take either)."""
    friday_13th = [d.date().isoformat() for d in occurrences(parse("0 0 0 13 * Fri"), MONDAY, 2)]
    assert friday_13th == ["2026-02-13", "2026-03-13"]


def test_the_relays_default_schedules() -> None:
    assert occurrences(parse(SCHEDULE_DEFAULTS["RETRY_WORKER_SCHEDULE"]), at(5, 10, 0, 30), 2) == [
        at(5, 10, 1),
        at(5, 10, 2),
    ]
    assert parse(SCHEDULE_DEFAULTS["HOURLY_COUNT_SCHEDULE"]).next_after(at(5, 10, 0, 1)) == at(5, 11)
    assert parse(SCHEDULE_DEFAULTS["COMPLETENESS_SCHEDULE"]).next_after(at(5, 10, 21)) == at(5, 11, 20)


def test_local_run_defaults_are_the_documented_ones() -> None:
    example = json.loads((ROOT / "local.settings.example.json").read_text(encoding="utf-8"))["Values"]
    assert {k: example[k] for k in SCHEDULE_DEFAULTS} == SCHEDULE_DEFAULTS


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("0 */5 * * *", "six fields"),  # classic five-field cron, missing the seconds
        ("0 0 */5 * * * *", "six fields"),  # a year field
        ("", "six fields"),
        ("60 * * * * *", "second field takes 0-59"),
        ("0 0 24 * * *", "hour field takes 0-23"),
        ("0 0 0 0 * *", "day field takes 1-31"),
        ("0 0 0 * 13 *", "month field takes 1-12"),
        ("0 0 0 * * 7", "day-of-week field takes 0-6"),  # croniter would take 7 as Sunday
        ("0 0 0 L * *", "day field has an unknown name"),
        ("0 0 0 ? * *", "may hold only"),
        ("0 0 0 * * 5#3", "may hold only"),
        ("0 0 0 * * Funday", "unknown name"),
        ("0 */0 * * * *", "step"),
        ("0 1- * * * *", "empty value"),
        ("0 ,1 * * * *", "empty value"),
    ],
)
def test_what_ncrontab_refuses_is_refused_with_the_field_named(expression: str, says: str) -> None:
    with pytest.raises(NcrontabError, match=says):
        parse(expression)


def test_app_setting_names_are_resolved_like_the_host() -> None:
    assert resolve("%RETRY_WORKER_SCHEDULE%", {"RETRY_WORKER_SCHEDULE": " 0 * * * * * "}) == "0 * * * * *"
    assert resolve("0 */5 * * * *", {}) == "0 */5 * * * *"
    with pytest.raises(NcrontabError, match="COMPLETENESS_SCHEDULE, which is not set"):
        resolve("%COMPLETENESS_SCHEDULE%", {"COMPLETENESS_SCHEDULE": ""})
