"""One relay instance for the soak: `python -m soak.instance --port P [--skew S]`.

Like `python -m local.run` without starting stand-ins (the harness passes their settings in the
environment), plus what the soak needs and local/run.py does not offer:

* `--skew S`: this instance's wall clock is S seconds off. The relay takes its clock by injection
  (`build_services(clock=...)`), so `function_app.services` is rebuilt with a shifted clock; the
  process clock (monotonic timers, TLS, token expiry) stays true, as on a VM whose guest clock
  drifts but whose TLS peers do not care.
* timers fired either through a lock (an exclusive `flock` on a file per timer, held for the run,
  as the Functions host holds its blob lease) or on every instance, decided at each firing by the
  content of `--mode-file` ("lock" or "all") so one run can switch mode half-way.
* `--threads N`: at most N requests run the function at once (the Python worker's thread pool,
  PYTHON_THREADPOOL_THREAD_COUNT); further requests wait, as they do in the worker.
* `--alloc-dir D`: every 5 s a JSON line of Python's own view of memory (`pyalloc-PID.jsonl`):
  allocated blocks and live threads. If the blocks stay flat while RSS steps, the steps are the
  allocator's high-water marks (glibc arenas, pymalloc pools), not a leak. Both are O(1) reads.
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any


def _read_mode(path: Path | None) -> str:
    if path is None:
        return "lock"
    try:
        return path.read_text(encoding="utf-8").strip() or "lock"
    except OSError:
        return "lock"


def fire(run: Callable[[], None], lock_path: Path, mode: str) -> bool:
    """Run one timer firing; in "lock" mode only if no other instance holds the timer's lock."""
    if mode == "all":
        run()
        return True
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # another instance holds the lease: this firing is skipped
        try:
            run()
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return True


def _timer_loop(
    stop: threading.Event,
    name: str,
    run: Callable[[], None],
    period: float,
    lock_dir: Path,
    mode_file: Path | None,
) -> None:
    log = logging.getLogger("soak.instance")
    next_start = time.monotonic() + period * 0.25
    while not stop.wait(max(next_start - time.monotonic(), 0.0)):
        started = time.monotonic()
        try:
            fired = fire(run, lock_dir / f"{name}.lock", _read_mode(mode_file))
            if fired:
                log.info("soak-timer %s fired", name)
        except Exception:  # noqa: BLE001 - like the host: a failing run is logged, the loop goes on
            log.exception("Timer %s failed", name)
        next_start = started + period


ALLOC_EVERY_SECONDS = 5.0


def alloc_sample() -> dict[str, Any]:
    """Python's own memory view, cheap enough for every few seconds: no walk over gc objects."""
    return {
        "t": round(time.time(), 2),
        "blocks": sys.getallocatedblocks(),
        "py_threads": threading.active_count(),
    }


def _alloc_loop(stop: threading.Event, path: Path, every: float) -> None:
    """One line per `every` until `stop`; bounded by the process's life (a daemon thread)."""
    with open(path, "a", encoding="utf-8") as out:
        while True:
            out.write(json.dumps(alloc_sample()) + "\n")
            out.flush()
            if stop.wait(every):
                return


def _bounded(dispatch: Callable[..., Any], threads: int) -> Callable[..., Any]:
    gate = threading.BoundedSemaphore(threads)

    def run(*args: Any) -> Any:
        with gate:
            return dispatch(*args)

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one soak relay instance")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--skew", type=float, default=0.0, help="wall clock offset, seconds")
    parser.add_argument("--timer-period", type=float, default=60.0)
    parser.add_argument("--completeness-period", type=float, default=0.0, help="0: not run")
    parser.add_argument("--lock-dir", type=Path, default=None)
    parser.add_argument("--mode-file", type=Path, default=None)
    parser.add_argument("--no-timers", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="worker thread pool size (0: unbounded)")
    parser.add_argument("--alloc-dir", type=Path, default=None, help="write pyalloc-PID.jsonl here")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("RELAY_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("azure", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    import function_app
    from local.host import LocalHost
    from shared.clock import utc_now
    from shared.ops.services import build_services

    if args.skew:
        offset = timedelta(seconds=args.skew)

        def skewed() -> datetime:
            return utc_now() + offset

        function_app.services = functools.cache(lambda: build_services(clock=skewed))

    host = LocalHost(
        function_app.app,
        port=args.port,
        function_key=os.environ["RELAY_LOCAL_FUNCTION_KEY"],
        master_key=os.environ["RELAY_LOCAL_MASTER_KEY"],
    )
    if args.threads > 0:
        host.dispatch = _bounded(host.dispatch, args.threads)  # type: ignore[method-assign]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    host.start()
    logging.getLogger("soak.instance").info("soak-instance listening on %s", host.url)
    threads: list[threading.Thread] = []
    if args.alloc_dir is not None:
        path = args.alloc_dir / f"pyalloc-{os.getpid()}.jsonl"
        sampler = threading.Thread(target=_alloc_loop, args=(stop, path, ALLOC_EVERY_SECONDS), daemon=True)
        sampler.start()
        threads.append(sampler)
    if not args.no_timers:
        lock_dir = args.lock_dir or Path(".")
        periods = {"retry_worker": args.timer_period, "completeness": args.completeness_period}
        for name, period in periods.items():
            if period <= 0:
                continue
            timer = threading.Thread(
                target=_timer_loop,
                args=(stop, name, functools.partial(host.run_timer, name), period, lock_dir, args.mode_file),
                daemon=True,
            )
            timer.start()
            threads.append(timer)
    stop.wait()
    # SIGTERM: the host stops taking requests; a timer run in progress is abandoned with the process,
    # as a Flex instance being scaled in gives no more than a short grace.
    host.stop()
    with_books = (
        function_app.services.cache_info().currsize if hasattr(function_app.services, "cache_info") else 0
    )
    if with_books:
        function_app.services().webhook.flush(5.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
