"""The relay's benchmark: one command, one results file.

    .venv/bin/python -m bench.run            # full run (~10 min on 2 shared cores), writes bench/RESULTS.md
    .venv/bin/python -m bench.run --quick    # smaller N and a 10 000-event backlog (~3 min)

`bench.harness` starts the stand-ins and Azurite; each module in `bench.scenarios` measures one
thing and returns numbers; `bench.report` writes RESULTS.md from those numbers only. Not part of
the test suite. (`bench.recovery` is a separate script: outage recovery through the local runner.)
"""

from __future__ import annotations

import argparse
import time

from bench import report
from bench.harness import Harness, say
from bench.report import API_LATENCY, TABLE_LATENCY, Results
from bench.scenarios import ack, cold, drain, profile, throughput
from shared.settings import RetryWorkerLimits

STEPS = ("throughput", "ack", "cold", "drain", "profile")
DRAIN_THREADS = 6  # threads of the raw SDK's ceiling
DRAIN_UPLOADS = RetryWorkerLimits().uploads  # the worker's uploads at a time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the relay against the stand-ins and Azurite.")
    parser.add_argument("--quick", action="store_true", help="smaller N and a 10 000-event backlog")
    parser.add_argument(
        "--only", default="", help=f"comma-separated subset of {','.join(STEPS)} (for development)"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    chosen = [s for s in args.only.split(",") if s] or list(STEPS)
    unknown = set(chosen) - set(STEPS)
    if unknown:
        parser.error(f"unknown steps: {', '.join(sorted(unknown))}")
    results = Results(quick=args.quick)
    h = Harness()
    try:
        if "throughput" in chosen:
            for api in (0.0, API_LATENCY):
                for tbl in (0.0, TABLE_LATENCY):
                    results.throughput[(api, tbl)] = throughput.run(
                        h, quick=args.quick, api_latency=api, table_latency=tbl
                    )
        if "ack" in chosen:
            results.ack = ack.run(h, quick=args.quick)
        if "cold" in chosen:
            results.cold = cold.run(h, quick=args.quick)
        if "drain" in chosen:
            results.drains.append(drain.run(h, quick=args.quick, uploads=1))
            results.drains.append(drain.run(h, quick=args.quick, uploads=DRAIN_UPLOADS))
            results.drains.append(
                drain.run(h, quick=args.quick, uploads=DRAIN_UPLOADS, table_latency=TABLE_LATENCY)
            )
            for uploads in (4, DRAIN_UPLOADS):
                results.drains.append(
                    drain.run(h, quick=args.quick, uploads=uploads, api_latency=API_LATENCY)
                )
            results.ceiling = drain.ceiling(h, quick=args.quick, parallel=DRAIN_THREADS)
            results.ceiling_sequential = drain.ceiling(h, quick=args.quick, parallel=1)
        if "profile" in chosen:
            results.profile = profile.run(h, quick=args.quick)
        results.seconds = time.perf_counter() - started
        report.write(results)
        say(f"wrote {report.RESULTS}")
    finally:
        h.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
