"""Flex sizing (issue 24): one instance's webhooks/s and ack p99 at concurrency 1..32.

`python -m bench.sizing [--seconds 15] [--concurrency 1,4,8,16,32] [--profiles ...]`

One relay instance is the local host (`soak.instance`, no timers) serving requests the way the
Python worker does: FUNCTIONS_WORKER_PROCESS_COUNT processes (each its own port; the client
spreads requests over them as the host spreads invocations over its workers), each running at
most PYTHON_THREADPOOL_THREAD_COUNT invocations at once. The stand-ins run in a child process and
Azurite beside it, as Azure's services would be elsewhere. Bodies are bench/payloads.py's
realistic mix (hit batches of 1-500, NDJSON, vulnerabilities, system events), each made unique per
request (new hit ids and summaries) so neither the body dedup nor the hit dedup shortcuts work.

The numbers are of this machine (2 shared cores), not of a Flex instance: read them as ratios
between settings, and as a floor.
"""

from __future__ import annotations

import argparse
import copy
import http.client
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import StandIns, pct, say
from bench.payloads import payloads
from local.standins.azurite import Azurite
from local.standins.server import free_port
from soak.procs import end, wait_port

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Profile:
    """A Flex instance size and the worker settings that go with it (docs/SOAK.md explains)."""

    name: str
    memory_mb: int
    processes: int
    threads: int


PROFILES: dict[str, Profile] = {
    # Python worker defaults: 1 process, min(32, vCPUs + 4) threads; 2 GB ~ 1 vCPU, 4 GB ~ 2 vCPU.
    "2gb-default": Profile("2gb-default", 2048, 1, 5),
    "2gb-16": Profile("2gb-16", 2048, 1, 16),
    "4gb-default": Profile("4gb-default", 4096, 1, 6),
    "4gb-2x16": Profile("4gb-2x16", 4096, 2, 16),
}


def _objects(body: bytes, content_type: str) -> list[Any]:
    if "ndjson" in content_type:
        return [json.loads(line) for line in body.splitlines() if line.strip()]
    parsed = json.loads(body)
    return parsed if isinstance(parsed, list) else [parsed]


class Bodies:
    """Realistic bodies, made unique per request (counter in hit ids and summaries)."""

    def __init__(self, count: int) -> None:
        self.items = [(_objects(p.body, p.content_type), p.content_type, p.events) for p in payloads(count)]
        self._n = 0
        self._lock = threading.Lock()

    def next(self) -> tuple[bytes, str, int]:
        with self._lock:
            self._n += 1
            n = self._n
        objs, ctype, count = self.items[n % len(self.items)]
        fresh: list[Any] = copy.deepcopy(objs)
        for k, obj in enumerate(fresh):
            hit = obj.get("details", {}).get("hit") if isinstance(obj, dict) else None
            if isinstance(hit, dict):
                hit["id"] = ["hits_sizing_1_v_1", f"s{n}-{k}"]
                hit["request_id"] = f"s{n}-{k}"
            elif isinstance(obj, dict):
                obj["summary"] = f"{obj.get('summary', '')} s{n}-{k}"
        if "ndjson" in ctype:
            return "".join(json.dumps(o) + "\n" for o in fresh).encode(), ctype, count
        return json.dumps(fresh).encode(), ctype, count


def load(ports: list[int], path: str, bodies: Bodies, concurrency: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    events = errors = 0
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(index: int) -> None:
        nonlocal events, errors
        turn = index
        while time.monotonic() < stop_at:
            body, ctype, count = bodies.next()
            port = ports[turn % len(ports)]
            turn += 1
            started = time.monotonic()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                conn.request("POST", path, body=body, headers={"Content-Type": ctype})
                resp = conn.getresponse()
                resp.read()
                ok = 200 <= resp.status < 300
            except (OSError, http.client.HTTPException):
                ok = False
            finally:
                conn.close()
            took = time.monotonic() - started
            with lock:
                latencies.append(took)
                if ok:
                    events += count
                else:
                    errors += 1

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 120)
    wall = time.monotonic() - started
    return {
        "webhooks": len(latencies),
        "webhooks_per_s": round(len(latencies) / wall, 2),
        "events_per_s": round(events / wall, 1),
        "ack_p50_s": round(pct(latencies, 50), 3) if latencies else None,
        "ack_p99_s": round(pct(latencies, 99), 3) if latencies else None,
        "errors": errors,
    }


def run_profile(
    profile: Profile, standins: StandIns, azurite: Azurite, args: argparse.Namespace, bodies: Bodies
) -> list[dict[str, Any]]:
    key = secrets.token_urlsafe(16)
    env = {
        **os.environ,
        "LOGS_INGESTION_ENDPOINT": standins.endpoint,
        "LOGS_DCR_IMMUTABLE_ID": standins.info["dcr_id"],
        "LOGS_STREAM_NAME": standins.info["stream"],
        "RELAY_CA_BUNDLE": standins.ca_bundle,
        "RELAY_STORAGE_CONNECTION_STRING": azurite.connection_string,
        "RELAY_TABLE_PREFIX": f"size{secrets.token_hex(3)}",
        "RELAY_LOCAL_FUNCTION_KEY": key,
        "RELAY_LOCAL_MASTER_KEY": secrets.token_urlsafe(16),
        "RELAY_LOG_LEVEL": "WARNING",
        "PYTHON_THREADPOOL_THREAD_COUNT": str(profile.threads),
        "FUNCTIONS_WORKER_PROCESS_COUNT": str(profile.processes),
        **standins.identity_env(),
    }
    procs: list[subprocess.Popen[bytes]] = []
    ports = [free_port() for _ in range(profile.processes)]
    results: list[dict[str, Any]] = []
    try:
        for port in ports:
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "soak.instance",
                        "--port",
                        str(port),
                        "--no-timers",
                        "--threads",
                        str(profile.threads),
                    ],
                    cwd=REPO,
                    env=env,
                    stdin=subprocess.DEVNULL,
                )
            )
        for port in ports:
            if not wait_port(port, 120):
                raise RuntimeError(f"instance on {port} did not start")
        path = f"/api/wallarm?code={key}"
        load(ports, path, bodies, 2, min(5.0, args.seconds))  # warm-up: imports, token, tables
        for concurrency in args.concurrency:
            standins.reset()
            point = load(ports, path, bodies, concurrency, args.seconds)
            point |= {
                "profile": profile.name,
                "memory_mb": profile.memory_mb,
                "processes": profile.processes,
                "threads": profile.threads,
                "concurrency": concurrency,
            }
            say(json.dumps(point))
            results.append(point)
    finally:
        for proc in procs:
            end(proc)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="per concurrency point")
    parser.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 8, 16, 32]
    )
    parser.add_argument("--profiles", type=lambda s: s.split(","), default=list(PROFILES))
    parser.add_argument("--out", type=Path, default=None, help="write the points as JSON")
    args = parser.parse_args(argv)
    bodies = Bodies(300)
    standins = StandIns()
    results: list[dict[str, Any]] = []
    try:
        with Azurite() as azurite:
            for name in args.profiles:
                results.extend(run_profile(PROFILES[name], standins, azurite, args, bodies))
    finally:
        standins.stop()
    columns = ("profile", "processes", "threads", "concurrency", "webhooks_per_s", "events_per_s") + (
        "ack_p50_s",
        "ack_p99_s",
        "errors",
    )
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for r in results:
        print("| " + " | ".join(str(r[c]) for c in columns) + " |")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
