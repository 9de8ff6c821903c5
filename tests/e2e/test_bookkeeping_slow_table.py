"""The counts stored ahead never hold the answer past the delivery budget (issue 19): a Table
Storage that hangs must not make Wallarm's 15 s run out."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from datetime import datetime

import pytest

from local.standins.logs_ingestion import LogsIngestionStandIn

from .conftest import FakeClock, MakeServices
from .test_durable_delivery import hit_body, post, request_ids


def test_a_hanging_counter_write_is_waited_for_only_until_the_budget_ends(
    make_services: MakeServices,
    clock: FakeClock,
    ingestion: LogsIngestionStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    svc = make_services(clock)  # WEBHOOK_DELIVERY_BUDGET_SECONDS=3 (e2e default)
    ledger = svc.webhook.ledger_writer.ledger
    real = ledger.count_ahead
    gate = threading.Event()

    def hanging(attempts: int, counts: Mapping[str, int], *, at: datetime | None = None) -> None:
        gate.wait(60)
        real(attempts, counts, at=at)

    ledger.count_ahead = hanging  # type: ignore[method-assign]
    try:
        started = time.monotonic()
        answer = post(svc.webhook, hit_body(7))
        elapsed = time.monotonic() - started
        assert answer.status == 200 and answer.body["status"] == "delivered"
        assert elapsed < 10, f"answered after {elapsed:.1f} s"
        assert "answered before its counts were stored" in caplog.text
    finally:
        gate.set()
    assert request_ids(ingestion) == ["req-0007"]
