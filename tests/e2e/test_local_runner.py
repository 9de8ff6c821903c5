"""The README's run command, over real HTTP: `python -m local.run` with its own stand-ins."""

from __future__ import annotations

import contextlib
import json
import re
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from wallarm_fixtures import ALL_FIXTURES

from local.send import send
from local.standins.server import free_port
from shared.ops.cli import main as relayctl

from .conftest import local_run_rows, spawn_local_run


@contextlib.contextmanager
def local_runner(*args: str, **settings: str) -> Iterator[dict[str, str]]:
    """`python -m local.run` in a subprocess with its own stand-ins; its URL and rows URL."""
    port = free_port()
    keys = {"RELAY_LOCAL_FUNCTION_KEY": "fn-key-for-tests", "RELAY_LOCAL_MASTER_KEY": "master-key-for-tests"}
    proc, lines = spawn_local_run(["--port", str(port), *args], {**keys, **settings}, "Relay listening")
    output = "".join(lines)
    rows_url = re.search(r"rows: (https://\S+)\)", output)
    vault_url = re.search(r"Key Vault +stand-in at (https://\S+) ", output)
    assert rows_url and vault_url, output
    try:
        yield {"url": f"http://127.0.0.1:{port}", "rows": rows_url.group(1), "vault": vault_url.group(1)}
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def runner() -> Iterator[dict[str, str]]:
    with local_runner("--no-timers") as started:
        yield started


def test_every_fixture_lands_through_the_local_runner(runner: dict[str, str]) -> None:
    url = f"{runner['url']}/api/wallarm?code=fn-key-for-tests"
    before = len(local_run_rows(runner["rows"]))
    for fixture in ALL_FIXTURES:
        status, text = send(url, fixture.name, {})
        assert status == 200, (fixture.name, text)
    rows = local_run_rows(runner["rows"])[before:]
    expected = [f.event_type for f in ALL_FIXTURES for _ in range(f.count)]
    assert [r["EventType"] for r in rows] == expected


def test_key_vault_standin_is_up_and_empty(runner: dict[str, str]) -> None:
    """A locally added tenant's references resolve against it; nothing secret is seeded."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the runner's CA lives in its own temp dir
    request = urllib.request.Request(runner["vault"] + "/secrets/webhook-secret?api-version=7.5")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, context=ctx, timeout=5)
    assert err.value.code == 401  # a Key Vault: no token, no answer


def test_function_key_is_required(runner: dict[str, str]) -> None:
    req = urllib.request.Request(f"{runner['url']}/api/wallarm", data=b"[]", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 401


def test_relayctl_status_disable_enable(runner: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--url", runner["url"], "--key", "master-key-for-tests"]
    assert relayctl([*base, "status"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "enabled"
    assert relayctl([*base, "disable", "--reason", "test"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "disabled"
    assert relayctl([*base, "enable"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "enabled"
    assert (
        relayctl(["--url", runner["url"], "--key", "fn-key-for-tests", "status"]) == 2
    )  # not the master key: a user error, with the hint how to get it


def test_burst_of_200_parallel_posts_every_one_answered_every_row_landed_once() -> None:
    """What a load test (or Wallarm after an outage) sends `scripts/run`: 200 posts at once."""
    n = 200
    # Generous API timeouts: on a loaded 2-core machine a slow-but-successful upload must not be
    # mistaken for a failure (its retry would be a legitimate at-least-once duplicate).
    with local_runner(WEBHOOK_READ_TIMEOUT_SECONDS="20", WEBHOOK_DELIVERY_BUDGET_SECONDS="25") as run:
        url = f"{run['url']}/api/wallarm?code=fn-key-for-tests"
        start = threading.Barrier(n)

        def post(i: int) -> int:
            body = json.dumps(
                [{"summary": f"burst-{i:03d}", "details": {"notification_type": "create_user"}}]
            )
            req = urllib.request.Request(
                url, data=body.encode(), method="POST", headers={"Content-Type": "application/json"}
            )
            start.wait()
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:
                    return int(resp.status)
            except urllib.error.HTTPError as err:
                return err.code

        with ThreadPoolExecutor(max_workers=n) as pool:
            statuses = list(pool.map(post, range(n)))
        assert len(statuses) == n
        assert set(statuses) <= {200, 202}, Counter(statuses)
        deadline = time.monotonic() + 90  # 202s (queued) land through the retry worker timer
        summaries: Counter[str] = Counter()
        while time.monotonic() < deadline:
            summaries = Counter(
                r["Summary"] for r in local_run_rows(run["rows"]) if r["Summary"].startswith("burst-")
            )
            if len(summaries) == n:
                break
            time.sleep(1)
        assert sorted(summaries) == [f"burst-{i:03d}" for i in range(n)]
        assert set(summaries.values()) == {1}, "a row landed twice"
