"""When to retry, what never to retry, and when to give up: pure functions of time and history.

The schedule reproduces Wallarm's own webhook delivery rules (one place, data, configurable via
RETRY_SCHEDULE); the auto-disable rule is Wallarm's "60 % of requests failed within 12 hours".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)?\s*$", re.ASCII)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
LONGEST_STEP = timedelta(days=30)  # a retry step longer than this keeps rows from Sentinel for no gain


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like 10s, 1m or 1h")
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if not seconds <= LONGEST_STEP.total_seconds():
        raise ValueError(f"{text.strip()!r} is longer than 30 days")
    return timedelta(seconds=seconds)


def _format(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    # repr() is exact and never uses an exponent at these magnitudes, so parse() reads it back.
    return f"{int(seconds)}s" if seconds == int(seconds) else f"{seconds!r}s"


@dataclass(frozen=True)
class RetrySchedule:
    """Delays after each failed attempt, grouped in cycles, then a steady interval forever."""

    cycles: tuple[tuple[timedelta, ...], ...]
    then_every: timedelta

    @property
    def steps(self) -> tuple[timedelta, ...]:
        return tuple(step for cycle in self.cycles for step in cycle)

    def delay_after(self, failed_attempts: int) -> timedelta:
        """Delay before the next attempt, given how many attempts have failed (>= 1)."""
        steps = self.steps
        index = max(failed_attempts, 1) - 1
        return steps[index] if index < len(steps) else self.then_every

    @classmethod
    def parse(cls, text: str) -> RetrySchedule:
        """Parse `1s,3s,5s,10s,10s; 0s,1s,3s,5s,30s; 1m,1m,3m,5m,10m,30m; every 30m`."""
        cycles: list[tuple[timedelta, ...]] = []
        then_every: timedelta | None = None
        for part in (p.strip() for p in text.split(";")):
            if not part:
                continue
            if part.startswith("every"):
                then_every = parse_duration(part[len("every") :])
                continue
            cycles.append(tuple(parse_duration(step) for step in part.split(",") if step.strip()))
        if then_every is None or then_every <= timedelta(0):
            raise ValueError("end the schedule with a positive '; every <duration>' (e.g. every 30m)")
        return cls(tuple(c for c in cycles if c), then_every)

    def __str__(self) -> str:
        cycles = "; ".join(",".join(_format(s) for s in cycle) for cycle in self.cycles)
        return f"{cycles}; every {_format(self.then_every)}"


# Wallarm's documented resend cycles, then every 30 minutes until delivered or disabled.
DEFAULT_SCHEDULE = RetrySchedule.parse("1s,3s,5s,10s,10s; 0s,1s,3s,5s,30s; 1m,1m,3m,5m,10m,30m; every 30m")


def next_due(
    now: datetime, schedule: RetrySchedule, failed_attempts: int, retry_after: float | None = None
) -> datetime:
    """The next attempt time: the schedule's step, but never before the server's Retry-After."""
    delay = schedule.delay_after(failed_attempts)
    if retry_after is not None and retry_after > delay.total_seconds():
        delay = timedelta(seconds=retry_after)
    return now + delay


# Statuses that cannot succeed by resending the same rows: quarantined, not retried forever.
# 401/403/404 are retried: a token refresh, role propagation (up to ~30 min) or a corrected
# DCR setting makes them succeed, and the auto-disable rule bounds how long that goes on.
_POISON_STATUSES = frozenset({400, 413, 422})


def is_poison(status: int | None, rows_in_request: int) -> bool:
    """True when resending the same request can never succeed.

    A 413 on a multi-row request is not poison: the rows are re-split (see delivery).
    """
    if status is None:
        return False
    if status == 413:
        return rows_in_request <= 1
    return status in _POISON_STATUSES
