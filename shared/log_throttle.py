"""Repeated identical log lines, summarised: the first one, then one per interval with a count.

An outage makes the same warning happen every second (storage down, a probe failing); the log
should say so once and then how often, not fill App Insights with copies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RepeatedLog:
    def __init__(
        self,
        logger: logging.Logger,
        every_seconds: float = 300.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._every = every_seconds
        self._monotonic = monotonic
        self._seen: dict[str, tuple[float, int]] = {}

    def log(self, level: int, key: str, message: str, *args: object) -> None:
        """Log `message` now if `key` was not logged in the last interval; count it otherwise."""
        now = self._monotonic()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self._every:
            self._seen[key] = (last[0], last[1] + 1)
            return
        suppressed = last[1] if last else 0
        self._seen[key] = (now, 0)
        if suppressed:
            self._log.log(level, message + " (repeated %d more times)", *args, suppressed)
        else:
            self._log.log(level, message, *args)

    def clear(self, key: str) -> bool:
        """Forget `key` (the condition ended); True if it had been logged."""
        return self._seen.pop(key, None) is not None
