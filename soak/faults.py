"""The seeded fault schedule: pure data from (seed, duration), overlapping at random.

Each kind has its own timeline (a kind never overlaps itself, so "start"/"end" pair up), and the
timelines are independent, so kinds overlap one another at random. Counts scale with the fault
window; every kind occurs at least once, so a 3-minute run still sees every fault class.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# kind -> (occurrences per 10 minutes of fault window, min seconds, max seconds)
KINDS: dict[str, tuple[float, float, float]] = {
    "ingest_429": (2, 20, 90),  # a 429 storm with Retry-After
    "ingest_5xx": (2, 15, 60),
    "ingest_403": (1, 60, 240),  # "403 for minutes" (a role assignment gone)
    "ingest_hang": (1, 0, 0),  # hung connections: held 40 s, then dropped; nothing landed
    "ingest_hang_landed": (1, 0, 0),  # held 40 s after the rows landed ("timed out but landed")
    "token_outage": (1, 45, 150),
    "azurite_down": (1, 10, 40),
    "sigkill": (2, 5, 30),  # seconds the instance stays down
    "sigterm": (2, 5, 30),
    "big_413": (1, 0, 0),  # a 413 on a big batch
}


@dataclass(frozen=True)
class Fault:
    start: float  # seconds after the run started
    duration: float
    kind: str
    slot: int = -1  # the instance, for kills
    status: int = 0  # for ingestion outages
    retry_after: float = 0.0
    land: bool = False  # for hangs: the rows land before the connection hangs
    times: int = 1

    @property
    def end(self) -> float:
        return self.start + self.duration


def schedule(
    seed: int, *, window_start: float, window_end: float, instances: int, killable: tuple[int, ...]
) -> list[Fault]:
    """Faults inside [window_start, window_end), sorted by start."""
    rng = random.Random(seed)
    span = max(window_end - window_start, 1.0)
    faults: list[Fault] = []
    for kind, (per_10min, low, high) in KINDS.items():
        count = max(1, round(per_10min * span / 600))
        longest = min(high, span / (count + 1))
        slots = list(killable) if kind in ("sigkill", "sigterm") else [-1]
        for index in range(count):
            # One occurrence per equal slice of the window: a kind never overlaps itself.
            lo = window_start + span * index / count
            hi = window_start + span * (index + 1) / count
            duration = rng.uniform(min(low, longest), longest) if high else 0.0
            start = rng.uniform(lo, max(lo, hi - duration))
            faults.append(
                Fault(
                    start=round(start, 2),
                    duration=round(duration, 2),
                    kind=kind,
                    slot=rng.choice(slots) if slots != [-1] else -1,
                    status=rng.choice((500, 503))
                    if kind == "ingest_5xx"
                    else {"ingest_429": 429, "ingest_403": 403}.get(kind, 0),
                    retry_after=float(rng.randint(1, 5)) if kind == "ingest_429" else 0.0,
                    land=kind == "ingest_hang_landed",
                    times=rng.randint(2, 6) if kind.startswith("ingest_hang") else 1,
                )
            )
    return sorted(faults, key=lambda f: (f.start, f.kind))


def last_fault_end(faults: list[Fault]) -> float:
    return max((f.end for f in faults), default=0.0)
