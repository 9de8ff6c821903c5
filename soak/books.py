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
    then hung past the webhook's read timeout (``ingest_hang_landed``): the relay queued the rows
    and resent them without its landed check finding them. Any other duplicate is `unexplained`.
    Both fail the books; the cause tells where to look."""
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
    """Classify `result`'s duplicates by cause (with their carriers as evidence); any duplicate
    fails the books, whatever its cause."""
    dup_ids = set(result["duplicate_ids"])
    result["duplicate_evidence"] = carriers(requests, dup_ids, t0) if dup_ids else {}
    causes = duplicate_causes(requests, dup_ids, t0, read_timeout=read_timeout)
    result["duplicates_timed_out_but_landed"] = len(causes[TIMED_OUT_BUT_LANDED])
    result["duplicates_unexplained"] = len(causes["unexplained"])
    result["duplicate_causes"] = {k: v[:200] for k, v in causes.items()}
    # Any duplicate fails: the landed check (query the workspace before resending a doubtful
    # upload) leaves none; the causes stay for diagnosis.
    result["ok"] = (
        not dup_ids
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


def ledger_failures(connection_string: str, table: str, wall0: float) -> list[tuple[float, str]]:
    """(run-relative seconds on the writer's clock, error code) of every failed attempt the
    relay's ledger kept one by one (a record is lost when its write met a storage outage)."""
    from azure.data.tables import TableClient

    client = TableClient.from_connection_string(connection_string, table)
    found: list[tuple[float, str]] = []
    for entity in client.query_entities("ok eq false", select=["at", "error"]):
        at = entity.get("at")
        if isinstance(at, datetime):
            found.append((round(at.timestamp() - wall0, 2), str(entity.get("error") or "")))
    return sorted(found)


TOKEN_ERROR = "authentication_error"  # the relay's error code of an attempt that got no token


AttemptLog = list[tuple[float, int, bool, int]]


def attempt_log(requests: Iterable[Any], wall0: float, *, read_timeout: float) -> AttemptLog:
    """Every ingestion request as (run-relative seconds, status, landed-then-hung, rows): what the
    books keep of the stand-in's records (the auto-disable and ledger checks need nothing else)."""
    return [
        (
            round(r.time - wall0, 3),
            r.status,
            200 <= r.status < 300 and _landed_then_hung(r.fault, read_timeout),
            r.row_count,
        )
        for r in requests
    ]


def ledger_in_kind(
    ledger: dict[str, int],
    log: AttemptLog,
    failure_records: Sequence[tuple[float, str]],
    token_windows: Sequence[tuple[float, float]],
    *,
    slack: float,
) -> dict[str, Any]:
    """The ledger against the stand-in, counted in the same kind. The ledger counts relay attempts;
    the stand-in sees those that reached it (the ingestion client does not retry: one attempt, one
    request; health probes, empty uploads, count like any request). So the expected attempts are
    the stand-in's requests plus the attempts that failed on their token (never reached it); the
    expected failures are the stand-in's failed requests,
    plus its 2xx answered after the relay's read timeout (a failure to the relay), plus those token
    failures. Token failures: the ledger's records of `authentication_error` inside a token
    outage of the fault schedule (`slack`: the writers' clock skew and the token call's time);
    any outside a window are listed, not counted. Bound: within 5 % (or 50) of the expected;
    what remains is what the relay's own counting loses (a SIGKILLed process's unwritten
    increments; a webhook's success counted ahead and never corrected)."""
    requests = len(log)
    failed = sum(1 for _t, status, _late, _rows in log if not 200 <= status < 300)
    late = sum(1 for _t, _status, is_late, _rows in log if is_late)
    probes = sum(1 for _t, status, _late, rows in log if 200 <= status < 300 and not rows)

    def in_outage(t: float) -> bool:
        return any(a - slack <= t <= b + slack for a, b in token_windows)

    token = [t for t, error in failure_records if error == TOKEN_ERROR]
    token_in = sum(1 for t in token if in_outage(t))
    expected_attempts = requests + token_in
    expected_failures = failed + late + token_in
    by_error = Counter(error for _t, error in failure_records)

    def within(value: int, expected: int) -> bool:
        return abs(value - expected) <= max(50, 0.05 * expected)

    return {
        "standin_requests": requests,
        "standin_failed": failed,
        "standin_2xx_after_read_timeout": late,
        "standin_2xx_empty_probes": probes,
        "token_failures_in_outages": token_in,
        "token_failures_outside_outages": len(token) - token_in,
        "expected_attempts": expected_attempts,
        "expected_failures": expected_failures,
        "attempts_diff": ledger["attempts"] - expected_attempts,
        "failures_diff": ledger["failures"] - expected_failures,
        "failure_records": len(failure_records),
        "failure_records_by_error": dict(by_error.most_common(12)),
        "within_bound": within(ledger["attempts"], expected_attempts)
        and within(ledger["failures"], expected_failures),
    }


RESOURCE_KEYS = ("rss_kb", "threads", "fds")
PYALLOC_KEYS = ("blocks", "py_threads")  # the instance's own sampler (soak/instance.py)


def growth(
    samples: Sequence[dict[str, Any]], *, warmup: float, keys: Sequence[str] = RESOURCE_KEYS
) -> dict[str, Any]:
    """Per instance incarnation (pid) alive past warm-up: first vs last fifth of its samples after
    warm-up, in %, for `keys` (medians, so one busy sample does not decide)."""
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
        for key in keys:
            a = statistics.median(s[key] for s in head)
            b = statistics.median(s[key] for s in tail)
            entry[key] = {
                "after_warmup": a,
                "end": b,
                "growth_pct": round(100.0 * (b - a) / a, 1) if a else None,
            }
        out[str(pid)] = entry
    return out


def queue_empty_after(status_log: Sequence[dict[str, Any]], since: float) -> float | None:
    """Seconds from ``since`` (the last fault's end) to the first status sample with nothing
    pending or parked; None if no such sample came (the observer samples every 5 s)."""
    for sample in status_log:
        if sample["t"] >= since and sample.get("pending") == 0 and sample.get("parked") == 0:
            return round(sample["t"] - since, 1)
    return None


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
        "queue_empty_seconds_after_last_fault_end",
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
    checked = result.get("auto_disable") or {}
    return {k: result.get(k) for k in keys} | {
        "auto_disable": {
            k: checked.get(k)
            for k in ("violations", "samples_auto_disabled", "enabled_at_true_ratio_over_by_reason")
        },
        "duplicate_ids": (result.get("duplicate_ids") or [])[:20],
        "lost_acked_ids": (result.get("lost_acked_ids") or [])[:20],
    }


def utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()
