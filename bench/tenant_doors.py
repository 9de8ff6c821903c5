"""Does a webhook's answer tell an unknown tenant from a known one with a wrong secret? (issue 22)

The two answers differ in status by design (404, 401); what must not differ is the time, which
would let a caller probe for tenant names. This starts `python -m local.run` (the local host,
Azurite, the stand-ins), adds a tenant whose secret is in the local Key Vault stand-in, and sends
interleaved, in random order, on one kept-alive connection each:
- `unknown`: `/api/wallarm/<a name no tenant has>` with a secret header;
- `wrong`: `/api/wallarm/<the tenant>` with a wrong secret of the same length;
- `other`: the same with another tenant's (the default's) secret.
It prints each class's median, p90 and p99 in microseconds, and the Kolmogorov-Smirnov distance
between `unknown` and `wrong` (0 = the same distribution; two samples of one distribution of this
size give about 0.03-0.05).

Run: `.venv/bin/python -m bench.tenant_doors [--requests 3000]` (about a minute). Not a test.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from local.standins.server import free_port

REPO = Path(__file__).resolve().parents[1]
MASTER, FUNCTION = "bench-master-key", "bench-function-key"


def _start(port: int) -> tuple[subprocess.Popen[str], list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGS_", "RELAY_", "IDENTITY_"))}
    env |= {"RELAY_LOCAL_FUNCTION_KEY": FUNCTION, "RELAY_LOCAL_MASTER_KEY": MASTER}
    proc = subprocess.Popen(
        [sys.executable, "-m", "local.run", "--port", str(port), "--no-timers"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "Relay listening" in line or proc.poll() is not None:
            break
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc, lines


def _banner(lines: list[str], label: str) -> str:
    return next(line for line in lines if label in line).split(" at ", 1)[1].split()[0]


def _call(
    conn: http.client.HTTPConnection, method: str, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, bytes, float]:
    started = time.perf_counter()
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, data, time.perf_counter() - started


def _ks(a: list[float], b: list[float]) -> float:
    a, b = sorted(a), sorted(b)
    i = j = 0
    best = 0.0
    while i < len(a) and j < len(b):
        if a[i] <= b[j]:
            i += 1
        else:
            j += 1
        best = max(best, abs(i / len(a) - j / len(b)))
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="per class")
    args = parser.parse_args(argv)
    port = free_port()
    proc, lines = _start(port)
    try:
        admin = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        keys = {"x-functions-key": MASTER, "content-type": "application/json"}
        endpoint, vault = _banner(lines, "Logs Ingestion"), _banner(lines, "Key Vault")
        tenant = {
            "name": "doors",
            "settings": {"LOGS_INGESTION_ENDPOINT": endpoint, "LOGS_DCR_IMMUTABLE_ID": "dcr-doors"},
            "secret_refs": {"WEBHOOK_SHARED_SECRET": f"{vault}/secrets/doors-hook"},
        }
        status, body, _ = _call(admin, "POST", "/api/relay/tenants", json.dumps(tenant).encode(), keys)
        assert status == 201, body
        status, body, _ = _call(admin, "POST", "/api/relay/tenants/doors/rotate-secret", b"", keys)
        assert status == 200, body
        secret = json.loads(body)["secret"]
        time.sleep(16)  # the registry is re-read at most every 15 s: let the tenant be built
        wrong = "x" * len(secret)
        classes = {
            "unknown": ("/api/wallarm/nobody-here", wrong),
            "wrong": ("/api/wallarm/doors", wrong),
            "other": ("/api/wallarm/doors", "default-secret-of-another-tenant"[: len(secret)]),
        }
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        times: dict[str, list[float]] = {name: [] for name in classes}
        seen: dict[str, set[tuple[int, bytes]]] = {name: set() for name in classes}
        order = [name for name in classes for _ in range(args.requests)]
        random.Random(22).shuffle(order)
        for name in order[:300]:  # warm-up, not counted
            _call(
                conn,
                "POST",
                classes[name][0],
                b"[]",
                {"x-functions-key": FUNCTION, "X-Wallarm-Relay-Secret": classes[name][1]},
            )
        for name in order:
            path, given = classes[name]
            status, data, took = _call(
                conn, "POST", path, b"[]", {"x-functions-key": FUNCTION, "X-Wallarm-Relay-Secret": given}
            )
            times[name].append(took * 1e6)
            seen[name].add((status, data))
        print("| class | answers | median µs | p90 µs | p99 µs |")
        print("|---|---|---|---|---|")
        for name, values in times.items():
            q = statistics.quantiles(values, n=100)
            answers = ", ".join(sorted(str(s) for s, _ in seen[name]))
            print(f"| {name} | {answers} | {statistics.median(values):.0f} | {q[89]:.0f} | {q[98]:.0f} |")
        print(f"\nKS distance unknown vs wrong: {_ks(times['unknown'], times['wrong']):.3f}")
        print(f"KS distance wrong vs other:   {_ks(times['wrong'], times['other']):.3f}")
        bodies = {name: {d for _, d in seen[name]} for name in classes}
        print(f"wrong and other answer the same body: {bodies['wrong'] == bodies['other']}")
        return 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    raise SystemExit(main())
