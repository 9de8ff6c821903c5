"""`scripts/soak --minutes N --seed S`: the soak run (issue 24). See docs/SOAK.md.

Loopback only. Starts Azurite (on disk), the HTTPS stand-ins (in this process) and N relay
instances (`soak.instance` processes); a Wallarm-like sender sends for N minutes while the seeded
fault schedule plays; then the sender finishes its retries, the queue drains, reconciliation
runs, and the books are computed from the stand-ins' records (not from the relay's counters).
Exit status 0 only when nothing acknowledged was lost and nothing was duplicated.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from local.standins import tls
from local.standins.identity import ManagedIdentityStandIn, TokenIssuer
from local.standins.log_query import LogQueryStandIn
from local.standins.logs_ingestion import LogsIngestionStandIn
from local.standins.server import free_port
from local.standins.wallarm_api import WallarmApiStandIn
from shared.settings import NUMBERS
from soak import autodisable, books
from soak.events import EventFactory
from soak.faults import Fault, last_fault_end, schedule
from soak.procs import DiskAzurite, Instance, sample, wait_port
from soak.sender import RETRY_DELAYS, TIMEOUT_SECONDS, WallarmSender

# The instances run with the default (soak passes no WEBHOOK_READ_TIMEOUT_SECONDS): an upload
# answered later than this was a timeout to the webhook (the books' timed-out-but-landed).
WEBHOOK_READ_TIMEOUT = float(NUMBERS["WEBHOOK_READ_TIMEOUT_SECONDS"].value)

log = logging.getLogger("soak")
WORKSPACE_ID = "00000000-0000-0000-0000-00000000500a"
HANG_SECONDS = 40.0
SKEWED_SLOT = 1
FRONT_DOOR = "https://relay.soak.example/api/wallarm"  # the integration's URL, as Wallarm holds it
STEADY_SLOT = 0  # never killed: its RSS/threads/fds series spans the whole run
# The relay's landed check waits this long after a doubtful upload before it queries the
# workspace. The query stand-in answers from the accepted rows at once (no ingestion latency), so
# 20 s (not scaled) is enough.
LANDED_CHECK_DELAY_SECONDS = 20


def _scaled(seconds: float, scale: float) -> str:
    return f"{seconds / scale!r}s"


def auto_disable_window_hours(scale: float) -> float:
    return round(max(12 / scale, 0.01), 4)


def auto_disable_grace_minutes(scale: float) -> float:
    return round(40 / scale, 3)


def auto_disable_rule(scale: float) -> autodisable.Rule:
    """The rule the instances run with (the soak's scaled AUTO_DISABLE_* and the defaults)."""
    return autodisable.Rule(
        ratio=float(NUMBERS["AUTO_DISABLE_FAILURE_RATIO"].value),
        window=auto_disable_window_hours(scale) * 3600,
        min_attempts=int(NUMBERS["AUTO_DISABLE_MIN_ATTEMPTS"].value),
        grace=auto_disable_grace_minutes(scale) * 60,
    )


def relay_schedule(scale: float) -> str:
    """The relay's own RETRY_SCHEDULE (Wallarm's) divided by the same factor as the sender's."""
    cycles = [(1, 3, 5, 10, 10), (0, 1, 3, 5, 30), (60, 60, 180, 300, 600, 1800)]
    parts = [",".join(_scaled(s, scale) for s in cycle) for cycle in cycles]
    return "; ".join(parts) + f"; every {_scaled(1800, scale)}"


class Soak:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.scale: float = args.scale
        self.rng = random.Random(args.seed)
        self.t0 = time.monotonic()
        self.wall0 = time.time()
        self.events: list[dict[str, Any]] = []  # what happened when (faults, kills, phases)
        self.samples: list[dict[str, Any]] = []
        self.status_log: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self._ingest_outages: list[Fault] = []
        self._token_outages = 0
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def note(self, what: str, **extra: Any) -> None:
        entry = {"t": round(self.now(), 2), "what": what, **extra}
        with self._lock:
            self.events.append(entry)
        log.info("%7.1f s  %s %s", entry["t"], what, extra or "")

    # -- set-up -----------------------------------------------------------------------------
    def build(self, stack: ExitStack) -> None:
        args = self.args
        self.issuer = TokenIssuer(lifetime_seconds=args.token_lifetime)
        self.identity = stack.enter_context(ManagedIdentityStandIn(self.issuer))
        self.ingestion = stack.enter_context(LogsIngestionStandIn(self.issuer))
        self.query = stack.enter_context(
            LogQueryStandIn(self.issuer, lambda: self.ingestion.accepted, workspace_id=WORKSPACE_ID)
        )
        self.wallarm = stack.enter_context(WallarmApiStandIn())
        self.api_token = secrets.token_hex(32)
        self.wallarm.add_token(self.api_token, "admin")
        self.azurite = DiskAzurite(self.workdir / "azurite")
        self.azurite.start()
        stack.callback(self.azurite.stop)
        self.function_key = secrets.token_urlsafe(16)
        self.master_key = secrets.token_urlsafe(16)
        self.mode_file = self.workdir / "timer_mode"
        self.mode_file.write_text("lock" if args.timers in ("lock", "both") else "all", encoding="utf-8")
        env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("AZURE", "LOGS_", "RELAY_", "WALLARM"))
            },
            **self.identity.env(),
            "PYTHONUNBUFFERED": "1",
            "LOGS_INGESTION_ENDPOINT": self.ingestion.endpoint,
            "LOGS_DCR_IMMUTABLE_ID": self.ingestion.dcr_id,
            "LOGS_STREAM_NAME": self.ingestion.stream,
            "RELAY_CA_BUNDLE": tls.ca_bundle_path(),
            "RELAY_STORAGE_CONNECTION_STRING": self.azurite.connection_string,
            "RELAY_TABLE_PREFIX": "soak",
            "RELAY_LOCAL_FUNCTION_KEY": self.function_key,
            "RELAY_LOCAL_MASTER_KEY": self.master_key,
            "RETRY_WORKER_SCHEDULE": "0 * * * * *",
            "HOURLY_COUNT_SCHEDULE": "0 0 * * * *",
            "COMPLETENESS_SCHEDULE": "0 20 * * * *",
            "RETRY_WORKER_RUN_SECONDS": str(int(args.timer_period * 0.75)),
            "RETRY_SCHEDULE": relay_schedule(self.scale),
            "AUTO_DISABLE_WINDOW_HOURS": f"{auto_disable_window_hours(self.scale):.4f}",
            "AUTO_DISABLE_GRACE_MINUTES": f"{auto_disable_grace_minutes(self.scale):.3f}",
            "RECOVERY_PROBE_SECONDS": str(max(1, round(30 / self.scale))),
            "WALLARM_API_TOKEN": self.api_token,
            "WALLARM_API_URL": self.wallarm.url,
            "LOGS_WORKSPACE_ID": WORKSPACE_ID,
            "LOGS_QUERY_ENDPOINT": self.query.endpoint,
            "RELAY_LOG_LEVEL": "INFO",
            "WATCHDOG_CHECK_INTEGRATION": "true",
            "WATCHDOG_REENABLE": "true",
            "WALLARM_INTEGRATION_URL": FRONT_DOOR,
            "LANDED_CHECK_DELAY_SECONDS": str(LANDED_CHECK_DELAY_SECONDS),
        }
        self.instances: list[Instance] = []
        (self.workdir / "locks").mkdir(exist_ok=True)
        for slot in range(args.instances):
            skew = 0.0
            if slot == SKEWED_SLOT:
                skew = self.rng.choice((-30.0, 30.0))
            timer_args = [
                "--timer-period",
                str(args.timer_period),
                "--completeness-period",
                str(3600 / self.scale),
                "--lock-dir",
                str(self.workdir / "locks"),
                "--mode-file",
                str(self.mode_file),
                "--alloc-dir",
                str(self.workdir),
            ]
            inst = Instance(slot, free_port(), skew, env, timer_args, self.workdir)
            self.instances.append(inst)
            inst.start()
            stack.callback(inst.reap)
        for inst in self.instances:
            if not wait_port(inst.port, 120):
                raise RuntimeError(
                    f"instance {inst.slot} did not listen; see {self.workdir}/instance{inst.slot}.log"
                )
        self.note("instances up", skews={i.slot: i.skew for i in self.instances})
        integration = self.wallarm.add_integration(FRONT_DOOR)
        self.sender = WallarmSender(
            self.live_ports,
            f"/api/wallarm?code={self.function_key}",
            scale=self.scale,
            rng=random.Random(args.seed + 1),
            integration=integration,
        )
        self.factory = EventFactory(random.Random(args.seed + 2))

    def live_ports(self) -> list[tuple[int, int]]:
        return [(i.slot, i.port) for i in self.instances if i.up]

    # -- faults -----------------------------------------------------------------------------
    def _apply_ingest(self) -> None:
        outage = self._ingest_outages[-1] if self._ingest_outages else None
        if outage is None:
            self.ingestion.set_outage(None)
        else:
            self.ingestion.set_outage(outage.status, retry_after=outage.retry_after or None)

    def fault_start(self, fault: Fault) -> bool:
        kind = fault.kind
        if kind in ("ingest_429", "ingest_5xx", "ingest_403"):
            self._ingest_outages.append(fault)
            self._apply_ingest()
        elif kind in ("ingest_hang", "ingest_hang_landed"):
            self.ingestion.inject_delay(HANG_SECONDS, fault.times, land=fault.land)
        elif kind == "token_outage":
            self._token_outages += 1
            self.identity.inject(500, times=10**9)
        elif kind == "azurite_down":
            self.azurite.stop()
        elif kind in ("sigkill", "sigterm"):
            inst = self.instances[fault.slot]
            if not inst.up:
                self.note("skipped (instance already down)", kind=kind, slot=fault.slot)
                return False
            inst.signal(signal.SIGKILL if kind == "sigkill" else signal.SIGTERM)
        elif kind == "big_413":
            self.ingestion.inject(413, 1)
            note = self.factory.notification(int(time.time()), size=300, payload_bytes=3000)
            self._register_hits(note)
            self.sender.submit(note)
        return True

    def fault_end(self, fault: Fault) -> None:
        kind = fault.kind
        if kind in ("ingest_429", "ingest_5xx", "ingest_403"):
            self._ingest_outages.remove(fault)
            self._apply_ingest()
        elif kind == "token_outage":
            self._token_outages -= 1
            if not self._token_outages:
                self.identity.clear()
        elif kind == "azurite_down":
            self.azurite.start()
        elif kind in ("sigkill", "sigterm"):
            inst = self.instances[fault.slot]
            inst.reap()
            inst.start()

    def play(self, faults: list[Fault]) -> None:
        timeline: list[tuple[float, int, Fault]] = []
        for f in faults:
            timeline.append((f.start, 1, f))
            if f.duration:
                timeline.append((f.end, 0, f))
        timeline.sort(key=lambda x: (x[0], x[1]))
        started: set[int] = set()
        for at, is_start, fault in timeline:
            if self.stop.wait(max(at - self.now(), 0)):
                return
            if is_start:
                if self.fault_start(fault):
                    started.add(id(fault))
                    self.note("fault start", **asdict(fault))
            elif id(fault) in started:
                self.fault_end(fault)
                self.note("fault end", kind=fault.kind, slot=fault.slot)

    # -- load -------------------------------------------------------------------------------
    def _register_hits(self, note: Any) -> None:
        for hit in note.hits:
            self.wallarm.add_hit(hit, notify=False)  # Wallarm's cloud holds every hit it sent

    def generate(self, until: float) -> None:
        interval = 1.0 / self.args.rate
        next_at = self.now()
        while not self.stop.is_set() and self.now() < until:
            note = self.factory.notification(int(time.time()))
            self._register_hits(note)
            self.sender.submit(note)
            next_at += self.rng.expovariate(1.0) * interval
            self.stop.wait(max(next_at - self.now(), 0))

    # -- observation ------------------------------------------------------------------------
    def status(self) -> dict[str, Any] | None:
        for _slot, port in self.live_ports():
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/relay/status", headers={"x-functions-key": self.master_key}
            )
            try:
                with urllib.request.urlopen(req, timeout=15) as resp:  # noqa: S310 - loopback
                    data: dict[str, Any] = json.loads(resp.read())
                    return data
            except (OSError, ValueError, urllib.error.HTTPError):
                continue
        return None

    def observe(self) -> None:
        active = True
        while not self.stop.wait(self.args.sample_every):
            t = round(self.now(), 1)
            if self.sender.active != active:
                active = self.sender.active
                self.note("Wallarm integration " + ("re-enabled" if active else "disabled"))
            for inst in self.instances:
                if inst.up and inst.proc is not None:
                    got = sample(inst.proc.pid)
                    if got is not None:
                        rss, threads, fds = got
                        self.samples.append(
                            {
                                "t": t,
                                "slot": inst.slot,
                                "pid": inst.proc.pid,
                                "rss_kb": rss,
                                "threads": threads,
                                "fds": fds,
                            }
                        )
            st = self.status()
            if st is not None:
                q = st.get("queue", {})
                fw = st.get("failure_window", {})
                self.status_log.append(
                    {
                        "t": t,
                        "state": st.get("state"),
                        "pending": q.get("pending_entries"),
                        "parked": q.get("parked_entries"),
                        "quarantined": q.get("quarantined_entries"),
                        "ratio": fw.get("ratio"),
                        "attempts": fw.get("attempts"),
                        "failures": fw.get("failures"),
                        "failing_since": fw.get("failing_since"),
                    }
                )

    def drained(self) -> bool:
        st = self.status()
        if st is None:
            return False
        q = st.get("queue", {})
        return q.get("pending_entries") == 0 and q.get("parked_entries") == 0

    def admin(self, path: str) -> tuple[int, Any]:
        port = self.instances[STEADY_SLOT].port
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/{path}", method="POST", headers={"x-functions-key": self.master_key}
        )
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:  # noqa: S310 - loopback
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    # -- the run ----------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        args = self.args
        duration = args.minutes * 60.0
        warm = min(60.0, duration * 0.12)
        tail = min(240.0, duration * 0.2)
        killable = tuple(i.slot for i in self.instances if i.slot != STEADY_SLOT)
        faults = schedule(
            args.seed,
            window_start=warm,
            window_end=duration - tail,
            instances=len(self.instances),
            killable=killable,
        )
        left_out = {k for k in args.without.split(",") if k}
        faults = [f for f in faults if f.kind not in left_out]
        self.note(
            "schedule",
            left_out=sorted(left_out),
            faults=len(faults),
            last_fault_end=round(last_fault_end(faults), 1),
        )
        observer = threading.Thread(target=self.observe, daemon=True)
        observer.start()
        player = threading.Thread(target=self.play, args=(faults,), daemon=True)
        player.start()
        if args.timers == "both":
            switch = threading.Timer(duration / 2, self._switch_mode)
            switch.daemon = True
            switch.start()
        self.generate(duration)
        self.note("sending stopped", notifications=self.factory.notifications)
        player.join(timeout=max(last_fault_end(faults) - self.now(), 0) + 60)
        # Every fault is over: clear whatever a count-based fault left behind.
        self.ingestion.clear()
        self.identity.clear()
        for inst in self.instances:
            if not inst.up:
                inst.reap()
                inst.start()
        if not self.azurite.up:
            self.azurite.start()
        faults_over = self.now()
        self.note("faults over")
        # Bounded waits: the sender's own retries (its whole schedule, scaled), then the queue.
        sender_bound = sum(RETRY_DELAYS) / self.scale + TIMEOUT_SECONDS * (len(RETRY_DELAYS) + 1) + 60
        deadline = time.monotonic() + sender_bound
        while self.sender.busy() and time.monotonic() < deadline:
            time.sleep(1)
        self.note("sender idle", busy=self.sender.busy())
        self.sender.stop()
        drain_deadline = time.monotonic() + args.drain_bound
        drained_at: float | None = None
        while time.monotonic() < drain_deadline:
            if self.drained():
                drained_at = self.now()
                break
            time.sleep(2)
        self.note("queue drained" if drained_at is not None else "queue NOT drained", at=drained_at)
        # Reconciliation over the whole run, as an operator's `relayctl reconcile` would.
        start = datetime.fromtimestamp(self.wall0 - 120, UTC).replace(second=0, microsecond=0)
        end = datetime.now(UTC) + timedelta(minutes=2)
        status, body = (0, None)
        for _ in range(10):  # bounded: a deferral (queue not empty yet) is retried
            status, body = self.admin(
                f"relay/reconcile?from={start.isoformat()}&to={end.isoformat()}".replace("+00:00", "Z")
            )
            windows = (body or {}).get("windows", []) if isinstance(body, dict) else []
            if status == 200 and all(w.get("status") == "ok" for w in windows):
                break
            time.sleep(10)
        self.note("reconciled", status=status, body=body)
        self.stop.set()
        observer.join(timeout=60)
        return self.books(faults, faults_over, drained_at, status, body)

    def _token_requests(self, windows: list[tuple[float, float]]) -> dict[str, int]:
        """What the managed-identity stand-in saw: evidence that the outages were felt. Not a count
        of failed attempts: the credential retries a token call and then caches its failure."""
        seen = [(r.time - self.wall0, r.status) for r in self.identity.requests]
        failed = [t for t, status in seen if status != 200]
        return {
            "total": len(seen),
            "failed": len(failed),
            "failed_in_outages": sum(1 for t in failed if any(a <= t <= b + 5 for a, b in windows)),
        }

    def _pyalloc(self) -> list[dict[str, Any]]:
        """The instances' own samples (`pyalloc-PID.jsonl`), on the run's time axis, with their slot."""
        slots = {pid: i.slot for i in self.instances for pid in i.pids}
        out: list[dict[str, Any]] = []
        for path in sorted(self.workdir.glob("pyalloc-*.jsonl")):
            pid = int(path.stem.removeprefix("pyalloc-"))
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    got = json.loads(line)
                except ValueError:
                    continue  # a line cut by a SIGKILL
                out.append(
                    {**got, "t": round(got["t"] - self.wall0, 1), "pid": pid, "slot": slots.get(pid, -1)}
                )
        return sorted(out, key=lambda s: (s["pid"], s["t"]))

    def _switch_mode(self) -> None:
        self.mode_file.write_text("all", encoding="utf-8")
        self.note("timers now fire on every instance")

    def books(
        self,
        faults: list[Fault],
        faults_over: float,
        drained_at: float | None,
        rec_status: int,
        rec_body: Any,
    ) -> dict[str, Any]:
        quarantined = books.quarantined_identities(self.azurite.connection_string, "soakqueue")
        ledger = books.ledger_totals(self.azurite.connection_string, "soakcounters")
        result = books.compute(
            deliveries=self.sender.deliveries,
            rows=self.ingestion.accepted,
            quarantined=quarantined,
        )
        requests = self.ingestion.requests
        result["ingestion_requests"] = {
            "total": len(requests),
            "failed": sum(1 for r in requests if not 200 <= r.status < 300),
        }
        result["ledger"] = ledger
        # The stand-in's requests, compact: the auto-disable and ledger checks can be redone from
        # the books alone.
        log_ = books.attempt_log(requests, self.wall0, read_timeout=WEBHOOK_READ_TIMEOUT)
        result["ingestion_log"] = log_
        records = books.ledger_failures(self.azurite.connection_string, "soakledger", self.wall0)
        token_windows = [(f.start, f.end) for f in faults if f.kind == "token_outage"]
        slack = max((abs(i.skew) for i in self.instances), default=0.0) + 15.0
        result["ledger_check"] = books.ledger_in_kind(ledger, log_, records, token_windows, slack=slack)
        result["token_requests"] = self._token_requests(token_windows)
        # The hourly counters' events against the truth: events of bodies a relay accepted (a 2xx).
        result["hourly_check"] = {
            "counted_events": ledger["events"],
            "acked_events": result["events_acked"],
            "diff": ledger["events"] - result["events_acked"],
        }
        books.judge_duplicates(result, requests, self.wall0, read_timeout=WEBHOOK_READ_TIMEOUT)
        result["deliveries"] = [
            {
                "n": d.note.number,
                "events": len(d.note.identities),
                "first": (d.note.identities or [""])[0],
                "outcome": d.outcome,
                "attempts": [
                    (round(a.at - self.wall0, 2), a.instance, a.status, round(a.seconds, 3))
                    for a in d.attempts
                ],
            }
            for d in self.sender.deliveries
        ]
        result["drain_seconds_after_last_fault"] = (
            None if drained_at is None else round(drained_at - faults_over, 1)
        )
        result["queue_empty_seconds_after_last_fault_end"] = books.queue_empty_after(
            self.status_log, last_fault_end(faults)
        )
        result["reconcile"] = {"status": rec_status, "windows": rec_body}
        result["sender_disabled"] = self.sender.disabled_at
        result["relay_states"] = sorted({s["state"] for s in self.status_log if s.get("state")})
        token_failed = [
            (t, False)
            for t, error in records
            if error == books.TOKEN_ERROR and any(a - slack <= t <= b + slack for a, b in token_windows)
        ]
        truth = autodisable.Attempts(
            [(t, 200 <= status < 300 and not late) for t, status, late, _rows in log_] + token_failed,
            self.wall0,
        )
        result["auto_disable"] = autodisable.check(self.status_log, truth, auto_disable_rule(self.scale))
        if result["auto_disable"]["violations"]:
            result["ok"] = False
        warmup = min(120.0, self.args.minutes * 60 * 0.25)
        result["resources"] = books.growth(self.samples, warmup=warmup)
        result["pyalloc"] = self._pyalloc()
        for pid, entry in books.growth(result["pyalloc"], warmup=warmup, keys=books.PYALLOC_KEYS).items():
            result["resources"].setdefault(pid, {"slot": entry["slot"], "seconds": entry["seconds"]}).update(
                {k: entry[k] for k in books.PYALLOC_KEYS}
            )
        result["faults"] = [asdict(f) for f in faults]
        result["timeline"] = self.events
        result["samples"] = self.samples
        result["status_log"] = self.status_log
        result["config"] = {
            "minutes": self.args.minutes,
            "seed": self.args.seed,
            "scale": self.scale,
            "instances": len(self.instances),
            "rate_per_s": self.args.rate,
            "timers": self.args.timers,
            "skews": {i.slot: i.skew for i in self.instances},
            "restarts": {i.slot: i.incarnation - 1 for i in self.instances},
        }
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--seed", type=int, default=24)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--rate", type=float, default=1.0, help="notifications per second")
    parser.add_argument(
        "--scale", type=float, default=20.0, help="time compression of Wallarm's delays and window"
    )
    parser.add_argument("--timers", choices=("lock", "all", "both"), default="both")
    parser.add_argument("--timer-period", type=float, default=20.0)
    parser.add_argument("--token-lifetime", type=int, default=420)
    parser.add_argument(
        "--drain-bound", type=float, default=600.0, help="seconds the queue may take to drain"
    )
    parser.add_argument("--sample-every", type=float, default=5.0)
    parser.add_argument(
        "--without", default="", help="fault kinds left out, comma-separated (e.g. azurite_down)"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the books (JSON) here")
    parser.add_argument("--plot", type=Path, default=None, help="write the RSS plot (PNG) here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, Azurite files)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)
    # A SIGTERM (CI's timeout) unwinds like Ctrl-C, so every process started here is ended by pid.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    log.info("soak work directory: %s", workdir)
    soak = Soak(args, workdir)
    try:
        with ExitStack() as stack:
            soak.build(stack)
            result = soak.run()
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    if args.plot:
        from soak.plot import plot_rss

        plot_rss(
            result["samples"],
            args.plot,
            title=f"RSS per instance, {args.minutes:g} min, seed {args.seed}",
            pyalloc=result["pyalloc"],
        )
    print(json.dumps(books.summary(result), indent=1))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
