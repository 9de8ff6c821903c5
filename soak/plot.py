"""RSS per instance over time (PNG): one line per process (a restart starts a new line)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def plot_rss(samples: Sequence[dict[str, Any]], path: Path, *, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    by_pid: dict[int, list[dict[str, Any]]] = {}
    for s in samples:
        by_pid.setdefault(int(s["pid"]), []).append(s)
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    labelled: set[int] = set()
    for series in by_pid.values():
        slot = int(series[0]["slot"])
        ax.plot(
            [s["t"] / 60 for s in series],
            [s["rss_kb"] / 1024 for s in series],
            color=colours[slot % len(colours)],
            label=None if slot in labelled else f"instance {slot}",
            linewidth=1.2,
        )
        labelled.add(slot)
    ax.set_xlabel("minutes since start")
    ax.set_ylabel("RSS (MiB)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
