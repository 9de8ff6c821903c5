"""Issue 19, finding 10: a claim lease that runs out mid-upload lets a second worker deliver the
same entry. An entry over 1 MiB of JSON goes as several requests, one after another, each up to
the read timeout; against a slow API their sum outlives any fixed lease, so the worker renews it.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

from local.standins.logs_ingestion import LogsIngestionStandIn
from shared.delivery.ingestion import pack
from shared.schema import Row

from .conftest import MakeServices

LEASE_SECONDS = 16  # the shortest the settings take with WORKER_READ_TIMEOUT_SECONDS=5 (e2e)
API_SECONDS = 4  # each request, under the read timeout
ROWS = 110


def _big_rows(entry: int, count: int = ROWS) -> list[Row]:
    """Rows of ~45 KB of JSON each (gzip makes the stored entry small): about 5 MiB, 5 requests."""
    return [
        {
            "TimeGenerated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Vendor": "Wallarm",
            "EventType": "new_hits",
            "Severity": "high",
            "ClientName": "lease test",
            "Summary": "slow and large",
            "Description": "",
            "RequestId": f"lease-{entry}-{n:03d}",
            "RemoteAddr": "192.0.2.1",
            "Url": "example.com/",
            "RawData": "x" * 45_000,
        }
        for n in range(count)
    ]


def test_two_workers_never_deliver_one_entry_whose_chunked_upload_outlives_the_lease(
    make_services: MakeServices, ingestion: LogsIngestionStandIn
) -> None:
    settings = {"RETRY_CLAIM_LEASE_SECONDS": str(LEASE_SECONDS), "AUTO_DISABLE_MIN_ATTEMPTS": "100000"}
    first, second = make_services(**settings), make_services(**settings)
    now = datetime.now(UTC)
    chunks = len(pack(_big_rows(0)))
    assert chunks * API_SECONDS > LEASE_SECONDS + 2  # each entry's uploads outlive its lease
    for entry in range(2):
        stored = first.worker.queue.enqueue(_big_rows(entry), due_at=now, reason="lease test")
        assert len(stored) == 1  # one entry each, sent as several requests
    ingestion.inject_delay(API_SECONDS, times=1000, land=True)  # every request: rows land, then 4 s

    runs = {}

    def work(name: str, svc: object) -> None:
        from shared.ops.services import Services

        assert isinstance(svc, Services)
        runs[name] = svc.worker.run(timedelta(seconds=chunks * API_SECONDS + LEASE_SECONDS))

    threads = [threading.Thread(target=work, args=(n, s)) for n, s in (("a", first), ("b", second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not any(t.is_alive() for t in threads)

    landed = Counter(r["RequestId"] for r in ingestion.accepted)
    expected = {f"lease-{e}-{n:03d}" for e in range(2) for n in range(ROWS)}
    assert set(landed) == expected
    twice = sorted(k for k, v in landed.items() if v > 1)
    assert twice == [], f"{len(twice)} rows delivered by both workers"
    uploads = [r for r in ingestion.requests if r.row_count]
    assert len(uploads) == 2 * chunks  # each request once
    assert runs["a"].delivered + runs["b"].delivered == 2
    assert first.worker.queue.next_due_at() is None  # settled with the renewed version
    assert first.worker.leases.renewed + second.worker.leases.renewed >= 2
