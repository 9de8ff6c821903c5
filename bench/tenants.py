"""Several tenants, measured with real time: isolation (one DCR down) and fairness (one big backlog).

    nice -n 5 .venv/bin/python -m bench.tenants isolation --minutes 10
    nice -n 5 .venv/bin/python -m bench.tenants fairness --backlog 100000

The relay runs in this process through its own composition and routes (``shared.ops.routes``:
``webhook`` with the route's ``{tenant}``, and ``run_retry_worker`` started every minute as the
timer does, with the default RETRY_WORKER_RUN_SECONDS and RECOVERY_PROBE_SECONDS), on Azurite and
the world of ``local.tenant_world``: one Logs Ingestion stand-in per tenant (its own DCR, granted
to its own identity only), the relay's managed identity, an app secret in another Entra tenant and
a federated identity credential. Each webhook carries ``--batch`` hits with unique ids; an event
"landed" when its tenant's stand-in accepted the request that carried it (204), read back from the
stand-in's recorded requests. Prints a Markdown table (and the books) on stdout.

- isolation: alpha's DCR answers 503 for ``--minutes`` while alpha and bravo each get a webhook per
  second; bravo's ack -> landed latency during the outage, alpha's queue depth, alpha's drain time
  after the DCR recovers, and sent/acked/landed/duplicates/lost per tenant.
- fairness: bravo and charlie get a webhook per second with A idle (the baseline), then alpha's DCR
  goes down while ``--backlog`` events are sent to alpha, then it recovers while alpha gets 10x the
  others' load on top of its backlog; bravo's and charlie's latency during alpha's drain vs the
  baseline, alpha's drain rate, and each tenant's share of the retry worker's turns. Every tenth
  second bravo's and charlie's DCR answers one 503, so part of their events go through the retry
  queue too and share its drain with alpha's backlog.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from azure.data.tables import TableServiceClient

from bench.harness import pct, say
from local.standins import tls
from local.standins.azurite import Azurite
from local.standins.identity import SYSTEM_CLIENT_ID, ManagedIdentityStandIn, TokenIssuer
from local.standins.logs_ingestion import LogsIngestionStandIn
from local.tenant_world import TenantWorld, event_body, landed_events
from shared.clock import utc_now
from shared.intake.webhook import WebhookRequest
from shared.ops import routes
from shared.ops.routes import RouteRequest
from shared.tenancy.tenant_ops import TenantTables

DEFAULT_SECRET = "bench-default-secret-0123456789"
MINUTE = 60.0


@dataclass
class Sent:
    tenant: str
    first: int  # the webhook's first event number
    count: int
    sent_at: float
    acked_at: float = 0.0
    status: int = 0


@dataclass
class Books:
    """What each tenant was sent and how each webhook was answered."""

    webhooks: list[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_event: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def take_ids(self, tenant: str, count: int) -> int:
        with self.lock:
            first = self.next_event[tenant]
            self.next_event[tenant] += count
            return first

    def add(self, sent: Sent) -> None:
        with self.lock:
            self.webhooks.append(sent)


class Bench:
    """The relay (its routes, on Azurite) and the world of stand-ins, for one measured run."""

    def __init__(self, stack: ExitStack, tenants: list[str], batch: int) -> None:
        issuer = TokenIssuer()
        identity = stack.enter_context(ManagedIdentityStandIn(issuer))
        default_dcr = stack.enter_context(LogsIngestionStandIn(issuer))
        default_dcr.allow(default_dcr.dcr_id, SYSTEM_CLIENT_ID, issuer.tenant_id)
        self.world = stack.enter_context(TenantWorld(issuer, tenants))
        azurite = Azurite()
        azurite.start()
        stack.callback(azurite.stop)
        prefix = f"bench{int(time.time()) % 100000}"
        for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET"):
            os.environ.pop(name, None)
        os.environ.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
        os.environ.update(
            {
                **identity.env(),
                **self.world.env(),
                "LOGS_INGESTION_ENDPOINT": default_dcr.endpoint,
                "LOGS_DCR_IMMUTABLE_ID": default_dcr.dcr_id,
                "LOGS_STREAM_NAME": default_dcr.stream,
                "RELAY_CA_BUNDLE": tls.ca_bundle_path(),
                "RELAY_STORAGE_CONNECTION_STRING": azurite.connection_string,
                "RELAY_TABLE_PREFIX": prefix,
                "WEBHOOK_SHARED_SECRET": DEFAULT_SECRET,
            }
        )
        routes.services.cache_clear()
        svc = routes.services()
        assert svc.tenant_admin is not None
        for d in self.world.destinations.values():
            svc.tenant_admin.add(d.body(), "bench")
        self.svc = svc
        self.batch = batch
        self.books = Books()
        self.tables = TenantTables(
            TableServiceClient.from_connection_string(azurite.connection_string), prefix, utc_now
        )
        self.turns: list[tuple[str, int, int]] = []  # (tenant, attempted, delivered) per drain turn
        logging.getLogger("shared.ops.routes").addHandler(_TurnLog(self.turns))
        logging.getLogger("shared.ops.routes").setLevel(logging.INFO)

    def send(self, tenant: str, count: int | None = None) -> Sent:
        count = count or self.batch
        first = self.books.take_ids(tenant, count)
        d = self.world.destinations[tenant]
        headers = {"content-type": "application/json", "x-wallarm-relay-secret": d.secret}
        request = WebhookRequest(event_body(tenant, range(first, first + count)), headers, "127.0.0.1")
        sent = Sent(tenant, first, count, time.time())
        answer = routes.webhook(RouteRequest(request, route_params={"tenant": tenant}))
        sent.acked_at, sent.status = time.time(), answer.status
        self.books.add(sent)
        return sent

    def queue_depth(self, tenant: str) -> tuple[int, int]:
        stats = self.tables.queue(tenant).stats()
        return stats.pending + stats.parked + stats.quarantined, stats.pending_rows

    def landed(self) -> dict[str, dict[str, list[float]]]:
        """Per stand-in (by tenant): event id -> the times it landed there."""
        return {name: landed_events(d.ingestion) for name, d in self.world.destinations.items()}


class _TurnLog(logging.Handler):
    """Collects the retry worker's per-turn lines ("Retry worker: N attempted, M delivered")."""

    def __init__(self, into: list[tuple[str, int, int]]) -> None:
        super().__init__(logging.INFO)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        if str(record.msg).startswith("Retry worker:") and len(args) == 2:
            attempted, delivered = (int(str(a)) for a in args)
            self.into.append((str(getattr(record, "tenant", "?")), attempted, delivered))


@contextmanager
def retry_worker_timer() -> Iterator[None]:
    """`run_retry_worker` started every minute (like the Functions timer), until the block ends."""
    stop = threading.Event()

    def loop() -> None:
        start = time.monotonic()
        while not stop.is_set():
            routes.run_retry_worker()
            start += MINUTE
            stop.wait(max(0.0, start - time.monotonic()))

    thread = threading.Thread(target=loop, name="retry-timer", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2 * MINUTE)


@contextmanager
def steady(
    bench: Bench, rates: dict[str, float], tick: Callable[[int], None] | None = None
) -> Iterator[None]:
    """Webhooks at ``rates`` (per second, per tenant) until the block ends; ``tick(second)`` each second."""
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="wallarm")

    def loop() -> None:
        start, n = time.monotonic(), 0
        while not stop.is_set():
            if tick is not None:
                tick(n)
            for tenant, rate in rates.items():
                whole = int(rate * (n + 1)) - int(rate * n)
                for _ in range(whole):
                    pool.submit(bench.send, tenant)
            n += 1
            stop.wait(max(0.0, start + n - time.monotonic()))

    thread = threading.Thread(target=loop, name="senders", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        pool.shutdown(wait=True)


def wait_until(check: Callable[[], bool], limit: float, every: float = 2.0) -> float:
    """Seconds until ``check()`` holds (or ``limit`` passes: then inf)."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if check():
            return time.monotonic() - start
        time.sleep(every)
    return float("inf")


# ------------------------------------------------------------------------------------------
# The books
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tally:
    sent: int
    acked: int
    landed: int
    duplicates: int
    lost: int
    wrong_dcr: int


def tally(bench: Bench, landed: dict[str, dict[str, list[float]]]) -> dict[str, Tally]:
    out: dict[str, Tally] = {}
    for tenant in bench.world.names:
        mine = [s for s in bench.books.webhooks if s.tenant == tenant]
        ids = {f"{tenant}-{n}" for s in mine for n in range(s.first, s.first + s.count)}
        acked = {
            f"{tenant}-{n}" for s in mine if s.status in (200, 202) for n in range(s.first, s.first + s.count)
        }
        own = landed[tenant]
        wrong = sum(1 for other, got in landed.items() if other != tenant for e in got if e in ids)
        out[tenant] = Tally(
            sent=len(ids),
            acked=len(acked),
            landed=sum(1 for e in ids if e in own),
            duplicates=sum(len(own[e]) - 1 for e in ids if e in own),
            lost=sum(1 for e in acked if e not in own),
            wrong_dcr=wrong,
        )
    return out


def latencies(
    bench: Bench, landed: dict[str, dict[str, list[float]]], tenant: str, since: float, until: float
) -> tuple[list[float], list[float]]:
    """(ack -> landed, sent -> landed) seconds of each event of ``tenant`` acked in [since, until);
    ack -> landed is negative when the event landed before the webhook was answered."""
    ack, sent = [], []
    for s in bench.books.webhooks:
        if s.tenant != tenant or not since <= s.acked_at < until:
            continue
        for n in range(s.first, s.first + s.count):
            times = landed[tenant].get(f"{tenant}-{n}")
            if times:
                ack.append(min(times) - s.acked_at)
                sent.append(min(times) - s.sent_at)
    return ack, sent


def fmt(values: list[float]) -> str:
    if not values:
        return "–"
    return f"{pct(values, 50):.2f} / {pct(values, 99):.2f} / {max(values):.2f}"


def books_table(books: dict[str, Tally]) -> list[str]:
    lines = [
        "| tenant | sent | acked | landed | duplicates | lost | in another DCR |",
        "|---|---|---|---|---|---|---|",
    ]
    for tenant, t in books.items():
        lines.append(
            f"| {tenant} | {t.sent:,} | {t.acked:,} | {t.landed:,} | {t.duplicates} | {t.lost} "
            f"| {t.wrong_dcr} |"
        )
    return lines


# ------------------------------------------------------------------------------------------
# The runs
# ------------------------------------------------------------------------------------------


def isolation(minutes: float, batch: int) -> list[str]:
    with ExitStack() as stack:
        bench = Bench(stack, ["alpha", "bravo"], batch)
        alpha = bench.world.destinations["alpha"].ingestion
        depth: list[tuple[float, int, int]] = []
        marks: dict[str, float] = {}

        def sample(second: int) -> None:
            if second % 5 == 0:
                depth.append((time.time(), *bench.queue_depth("alpha")))

        with retry_worker_timer(), steady(bench, {"alpha": 1, "bravo": 1}, sample):
            say("warm-up: 30 s, both DCRs healthy")
            time.sleep(30)
            say(f"alpha's DCR answers 503 for {minutes:g} min")
            alpha.set_outage(503)
            marks["down"] = time.time()
            time.sleep(minutes * MINUTE)
            alpha.set_outage(None)
            marks["up"] = time.time()
            say("alpha's DCR is back: waiting for its queue to drain")
            drained = wait_until(lambda: bench.queue_depth("alpha")[0] == 0, 10 * MINUTE)
            marks["drained"] = time.time()
            say(f"alpha's queue empty after {drained:.0f} s; 30 s more of steady traffic")
            time.sleep(30)
        final = wait_until(lambda: bench.queue_depth("alpha")[0] == 0, 5 * MINUTE)
        landed = bench.landed()
        books = tally(bench, landed)
        b_ack, b_sent = latencies(bench, landed, "bravo", marks["down"], marks["up"])
        queued_before = [(t, n, r) for t, n, r in depth if marks["down"] <= t <= marks["up"]]
        a_events = [
            min(landed["alpha"][f"alpha-{n}"])
            for s in bench.books.webhooks
            if s.tenant == "alpha" and marks["down"] <= s.acked_at < marks["up"]
            for n in range(s.first, s.first + s.count)
            if landed["alpha"].get(f"alpha-{n}")
        ]
        end_depth = queued_before[-1][1:] if queued_before else (0, 0)
        b_before_up = sum(
            1
            for s in bench.books.webhooks
            if s.tenant == "bravo" and marks["down"] <= s.acked_at < marks["up"]
            for n in range(s.first, s.first + s.count)
            if min(landed["bravo"].get(f"bravo-{n}", [float("inf")])) < marks["up"]
        )
        last_a = max(a_events) - marks["up"] if a_events else float("nan")
        lines = [
            f"Isolation: alpha's DCR 503 for {minutes:g} min; alpha and bravo 1 webhook/s each "
            f"({batch} events per webhook); retry worker every minute (50 s runs, probe every 30 s).",
            "",
            "| measure | value |",
            "|---|---|",
            f"| bravo ack → landed during alpha's outage, p50 / p99 / max (s) | {fmt(b_ack)} |",
            f"| bravo sent → landed during alpha's outage, p50 / p99 / max (s) | {fmt(b_sent)} |",
            f"| bravo events acked during the outage / landed before alpha recovered | "
            f"{len(b_ack):,} / {b_before_up:,} |",
            f"| alpha queue depth at the end of the outage (entries / rows) | "
            f"{end_depth[0]:,} / {end_depth[1]:,} |",
            f"| alpha queue empty after recovery (s) | {drained:.0f} |",
            f"| last of alpha's outage events landed after recovery (s) | {last_a:.0f} |",
            f"| queue empty at the end | {'yes' if final != float('inf') else 'NO'} |",
            "",
            *books_table(books),
        ]
        return lines


def fairness(backlog: int, batch: int, baseline: float, drain_limit: float) -> list[str]:
    with ExitStack() as stack:
        bench = Bench(stack, ["alpha", "bravo", "charlie"], batch)
        w = bench.world.destinations
        marks: dict[str, float] = {}

        def hiccups(second: int) -> None:
            if second % 10 == 5:  # one 503 each tenth second: some of their events queue
                w["bravo"].ingestion.inject(503)
                w["charlie"].ingestion.inject(503)

        others = {"bravo": 1.0, "charlie": 1.0}
        with retry_worker_timer():
            marks["base"] = time.time()
            with steady(bench, others, hiccups):
                say(f"baseline: {baseline:g} s of bravo and charlie, alpha idle")
                time.sleep(baseline)
                marks["base_end"] = time.time()
                say(f"alpha's DCR down while {backlog:,} events queue for it")
                w["alpha"].ingestion.set_outage(503)
                per = 100
                with ThreadPoolExecutor(max_workers=8, thread_name_prefix="backlog") as pool:
                    list(pool.map(lambda _: bench.send("alpha", per), range(backlog // per)))
                queued = bench.queue_depth("alpha")
                say(f"alpha's queue: {queued[0]:,} entries, {queued[1]:,} rows")
            with steady(bench, {**others, "alpha": 10.0}, hiccups):
                w["alpha"].ingestion.set_outage(None)
                marks["drain"] = time.time()
                turns_before = len(bench.turns)
                say("alpha's DCR is back: alpha drains its backlog with 10x the others' load on top")
                drained = wait_until(lambda: bench.queue_depth("alpha")[0] == 0, drain_limit, every=1.0)
                marks["drained"] = time.time()
                say(f"alpha's queue empty after {drained:.0f} s")
            wait_until(
                lambda: all(bench.queue_depth(t)[0] == 0 for t in bench.world.names), 3 * MINUTE, every=2.0
            )
        landed = bench.landed()
        books = tally(bench, landed)
        backlog_ids = [
            f"alpha-{n}"
            for s in bench.books.webhooks
            if s.tenant == "alpha" and marks["base_end"] <= s.acked_at < marks["drain"]
            for n in range(s.first, s.first + s.count)
        ]
        last_backlog = max(
            (min(landed["alpha"][e]) for e in backlog_ids if e in landed["alpha"]), default=0.0
        )
        drain_seconds = last_backlog - marks["drain"]
        rows = [
            "| tenant | phase | ack → landed p50 / p99 / max (s) "
            "| of which queued (202) p50 / p99 (s) | events |",
            "|---|---|---|---|---|",
        ]
        for tenant in ("bravo", "charlie"):
            for phase, since, until in (
                ("alpha idle", marks["base"], marks["base_end"]),
                ("alpha draining", marks["drain"], last_backlog),
            ):
                ack, _ = latencies(bench, landed, tenant, since, until)
                queued_ack = queued_latencies(bench, landed, tenant, since, until)
                q = f"{pct(queued_ack, 50):.2f} / {pct(queued_ack, 99):.2f}" if queued_ack else "–"
                rows.append(f"| {tenant} | {phase} | {fmt(ack)} | {q} | {len(ack):,} |")
        shares = Counter(t for t, attempted, _ in bench.turns[turns_before:] if attempted)
        lines = [
            f"Fairness: alpha's backlog of {len(backlog_ids):,} events (queued while its DCR answered 503), "
            f"then 10 webhooks/s of {batch} events on top during its drain; bravo and charlie 1 webhook/s "
            "each, one 503 every 10 s on their DCRs so part of their events drain through the retry queue.",
            "",
            *rows,
            "",
            "| measure | value |",
            "|---|---|",
            f"| alpha's backlog drained in (s) | {drain_seconds:.0f} |",
            f"| alpha's drain rate (backlog events/s) | {len(backlog_ids) / max(drain_seconds, 1e-9):,.0f} |",
            f"| alpha's queue empty after (s) | {drained:.0f} |",
            f"| retry-worker turns with work during the drain (alpha / bravo / charlie) | "
            f"{shares['alpha']} / {shares['bravo']} / {shares['charlie']} |",
            "",
            *books_table(books),
        ]
        return lines


def queued_latencies(
    bench: Bench, landed: dict[str, dict[str, list[float]]], tenant: str, since: float, until: float
) -> list[float]:
    out = []
    for s in bench.books.webhooks:
        if s.tenant == tenant and s.status == 202 and since <= s.acked_at < until:
            for n in range(s.first, s.first + s.count):
                times = landed[tenant].get(f"{tenant}-{n}")
                if times:
                    out.append(min(times) - s.acked_at)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="run", required=True)
    iso = sub.add_parser("isolation", help="one tenant's DCR down; the other's latency and the books")
    iso.add_argument("--minutes", type=float, default=10.0, help="how long alpha's DCR answers 503")
    fair = sub.add_parser("fairness", help="one tenant's backlog drains beside the others' steady load")
    fair.add_argument("--backlog", type=int, default=100_000, help="events queued for alpha")
    fair.add_argument("--baseline", type=float, default=60.0, help="seconds of the alpha-idle baseline")
    fair.add_argument("--drain-limit", type=float, default=900.0, help="give up on the drain after (s)")
    for each in (iso, fair):
        each.add_argument("--batch", type=int, default=10, help="events per webhook")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    started = time.monotonic()
    if args.run == "isolation":
        lines = isolation(args.minutes, args.batch)
    else:
        lines = fairness(args.backlog, args.batch, args.baseline, args.drain_limit)
    lines += ["", f"Run: {time.monotonic() - started:.0f} s wall time, {os.cpu_count()} CPUs."]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
