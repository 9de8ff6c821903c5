"""`python -m local.run` as a user meets it: every command its banner prints works as printed,
with or without a shared secret (issue 20, item 7), and its timers follow the schedule settings
(issue 20, item 10)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.standins.server import free_port

from .conftest import LOCAL_RUN_OWN, local_run_rows, spawn_local_run

ROOT = Path(__file__).resolve().parents[2]
SECRET = 'it\'s a "$ecret" with `spaces` \\ and $(quotes)'  # what a shell would mangle unquoted


@contextlib.contextmanager
def local_run(*args: str, **settings: str) -> Iterator[list[str]]:
    """`python -m local.run` with its own stand-ins; yields its banner's lines."""
    proc, lines = spawn_local_run(
        ["--port", str(free_port()), *args],
        settings,
        "Ctrl+C to stop.",
        drop=(*LOCAL_RUN_OWN, "WEBHOOK_"),
    )
    try:
        yield [line.rstrip("\n") for line in lines]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def banner_commands(lines: list[str]) -> list[str]:
    """The shell commands the banner shows (after its labels)."""
    found = []
    for line in lines:
        text = line.split(":", 1)[1] if line.startswith(("Test integration:", "Status:")) else line
        text = text.strip()
        if text.startswith(("python -m local.send", "curl ")):
            found.append(text)
    return found


def run_as_printed(command: str) -> subprocess.CompletedProcess[str]:
    """In a shell, as a user pastes it; `python` is this interpreter."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"WEBHOOK_SHARED_SECRET": SECRET},
        {"WEBHOOK_SHARED_SECRET": SECRET, "WEBHOOK_SECRET_HEADER": "X-Relay-Token"},
        {"WEBHOOK_SHARED_SECRET": SECRET, "ALLOWED_SOURCE_NETWORKS": "34.94.16.0/24,127.0.0.1/32"},
    ],
    ids=["no-secret", "secret", "secret-custom-header", "secret-allow-list"],
)
def test_every_command_the_banner_prints_works_as_printed(settings: dict[str, str]) -> None:
    with local_run("--no-timers", **settings) as lines:
        commands = banner_commands(lines)
        assert len(commands) == 4, lines
        assert not any("?code=" in c for c in commands)  # keys travel in headers, never in the URL
        for command in commands:
            done = run_as_printed(command)
            assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
        if settings:  # the secret really is required: the same send without its header fails
            send = next(c for c in commands if c.startswith("python -m local.send"))
            unsent = send[: send.rindex(" --header ")]
            assert run_as_printed(unsent).returncode == 1


@pytest.mark.slow
def test_timers_follow_their_schedule_settings() -> None:
    """HOURLY_COUNT_SCHEDULE every 2 s: the hourly row lands within seconds, not at the top of
    the hour (the old local host hard-coded its intervals)."""
    with local_run(HOURLY_COUNT_SCHEDULE="*/2 * * * * *") as lines:
        assert any("hourly_count: */2 * * * * * (UTC)" in line for line in lines), lines
        rows_url = next(line.split("rows: ")[1].rstrip(")") for line in lines if "rows: " in line)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(r.get("EventType") == "relay_hourly_stats" for r in local_run_rows(rows_url)):
                break
            time.sleep(0.5)  # polling the stand-in, bounded by the deadline
        else:
            pytest.fail("no relay_hourly_stats row within 60 s")


def test_a_schedule_the_host_would_refuse_stops_local_run_with_the_setting_named() -> None:
    """Timers named as function_app.py names them (`%NAME%`); a small app, since the real one can
    be indexed once per process only (azure-functions refuses a second get_functions())."""
    import azure.functions as func

    from local.host import LocalHost
    from local.run import SCHEDULE_DEFAULTS, timer_schedules
    from shared.settings import SettingsError

    app = func.FunctionApp()
    for name, setting in (
        ("retry_worker", "RETRY_WORKER_SCHEDULE"),
        ("hourly_count", "HOURLY_COUNT_SCHEDULE"),
        ("completeness", "COMPLETENESS_SCHEDULE"),
    ):

        def tick(timer: func.TimerRequest) -> None:
            pass

        tick.__name__ = name
        app.timer_trigger(schedule=f"%{setting}%", arg_name="timer", run_on_startup=False)(tick)
    host = LocalHost(app, port=0, function_key="f", master_key="m")
    try:
        env = {
            **SCHEDULE_DEFAULTS,
            "RETRY_WORKER_SCHEDULE": "*/5 * * * *",
            "COMPLETENESS_SCHEDULE": "*/10 * * * * *",
        }
        with pytest.raises(SettingsError) as err:
            timer_schedules(host, env)
        assert len(err.value.problems) == 1
        assert err.value.problems[0].startswith("RETRY_WORKER_SCHEDULE (timer retry_worker): an NCRONTAB")
        env["RETRY_WORKER_SCHEDULE"] = "0 * * * * *"
        got = {name: s.expression for name, s in timer_schedules(host, env).items()}
        assert got == {
            "retry_worker": "0 * * * * *",
            "hourly_count": "0 0 * * * *",
            "completeness": "*/10 * * * * *",
        }
    finally:
        host._server.server_close()
