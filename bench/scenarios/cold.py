"""Cold start: importing `function_app`, indexing, building the services, the first webhooks."""

# ruff: noqa: E501 - the child processes' code is kept on one line each

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import uuid
from dataclasses import dataclass

from bench.harness import REPO, SECRET, Harness, say


@dataclass
class ColdStart:
    runs: int
    import_s: float  # median of fresh processes
    import_rss_mib: float
    bare_rss_mib: float
    index_s: float
    services_s: float
    first_s: float
    second_s: float
    first_events: list[int]
    statuses: list[int]
    rss_after_two_mib: float
    top_cumulative: list[tuple[str, int, float, float]]  # module, level, cumulative s, self s
    top_self: list[tuple[str, float, float]]

    @property
    def first_total(self) -> float:
        return self.import_s + self.index_s + self.services_s + self.first_s


def run(h: Harness, *, quick: bool) -> ColdStart:

    runs = 3 if quick else 5
    say(f"cold start: {runs} fresh imports")
    code = (
        "import time,json;t=time.perf_counter();import function_app;"
        "d=time.perf_counter()-t;"
        "print(json.dumps({'s':d,'rss':int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])}))"
    )
    bare = subprocess.run(
        [
            sys.executable,
            "-c",
            "print(int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]))",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    bare_rss = int(bare.stdout.strip()) / 1024
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
        )
        samples.append(json.loads(out.stdout))
    import_s = statistics.median(s["s"] for s in samples)
    import_rss = max(s["rss"] for s in samples) / 1024
    imp = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import function_app"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    parsed = []
    for line in imp.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            parsed.append((int(m.group(1)), int(m.group(2)), len(m.group(3)), m.group(4)))
    top_cum = sorted(parsed, key=lambda x: -x[1])[:10]
    top_self = sorted(parsed, key=lambda x: -x[0])[:10]
    say("cold start: first request in a fresh process")
    first_code = (
        "import time,json,sys\n"
        "t0=time.perf_counter()\n"
        "import function_app\n"
        "t1=time.perf_counter()\n"
        "fn={f.get_function_name():f.get_user_function() for f in function_app.app.get_functions()}['wallarm_webhook']\n"
        "t2=time.perf_counter()\n"
        "function_app.services()\n"
        "t3=time.perf_counter()\n"
        "import azure.functions as func\n"
        "from bench.payloads import payloads\n"
        "ps=payloads(2,seed=4242)\n"
        "def req(p): return func.HttpRequest('POST','https://x/api/wallarm',headers={'content-type':p.content_type,"
        f"'x-wallarm-relay-secret':'{SECRET}'}},body=p.body)\n"
        "r0=req(ps[0]);r1=req(ps[1])\n"
        "t4=time.perf_counter();a=fn(r0);t5=time.perf_counter();b=fn(r1);t6=time.perf_counter()\n"
        "print(json.dumps({'import':t1-t0,'index':t2-t1,'services':t3-t2,'first':t5-t4,'second':t6-t5,"
        "'events':[ps[0].events,ps[1].events],'status':[a.status_code,b.status_code],"
        "'rss':int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])}))\n"
    )
    env = {**os.environ, **h.env(f"bcold{uuid.uuid4().hex[:6]}")}
    first = json.loads(
        subprocess.run(
            [sys.executable, "-c", first_code],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    return ColdStart(
        runs=runs,
        import_s=import_s,
        import_rss_mib=import_rss,
        bare_rss_mib=bare_rss,
        index_s=first["index"],
        services_s=first["services"],
        first_s=first["first"],
        second_s=first["second"],
        first_events=first["events"],
        statuses=first["status"],
        rss_after_two_mib=first["rss"] / 1024,
        top_cumulative=[(mod, lvl, cum / 1e6, own / 1e6) for own, cum, lvl, mod in top_cum],
        top_self=[(mod, own / 1e6, cum / 1e6) for own, cum, lvl, mod in top_self],
    )
