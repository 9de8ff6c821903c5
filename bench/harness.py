"""The bench's harness: stand-ins, Azurite, a wire that counts and delays requests, the relay.

The HTTPS stand-ins (managed identity + Logs Ingestion, `python -m local.standins.logs_ingestion`)
run in a child process, so their CPU is not charged to the relay as it would not be in Azure; a
real Azurite (`local.standins.azurite.Azurite`) stands in for Table Storage. The relay runs in this
process through `function_app`'s own HTTP function (an `azure.functions.HttpRequest` handed to the
user function from `app.get_functions()`, as the Functions host does), rebuilt per scenario by
clearing `function_app.services`' cache and changing the environment.
"""

from __future__ import annotations

import json
import logging
import os
import re
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SECRET = "bench-shared-secret-not-a-real-one"
WALLARM_IP = "34.94.156.115"  # one of Wallarm's published US addresses (documentation value)


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class StandIns:
    """The identity + ingestion stand-ins in a child process, driven through `/_standin/`."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "local.standins.logs_ingestion"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the stand-in process exited before printing its endpoints")
        self.info: dict[str, str] = json.loads(line)
        self.endpoint = self.info["endpoint"]
        self.ca_bundle = self.info["ca_bundle"]
        self._ssl = ssl.create_default_context(cafile=self.ca_bundle)

    def identity_env(self) -> dict[str, str]:
        return {k: v for k, v in self.info.items() if k.isupper()}

    def _post(self, path: str, spec: dict[str, Any] | None = None) -> None:
        data = json.dumps(spec or {}).encode()
        req = urllib.request.Request(
            self.endpoint + path, data=data, method="POST", headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(req, context=self._ssl, timeout=30) as resp:
            resp.read()

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.endpoint + "/_standin/state", context=self._ssl, timeout=60) as r:
            result: dict[str, Any] = json.loads(r.read())
            return result

    def fault(self, **spec: Any) -> None:
        self._post("/_standin/fault", spec)

    def clear(self) -> None:
        self._post("/_standin/clear")

    def reset(self) -> None:
        self._post("/_standin/reset")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


# ------------------------------------------------------------------------------------------
# Counting HTTP requests (Table Storage operations and ingestion calls) at the transport
# ------------------------------------------------------------------------------------------


@dataclass
class Call:
    target: str  # "table" | "ingestion" | "identity" | "other"
    label: str
    seconds: float
    start: float = 0.0  # perf_counter at send (including the simulated latency)


@dataclass
class Wire:
    """Wraps azure-core's RequestsTransport.send (both SDKs use it) to label and time requests.

    ``table_delay`` is the Table Storage latency knob: every request to Azurite waits that long
    before it is sent, as a network round trip to Table Storage would (threads wait side by side,
    so concurrent requests overlap as they do on a real network)."""

    table_port: int
    ingestion_port: int
    prefix: str = ""
    table_delay: float = 0.0
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self) -> None:
        from azure.core.pipeline.transport import RequestsTransport

        original = RequestsTransport.send
        wire = self

        def send(transport: Any, request: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                if wire.table_delay and f":{wire.table_port}/" in str(request.url):
                    time.sleep(wire.table_delay)
                return original(transport, request, **kwargs)
            finally:
                wire.note(request, time.perf_counter() - started, started)

        RequestsTransport.send = send

    def take(self) -> list[Call]:
        with self.lock:
            out, self.calls = self.calls, []
        return out

    def _table(self, path: str) -> str:
        name = re.sub(r"\(.*$", "", path.rsplit("/", 1)[-1])
        if self.prefix and name.startswith(self.prefix):
            return name[len(self.prefix) :]
        return name

    def note(self, request: Any, seconds: float, start: float = 0.0) -> None:
        url = str(request.url)
        port_match = re.match(r"https?://[^/:]+:(\d+)(/[^?]*)", url)
        port = int(port_match.group(1)) if port_match else 0
        path = port_match.group(2) if port_match else ""
        if port == self.ingestion_port:
            call = Call("ingestion", "upload", seconds, start)
        elif port == self.table_port:
            call = Call("table", self._label(request, path), seconds, start)
        else:
            call = Call("other", request.method, seconds, start)
        with self.lock:
            self.calls.append(call)

    def _label(self, request: Any, path: str) -> str:
        method = request.method
        if path.endswith("/$batch"):
            body = request.content if isinstance(request.content, bytes | bytearray) else b""
            inner = []
            for line in bytes(body).decode("utf-8", "replace").splitlines():
                parts = line.split(" ")
                if parts[0] in ("POST", "PUT", "PATCH", "MERGE", "DELETE", "GET") and len(parts) > 1:
                    table = self._table(re.sub(r"^https?://[^/]+", "", parts[1]))
                    inner.append(f"{_verb(parts[0], line)} {table}")
            counts = Counter(inner)
            return "batch[" + ", ".join(f"{n}x {k}" if n > 1 else k for k, n in counts.items()) + "]"
        table = self._table(path)
        if path.endswith("/Tables"):
            return "create-table"
        if_match = request.headers.get("If-Match")
        guard = "" if if_match is None else (" (if-match *)" if if_match == "*" else " (if-match etag)")
        if method == "GET":
            return f"{'query' if '()' in path or path.endswith(table) else 'read'} {table}"
        if method == "POST":
            return f"insert {table}"
        if method == "PATCH":
            return f"{'merge' if if_match else 'upsert-merge'} {table}{guard}"
        if method == "PUT":
            return f"{'replace' if if_match else 'upsert-replace'} {table}{guard}"
        if method == "DELETE":
            return f"delete {table}{guard}"
        return f"{method} {table}"


def _verb(method: str, line: str) -> str:
    return {"POST": "insert", "PUT": "replace", "PATCH": "merge", "MERGE": "merge", "DELETE": "delete"}.get(
        method, method
    )


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


@contextmanager
def timed() -> Iterator[list[float]]:
    box: list[float] = []
    started = time.perf_counter()
    yield box
    box.append(time.perf_counter() - started)


def on_ack_path(calls: Sequence[Call], answered_at: float) -> list[Call]:
    """The requests sent before the answer: those the caller waited for."""
    return [c for c in calls if c.start < answered_at]


def sequential(calls: Sequence[Call]) -> tuple[int, float]:
    """Round trips one after another among ``calls`` (the longest chain of requests that do not
    overlap in time, by earliest end) and the time they take: concurrent requests count once."""
    depth, spent, last_end = 0, 0.0, float("-inf")
    for call in sorted(calls, key=lambda c: c.start + c.seconds):
        if call.start >= last_end:
            depth += 1
            spent += call.seconds
            last_end = call.start + call.seconds
    return depth, spent


class Harness:
    """Stand-ins + Azurite + the wire, and the relay's HTTP function pointed at them."""

    def __init__(self) -> None:
        self.standins = StandIns()
        from local.standins.azurite import Azurite

        self.azurite = Azurite()
        self.azurite.start()
        os.environ.update(self.standins.identity_env())
        for name in (
            "AZURE_CLIENT_ID",
            "AZURE_TENANT_ID",
            "AZURE_CLIENT_SECRET",
            "APPLICATIONINSIGHTS_CONNECTION_STRING",
        ):
            os.environ.pop(name, None)
        table_port = int(re.search(r":(\d+)/", self.azurite.table_endpoint + "/").group(1))  # type: ignore[union-attr]
        ingestion_port = int(self.standins.endpoint.rsplit(":", 1)[1])
        self.wire = Wire(table_port, ingestion_port)
        self.wire.install()
        self.answered_at = 0.0  # perf_counter when the last webhook was answered
        self.books_seconds = 0.0  # how long its bookkeeping ran on after the answer
        # The relay logs a warning per queued webhook: count them, do not print them.
        logging.getLogger().handlers[:] = [logging.NullHandler()]
        logging.getLogger().setLevel(logging.WARNING)
        import function_app

        self.function_app = function_app
        functions = {f.get_function_name(): f.get_user_function() for f in function_app.app.get_functions()}
        self.webhook_fn: Callable[[Any], Any] = functions["wallarm_webhook"]

    def close(self) -> None:
        self.standins.stop()
        self.azurite.stop()

    @contextmanager
    def table_latency(self, seconds: float) -> Iterator[None]:
        """Every Table Storage request takes ``seconds`` longer inside the block."""
        before, self.wire.table_delay = self.wire.table_delay, seconds
        try:
            yield
        finally:
            self.wire.table_delay = before

    def env(self, prefix: str, **extra: str) -> dict[str, str]:
        return {
            "LOGS_INGESTION_ENDPOINT": self.standins.endpoint,
            "LOGS_DCR_IMMUTABLE_ID": self.standins.info["dcr_id"],
            "LOGS_STREAM_NAME": self.standins.info["stream"],
            "RELAY_CA_BUNDLE": self.standins.ca_bundle,
            "RELAY_STORAGE_CONNECTION_STRING": self.azurite.connection_string,
            "RELAY_TABLE_PREFIX": prefix,
            "WEBHOOK_SHARED_SECRET": SECRET,
            **self.standins.identity_env(),
            **extra,
        }

    def use(self, name: str, **extra: str) -> Any:
        """Point function_app at a fresh set of tables (and settings) and build its services."""
        prefix = f"b{re.sub(r'[^a-z0-9]', '', name.lower())[:12]}{uuid.uuid4().hex[:6]}"
        for key in list(os.environ):
            if key.startswith(("WEBHOOK_", "AUTO_DISABLE_", "LOGS_", "RELAY_")):
                del os.environ[key]
        os.environ.update(self.env(prefix, **extra))
        self.wire.prefix = prefix
        self.function_app.services.cache_clear()
        return self.function_app.services()

    def call(self, payload: Any) -> tuple[int, dict[str, Any], float]:
        """One webhook through the HTTP function: status, JSON body, seconds."""
        import azure.functions as func

        req = func.HttpRequest(
            "POST",
            "https://relay.example.azurewebsites.net/api/wallarm",
            headers={
                "content-type": payload.content_type,
                "x-wallarm-relay-secret": SECRET,
                "x-forwarded-for": f"{WALLARM_IP}:443",
            },
            params={"code": "function-key"},
            body=payload.body,
        )
        started = time.perf_counter()
        resp = self.webhook_fn(req)
        answered = time.perf_counter()
        # A healthy webhook's bookkeeping (dedup "done", ledger and counters) follows its answer:
        # waited for here, outside the timing, so the next measurement starts on a quiet wire;
        # `answered_at` splits the Table requests into the ack path and after the answer.
        self.function_app.services().webhook.flush()
        self.answered_at = answered
        self.books_seconds = time.perf_counter() - answered
        return resp.status_code, json.loads(resp.get_body() or b"{}"), answered - started

    def ingestion_client(self, settings: Any) -> Any:
        """The raw SDK, configured as the relay configures it: the baseline side."""
        from azure.identity import ManagedIdentityCredential
        from azure.monitor.ingestion import LogsIngestionClient

        from shared.transport import client_options

        # The relay's own transport options (environment read once), so the baseline does no
        # per-request work the relay skips: the ratio compares like with like.
        return LogsIngestionClient(
            endpoint=settings.logs_endpoint,
            credential=ManagedIdentityCredential(),
            logging_enable=False,
            retry_total=0,
            read_timeout=settings.webhook_read_timeout,
            connection_timeout=settings.connect_timeout,
            **client_options(settings.logs_endpoint, verify=settings.ca_bundle or True),
        )
