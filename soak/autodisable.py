"""The relay's auto-disable judged against the truth: the failure ratio from the stand-ins' records.

The relay disables when, over its window (`AUTO_DISABLE_WINDOW_HOURS`, from the start of the
10-minute ledger bucket that holds ``now - window``), at least `AUTO_DISABLE_MIN_ATTEMPTS`
attempts were made, at least 60 % failed, and nothing succeeded for `AUTO_DISABLE_GRACE_MINUTES`
counted from the start of the newest unbroken run of all-failing buckets
(`shared/health/rule.py`). Here the same rule is applied to what the stand-ins saw, never to the
relay's counters, so the books can say whether each disable came at a true ratio of 60 % or more
and why the relay stayed enabled when the true ratio was that high. Pure.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

LEDGER_BUCKET_SECONDS = 600.0  # the ledger's bucket (not scaled by the soak)


@dataclass(frozen=True)
class Rule:
    """The relay's AUTO_DISABLE_* values as the soak set them (seconds)."""

    ratio: float
    window: float
    min_attempts: int
    grace: float
    bucket: float = LEDGER_BUCKET_SECONDS


@dataclass(frozen=True)
class Truth:
    """The rule's inputs at one moment, from the stand-ins."""

    attempts: int
    failures: int
    failing_since: float | None  # run-relative start of the all-failing buckets, None: a success
    last_success: float | None  # run-relative time of the newest success in the window

    @property
    def ratio(self) -> float:
        return self.failures / self.attempts if self.attempts else 0.0


class Attempts:
    """Every attempt the stand-ins saw, as (run-relative seconds, ok), sorted; `wall0` is the run's
    start on the wall clock, so buckets align with the relay's (UTC, from the epoch)."""

    def __init__(self, attempts: Sequence[tuple[float, bool]], wall0: float) -> None:
        ordered = sorted(attempts)
        self.times = [t for t, _ok in ordered]
        self.ok = [ok for _t, ok in ordered]
        self.wall0 = wall0

    def bucket_start(self, t: float, bucket: float) -> float:
        wall = self.wall0 + t
        return (wall // bucket) * bucket - self.wall0

    def at(self, t: float, rule: Rule) -> Truth:
        start = self.bucket_start(t - rule.window, rule.bucket)
        lo, hi = bisect.bisect_left(self.times, start), bisect.bisect_right(self.times, t)
        failures = sum(1 for ok in self.ok[lo:hi] if not ok)
        successes = [self.times[i] for i in range(lo, hi) if self.ok[i]]
        last_success = successes[-1] if successes else None
        if last_success is None:
            since = self.bucket_start(self.times[lo], rule.bucket) if hi > lo else None
        else:
            # The streak starts at the first bucket after the newest success, if attempts followed.
            # (empty buckets do not break a streak, so it starts at the next attempt's bucket).
            after = bisect.bisect_left(
                self.times, self.bucket_start(last_success, rule.bucket) + rule.bucket, lo, hi
            )
            since = self.bucket_start(self.times[after], rule.bucket) if after < hi else None
        return Truth(hi - lo, failures, since, last_success)


def _would_disable(truth: Truth, t: float, rule: Rule) -> tuple[bool, str]:
    if truth.attempts < rule.min_attempts:
        return False, "min_attempts"
    if truth.ratio < rule.ratio:
        return False, "ratio"
    if rule.grace > 0 and (truth.failing_since is None or t - truth.failing_since < rule.grace):
        return False, "grace"
    return True, "due"


def check(status_log: Sequence[dict[str, Any]], attempts: Attempts, rule: Rule) -> dict[str, Any]:
    """(a) each disable (an enabled sample followed by an auto_disabled one): the highest true
    ratio in between, a violation when it stayed under the rule's ratio; (b) enabled samples at a
    true ratio of 60 % or more, each with the reason the rule (applied to the truth) gave:
    `min_attempts`, `grace` (a success within the grace, or the failing streak started at a
    bucket boundary less than the grace ago) or `due` (the truth says disable: the relay's
    counters differed, or its check ran only at its next failed write)."""
    disables: list[dict[str, Any]] = []
    high_enabled: list[dict[str, Any]] = []
    reasons: dict[str, int] = {}
    previous: dict[str, Any] | None = None
    for sample in status_log:
        t = float(sample["t"])
        state = sample.get("state")
        if state == "auto_disabled" and previous is not None and previous.get("state") != "auto_disabled":
            lo = float(previous["t"])
            moments = [lo, t] + [x for x in attempts.times if lo < x < t]
            best = max((attempts.at(m, rule) for m in moments), key=lambda tr: tr.ratio)
            disables.append(
                {
                    "between": [lo, t],
                    "true_ratio_max": round(best.ratio, 4),
                    "true_attempts": best.attempts,
                    "relay_ratio": sample.get("ratio"),
                    "violation": best.ratio < rule.ratio,
                }
            )
        elif state == "enabled":
            truth = attempts.at(t, rule)
            if truth.attempts and truth.ratio >= rule.ratio:
                due, reason = _would_disable(truth, t, rule)
                reasons[reason] = reasons.get(reason, 0) + 1
                high_enabled.append(
                    {
                        "t": t,
                        "true_ratio": round(truth.ratio, 4),
                        "true_attempts": truth.attempts,
                        "relay_ratio": sample.get("ratio"),
                        "reason": reason,
                        "failing_since": None
                        if truth.failing_since is None
                        else round(truth.failing_since, 1),
                        "last_success": None if truth.last_success is None else round(truth.last_success, 1),
                    }
                )
        if state in ("enabled", "auto_disabled"):
            previous = sample
    return {
        "rule": {
            "ratio": rule.ratio,
            "window_s": rule.window,
            "min_attempts": rule.min_attempts,
            "grace_s": rule.grace,
        },
        "disables": disables,
        "violations": sum(1 for d in disables if d["violation"]),
        "samples_auto_disabled": sum(1 for s in status_log if s.get("state") == "auto_disabled"),
        "enabled_at_true_ratio_over": len(high_enabled),
        "enabled_at_true_ratio_over_by_reason": reasons,
        "enabled_but_due": [h for h in high_enabled if h["reason"] == "due"][:50],
        "enabled_at_true_ratio_over_first": high_enabled[:20],
    }
