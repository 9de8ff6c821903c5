"""`python -m local.run` on a user's mistake: two lines on stderr (what is wrong, how to fix it),
exit code 2, never a traceback (issue 20, item 5). The settings below skip the stand-ins, so each
run fails within the import time."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from local.standins.azurite import connection_string_for
from local.standins.server import free_port

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = "@Microsoft.KeyVault(SecretUri=https://relay-kv.vault.azure.net/secrets/webhook-secret/)"


def real_workspace() -> dict[str, str]:
    """A run against a "real" workspace and storage (nothing listens there): no stand-in starts."""
    return {
        "LOGS_INGESTION_ENDPOINT": "https://relay-dce.westeurope-1.ingest.monitor.azure.com",
        "LOGS_DCR_IMMUTABLE_ID": "dcr-0123456789abcdef0123456789abcdef",
        "RELAY_STORAGE_CONNECTION_STRING": connection_string_for(
            f"http://127.0.0.1:{free_port()}/devstoreaccount1"
        ),
    }


def local_run(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGS_", "RELAY_", "IDENTITY_", "AZURE"))}
    env.update(settings)
    # Any free port unless the test names one: a relay already on 7071 must not change the answer.
    port = [] if "--port" in args or "RELAY_LOCAL_PORT" in settings else ["--port", "0"]
    return subprocess.run(
        [sys.executable, "-m", "local.run", "--no-timers", *port, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def what_and_fix(done: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("local.run: ") and lines[-1].startswith("fix: "), done.stderr
    return "\n".join(lines[:-1]), lines[-1]


def test_a_bad_setting_is_named_with_its_fix() -> None:
    what, fix = what_and_fix(local_run(**real_workspace(), MAX_BODY_BYTES="5MB"))
    assert "settings are invalid (1 problem)" in what
    assert "MAX_BODY_BYTES='5MB' is not a number: use a whole number of bytes" in what
    assert "python -m local.run" in fix


def test_an_unresolved_key_vault_reference_stops_the_start(tmp_path: Path) -> None:
    what, _ = what_and_fix(local_run(**real_workspace(), WEBHOOK_SHARED_SECRET=REFERENCE))
    assert "WEBHOOK_SHARED_SECRET is an unresolved Key Vault reference" in what
    assert "relay-kv" not in what


def test_a_busy_port_says_so_and_names_another() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        what, fix = what_and_fix(local_run("--port", str(port), **real_workspace()))
    assert f"port {port} on 127.0.0.1 is already in use" in what
    assert "--port" in fix


def test_unreachable_storage_is_a_message_with_advice() -> None:
    what, fix = what_and_fix(local_run(**real_workspace()))
    assert "Table Storage is unavailable" in what
    assert "RELAY_STORAGE_CONNECTION_STRING" in fix


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"RELAY_LOCAL_PORT": "seventy"}, "is not a port"),
        ({"RELAY_LOCAL_PORT": "70710"}, "is not a port"),
        ({"RELAY_LOG_LEVEL": "verbose"}, "RELAY_LOG_LEVEL='verbose' is not a log level"),
    ],
)
def test_bad_local_run_settings(settings: dict[str, str], said: str) -> None:
    done = local_run(**real_workspace(), **settings)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert said in done.stderr
