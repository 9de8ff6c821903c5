"""Drive the local relay (`python -m local.run`, the README's run command) as Wallarm would, over HTTP.

1. Outages of several kinds (429 with Retry-After, a hanging API, 403, 503, dropped connections),
   one webhook a second throughout, until the auto-disable rule trips; then the API heals.
   Reported: how long each event that was waiting at the heal took to land (p50, max), and
   whether every acknowledged event landed exactly once.
2. Hostile bodies against a healthy API: the ack time of the widest, the deepest, the largest
   string and the most events that fit `MAX_BODY_BYTES`.

Run: `.venv/bin/python -m bench.recovery` (about 7 minutes; BENCH_SKIP_OUTAGES=1: part 2 only).
The relay runs with its defaults
(worker every minute for 50 s, probe every 30 s) except AUTO_DISABLE_GRACE_MINUTES=0 and
AUTO_DISABLE_MIN_ATTEMPTS=10, so the rule trips within this run instead of after 40 minutes.
Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from local.standins.server import free_port

ROOT = Path(__file__).resolve().parent.parent
HIT = json.loads((ROOT / "tests" / "fixtures" / "wallarm" / "new_hits.json").read_text())["body"][0]


class Relay:
    """`python -m local.run` in a subprocess, with its stand-ins."""

    def __init__(self, **settings: str) -> None:
        self.port = free_port()
        self.key = secrets.token_urlsafe(16)
        self.master = secrets.token_urlsafe(16)
        env = {
            **os.environ,
            "RELAY_LOCAL_FUNCTION_KEY": self.key,
            "RELAY_LOCAL_MASTER_KEY": self.master,
            "RELAY_LOG_LEVEL": "WARNING",
            **settings,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "local.run", "--port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.ingestion = ""
        ca = ""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            found = re.search(r"Logs Ingestion\s+stand-in at (https://[^ /]+)", line)
            if found:
                self.ingestion = found.group(1)
            found = re.search(r"Stand-in CA\s+(\S+)", line)
            if found:
                ca = found.group(1)
            if "Relay listening" in line:
                break
        threading.Thread(target=self._drain, daemon=True).start()
        self.tls = ssl.create_default_context(cafile=ca)

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for _line in self.proc.stdout:
            pass

    def post(self, body: bytes, timeout: float = 15) -> tuple[int, float, dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}/api/wallarm?code={self.key}"
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                answer = json.loads(response.read())
                status = response.status
        except urllib.error.HTTPError as err:
            status, answer = err.code, json.loads(err.read() or b"{}")
        return status, time.monotonic() - started, answer

    def status(self) -> dict[str, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/relay/status", headers={"x-functions-key": self.master}
        )
        with urllib.request.urlopen(request, timeout=15) as response:
            return dict(json.loads(response.read()))

    def standin(self, path: str, spec: dict[str, Any] | None = None) -> Any:
        data = None if spec is None else json.dumps(spec).encode()
        request = urllib.request.Request(
            f"{self.ingestion}{path}", data=data, method="POST" if data else "GET"
        )
        with urllib.request.urlopen(request, timeout=15, context=self.tls) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def hit_body(n: int) -> bytes:
    event = json.loads(json.dumps(HIT))
    event["details"]["hit"]["request_id"] = f"bench-{n:05d}"
    return json.dumps([event]).encode()


def outages(relay: Relay, seconds_each: float) -> dict[str, Any]:
    acked: list[str] = []
    modes: set[str] = set()
    n = 0

    def send_for(seconds: float, until: str | None = None) -> None:
        nonlocal n
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            status, _, _ = relay.post(hit_body(n))
            if status in (200, 202):
                acked.append(f"bench-{n:05d}")
            n += 1
            mode = relay.status()["state"]
            modes.add(mode)
            if mode == until:
                return
            time.sleep(1)

    send_for(5)
    for spec in (
        {"outage": 429, "retry_after": 5},
        {"delay": 10, "land": False, "times": 1000},
        {"outage": 403},
        {"drop": True, "times": 1000},
        {"outage": 503},
    ):
        relay.standin("/_standin/fault", spec)
        send_for(seconds_each)
        relay.standin("/_standin/clear", {})
    relay.standin("/_standin/fault", {"outage": 503})
    send_for(600, until="auto_disabled")
    send_for(10)  # parked while disabled
    waiting = set(acked) - {r["RequestId"] for r in relay.standin("/_standin/rows")}
    healed = time.monotonic()
    relay.standin("/_standin/clear", {})
    landed: dict[str, float] = {}
    while time.monotonic() - healed < 300 and not waiting <= set(landed):
        for row in relay.standin("/_standin/rows"):
            landed.setdefault(row["RequestId"], time.monotonic() - healed)
        time.sleep(0.5)
    delivered = [
        r["RequestId"] for r in relay.standin("/_standin/rows") if r["RequestId"].startswith("bench-")
    ]
    after = [landed[r] for r in waiting if r in landed]
    return {
        "acked": len(acked),
        "waiting_at_heal": len(waiting),
        "landed_of_waiting": len(after),
        "every_acked_once": sorted(delivered) == sorted(acked),
        "duplicates": len(delivered) - len(set(delivered)),
        "modes_seen": sorted(modes),
        "recovery_p50_s": round(statistics.median(after), 1) if after else None,
        "recovery_max_s": round(max(after), 1) if after else None,
        "final_state": relay.status()["state"],
    }


def hostile_bodies(limit: int) -> dict[str, bytes]:
    """The largest of each kind that fits `limit` bytes."""
    base = json.loads(json.dumps(HIT))
    wide_hit = dict(base["details"]["hit"])
    i = 0
    fields: dict[str, str] = {}
    size = len(json.dumps([base]))
    while size < limit - 200:
        key, value = f"k{i:07d}", f"v{i}"
        fields[key] = value
        size += len(key) + len(value) + 6
        i += 1
    wide_hit.update(fields)
    wide = dict(base, details=dict(base["details"], hit=wide_hit))
    depth = 850
    deep_text = '{"d":' * depth + json.dumps("x" * 70_000) + "}" * depth
    deep = json.dumps([base])[:-2] + ',"deep":' + deep_text + "}]"
    huge = dict(
        base,
        details=dict(
            base["details"], hit=dict(base["details"]["hit"], payloads=["\u2028" + "A" * (limit - 2000)])
        ),
    )
    small = json.dumps(base)
    many = "\n".join([small] * ((limit - 10) // (len(small) + 1)))
    return {
        f"wide ({len(wide_hit)} keys)": json.dumps([wide], separators=(",", ":")).encode(),
        f"deep ({depth} levels, needs trimming)": deep.encode(),
        "one huge string": json.dumps([huge]).encode(),
        f"many events ({many.count(chr(10)) + 1}, NDJSON)": many.encode(),
    }


def main() -> int:
    seconds_each = float(os.environ.get("BENCH_OUTAGE_SECONDS", "45"))
    relay = Relay(AUTO_DISABLE_GRACE_MINUTES="0", AUTO_DISABLE_MIN_ATTEMPTS="10")
    try:
        if os.environ.get("BENCH_SKIP_OUTAGES") != "1":
            print(json.dumps({"outages": outages(relay, seconds_each)}, indent=2))
        acks = {}
        for name, body in hostile_bodies(5 * 1024 * 1024).items():
            status, seconds, answer = relay.post(body, timeout=60)
            acks[name] = {
                "bytes": len(body),
                "status": status,
                "ack_seconds": round(seconds, 2),
                "rows_delivered": answer.get("delivered"),
                "rejected": len(answer.get("rejected", [])),
            }
        print(json.dumps({"hostile_acks": acks}, indent=2))
    finally:
        relay.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
