"""RSS per instance over time (PNG): one line per process (a restart starts a new line); below it,
when the instances sampled themselves, Python's allocated blocks on the same time axis, so a step
in RSS with flat blocks reads as the allocator's high-water mark, not a leak."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

COLOURS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]


def _lines(ax: Any, samples: Sequence[dict[str, Any]], key: str, scale: float) -> None:
    """One line per pid, coloured by slot, each slot labelled once."""
    by_pid: dict[int, list[dict[str, Any]]] = {}
    for s in samples:
        by_pid.setdefault(int(s["pid"]), []).append(s)
    labelled: set[int] = set()
    for series in by_pid.values():
        slot = int(series[0]["slot"])
        ax.plot(
            [s["t"] / 60 for s in series],
            [s[key] / scale for s in series],
            color=COLOURS[slot % len(COLOURS)],
            label=None if slot in labelled else f"instance {slot}",
            linewidth=1.2,
        )
        labelled.add(slot)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")


def plot_rss(
    samples: Sequence[dict[str, Any]],
    path: Path,
    *,
    title: str,
    pyalloc: Sequence[dict[str, Any]] = (),
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 2 if pyalloc else 1
    fig, axes = plt.subplots(panels, 1, figsize=(10, 4.5 * panels), sharex=True, squeeze=False)
    rss = axes[0][0]
    _lines(rss, samples, "rss_kb", 1024)
    rss.set_ylabel("RSS (MiB)")
    rss.set_title(title)
    if pyalloc:
        blocks = axes[1][0]
        _lines(blocks, pyalloc, "blocks", 1000)
        blocks.set_ylabel("Python allocated blocks (thousands)")
    axes[-1][0].set_xlabel("minutes since start")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
