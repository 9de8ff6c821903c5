"""Issue 19, finding 4: the Wallarm API client against a hostile server, before and after.

    .venv/bin/python -m bench.wallarm_api_bounds [--old <git rev>]

Each case runs the Wallarm stand-in (with one fault, forever) in its own process and the client in
another, so the peak RSS measured is the client's alone. `--old` loads `shared/completeness/wallarm_api.py`
from a git revision (default 404db16, before the fix) to measure the same cases on it; the old
client's endless cases are stopped after `--budget` seconds. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
import time
from typing import Any

TOKEN = "b" * 64
SERVER = textwrap.dedent(
    """
    import json, sys, threading
    from local.standins.wallarm_api import Fault, WallarmApiStandIn
    kind, size, times = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with WallarmApiStandIn() as s:
        s.add_token(__TOKEN__, "admin")
        s.inject_fault(Fault(kind, times=times, size=size, interval=0.5, path="/v1/objects/hit"))
        print(s.url, flush=True)
        sys.stdin.read()
        print(json.dumps({"pages": sum(1 for r in s.requests if r[1] == "/v1/objects/hit")}), flush=True)
    """
).replace("__TOKEN__", repr(TOKEN))
CLIENT = textwrap.dedent(
    """
    import json, resource, sys, time, types, subprocess
    url, which, rev, request_seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    if which == "old":
        old_path = ":shared/wallarm/api.py"  # where the client lived at the old revision
        source = subprocess.run(
            ["git", "show", rev + old_path], capture_output=True, text=True, check=True
        ).stdout
        module = types.ModuleType("old_api")
        sys.modules["old_api"] = module  # dataclasses look the module up
        exec(compile(source, "old_api.py", "exec"), module.__dict__)
        api = module.WallarmApi(url, __TOKEN__, timeout=request_seconds, max_retries=0)
        Error = module.WallarmApiError
    else:
        from dataclasses import replace
        from shared.settings import WallarmApiLimits
        from shared.completeness.wallarm_api import WallarmApi, WallarmApiError as Error
        api = WallarmApi(url, __TOKEN__, max_retries=0,
                         limits=replace(WallarmApiLimits(), request_seconds=request_seconds))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    try:
        outcome = "%d hits" % len(api.hits(4242, 0, 10))
    except Error as err:
        outcome = "WallarmApiError: " + str(err)[:90]
    print(json.dumps({"seconds": round(time.monotonic() - started, 2), "outcome": outcome,
                      "rss_before_mb": round(base / 1024), "rss_peak_mb":
                      round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}), flush=True)
    """
).replace("__TOKEN__", repr(TOKEN))


def measure(
    kind: str, size: int, times: int, which: str, rev: str, request_seconds: float, budget: float
) -> dict[str, Any]:
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, kind, str(size), str(times)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stdin is not None
    url = server.stdout.readline().strip()
    started = time.monotonic()
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, url, which, rev, str(request_seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        out, _ = client.communicate(timeout=budget)
        result: dict[str, Any] = json.loads(out)
    except subprocess.TimeoutExpired:
        client.kill()
        client.communicate()
        result = {
            "seconds": round(time.monotonic() - started, 2),
            "outcome": f"still running, killed at {budget:g} s",
        }
    server.stdin.close()
    result.update(json.loads(server.stdout.readline() or "{}"))
    server.wait(timeout=30)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--old", default="404db16", help="git revision of the old client ('' to skip)")
    parser.add_argument("--budget", type=float, default=40.0, help="seconds before an old case is killed")
    args = parser.parse_args(argv)
    cases = [
        ("slow drip, 1 byte / 0.5 s, 60-byte body; request deadline 2 s", "drip", 60, 1, 2.0),
        ("one 36 MB page, then an empty one", "huge", 36_000_000, 1, 30.0),
        ("one 8 MB page (just under the cap), then an empty one", "huge", 8_000_000, 1, 30.0),
        ("endless full pages of new ids", "endless", 0, 10**9, 30.0),
        ("full pages repeating the same ids", "repeat", 0, 10**9, 30.0),
    ]
    for label, kind, size, times, seconds in cases:
        for which in ("old", "new") if args.old else ("new",):
            budget = args.budget if which == "old" else 300
            result = measure(kind, size, times, which, args.old, seconds, budget)
            print(json.dumps({"case": label, "client": which, **result}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
