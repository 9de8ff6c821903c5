"""The figures of a soak run as Markdown, for docs/SOAK.md (`python -m soak.report books.json`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def figures_markdown(r: dict[str, Any], *, plot: str | None = None) -> str:
    c = r["config"]
    lines = [
        f"Run: {c['minutes']:g} minutes of sending, seed {c['seed']}, scale {c['scale']:g}, "
        f"{c['instances']} instances (clock skews {c['skews']}), {c['rate_per_s']:g} notifications/s, "
        f"timers `{c['timers']}`; restarts per instance {c['restarts']}; "
        f"{len(r['faults'])} faults. Books `ok`: **{r['ok']}**.",
        "",
        "| figure | value |",
        "|---|---|",
    ]
    rows = [
        ("notifications (outcome)", r["notifications"]),
        ("events sent", r["events_sent"]),
        ("events acked (2xx)", r["events_acked"]),
        ("events given up by the sender", f"{r['events_gave_up']} ({r['gave_up_hits']} hits)"),
        ("events landed (distinct)", r["landed_distinct"]),
        ("rows landed", r["landed_rows"]),
        ("**duplicates** (identities in > 1 row)", r["duplicates"]),
        (
            "duplicates by cause: timed-out-but-landed / unexplained",
            f"{r.get('duplicates_timed_out_but_landed', 'n/a')} / {r.get('duplicates_unexplained', 'n/a')}",
        ),
        ("**lost** (acked, not in the table, not quarantined)", r["lost_acked"]),
        ("given-up hits missing after reconciliation", r["lost_gave_up_hits"]),
        ("given-up non-hit events not landed (Wallarm's loss)", r["gave_up_other_not_landed"]),
        ("quarantined (with reason)", f"{r['quarantined']} {r['quarantined_list'][:5]}"),
        ("recovered by reconciliation", r["recovered_by_reconcile"]),
        (
            "queue empty after the last fault ended (5 s samples)",
            f"{r.get('queue_empty_seconds_after_last_fault_end')} s",
        ),
        (
            "queue empty after sending stopped and faults were cleared",
            f"{r['drain_seconds_after_last_fault']} s",
        ),
        ("ack p50 / p99 / max", f"{r['ack_p50_s']} / {r['ack_p99_s']} / {r['ack_max_s']} s"),
        ("sender attempts / failed", f"{r['sender_attempts']} / {r['sender_failed_attempts']}"),
        ("Wallarm auto-disable (time, attempts, failures)", r["sender_disabled"] or "never"),
        ("ingestion uploads seen / failed", f"{r['ingestion_requests']}"),
        ("relay ledger", r["ledger"]),
        ("ledger check", r.get("ledger_check")),
        ("hourly counters vs truth", r.get("hourly_check")),
        ("relay states seen", r["relay_states"]),
        ("relay auto-disable vs the true ratio", _auto_disable(r["auto_disable"])),
        ("reconciliation", _reconcile(r["reconcile"])),
    ]
    lines += [f"| {k} | {v} |" for k, v in rows]
    lines += ["", "Resources per process alive past warm-up (median first vs last fifth after warm-up):", ""]
    keys = ("rss_kb", "threads", "fds", "blocks")
    head = ("pid", "instance", "seconds", "RSS kB", "RSS %", "threads", "threads %", "fds", "fds %")
    lines += ["| " + " | ".join((*head, "py blocks", "blocks %")) + " |"]
    lines += ["|---|---|---|---|---|---|---|---|---|---|---|"]
    for pid, e in r["resources"].items():
        cells = [_change(e.get(k)) for k in keys]
        lines.append(f"| {pid} | {e['slot']} | {e['seconds']} | " + " | ".join(cells) + " |")
    if plot:
        lines += ["", f"![RSS per instance]({plot})"]
    return "\n".join(lines) + "\n"


def _auto_disable(a: dict[str, Any]) -> str:
    if "disables" not in a:
        return str(a)  # books from before the check
    return (
        f"{len(a['disables'])} disables, {a['violations']} under the true ratio; "
        f"enabled at a true ratio ≥ {a['rule']['ratio']}: {a['enabled_at_true_ratio_over']} samples "
        f"{a['enabled_at_true_ratio_over_by_reason']}"
    )


def _change(entry: dict[str, Any] | None) -> str:
    """`first → last | growth %` of one resource series, or blanks when it was not sampled."""
    if not entry:
        return "– | –"
    return f"{entry['after_warmup']:.0f} → {entry['end']:.0f} | {entry['growth_pct']}"


def _reconcile(rec: dict[str, Any]) -> str:
    windows = (rec.get("windows") or {}).get("windows", []) if isinstance(rec.get("windows"), dict) else []
    parts = [f"{w.get('status')}: in Wallarm {w.get('in_wallarm')}, added {w.get('added')}" for w in windows]
    return f"HTTP {rec.get('status')}; " + "; ".join(parts)


if __name__ == "__main__":
    print(figures_markdown(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))))
