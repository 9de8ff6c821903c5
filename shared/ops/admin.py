"""The operator's view and actions: status, disable/enable, replay quarantined entries.

Shared by the admin HTTP endpoints (master-key auth) and the CLI (`python -m shared.ops.cli`).
Everything a caller sends (reason, ids, the principal name) is cleaned or refused here before it
reaches a row, the state table or a log line.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any

from shared.clock import Clock, iso_ms
from shared.health.integration_switch import IntegrationSwitch
from shared.store.queue import ENTRY_ID, RetryQueue
from shared.store.state import IntegrationStateRepo

KEY_CALLER = "admin-key"
"""Who acted, when the platform does not say: a caller holding the host's master key."""
PRINCIPAL_HEADER = "x-ms-client-principal-name"
MAX_REASON_CHARS = 200
MAX_PRINCIPAL_CHARS = 128
MAX_REPLAY_IDS = 100
ID_EXAMPLE = "001764072000000-0000001a2b3c4d"


class InvalidInput(ValueError):
    """A caller-supplied value the relay refuses: answered 400 with `code` and `message`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def platform_auth_enabled(env: Mapping[str, str]) -> bool:
    """App Service authentication is on: the platform then sets, and strips from clients, the
    x-ms-client-principal-* headers. Without it anyone can send them."""
    return env.get("WEBSITE_AUTH_ENABLED", "").strip().lower() == "true"


def clean_text(raw: str) -> str:
    """One line of printable text: whitespace runs (newlines too) become one space; control,
    format (bidi overrides, zero-width) and unassigned characters are dropped."""
    kept = []
    for ch in raw:
        if ch.isspace():
            kept.append(" ")
        elif unicodedata.category(ch)[0] != "C":
            kept.append(ch)
    return " ".join("".join(kept).split())


def parse_reason(raw: str) -> str:
    reason = clean_text(raw)
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidInput(
            "invalid_reason", f"reason is {len(reason)} characters long; at most {MAX_REASON_CHARS}"
        )
    return reason


def parse_ids(raw: str) -> list[str] | None:
    """`?id=a,b` as queue entry ids; None (all) when absent. The message never repeats a value."""
    ids = [part.strip() for part in raw.split(",") if part.strip()]
    if len(ids) > MAX_REPLAY_IDS:
        raise InvalidInput("too_many_ids", f"{len(ids)} ids given; at most {MAX_REPLAY_IDS} per call")
    for number, entry_id in enumerate(ids, start=1):
        if not ENTRY_ID.match(entry_id):
            raise InvalidInput(
                "invalid_id",
                f"id number {number} is not a queue entry id: ids look like {ID_EXAMPLE} "
                "(see `quarantined` in the status answer)",
            )
    return ids or None


def caller_name(headers: Mapping[str, str], *, platform_auth: bool) -> str:
    """The acting operator, from the platform only: the principal name App Service authentication
    set, else the fixed label for a master-key caller (the header is then anyone's to forge)."""
    if not platform_auth:
        return KEY_CALLER
    given = next((v for k, v in headers.items() if k.lower() == PRINCIPAL_HEADER), "")
    return clean_text(given)[:MAX_PRINCIPAL_CHARS] or KEY_CALLER


class Admin:
    def __init__(
        self,
        switch: IntegrationSwitch,
        state: IntegrationStateRepo,
        queue: RetryQueue,
        clock: Clock,
        *,
        platform_auth: bool = False,
    ) -> None:
        self.switch = switch
        self.state = state
        self.queue = queue
        self.clock = clock
        self.platform_auth = platform_auth

    def caller(self, headers: Mapping[str, str]) -> str:
        return caller_name(headers, platform_auth=self.platform_auth)

    def status(self) -> dict[str, Any]:
        state = self.state.get()
        stats = self.queue.stats()
        attempts, failures, since = self.switch.failure_streak()
        probe = self.state.last_probe()
        oldest = stats.oldest_pending_created_at
        return {
            "state": state.mode,
            "enabled": state.enabled,
            "reason": state.reason,
            "changed_at": iso_ms(state.changed_at) if state.changed_at else None,
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
                "hours": self.switch.rule.window.total_seconds() / 3600,
                "attempts": attempts,
                "failures": failures,
                "ratio": round(failures / attempts, 4) if attempts else 0.0,
                "auto_disable_at": self.switch.rule.ratio,
                "min_attempts": self.switch.rule.min_attempts,
                "grace_minutes": self.switch.rule.grace.total_seconds() / 60,
                "failing_since": iso_ms(since) if since else None,
            },
            "auto_disabled": state.mode == "auto_disabled",
            "recovery": "probing every minute; re-enables itself on the first success"
            if state.mode == "auto_disabled"
            else ("waits for an operator's enable" if state.mode == "disabled" else "not needed"),
            "last_probe": None
            if probe is None
            else {
                "at": iso_ms(probe.at),
                "ok": probe.ok,
                "status": probe.status,
                "error": probe.error or None,
                "x_ms_request_id": probe.request_id or None,
            },
            "next_probe_at": iso_ms(probe.next_at) if probe and probe.next_at else None,
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
        self.switch.set_enabled(False, by=by, reason=reason)
        return self.status()

    def enable(self, by: str) -> dict[str, Any]:
        self.switch.set_enabled(True, by=by, reason="")
        return self.status()

    def replay_quarantined(self, ids: list[str] | None = None) -> dict[str, Any]:
        """Replay all quarantined entries, or those ``ids``; an id that is not quarantined is refused
        (InvalidInput), so a mistyped id never looks like a replay that found nothing to do."""
        moved = self.queue.replay_quarantined(due_at=self.clock(), ids=ids)
        asked = len(set(ids or ()))
        if ids is not None and moved < asked:
            raise InvalidInput(
                "unknown_id",
                f"{asked - moved} of the {asked} ids given are not quarantined entries (mistyped, or "
                f"already replayed or delivered), {moved} replayed: the ids of quarantined entries are "
                "under `quarantined` in the status answer",
            )
        return {"replayed": moved, **self.status()}
