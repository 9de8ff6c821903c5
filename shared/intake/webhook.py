"""The webhook: a Wallarm request in, a status out, after every event is delivered or durable.

HTTP-agnostic (function_app.py adapts azure.functions types), so the same code runs under the
Functions host, the local runner and the benchmark. Nothing here logs a payload or a header value.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import ipaddress
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from shared.clock import Clock
from shared.delivery.deliver_or_queue import DeliverOrQueue, SubmitResult
from shared.delivery.ingestion import Packed, pack
from shared.health.ledger_writer import LedgerWriter
from shared.health.request_tally import RequestTally
from shared.intake import outcome
from shared.intake.dedup import WebhookDedup
from shared.intake.events import ParseError
from shared.intake.rows import BodyRows, read_rows
from shared.intake.selection import Selection
from shared.store.tables import StoreUnavailable
from shared.telemetry import Telemetry

log = logging.getLogger(__name__)

# Beside the request's own thread: the dedup claim (while it parses and maps), the counts stored
# ahead (while it uploads), the dedup "done" mark when an outcome differs from the plan (beside
# the write of the difference). Up to one thread per request in flight (bursts of 32 locally).
_BESIDE = ThreadPoolExecutor(max_workers=32, thread_name_prefix="webhook-beside")


@dataclass(frozen=True)
class WebhookRequest:
    body: bytes
    headers: Mapping[str, str]  # lower-case names
    source_ip: str | None


@dataclass(frozen=True)
class WebhookResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def error(status: int, code: str, message: str, **extra: Any) -> WebhookResponse:
    return WebhookResponse(status, {"error": {"code": code, "message": message, **extra}})


@dataclass(frozen=True)
class WebhookConfig:
    secret: str | None
    secret_header: str
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    max_body_bytes: int
    selection: Selection
    budget: timedelta


class WebhookHandler:
    """One request, one way: refuse or go on; claim the body (beside) while it is read into rows;
    drop late hits; pack; deliver or queue; count; answer. Each step hands its result to the next."""

    def __init__(
        self,
        config: WebhookConfig,
        relay: DeliverOrQueue,
        dedup: WebhookDedup,
        ledger_writer: LedgerWriter,
        telemetry: Telemetry,
        *,
        clock: Clock,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.relay = relay
        self.dedup = dedup
        self.ledger_writer = ledger_writer
        self.telemetry = telemetry
        self.clock = clock
        self.monotonic = monotonic

    def handle(self, request: WebhookRequest) -> WebhookResponse:
        with self.telemetry.span("wallarm.webhook", {"http.request.body.size": len(request.body)}) as span:
            response = self._handle(request)
            span.set_attribute("http.response.status_code", response.status)
            if "error" in response.body:
                span.set_attribute("error.type", str(response.body["error"]["code"]))
            return response

    def _handle(self, request: WebhookRequest) -> WebhookResponse:
        started = self.monotonic()
        refused = self._refuse(request)
        if refused is not None:
            log.warning("Webhook refused: %s", refused.body["error"]["code"])
            # Counted: a refusal is a failure in Wallarm's 60 % rule, and the watchdog's
            # re-enable verdict reads it (shared/completeness/watchdog.py).
            self._count({"refused": 1})
            return refused
        key = hashlib.sha256(request.body).hexdigest()
        # The claim's round trip runs while this thread parses and maps; nothing is delivered
        # before its answer.
        claiming = _BESIDE.submit(contextvars.copy_context().run, self.dedup.begin, key)
        guard = self.dedup.late_hits
        try:
            body = read_rows(request.body, self.config.selection, self.clock())
            late = guard.late(body.rows) if guard is not None else []
            # Serialised and gzipped now, while the claim is still on its way back; with a late
            # hit that may be dropped, after its claim instead, so that no row is packed twice.
            packed = None if any(late) else pack(body.rows)
        except BaseException as err:
            if claiming.result() in ("new", "taken_over"):
                self.dedup.abandon(key)
            if not isinstance(err, ParseError):
                raise
            self._count({"received": 1, "rejected_requests": 1})
            log.warning("Webhook body rejected: %s (%s)", err.code, err.message)
            return error(err.status, err.code, err.message)

        claim = claiming.result()
        if claim == "duplicate":
            self._count({"received": 1, "duplicates": 1})
            return WebhookResponse(200, {"status": "duplicate", "message": "this body was already accepted"})
        if claim == "in_progress":
            return error(
                409, "in_progress", "the same body is being processed; retry later", retry_after_seconds=5
            )

        try:
            return self._accept(body, late, packed, key, started, in_doubt=claim == "taken_over")
        except BaseException:
            # An unexpected failure must not leave the key "processing": Wallarm's resend would
            # get 409 until the claim goes stale.
            self.dedup.abandon(key)
            raise

    def _accept(
        self,
        body: BodyRows,
        late: Sequence[str | None],
        packed: list[Packed] | None,
        key: str,
        started: float,
        *,
        in_doubt: bool = False,
    ) -> WebhookResponse:
        """``in_doubt``: Wallarm resends a body whose first processing stopped mid-way (the
        instance was killed or recycled), perhaps after its rows landed: the relay queues them for
        a landed check instead of uploading them again (``DeliverOrQueue.submit``)."""
        if body.rejected:
            # One line per webhook, not per item: a body can hold thousands of non-objects.
            reasons = Counter(r.reason.split(":", 1)[0] for r in body.rejected)
            log.warning(
                "Webhook items rejected: %d (%s)",
                len(body.rejected),
                ", ".join(f"{code} x{n}" for code, n in sorted(reasons.items())),
            )
        rows, claimed = body.rows, list[str]()
        if self.dedup.late_hits is not None and any(late):
            rows, claimed, _dropped = self.dedup.late_hits.claim(body.rows, late)
        if packed is None:
            packed = pack(rows)

        deadline = started + self.config.budget.total_seconds()
        tally = RequestTally("webhook", at=self.clock())
        # Nothing this webhook must store may wait until after its answer: an instance is
        # recycled or scaled in without notice, and the 60 %/12 h rule would then miss successes
        # (issue 19). So its counts and requests are stored as planned while the rows go out,
        # and only a different outcome (a failure, rows queued) is written after the delivery.
        planned = outcome.counts_of(
            body.rows, SubmitResult(delivered=len(body.rows)), body.filtered, len(body.rejected)
        )
        tally.count_ahead(planned, len(packed))
        counting = _BESIDE.submit(contextvars.copy_context().run, self.ledger_writer.write_ahead, tally)
        try:
            result = self.relay.submit(rows, tally=tally, deadline=deadline, packed=packed, in_doubt=in_doubt)
        except StoreUnavailable as err:
            # Neither delivered nor durable: Wallarm must resend, so no dedup key may stay.
            if self.dedup.late_hits is not None:
                self.dedup.late_hits.settle(claimed, durable=False)
            self.dedup.abandon(key)
            counting.result()
            tally.add({"received": 1})  # the plan undone; the requests made are counted
            self.ledger_writer.write(tally)
            log.error("Webhook not acked: delivery failed and the retry queue is unavailable (%s)", err)
            return error(
                503,
                "not_durable",
                "Azure Monitor did not accept the events and the retry "
                "queue is unavailable; Wallarm will resend",
                retry_after_seconds=30,
            )
        if self.dedup.late_hits is not None:
            self.dedup.late_hits.settle(claimed, durable=True)
        done = outcome.account(self.telemetry, body, result)
        tally.add(done.counts)
        self._await_counts(counting, deadline)
        if tally.settled_ahead:
            # Went as planned: the dedup "done" mark follows the answer.
            self.ledger_writer.write(tally)  # telemetry only
            self.dedup.finish_after_answer(key)
        else:
            # The difference is stored before the answer; a failure may trip the auto-disable
            # rule, decided here too.
            finishing = _BESIDE.submit(contextvars.copy_context().run, self.dedup.finish, key)
            self.ledger_writer.write(tally)
            finishing.result()
        return WebhookResponse(done.status, done.answer)

    # -- checks before the body is read ------------------------------------------------------
    def refuse_caller(self, request: WebhookRequest) -> WebhookResponse | None:
        """The caller guards after the platform's function key: source allow-list, shared secret.

        The probe (`/api/wallarm/test`) uses them too, so both doors of Wallarm's side are alike.
        """
        cfg = self.config
        if cfg.allowed_networks and not _ip_allowed(request.source_ip, cfg.allowed_networks):
            return error(403, "source_not_allowed", "the source address is not in ALLOWED_SOURCE_NETWORKS")
        if cfg.secret is not None:
            given = request.headers.get(cfg.secret_header.lower())
            if given is None:
                return error(401, "missing_secret", f"the {cfg.secret_header} header is required")
            if not hmac.compare_digest(given.encode("utf-8"), cfg.secret.encode("utf-8")):
                return error(401, "wrong_secret", f"the {cfg.secret_header} header does not match")
        return None

    def _refuse(self, request: WebhookRequest) -> WebhookResponse | None:
        refused = self.refuse_caller(request)
        if refused is not None:
            return refused
        cfg = self.config
        if len(request.body) > cfg.max_body_bytes:
            return error(
                413,
                "body_too_large",
                f"the body is {len(request.body)} bytes; the limit (MAX_BODY_BYTES) is {cfg.max_body_bytes}",
            )
        return None

    def _await_counts(self, counting: Future[None], deadline: float) -> None:
        """The counts stored ahead, waited for until the delivery budget ends: a Table Storage
        that hangs must not push the answer past Wallarm's 15 s (the write goes on beside)."""
        try:
            counting.result(timeout=max(deadline - self.monotonic(), 0.1))
        except FutureTimeout:
            log.warning("Webhook answered before its counts were stored (Table Storage slow)")

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the dedup marks of answered webhooks are stored (tests, benchmarks); the
        counts are stored before each answer."""
        return self.dedup.flush(timeout)

    def refuse_unknown_route(self, request: WebhookRequest) -> None:
        """For a route that names no tenant: the work a tenant's refusal does (its guard, a log
        line, one counter write), so the 404 takes the time of a 401 and does not tell a caller
        which tenant names exist. Counted as ``unknown_route`` in this (the default) tenant's
        hours: a burst of them is someone probing for tenant names."""
        self.refuse_caller(request)
        log.warning("Webhook refused: unknown_route")
        self._count({"unknown_route": 1})

    def _count(self, counts: Mapping[str, int]) -> None:
        tally = RequestTally("webhook")
        tally.add(counts)
        self.ledger_writer.write(tally)


def _ip_allowed(
    source: str | None, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    if not source:
        return False
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:a.b.c.d is an IPv4 caller on a dual-stack socket
    return any(address in net for net in networks)


def source_ip_from(headers: Mapping[str, str]) -> str | None:
    """The caller's address as the App Service front end reports it.

    The front end appends the peer address to X-Forwarded-For, so the last entry is the one a
    client cannot forge; it may carry a port (`1.2.3.4:5678`, `[::1]:443`).
    """
    forwarded = headers.get("x-forwarded-for", "")
    last = forwarded.split(",")[-1].strip() if forwarded else headers.get("x-client-ip", "").strip()
    if not last:
        return None
    if last.startswith("["):
        return last[1 : last.index("]")] if "]" in last else None
    if last.count(":") == 1:
        return last.split(":")[0]
    return last
