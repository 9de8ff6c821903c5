"""The retry worker's minute shared among tenants (shared/tenancy/drain.py): a tenant with a big
backlog holds one slot for one slice at a time; idle tenants free their slot at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

from shared.tenancy.drain import FairDrain


class Work:
    """A tenant's worker: sleeps for its turn while it has a backlog, ends at once when idle."""

    def __init__(self, backlog: bool, started: list[tuple[str, float]], name: str, t0: float) -> None:
        self.backlog, self.started, self.name, self.t0 = backlog, started, name, t0

    def __call__(self, length: timedelta) -> bool:
        self.started.append((self.name, time.monotonic() - self.t0))
        if self.backlog:
            time.sleep(length.total_seconds())
        return self.backlog  # "has more"


def workers(names: dict[str, bool]) -> tuple[dict[str, Callable[[timedelta], bool]], list[tuple[str, float]]]:
    started: list[tuple[str, float]] = []
    t0 = time.monotonic()
    return {name: Work(backlog, started, name, t0) for name, backlog in names.items()}, started


def test_with_no_more_tenants_than_slots_every_tenant_drains_the_whole_run_at_once() -> None:
    drain: FairDrain[bool] = FairDrain(4, min_slice=timedelta(seconds=0.05), has_more=bool)
    assert drain.slice_for(3, 60) == 60
    jobs, started = workers({"noisy": True, "a": True, "b": False})
    report = drain.run(jobs, timedelta(seconds=0.3))
    first_turns = [report.of(name)[0] for name in ("noisy", "a", "b")]
    # All three started before any turn ended: nobody waited for a slot.
    assert max(t.started for t in first_turns) <= min(t.ended for t in report.turns)
    assert len(report.of("b")) == 1  # idle: one short turn, its slot freed


def test_with_more_tenants_than_slots_each_gets_a_slice_before_anyone_gets_a_second() -> None:
    drain: FairDrain[bool] = FairDrain(2, min_slice=timedelta(seconds=0.05), has_more=bool)
    assert drain.slice_for(4, 60) == 30
    jobs, started = workers({"noisy": True, "a": True, "b": True, "c": True})
    drain.run(jobs, timedelta(seconds=0.8))
    first_four = [name for name, _ in started[:4]]
    assert sorted(first_four) == ["a", "b", "c", "noisy"]


def test_the_least_recently_served_tenant_goes_first_in_the_next_run() -> None:
    drain: FairDrain[bool] = FairDrain(1, min_slice=timedelta(seconds=0.05), has_more=bool)
    jobs, started = workers({"a": True, "b": True, "c": True})
    drain.run(jobs, timedelta(seconds=0.1))  # two turns of 0.05 s fit: a, b
    served_first = [name for name, _ in started]
    started.clear()
    drain.run(jobs, timedelta(seconds=0.1))
    assert started[0][0] not in served_first  # c, never served, goes first


def test_one_tenants_failing_worker_does_not_end_the_others_turns() -> None:
    drain: FairDrain[bool] = FairDrain(2, min_slice=timedelta(seconds=0.05), has_more=lambda _: False)
    ran = threading.Event()

    def broken(_: timedelta) -> bool:
        raise OSError("its table is gone")

    def fine(_: timedelta) -> bool:
        ran.set()
        return False

    report = drain.run({"broken": broken, "fine": fine}, timedelta(seconds=0.2))
    assert ran.is_set()
    assert [t.result for t in report.of("broken")] == [None]


def test_a_run_shorter_than_a_slice_still_gives_every_tenant_a_turn() -> None:
    """RETRY_WORKER_RUN_SECONDS below the slice: each tenant drains for the whole (short) run,
    instead of no tenant at all."""
    drain: FairDrain[bool] = FairDrain(4, min_slice=timedelta(seconds=10), has_more=bool)
    jobs, started = workers({"default": False, "a": True, "b": False})
    report = drain.run(jobs, timedelta(seconds=0.2))
    assert sorted(name for name, _ in started) == ["a", "b", "default"]
    assert {t.tenant for t in report.turns} == {"a", "b", "default"}
