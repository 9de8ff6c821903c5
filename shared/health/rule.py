"""The auto-disable rule's arithmetic (Wallarm's 60 % over 12 h, and the grace of no success). Pure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta


def failing_since(buckets: Sequence[tuple[datetime, int, int]]) -> datetime | None:
    """Start of the newest unbroken run of failing buckets: (start, attempts, failures) buckets
    whose attempts all failed, going back from the newest; buckets without attempts do not break
    the run, a bucket with a success does. None when the newest attempts include a success."""
    since: datetime | None = None
    for start, attempts, failures in sorted(buckets, reverse=True):
        if attempts == 0:
            continue
        if failures < attempts:
            break
        since = start
    return since


def is_sustained(since: datetime | None, now: datetime, grace: timedelta) -> bool:
    """True when nothing has succeeded for ``grace`` (a blip is not an outage); a zero grace is
    Wallarm's bare ratio rule."""
    if grace <= timedelta(0):
        return True
    return since is not None and now - since >= grace


def should_auto_disable(attempts: int, failures: int, *, ratio: float, min_attempts: int) -> bool:
    """Wallarm's rule: a failure share of `ratio` or more over the window disables the integration.

    `min_attempts` keeps two failed requests in a quiet hour from disabling a healthy integration.
    """
    return attempts >= min_attempts and attempts > 0 and failures / attempts >= ratio
