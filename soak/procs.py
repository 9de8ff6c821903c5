"""Processes the soak starts: Azurite on disk (so a restart keeps the tables) and relay instances.

Everything is started here and ended here by pid; nothing is looked up by name.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from local.standins.azurite import connection_string_for, find_binary
from local.standins.server import free_port

REPO = Path(__file__).resolve().parent.parent


def wait_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def end(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, grace: float = 10.0) -> None:
    """End one process we started, by its pid: `sig`, then SIGKILL after `grace`."""
    if proc is None or proc.poll() is not None:
        return
    os.kill(proc.pid, sig)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


class DiskAzurite:
    """azurite-table with `--location` on disk: stop/start keeps every table, like storage does."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.binary = find_binary()

    @property
    def connection_string(self) -> str:
        return connection_string_for(f"http://127.0.0.1:{self.port}/devstoreaccount1")

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / "azurite.log", "ab") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "--location",
                    str(self.workdir),
                    "--tableHost",
                    "127.0.0.1",
                    "--tablePort",
                    str(self.port),
                    "--skipApiVersionCheck",
                    "--silent",
                    "--disableTelemetry",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
            )
        if not wait_port(self.port, 60):
            raise RuntimeError(f"Azurite did not listen on {self.port}; see {self.workdir}/azurite.log")

    def stop(self) -> None:
        # SIGINT, not SIGTERM: Azurite saves its on-disk tables on SIGINT only; a SIGTERM loses the
        # writes since its last autosave, which real storage never does (found by the soak).
        end(self.proc, signal.SIGINT, 30.0)
        self.proc = None

    @property
    def up(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Instance:
    """One relay instance slot; `incarnation` counts restarts (each has its own pid)."""

    slot: int
    port: int
    skew: float
    env: dict[str, str]
    args: list[str]
    logdir: Path
    proc: subprocess.Popen[bytes] | None = None
    incarnation: int = 0
    pids: list[int] = field(default_factory=list)

    def start(self) -> None:
        self.incarnation += 1
        log_path = self.logdir / f"instance{self.slot}.log"
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "soak.instance",
                    "--port",
                    str(self.port),
                    "--skew",
                    str(self.skew),
                    *self.args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO,
                env=self.env,
            )
        self.pids.append(self.proc.pid)

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def reap(self, timeout: float = 20.0) -> None:
        """Wait for a signalled process; one that ignores SIGTERM past `timeout` is SIGKILLed."""
        end(self.proc, signal.SIGTERM, timeout) if self.up else None
        self.proc = None

    @property
    def up(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def sample(pid: int) -> tuple[int, int, int] | None:
    """(RSS kB, threads, open fds) of a live pid, from /proc."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss = int(fields.get("VmRSS", "0 kB").split()[0])
    threads = int(fields.get("Threads", "0").strip())
    return rss, threads, fds
