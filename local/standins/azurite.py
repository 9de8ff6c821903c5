"""Launch (or reuse) Azurite's Table service for tests, the local runner and benchmarks.

Binary lookup order: ``AZURITE_TABLE_BIN``, ``<repo>/node_modules/.bin/azurite-table`` (installed by
``npm ci`` from the repo's package.json, azurite 3.37.0), then ``azurite-table`` on PATH. If
``AZURITE_CONNECTION_STRING`` is set, that Azurite (or storage account) is used and none is started.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from local.standins.server import StartStop, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_NAME = "devstoreaccount1"
# Azurite's documented, public development key (not a secret).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
ENV_BIN = "AZURITE_TABLE_BIN"
ENV_CONNECTION_STRING = "AZURITE_CONNECTION_STRING"


class AzuriteError(RuntimeError):
    """Azurite could not be found or did not start; the message says what to run."""


def find_binary() -> str:
    """Path of ``azurite-table``, or raise ``AzuriteError`` naming ``npm ci``."""
    explicit = os.environ.get(ENV_BIN)
    if explicit:
        if not Path(explicit).exists():
            raise AzuriteError(f"{ENV_BIN}={explicit} does not exist")
        return explicit
    local = REPO_ROOT / "node_modules" / ".bin" / "azurite-table"
    if local.exists():
        return str(local)
    on_path = shutil.which("azurite-table")
    if on_path:
        return on_path
    raise AzuriteError(
        f"azurite-table not found: run `npm ci` in {REPO_ROOT} (installs azurite 3.37.0 into "
        f"./node_modules), or set {ENV_BIN}, or point {ENV_CONNECTION_STRING} at a running Azurite."
    )


def connection_string_for(table_endpoint: str) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
        f"TableEndpoint={table_endpoint};"
    )


def _table_endpoint_of(connection_string: str) -> str:
    parts = dict(p.split("=", 1) for p in connection_string.split(";") if "=" in p)
    if "TableEndpoint" in parts:
        return parts["TableEndpoint"]
    if parts.get("UseDevelopmentStorage", "").lower() == "true":
        return f"http://127.0.0.1:10002/{ACCOUNT_NAME}"
    account = parts.get("AccountName", "")
    suffix = parts.get("EndpointSuffix", "core.windows.net")
    return f"{parts.get('DefaultEndpointsProtocol', 'https')}://{account}.table.{suffix}"


class Azurite(StartStop):
    """An Azurite Table service on 127.0.0.1 (in-memory) or an external one from the environment.

    ``start()`` waits until the port accepts connections (``timeout`` seconds) and raises
    ``AzuriteError`` with the tail of Azurite's output if it does not.
    """

    def __init__(self, *, port: int | None = None, timeout: float = 30.0, binary: str | None = None) -> None:
        self._port = port
        self._timeout = timeout
        self._binary = binary
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._external = os.environ.get(ENV_CONNECTION_STRING) or None
        self._endpoint: str | None = None

    @property
    def external(self) -> bool:
        """True when reusing ``AZURITE_CONNECTION_STRING`` instead of starting a process."""
        return self._external is not None

    @property
    def table_endpoint(self) -> str:
        if self._external is not None:
            return _table_endpoint_of(self._external)
        if self._endpoint is None:
            raise AzuriteError("Azurite is not started")
        return self._endpoint

    @property
    def connection_string(self) -> str:
        if self._external is not None:
            return self._external
        return connection_string_for(self.table_endpoint)

    def start(self) -> None:
        if self._external is not None or self._proc is not None:
            return
        binary = self._binary or find_binary()
        last_error = ""
        for _ in range(3):  # a free port can be taken between probing and Azurite's bind
            port = self._port or free_port()
            try:
                self._launch(binary, port)
                return
            except AzuriteError as exc:
                last_error = str(exc)
                self.stop()
                if self._port is not None:
                    break
        raise AzuriteError(last_error)

    def _launch(self, binary: str, port: int) -> None:
        self._workdir = tempfile.TemporaryDirectory(prefix="azurite-")
        log_path = Path(self._workdir.name) / "azurite.log"
        args = [
            binary,
            "--inMemoryPersistence",
            "--tableHost",
            "127.0.0.1",
            "--tablePort",
            str(port),
            "--skipApiVersionCheck",
            "--silent",
            "--disableTelemetry",
        ]
        with open(log_path, "wb") as log:
            self._proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self._workdir.name,
            )
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise AzuriteError(f"azurite-table exited with {self._proc.returncode}: {_tail(log_path)}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    self._endpoint = f"http://127.0.0.1:{port}/{ACCOUNT_NAME}"
                    return
            except OSError:
                time.sleep(0.1)
        raise AzuriteError(
            f"azurite-table did not accept connections on 127.0.0.1:{port} within {self._timeout:g} s: "
            f"{_tail(log_path)}"
        )

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None
        self._endpoint = None


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no output)"
    return text[-limit:].strip() or "(no output)"
