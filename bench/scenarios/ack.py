"""Ack latency and Table Storage requests per webhook: healthy, slow and down APIs.

Each webhook is a realistic body (1-500 events), sent one at a time through the HTTP function with
the production defaults. The 'down' cases hold off auto-disable so every sample takes the queue
path; the last one uses the defaults, where the 20th failed attempt disables the integration.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.harness import Harness, on_ack_path, pct, say, sequential
from local.standins.server import free_port

NO_DISABLE = {"AUTO_DISABLE_MIN_ATTEMPTS": "100000"}


@dataclass
class AckCase:
    name: str
    down: bool
    webhooks: int
    p50: float
    p99: float
    max: float
    table_requests: float
    table_time: float
    table_depth: float
    answers: dict[str, int]
    ops: dict[str, float] = field(default_factory=dict)  # request label -> per webhook


def run(h: Harness, *, quick: bool) -> list[AckCase]:
    from bench.payloads import payloads

    n_fast = 20 if quick else 60
    n_slow = 5 if quick else 12
    many = 10_000
    cases: list[tuple[str, int, dict[str, str], Callable[[], None]]] = [
        ("healthy", n_fast, {}, lambda: None),
        (
            "slow: 2 s per request (rows land)",
            n_slow,
            {},
            lambda: h.standins.fault(delay=2, times=many, land=True),
        ),
        ("down: 503 outage", n_fast, NO_DISABLE, lambda: h.standins.fault(outage=503)),
        ("down: connections dropped", n_fast, NO_DISABLE, lambda: h.standins.fault(drop=True, times=many)),
        (
            "down: connection refused",
            n_fast // 2,
            {**NO_DISABLE, "LOGS_INGESTION_ENDPOINT": f"https://127.0.0.1:{free_port()}"},
            lambda: None,
        ),
        (
            "down: 503, default settings (auto-disable after 20)",
            n_fast,
            {},
            lambda: h.standins.fault(outage=503),
        ),
    ]
    out = []
    for seed, (name, samples, extra, start_fault) in enumerate(cases, start=101):
        say(f"ack: {name} ({samples} webhooks)")
        h.standins.reset()
        h.use(name, **extra)
        for p in payloads(2, seed=seed * 7):  # token and tables warmed
            h.call(p)
        h.wire.take()
        start_fault()
        latencies: list[float] = []
        answers: Counter[str] = Counter()
        ops: Counter[str] = Counter()
        per_hook: list[int] = []
        seconds: list[float] = []
        depth: list[int] = []
        for p in payloads(samples, seed=seed):
            status, body, elapsed = h.call(p)
            latencies.append(elapsed)
            answers[f"{status} {body.get('status') or body.get('error', {}).get('code', '')}"] += 1
            calls = [c for c in h.wire.take() if c.target == "table"]
            per_hook.append(len(calls))
            seconds.append(sum(c.seconds for c in calls))
            depth.append(sequential(on_ack_path(calls, h.answered_at))[0])
            ops.update(c.label for c in calls)
        h.standins.clear()
        out.append(
            AckCase(
                name=name,
                down=name.startswith("down"),
                webhooks=samples,
                p50=pct(latencies, 50),
                p99=pct(latencies, 99),
                max=max(latencies),
                table_requests=statistics.mean(per_hook),
                table_time=statistics.mean(seconds),
                table_depth=statistics.mean(depth),
                answers=dict(sorted(answers.items())),
                ops={label: n / samples for label, n in ops.most_common()},
            )
        )
    return out
