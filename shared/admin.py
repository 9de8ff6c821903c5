"""The operator's view and actions: status, disable/enable, replay quarantined entries.

Shared by the admin HTTP endpoints (master-key auth) and the CLI (`python -m shared.cli`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared.policy import failing_since
from shared.relay import Relay
from shared.relay_events import iso
from shared.store.queue import RetryQueue


class Admin:
    def __init__(self, relay: Relay, queue: RetryQueue, clock: Callable[[], datetime]) -> None:
        self.relay = relay
        self.queue = queue
        self.clock = clock

    def status(self) -> dict[str, Any]:
        state = self.relay.state.get()
        stats = self.queue.stats()
        buckets = self.relay.ledger.buckets(self.relay.rule.window)
        attempts = sum(b.attempts for b in buckets)
        failures = sum(b.failures for b in buckets)
        since = failing_since([(b.start, b.attempts, b.failures) for b in buckets])
        probe = self.relay.state.last_probe()
        oldest = stats.oldest_pending_created_at
        return {
            "state": state.mode,
            "enabled": state.enabled,
            "reason": state.reason,
            "changed_at": iso(state.changed_at) if state.changed_at else None,
            "changed_by": state.changed_by,
            "queue": {
                "pending_entries": stats.pending,
                "pending_rows": stats.pending_rows,
                "oldest_pending_age_seconds": round((self.clock() - oldest).total_seconds(), 1)
                if oldest
                else 0,
                "parked_entries": stats.parked,
                "quarantined_entries": stats.quarantined,
            },
            "failure_window": {
                "hours": self.relay.rule.window.total_seconds() / 3600,
                "attempts": attempts,
                "failures": failures,
                "ratio": round(failures / attempts, 4) if attempts else 0.0,
                "auto_disable_at": self.relay.rule.ratio,
                "min_attempts": self.relay.rule.min_attempts,
                "grace_minutes": self.relay.rule.grace.total_seconds() / 60,
                "failing_since": iso(since) if since else None,
            },
            "auto_disabled": state.mode == "auto_disabled",
            "recovery": "probing every minute; re-enables itself on the first success"
            if state.mode == "auto_disabled"
            else ("waits for an operator's enable" if state.mode == "disabled" else "not needed"),
            "last_probe": None
            if probe is None
            else {
                "at": iso(probe.at),
                "ok": probe.ok,
                "status": probe.status,
                "error": probe.error or None,
                "x_ms_request_id": probe.request_id or None,
            },
            "next_probe_at": iso(probe.next_at) if probe and probe.next_at else None,
            "quarantined": [
                {
                    "id": e.id,
                    "rows": len(e.rows) if e.rows else e.row_count,
                    "status": e.last_status,
                    "error": e.last_error,
                    "x_ms_request_id": e.last_request_id,
                }
                for e in self.queue.list_quarantined(limit=20)
            ],
        }

    def disable(self, by: str, reason: str) -> dict[str, Any]:
        self.relay.set_enabled(False, by=by, reason=reason)
        return self.status()

    def enable(self, by: str) -> dict[str, Any]:
        self.relay.set_enabled(True, by=by, reason="")
        return self.status()

    def replay_quarantined(self, ids: list[str] | None = None) -> dict[str, Any]:
        moved = self.queue.replay_quarantined(due_at=self.clock(), ids=ids)
        return {"replayed": moved, **self.status()}
