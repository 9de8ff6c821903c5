"""The books of a soak run, computed from what the stand-ins saw, never from the relay's counters.

`compute` is pure: the sender's deliveries (what Wallarm sent and what it was told), the rows the
ingestion stand-in accepted (the "table"), and the quarantined entries' identities.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from soak.events import identities_in
from soak.sender import Delivery

BACKFILL_MARK = "_relay_backfill"


def _pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[index], 4)


def compute(
    *, deliveries: Iterable[Delivery], rows: Iterable[dict[str, Any]], quarantined: dict[str, str]
) -> dict[str, Any]:
    sent: set[str] = set()
    acked: set[str] = set()
    gave_up_hits: set[str] = set()
    gave_up_others: set[str] = set()
    ack_seconds: list[float] = []
    attempts = failed_attempts = 0
    outcomes: Counter[str] = Counter()
    for d in deliveries:
        note_ids = d.note.identities
        sent.update(note_ids)
        outcomes[d.outcome] += 1
        attempts += len(d.attempts)
        failed_attempts += sum(1 for a in d.attempts if not 200 <= a.status < 300)
        if d.outcome == "acked":
            acked.update(note_ids)
            ack_seconds.append(d.attempts[-1].seconds)
        else:
            gave_up_hits.update(h.doc for h in d.note.hits)
            gave_up_others.update(d.note.others)
    landed: Counter[str] = Counter()
    backfilled: set[str] = set()
    for row in rows:
        ids = identities_in(row)
        landed.update(ids)
        if BACKFILL_MARK in str(row.get("RawData", "")):
            backfilled.update(ids)
    duplicates = sorted(i for i, n in landed.items() if n > 1)
    lost_acked = sorted(acked - set(landed) - set(quarantined))
    lost_gave_up_hits = sorted(gave_up_hits - set(landed) - set(quarantined))
    unrecoverable = sorted(gave_up_others - set(landed))
    unknown = sorted(set(landed) - sent)
    return {
        "ok": not duplicates and not lost_acked and not lost_gave_up_hits and not unknown,
        "notifications": dict(outcomes),
        "events_sent": len(sent),
        "events_acked": len(acked),
        "events_gave_up": len(gave_up_hits | gave_up_others),
        "gave_up_hits": len(gave_up_hits),
        "gave_up_other_events": len(gave_up_others),
        "landed_distinct": len(landed),
        "landed_rows": sum(landed.values()),
        "duplicates": len(duplicates),
        "duplicate_ids": duplicates[:500],
        "lost_acked": len(lost_acked),
        "lost_acked_ids": lost_acked[:50],
        "lost_gave_up_hits": len(lost_gave_up_hits),
        "lost_gave_up_hit_ids": lost_gave_up_hits[:50],
        "gave_up_other_not_landed": len(unrecoverable),
        "quarantined": len(quarantined),
        "quarantined_list": sorted(quarantined.items())[:200],
        "recovered_by_reconcile": len(backfilled),
        "landed_but_never_sent": len(unknown),
        "sender_attempts": attempts,
        "sender_failed_attempts": failed_attempts,
        "ack_p50_s": _pct(ack_seconds, 0.5),
        "ack_p99_s": _pct(ack_seconds, 0.99),
        "ack_max_s": _pct(ack_seconds, 1.0),
    }


def carriers(requests: Iterable[Any], wanted: set[str], t0: float) -> dict[str, list[tuple[float, str]]]:
    """For each wanted identity: (seconds since start, request id) of every accepted upload that
    carried it; the evidence of where a duplicate came from."""
    import gzip
    import json

    found: dict[str, list[tuple[float, str]]] = {}
    for req in requests:
        if not 200 <= req.status < 300 or not req.body:
            continue
        raw = gzip.decompress(req.body) if (req.content_encoding or "").lower() == "gzip" else req.body
        for row in json.loads(raw):
            for ident in identities_in(row) & wanted:
                found.setdefault(ident, []).append((round(req.time - t0, 2), req.request_id))
    return found


TIMED_OUT_BUT_LANDED = "timed-out-but-landed"


def _landed_then_hung(fault: str | None, read_timeout: float) -> bool:
    """The stand-in's fault note of an upload whose rows landed and whose answer then came later
    than the relay's read timeout (``delay=40 land``): the relay saw a timeout, Azure had the rows."""
    parts = (fault or "").split()
    delays = [float(p.removeprefix("delay=")) for p in parts if p.startswith("delay=")]
    return "land" in parts and any(d > read_timeout for d in delays)


def duplicate_causes(
    requests: Iterable[Any], duplicate_ids: set[str], t0: float, *, read_timeout: float
) -> dict[str, list[str]]:
    """Each duplicate identity by cause, from the uploads that carried it. An identity is
    `timed-out-but-landed` when every copy beyond one is explained by an upload that landed and
    then hung past the webhook's read timeout (``ingest_hang_landed``): the relay could not tell,
    queued the rows and resent them (README, "When a duplicate row is possible"). Any other
    duplicate is `unexplained`: a defect."""
    found = carriers(requests, duplicate_ids, t0)
    hung = {
        r.request_id for r in requests if 200 <= r.status < 300 and _landed_then_hung(r.fault, read_timeout)
    }
    out: dict[str, list[str]] = {TIMED_OUT_BUT_LANDED: [], "unexplained": []}
    for ident in sorted(duplicate_ids):
        uploads = found.get(ident, [])
        explained = sum(1 for _t, request_id in uploads if request_id in hung)
        cause = TIMED_OUT_BUT_LANDED if uploads and explained >= len(uploads) - 1 else "unexplained"
        out[cause].append(ident)
    return out


def judge_duplicates(
    result: dict[str, Any], requests: Sequence[Any], t0: float, *, read_timeout: float
) -> None:
    """Classify `result`'s duplicates by cause (with their carriers as evidence) and let only the
    unexplained ones fail the books; timed-out-but-landed ones are reported on their own."""
    dup_ids = set(result["duplicate_ids"])
    result["duplicate_evidence"] = carriers(requests, dup_ids, t0) if dup_ids else {}
    causes = duplicate_causes(requests, dup_ids, t0, read_timeout=read_timeout)
    result["duplicates_timed_out_but_landed"] = len(causes[TIMED_OUT_BUT_LANDED])
    result["duplicates_unexplained"] = len(causes["unexplained"])
    result["duplicate_causes"] = {k: v[:200] for k, v in causes.items()}
    result["ok"] = (
        not causes["unexplained"]
        and not result["lost_acked"]
        and not result["lost_gave_up_hits"]
        and not result["landed_but_never_sent"]
    )


def quarantined_identities(connection_string: str, table: str) -> dict[str, str]:
    """identity -> reason, for every row of every quarantined queue entry (read from Azurite)."""
    from azure.data.tables import TableClient

    from shared.store.queue_entry import QUARANTINE, from_entity

    found: dict[str, str] = {}
    client = TableClient.from_connection_string(connection_string, table)
    for entity in client.query_entities("PartitionKey eq @pk", parameters={"pk": QUARANTINE}):
        entry = from_entity(entity)
        for row in entry.rows:
            for ident in identities_in(row):
                found[ident] = entry.reason or f"status {entry.last_status}"
    return found


def ledger_totals(connection_string: str, table: str) -> dict[str, int]:
    """The relay's own ledger: attempts/failures summed over every hour and bucket."""
    from azure.data.tables import TableClient

    from shared.store.ledger import ATTEMPTS_PREFIX, FAILURES_PREFIX

    totals = {"attempts": 0, "failures": 0, "events": 0, "received": 0}
    client = TableClient.from_connection_string(connection_string, table)
    for entity in client.list_entities():
        for name, value in entity.items():
            if not isinstance(value, int):
                continue
            if ATTEMPTS_PREFIX in name:
                totals["attempts"] += value
            elif FAILURES_PREFIX in name:
                totals["failures"] += value
            elif name == "c_events":
                totals["events"] += value
            elif name == "c_received":
                totals["received"] += value
    return totals


def auto_disable_check(
    status_log: Sequence[dict[str, Any]], requests: Sequence[Any], wall0: float, mono0: float
) -> dict[str, Any]:
    """Each time the relay was seen auto-disabled, and the failure ratio it reported then."""
    seen = [s for s in status_log if s.get("state") == "auto_disabled"]
    first = seen[0] if seen else None
    return {
        "samples_auto_disabled": len(seen),
        "first": first,
        "max_reported_ratio_while_enabled": max(
            (s.get("ratio") or 0.0 for s in status_log if s.get("state") != "auto_disabled"), default=0.0
        ),
    }


def growth(samples: Sequence[dict[str, Any]], *, warmup: float) -> dict[str, Any]:
    """Per instance incarnation (pid) alive past warm-up: first vs last fifth of its samples after
    warm-up, in %, for RSS, threads and fds (medians, so one busy sample does not decide)."""
    by_pid: dict[int, list[dict[str, Any]]] = {}
    for s in samples:
        by_pid.setdefault(int(s["pid"]), []).append(s)
    out: dict[str, Any] = {}
    for pid, series in by_pid.items():
        start = series[0]["t"]
        after = [s for s in series if s["t"] - start >= warmup]
        if len(after) < 10:
            continue
        fifth = max(2, len(after) // 5)
        head, tail = after[:fifth], after[-fifth:]
        entry: dict[str, Any] = {
            "slot": series[0]["slot"],
            "seconds": round(after[-1]["t"] - after[0]["t"], 1),
        }
        for key in ("rss_kb", "threads", "fds"):
            a = statistics.median(s[key] for s in head)
            b = statistics.median(s[key] for s in tail)
            entry[key] = {
                "after_warmup": a,
                "end": b,
                "growth_pct": round(100.0 * (b - a) / a, 1) if a else None,
            }
        out[str(pid)] = entry
    return out


def summary(result: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "ok",
        "notifications",
        "events_sent",
        "events_acked",
        "events_gave_up",
        "landed_distinct",
        "duplicates",
        "duplicates_timed_out_but_landed",
        "duplicates_unexplained",
        "lost_acked",
        "lost_gave_up_hits",
        "gave_up_other_not_landed",
        "quarantined",
        "recovered_by_reconcile",
        "ack_p50_s",
        "ack_p99_s",
        "drain_seconds_after_last_fault",
        "sender_attempts",
        "sender_failed_attempts",
        "ingestion_requests",
        "ledger",
        "ledger_check",
        "hourly_check",
        "sender_disabled",
        "relay_states",
        "resources",
    )
    return {k: result.get(k) for k in keys} | {
        "duplicate_ids": (result.get("duplicate_ids") or [])[:20],
        "lost_acked_ids": (result.get("lost_acked_ids") or [])[:20],
    }


def utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()
