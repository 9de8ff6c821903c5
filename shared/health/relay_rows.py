"""Rows the relay itself writes (not received from Wallarm): pure builders, same 11 columns.

They use Wallarm's own type names where Wallarm has one (`integration_broken`,
`disable_integration`) so Sentinel rules written for Wallarm's events also fire for the relay's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shared.clock import iso_ms, iso_utc
from shared.schema import Row

SOURCE = "wallarm-sentinel-relay"
HOURLY_STATS_TYPE = "relay_hourly_stats"


def _row(at: datetime, event_type: str, severity: str, summary: str, description: str, raw: Any) -> Row:
    return {
        "TimeGenerated": iso_utc(at),
        "Vendor": "Wallarm",
        "EventType": event_type,
        "Severity": severity,
        "ClientName": "",
        "Summary": summary,
        "Description": description,
        "RequestId": "",
        "RemoteAddr": "",
        "Url": "",
        "RawData": json.dumps({"source": SOURCE, **raw}, separators=(",", ":"), sort_keys=True),
    }


def integration_broken_row(at: datetime, attempts: int, failures: int, window_hours: float) -> Row:
    share = failures / attempts if attempts else 0.0
    return _row(
        at,
        "integration_broken",
        "high",
        "[Relay] Sentinel integration disabled automatically",
        f"{failures} of {attempts} delivery attempts ({share:.0%}) to the Logs Ingestion API failed in the "
        f"last {window_hours:g} h and none succeeded for a sustained period. Events are kept and the "
        "relay probes the API every minute; it re-enables itself on the first success.",
        {"attempts": attempts, "failures": failures, "failure_ratio": round(share, 4)},
    )


def integration_recovered_row(at: datetime, disabled_at: datetime | None, resumed_entries: int) -> Row:
    down = (at - disabled_at).total_seconds() if disabled_at else None
    return _row(
        at,
        "integration_recovered",
        "info",
        "[Relay] Sentinel integration re-enabled automatically",
        "A probe of the Logs Ingestion API succeeded after an automatic disable; the relay re-enabled "
        f"itself and is delivering the {resumed_entries} queued or parked entries, oldest first.",
        {
            "disabled_at": iso_ms(disabled_at) if disabled_at else None,
            "disabled_seconds": round(down, 1) if down is not None else None,
            "resumed_entries": resumed_entries,
        },
    )


def disable_integration_row(at: datetime, by: str, reason: str) -> Row:
    return _row(
        at,
        "disable_integration",
        "medium",
        "[Relay] Sentinel integration disabled",
        f"Disabled by {by}: {reason}" if reason else f"Disabled by {by}.",
        {"changed_by": by, "reason": reason},
    )


def test_integration_row(at: datetime) -> Row:
    return _row(
        at,
        "test_integration",
        "info",
        "[Relay] Test integration",
        "Sent on request by the relay's test endpoint.",
        {"test": True},
    )


def hourly_stats_row(hour_start: datetime, counts: Mapping[str, int]) -> Row:
    """The previous hour's request counts; per-type counts go to RawData only."""
    received = counts.get("received", 0)
    return _row(
        hour_start,
        HOURLY_STATS_TYPE,
        "info",
        f"[Relay] {received} Wallarm requests processed in the hour from {iso_ms(hour_start)}",
        ", ".join(f"{k}={counts.get(k, 0)}" for k in ("received", "delivered", "queued", "rejected")),
        {"hour_start": iso_ms(hour_start), "counts": dict(sorted(counts.items()))},
    )


def watchdog_row(at: datetime, problem: str, detail: Mapping[str, Any]) -> Row:
    """The watchdog's alert: Wallarm's integration is disabled or changed, or the pipe is quiet.

    A disabled integration is written as `integration_broken` (the notification Wallarm cannot
    send us while its integration to us is broken), so the same Sentinel rules fire."""
    if problem == "disabled":
        return _row(
            at,
            "integration_broken",
            "high",
            "[Relay] Wallarm's webhook integration to this relay is disabled",
            "Wallarm stopped sending events (it disables an integration after 60 % failed requests in "
            "12 h). Re-enable it in Wallarm Console; reconciliation backfills hits from Wallarm's API.",
            {"detected_by": "watchdog", "problem": problem, **detail},
        )
    if problem == "quiet":
        return _row(
            at,
            "relay_pipe_quiet",
            "medium",
            "[Relay] No request from Wallarm for longer than expected",
            "Neither a webhook nor Wallarm's hourly count arrived; check the integration in Wallarm "
            "Console (disabled, URL, secret, function key).",
            {"detected_by": "watchdog", "problem": problem, **detail},
        )
    return _row(
        at,
        "relay_integration_changed",
        "medium",
        "[Relay] Wallarm's webhook integration to this relay changed",
        f"The integration is {problem}.",
        {"detected_by": "watchdog", "problem": problem, **detail},
    )
