"""Issue 24: the books' auto-disable and ledger checks, and the instances' own memory samples.

The auto-disable must fire only at a true failure ratio of 60 % or more (from the stand-ins, not
the relay's counters); the ledger is compared with the stand-ins in the same kind (token failures
never reach ingestion); Python's allocated blocks tell allocator steps from leaks. Pure, no soak.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from soak import books, instance
from soak.autodisable import Attempts, Rule, check

RULE = Rule(ratio=0.6, window=2160.0, min_attempts=20, grace=120.0)
WALL0 = 1_800_000_000.0  # a multiple of 600: run time 0 is a ledger bucket boundary


def _attempts(spec: list[tuple[float, float, bool]]) -> Attempts:
    """(from, to, ok): one attempt per second."""
    return Attempts([(float(t), ok) for a, b, ok in spec for t in range(int(a), int(b))], WALL0)


def test_a_disable_at_a_true_ratio_under_sixty_percent_is_a_violation() -> None:
    truth = _attempts([(0, 100, True), (100, 150, False)])  # 50 of 150 failed: 33 %
    log = [{"t": 140.0, "state": "enabled"}, {"t": 145.0, "state": "auto_disabled", "ratio": 0.7}]
    result = check(log, truth, RULE)
    assert result["violations"] == 1 and result["disables"][0]["true_ratio_max"] < 0.6


def test_a_disable_after_a_long_streak_of_failures_is_no_violation() -> None:
    truth = _attempts([(0, 30, True), (30, 700, False)])
    log = [{"t": 690.0, "state": "enabled"}, {"t": 695.0, "state": "auto_disabled"}]
    assert check(log, truth, RULE)["violations"] == 0


def test_staying_enabled_at_a_high_ratio_is_explained_by_the_bucket_aligned_grace() -> None:
    # Failing from t=500 on; the last success at 499 is in the bucket [0, 600), so the relay's
    # streak starts at 600: at t=700 only 100 s of it (grace 120 s), though 200 s had no success.
    truth = _attempts([(0, 100, True), (100, 499, False), (499, 500, True), (500, 700, False)])
    out = check([{"t": 700.0, "state": "enabled"}], truth, RULE)
    first = out["enabled_at_true_ratio_over_first"][0]
    assert first["reason"] == "grace" and first["failing_since"] == 600.0 and first["last_success"] == 499.0
    out = check([{"t": 725.0, "state": "enabled"}], truth, RULE)
    assert out["enabled_at_true_ratio_over_by_reason"] == {"due": 1}  # the truth says: disable now


def test_too_few_attempts_keep_it_enabled() -> None:
    truth = _attempts([(0, 10, False)])
    out = check([{"t": 300.0, "state": "enabled"}], truth, RULE)
    assert out["enabled_at_true_ratio_over_by_reason"] == {"min_attempts": 1}


def test_ledger_in_kind_adds_token_failures_in_outages_and_late_answers() -> None:
    log = [(1.0, 204, False, 5), (2.0, 503, False, 5), (3.0, 204, True, 5), (4.0, 0, False, 5)]
    log += [(9.0, 204, False, 0), (9.5, 503, False, 0)]  # health probes: requests like any other
    records = [(2.0, "HTTP503"), (3.0, "response_error"), (4.0, "response_error"), (9.5, "HTTP503")]
    records += [(50.0, books.TOKEN_ERROR), (55.0, books.TOKEN_ERROR), (500.0, books.TOKEN_ERROR)]
    ledger = {"attempts": 8, "failures": 6, "events": 0, "received": 0}
    got = books.ledger_in_kind(ledger, log, records, [(40.0, 60.0)], slack=5.0)
    assert got["token_failures_in_outages"] == 2 and got["token_failures_outside_outages"] == 1
    assert got["standin_2xx_empty_probes"] == 1
    assert got["expected_attempts"] == 8 and got["expected_failures"] == 6  # 3 failed + 1 late + 2
    assert got["attempts_diff"] == 0 and got["failures_diff"] == 0 and got["within_bound"]


def test_growth_reads_the_instances_own_samples() -> None:
    samples = [
        {"t": float(t), "pid": 7, "slot": 0, "blocks": 1000 + t, "py_threads": 9} for t in range(0, 300, 5)
    ]
    got = books.growth(samples, warmup=60, keys=books.PYALLOC_KEYS)["7"]
    assert got["py_threads"]["growth_pct"] == 0.0 and got["blocks"]["growth_pct"] > 0


def test_the_sampler_writes_one_json_line_per_period_and_stops(tmp_path: Path) -> None:
    stop = threading.Event()
    path = tmp_path / "pyalloc-1.jsonl"
    worker = threading.Thread(target=instance._alloc_loop, args=(stop, path, 0.01))
    worker.start()
    threading.Event().wait(0.1)
    stop.set()
    worker.join(timeout=5)
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert not worker.is_alive() and len(lines) >= 2
    assert set(lines[0]) == {"t", "blocks", "py_threads"} and lines[0]["blocks"] > 0


def test_the_queue_empty_time_counts_from_the_last_fault_to_the_first_empty_sample() -> None:
    log = [
        {"t": 90.0, "pending": 0, "parked": 0},  # before the fault ended: not the drain
        {"t": 105.0, "pending": 3, "parked": 0},
        {"t": 110.0, "pending": 0, "parked": 1},  # parked rows still wait
        {"t": 115.0, "pending": 0},  # a sample whose store read failed says nothing
        {"t": 120.0, "pending": 0, "parked": 0},
    ]
    assert books.queue_empty_after(log, 100.0) == 20.0
    assert books.queue_empty_after(log[:3], 100.0) is None
