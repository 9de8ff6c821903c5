"""Drain of a backlog: an outage's worth of queue entries, all due, `RetryWorker.run_once()`
until nothing is due (one worker) with up to `uploads` uploads at a time (1: one after another);
and the stand-in's own ceiling: the raw SDK uploading the same rows on `parallel` threads."""

from __future__ import annotations

import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bench.harness import Harness, say, timed


@dataclass
class Drain:
    uploads: int  # at a time
    api_latency: float  # the stand-in holds each upload this long
    parallel: int  # settling threads
    settle_batch: int
    pace: float  # upload starts per second at most (the DCR's request limit)
    table_latency: float
    entries: int
    events: int
    rows_min: int
    rows_max: int
    seconds: float
    enqueue_seconds: float
    enqueue_requests: int
    attempted: int
    delivered: int
    landed: int
    pending_after: int
    ingest_requests: int
    ingest_time: float  # summed over threads
    table_requests: int
    table_time: float  # summed over threads
    ops: dict[str, float] = field(default_factory=dict)  # request label -> per entry
    cpu: dict[str, float] = field(default_factory=dict)  # process -> CPU seconds over the drain (Linux)

    @property
    def eps(self) -> float:
        return self.events / self.seconds


def run(
    h: Harness, *, quick: bool, uploads: int, table_latency: float = 0.0, api_latency: float = 0.0
) -> Drain:
    from bench.payloads import realistic_rows

    target = 10_000 if quick else 100_000
    svc = h.use("drain")
    svc.worker.uploads = uploads
    queue = svc.worker.queue
    now = datetime.now(UTC)
    groups = realistic_rows(target, now)
    total = sum(len(g) for g in groups)
    say(
        f"drain: {len(groups)} entries, {total:,} rows, {uploads} at a time, "
        f"API +{api_latency * 1000:.0f} ms, Table +{table_latency * 1000:.0f} ms"
    )
    h.wire.take()
    with h.table_latency(table_latency):
        with timed() as enq_t:
            for rows in groups:
                queue.enqueue(
                    rows,
                    due_at=now,
                    attempt=1,
                    reason="bench outage",
                    status=503,
                    error="ServiceUnavailable",
                    first_failed_at=now,
                )
        enqueue_requests = len(h.wire.take())
        h.standins.reset()
        if api_latency:  # every upload lands, then waits before its 204, as a distant API does
            h.standins.fault(delay=api_latency, times=1_000_000, land=True)
        delivered = attempted = 0
        cpu_before = _cpu_seconds()
        with timed() as drain_t:
            while True:
                step = svc.worker.run_once()
                delivered += step.delivered
                attempted += step.attempted
                if step.attempted == 0:
                    break
        cpu = {name: spent - cpu_before.get(name, 0.0) for name, spent in _cpu_seconds().items()}
        calls = h.wire.take()
    after = queue.stats()
    landed = int(h.standins.state()["accepted"])
    h.standins.reset()
    table = [c for c in calls if c.target == "table"]
    posts = [c for c in calls if c.target == "ingestion"]
    result = Drain(
        uploads=uploads,
        api_latency=api_latency,
        parallel=svc.worker.parallel,
        settle_batch=svc.worker.settle_batch,
        pace=svc.worker.max_per_second,
        table_latency=table_latency,
        entries=len(groups),
        events=total,
        rows_min=min(len(g) for g in groups),
        rows_max=max(len(g) for g in groups),
        seconds=drain_t[0],
        enqueue_seconds=enq_t[0],
        enqueue_requests=enqueue_requests,
        attempted=attempted,
        delivered=delivered,
        landed=landed,
        pending_after=after.pending,
        ingest_requests=len(posts),
        ingest_time=sum(c.seconds for c in posts),
        table_requests=len(table),
        table_time=sum(c.seconds for c in table),
        ops={k: v / max(attempted, 1) for k, v in Counter(c.label for c in table).most_common()},
        cpu=cpu,
    )
    say(f"drain: {result.eps:,.0f} events/s in {result.seconds:.1f} s")
    return result


def _cpu_seconds() -> dict[str, float]:
    """CPU seconds so far of the relay (this process), Azurite and the stand-ins (its children),
    from /proc; empty where there is no /proc."""
    if not os.path.isdir("/proc/self"):
        return {}
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    out = {"relay": time.process_time()}
    todo = [os.getpid()]
    while todo:
        parent = todo.pop()
        for pid, (ppid, spent) in stats.items():
            if ppid != parent:
                continue
            todo.append(pid)
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    command = f.read()
            except OSError:
                continue
            name = "Azurite" if b"azurite" in command else "stand-in" if b"standins" in command else ""
            if name:
                out[name] = out.get(name, 0.0) + spent
    return out


def ceiling(h: Harness, *, quick: bool, parallel: int) -> float:
    """Events/s the stand-in takes from the raw SDK: the same rows, one upload per entry, on
    `parallel` threads (what a drain cannot beat on this machine)."""
    from bench.payloads import realistic_rows

    target = 10_000 if quick else 100_000
    svc = h.use("ceiling")
    groups = realistic_rows(target, datetime.now(UTC))
    client = h.ingestion_client(svc.settings)
    dcr, stream = svc.settings.dcr_immutable_id, svc.settings.stream_name
    client.upload(rule_id=dcr, stream_name=stream, logs=groups[0][:1])
    h.standins.reset()
    say(f"drain ceiling: raw SDK, {len(groups)} uploads on {parallel} threads")
    with ThreadPoolExecutor(parallel) as pool, timed() as spent:
        list(pool.map(lambda rows: client.upload(rule_id=dcr, stream_name=stream, logs=rows), groups))
    client.close()
    h.wire.take()
    h.standins.reset()
    return sum(len(g) for g in groups) / spent[0]
