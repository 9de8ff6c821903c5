"""NCRONTAB schedules as the Functions host reads them, for the local host's timers.

The host parses timer schedules with NCrontab: six fields, seconds first
(`{second} {minute} {hour} {day} {month} {day-of-week}`), times in UTC, `%NAME%` resolved from the
app settings. croniter (maintained, on PyPI) does the date arithmetic; this adapter holds it to
NCrontab's grammar where the two differ:

- exactly six fields (croniter would take five or seven);
- only digits, names, `*`, `,`, `-` and `/` (no `L`, `W`, `#`, `?` or `H`, which NCrontab refuses);
- day of week 0-6 with Sunday = 0 (croniter also takes 7);
- month and day names in English, any case, any prefix of the full name (`Mon`, `monday`,
  `Jan`, `January`): NCrontab takes the first name the text begins;
- a day-of-month and a day-of-week both restricted must both match (NCrontab checks the day of
  week after the date; classic cron takes either).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import CroniterError, croniter  # type: ignore[import-untyped]

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
# (name, first, last, names) per field, in NCRONTAB order.
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("second", 0, 59, ()),
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day", 1, 31, ()),
    ("month", 1, 12, MONTHS),
    ("day-of-week", 0, 6, DAYS),
)
_FIELD_TEXT = re.compile(r"[0-9A-Za-z*,/-]+")
_SETTING = re.compile(r"%([A-Za-z0-9_.:-]+)%")
EXAMPLE = "0 */5 * * * * (second, minute, hour, day, month, day of week)"


class NcrontabError(ValueError):
    """A schedule the Functions host would refuse; the message says which field and why."""


@dataclass(frozen=True)
class Schedule:
    """A parsed NCRONTAB expression; `next_after` gives its occurrences in UTC."""

    expression: str
    _cron: str

    def next_after(self, when: datetime) -> datetime:
        """The first occurrence strictly after `when` (as NCrontab's GetNextOccurrence), in UTC."""
        base = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
        it = croniter(self._cron, base, ret_type=datetime, day_or=False, second_at_beginning=True)
        nxt: datetime = it.get_next()
        return nxt.astimezone(UTC)


def _value(text: str, field: str, first: int, last: int, names: tuple[str, ...]) -> str:
    if text.isdigit():
        number = int(text)
    else:
        found = [i for i, name in enumerate(names) if name.lower().startswith(text.lower())]
        if not found:
            known = ", ".join(names) if names else "none: use numbers"
            raise NcrontabError(f"the {field} field has an unknown name (names: {known})")
        number = found[0] + first
    if not first <= number <= last:
        raise NcrontabError(f"the {field} field takes {first}-{last}; {number} is out of range")
    return str(number)


def _field(text: str, field: str, first: int, last: int, names: tuple[str, ...]) -> str:
    if not _FIELD_TEXT.fullmatch(text):
        raise NcrontabError(f"the {field} field may hold only numbers, names, '*', ',', '-' and '/'")
    items = []
    for item in text.split(","):
        base, slash, step = item.partition("/")
        if slash and not (step.isdigit() and int(step) > 0):
            raise NcrontabError(f"the {field} field has a step that is not a positive number")
        if base != "*":
            low, dash, high = base.partition("-")
            if not low or (dash and not high):
                raise NcrontabError(f"the {field} field has an empty value or range")
            base = _value(low, field, first, last, names)
            base += f"-{_value(high, field, first, last, names)}" if dash else ""
        items.append(base + (f"/{int(step)}" if slash else ""))
    return ",".join(items)


def parse(expression: str) -> Schedule:
    """Parse an NCRONTAB expression; NcrontabError names the first field it refuses."""
    parts = expression.split()
    if len(parts) != len(_FIELDS):
        raise NcrontabError(
            f"an NCRONTAB schedule has six fields, seconds first, and this one has {len(parts)}: "
            f"e.g. {EXAMPLE}"
        )
    fields = [_field(p, *spec) for p, spec in zip(parts, _FIELDS, strict=True)]
    cron = " ".join(fields)
    try:
        croniter(cron, datetime(2000, 1, 1, tzinfo=UTC), day_or=False, second_at_beginning=True)
    except (CroniterError, ValueError) as err:
        raise NcrontabError(f"not a valid NCRONTAB schedule ({type(err).__name__}): e.g. {EXAMPLE}") from err
    return Schedule(expression, cron)


def resolve(schedule: str, settings: Mapping[str, str]) -> str:
    """`%NAME%` replaced by the app setting NAME, as the host does for a timer's schedule."""

    def setting(match: re.Match[str]) -> str:
        name = match.group(1)
        if not settings.get(name, "").strip():
            raise NcrontabError(f"the schedule names the app setting {name}, which is not set")
        return settings[name].strip()

    return _SETTING.sub(setting, schedule)
