"""Red team (issue 22): a retry-worker run no longer than the drain's minimum slice
(RETRY_WORKER_RUN_SECONDS <= 10, a valid setting) drained nothing at all once one tenant was
added, the default tenant's queue included: the first turn asked for a whole ``run_for`` left,
and on a real clock some of it had always passed."""

from __future__ import annotations

from datetime import timedelta

from shared.tenancy.drain import FairDrain


def test_every_tenant_gets_a_turn_when_the_run_is_shorter_than_the_minimum_slice() -> None:
    ran: list[tuple[str, float]] = []

    def worker(name: str):  # type: ignore[no-untyped-def]
        def run(length: timedelta) -> bool:
            ran.append((name, length.total_seconds()))
            return False  # nothing left

        return run

    drain: FairDrain[bool] = FairDrain(1, min_slice=timedelta(seconds=10), has_more=lambda more: more)
    report = drain.run({"default": worker("default"), "acme": worker("acme")}, timedelta(seconds=4))
    assert sorted(name for name, _ in ran) == ["acme", "default"]
    assert all(0 < length <= 4 for _, length in ran)
    assert sorted(t.tenant for t in report.turns) == ["acme", "default"]
