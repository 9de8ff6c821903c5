"""Where a healthy webhook's time goes: pyinstrument over webhooks through the HTTP function."""

from __future__ import annotations

from dataclasses import dataclass

from bench.harness import Harness, say


@dataclass
class Profile:
    webhooks: int
    events: int
    table_latency: float
    flat: list[str]  # top frames by self time
    tree: list[str]  # call tree, first lines


def run(h: Harness, *, quick: bool, table_latency: float = 0.0) -> Profile:
    from pyinstrument import Profiler

    from bench.payloads import payloads

    count = 30 if quick else 80
    say(f"profile: {count} healthy webhooks under pyinstrument (table +{table_latency * 1000:.0f} ms)")
    h.standins.reset()
    h.use("profile")
    items = payloads(count, seed=9002)
    with h.table_latency(table_latency):
        for p in payloads(2, seed=9001):
            h.call(p)
        profiler = Profiler(interval=0.0005)
        profiler.start()
        for p in items:
            h.call(p)
        profiler.stop()
    h.wire.take()
    flat = profiler.output_text(unicode=True, color=False, flat=True, flat_time="self")
    tree = profiler.output_text(unicode=True, color=False, short_mode=False)
    return Profile(
        webhooks=count,
        events=sum(p.events for p in items),
        table_latency=table_latency,
        flat=[line for line in flat.splitlines() if line.strip()][:30],
        tree=[line for line in tree.splitlines() if line.strip()][:90],
    )
