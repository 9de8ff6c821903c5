"""Issue 19, finding 5: a manual reconcile job SIGKILLed mid-way leaves its remaining windows
not `ok`, and the timer runs them once the job's heartbeat is stale.

The job runs in a child process (the relay from the composition root, its real background
thread, Azurite, the HTTPS stand-ins of this process); each window is slowed by 0.3 s there so the
kill lands between windows, after at least two have run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from local.standins.logs_ingestion import LogsIngestionStandIn
from local.standins.wallarm_api import Hit, WallarmApiStandIn

from .conftest import INDEX, FakeClock, MakeServices

ROOT = Path(__file__).resolve().parents[2]
CHILD = textwrap.dedent(
    """
    import json, sys, time
    from shared.ops.services import build_services

    svc = build_services(json.loads(sys.argv[1]))
    reconciler = svc.completeness.reconciler
    real = reconciler.run

    def slow(*args, **kwargs):
        time.sleep(0.3)  # a slow API: the kill lands between windows
        return real(*args, **kwargs)

    reconciler.run = slow
    code, body = svc.completeness.reconcile_range(sys.argv[2], sys.argv[3], "op")
    print(json.dumps({"code": code, "job": body["job"]["id"]}), flush=True)
    time.sleep(300)
    """
)


@pytest.fixture
def clock() -> FakeClock:
    """The child runs on the wall clock; the stand-ins and the parent's relay start there too."""
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


def test_a_sigkilled_job_leaves_its_windows_to_the_timer(
    make_services: MakeServices,
    relay_env: dict[str, str],
    completeness_env: dict[str, str],
    clock: FakeClock,
    wallarm: WallarmApiStandIn,
    ingestion: LogsIngestionStandIn,
) -> None:
    first = (clock() - timedelta(days=3)).replace(minute=0, second=0)
    windows = 20  # under the 24 reopened windows one timer run takes
    for h in range(windows):
        when = int((first + timedelta(hours=h, minutes=20)).timestamp())
        wallarm.add_hit(Hit(INDEX, f"h{h}", f"req-{h}", when), notify=False)
    env = {**relay_env, **completeness_env, "RECONCILE_CONFIRM_MINUTES": "0"}
    frm, to = first.isoformat(), (first + timedelta(hours=windows)).isoformat()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(env), frm, to],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert child.stdout is not None
        answer = json.loads(child.stdout.readline() or "{}")
        assert answer.get("code") == 202, answer
        svc = make_services(clock, **env)
        assert svc.completeness.reconciler is not None
        log = svc.completeness.log
        deadline = time.monotonic() + 120  # generous: a loaded 2-core machine
        while time.monotonic() < deadline:
            job = next(j for j in log.jobs() if j.id == answer["job"])
            if job.done >= 2:
                break
            time.sleep(0.05)
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(30)

    job = next(j for j in log.jobs() if j.id == answer["job"])
    assert job.state == "running" and 2 <= job.done < windows, job  # killed mid-way
    records = {r.start: r for r in log.recent_windows(100)}
    statuses = [records[first + timedelta(hours=h)].status for h in range(windows)]
    assert statuses[: job.done] == ["ok"] * job.done
    assert set(statuses[job.done + 1 :]) == {"queued"}  # the one it was on may be either
    landed = Counter(json.loads(r["RawData"])["details"]["hit"]["id"][1] for r in ingestion.accepted)
    assert all(n == 1 for n in landed.values())

    clock.now = datetime.now(UTC) + timedelta(minutes=31)  # the heartbeat is stale now
    assert svc.completeness.status()["jobs"][0]["state"] == "abandoned"
    reopened = [
        r for r in svc.completeness.reconciler.run_due() if r.start < first + timedelta(hours=windows)
    ]
    assert reopened and all(r.status == "ok" for r in reopened)
    assert all(log.get_window(first + timedelta(hours=h)).status == "ok" for h in range(windows))  # type: ignore[union-attr]
    landed = Counter(json.loads(r["RawData"])["details"]["hit"]["id"][1] for r in ingestion.accepted)
    assert landed == Counter({f"h{h}": 1 for h in range(windows)})  # each hit once
