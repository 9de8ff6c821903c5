"""The healthy path: the relay's HTTP function against the raw SDK's `upload()`, side by side.

Same payloads, same stand-in, TLS, `ManagedIdentityCredential`, `retry_total=0` and timeouts on
both sides; sequential, interleaved per webhook (ABBA), tokens and tables warmed first.
`api_latency` holds each ingestion request that long before its 204; `table_latency` delays each
Table Storage request (the harness's knob).
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bench.harness import Harness, on_ack_path, say, sequential


@dataclass(frozen=True)
class Bucket:
    name: str
    webhooks: int
    events: int
    relay_eps: float
    base_eps: float
    overhead: float  # mean relay - baseline per webhook, seconds


@dataclass
class Throughput:
    api_latency: float
    table_latency: float
    webhooks: int
    events: int
    relay_eps: float
    base_eps: float
    relay_per_webhook: float
    base_per_webhook: float
    overhead: float
    table_requests: float  # mean per webhook
    table_time: float  # mean summed request time per webhook
    table_depth: float  # mean sequential Table round trips per webhook
    table_depth_max: int
    table_critical: float  # mean time of those sequential round trips per webhook
    after_answer: float  # mean time the bookkeeping ran on after the answer (off the ack path)
    ingest_requests: float
    ingest_time: float
    row_bytes_per_event: float  # JSON of the mapped rows: what Log Analytics ingests
    statuses: dict[int, int]
    depth_counts: dict[int, int]  # sequential Table round trips -> webhooks
    info: dict[str, Any] = field(default_factory=dict)
    buckets: list[Bucket] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.relay_eps / self.base_eps


def run(h: Harness, *, quick: bool, api_latency: float = 0.0, table_latency: float = 0.0) -> Throughput:
    from bench.payloads import payloads, rows_of, summary

    count = 60 if quick else 300
    label = f"api {api_latency * 1000:.0f} ms, table {table_latency * 1000:.0f} ms"
    say(f"throughput ({label}): {count} webhooks through the function vs upload() (interleaved)")
    items = payloads(count, seed=1)
    warm = payloads(4, seed=2)
    h.standins.reset()
    svc = h.use("throughput")
    settings = svc.settings
    received = datetime.now(UTC)
    mapped = [rows_of(p, received, settings.selection) for p in items]
    client = h.ingestion_client(settings)
    dcr, stream = settings.dcr_immutable_id, settings.stream_name
    relay_t: list[float] = []
    base_t: list[float] = []
    requests: list[int] = []
    spent: list[float] = []
    depth: list[int] = []
    critical: list[float] = []
    after: list[float] = []
    uploads: list[int] = []
    ingest: list[float] = []
    statuses: Counter[int] = Counter()
    with h.table_latency(table_latency):
        for p in warm:  # token, TLS session, tables: outside the measurement for both sides
            h.call(p)
            client.upload(rule_id=dcr, stream_name=stream, logs=rows_of(p, received))
        h.wire.take()
        for index, (payload, rows) in enumerate(zip(items, mapped, strict=True)):
            order = ("relay", "base") if index % 2 == 0 else ("base", "relay")
            for side in order:
                if api_latency:  # one delayed request per side; it lands, as a slow 204 does
                    h.standins.fault(delay=api_latency, times=1, land=True)
                if side == "relay":
                    status, _, elapsed = h.call(payload)
                    statuses[status] += 1
                    relay_t.append(elapsed)
                    calls = h.wire.take()
                    table = [c for c in calls if c.target == "table"]
                    requests.append(len(table))
                    spent.append(sum(c.seconds for c in table))
                    chain, chain_s = sequential(on_ack_path(table, h.answered_at))
                    after.append(h.books_seconds)
                    depth.append(chain)
                    critical.append(chain_s)
                    uploads.append(sum(1 for c in calls if c.target == "ingestion"))
                    ingest.append(sum(c.seconds for c in calls if c.target == "ingestion"))
                else:
                    started = time.perf_counter()
                    client.upload(rule_id=dcr, stream_name=stream, logs=rows)
                    base_t.append(time.perf_counter() - started)
                    h.wire.take()
            if index % 50 == 49:
                h.standins.reset()  # keep the stand-in's memory flat
    client.close()
    events = [p.events for p in items]
    total = sum(events)
    buckets = []
    for name, low, high in (("1-9", 1, 9), ("10-99", 10, 99), ("100-500", 100, 500)):
        idx = [i for i, n in enumerate(events) if low <= n <= high]
        if idx:
            ev = sum(events[i] for i in idx)
            buckets.append(
                Bucket(
                    name,
                    len(idx),
                    ev,
                    ev / sum(relay_t[i] for i in idx),
                    ev / sum(base_t[i] for i in idx),
                    statistics.mean(relay_t[i] - base_t[i] for i in idx),
                )
            )
    row_bytes = sum(len(json.dumps(r, separators=(",", ":"))) for rows in mapped for r in rows)
    result = Throughput(
        api_latency=api_latency,
        table_latency=table_latency,
        webhooks=len(items),
        events=total,
        relay_eps=total / sum(relay_t),
        base_eps=total / sum(base_t),
        relay_per_webhook=statistics.mean(relay_t),
        base_per_webhook=statistics.mean(base_t),
        overhead=statistics.mean(r - b for r, b in zip(relay_t, base_t, strict=True)),
        table_requests=statistics.mean(requests),
        table_time=statistics.mean(spent),
        table_depth=statistics.mean(depth),
        table_depth_max=max(depth),
        table_critical=statistics.mean(critical),
        after_answer=statistics.mean(after),
        ingest_requests=statistics.mean(uploads),
        ingest_time=statistics.mean(ingest),
        row_bytes_per_event=row_bytes / max(sum(len(r) for r in mapped), 1),
        statuses=dict(statuses),
        depth_counts=dict(sorted(Counter(depth).items())),
        info=summary(items),
        buckets=buckets,
    )
    say(f"throughput ({label}): relay / SDK {result.ratio:.1%}")
    return result
