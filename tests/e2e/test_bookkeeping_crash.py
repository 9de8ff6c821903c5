"""Issue 19, finding 9: a burst, then SIGKILL of the whole process group (an instance recycled or
scaled in without notice, the normal case on Azure). What Wallarm was answered must be in the
books: the hourly counters and the 60 %/12 h rule's inputs count every acked webhook, and no
dedup key outlives its "processing" timeout.

The bound: acked <= counted <= acked + 32, where 32 is the webhooks in flight at the kill (counted
ahead while they upload, never answered); the rule's attempts are within 32 of the requests the
API saw.

The relay runs as `python -m local.run` in its own process group; Azurite and the ingestion
stand-in live in this test process, so they outlive the kill and can be read afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from azure.data.tables import TableServiceClient

from local.standins.logs_ingestion import LogsIngestionStandIn
from local.standins.server import free_port
from shared.store.counters import HourlyCounters
from shared.store.dedup import DedupKeys
from shared.store.ledger import AttemptLedger
from shared.store.tables import as_utc, open_store_tables

from .conftest import spawn_local_run

WEBHOOKS = 400
PARALLEL = 32
KILL_AFTER = 250  # answers received before the SIGKILL: the rest are in flight or never sent
PROCESSING_TIMEOUT = timedelta(seconds=60)  # the webhook's dedup `stale_after`


def _body(i: int) -> bytes:
    return json.dumps(
        [{"summary": f"crash-burst-{i:03d}", "details": {"notification_type": "create_user"}}]
    ).encode()


def _start_relay(relay_env: dict[str, str], port: int) -> subprocess.Popen[str]:
    env = {
        **relay_env,
        "RELAY_LOCAL_FUNCTION_KEY": "fn-key-for-tests",
        "RELAY_LOCAL_MASTER_KEY": "master-key-for-tests",
        # A slow-but-successful upload on a loaded machine must not become a failure.
        "WEBHOOK_READ_TIMEOUT_SECONDS": "20",
        "WEBHOOK_DELIVERY_BUDGET_SECONDS": "25",
    }
    proc, _ = spawn_local_run(["--port", str(port), "--no-timers"], env, "Relay listening", new_session=True)
    return proc


def test_sigkill_after_a_burst_leaves_counters_rule_inputs_and_dedup_keys_true_to_the_acks(
    relay_env: dict[str, str], ingestion: LogsIngestionStandIn
) -> None:
    port = free_port()
    proc = _start_relay(relay_env, port)
    url = f"http://127.0.0.1:{port}/api/wallarm?code=fn-key-for-tests"
    acked: set[int] = set()
    lock = threading.Lock()
    enough = threading.Event()

    def post(i: int) -> None:
        if enough.is_set():
            return
        req = urllib.request.Request(
            url, data=_body(i), method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                status = int(resp.status)
        except (urllib.error.URLError, OSError):
            return  # refused or cut by the kill: not acked
        if status in (200, 202):
            with lock:
                acked.add(i)
                if len(acked) >= KILL_AFTER:
                    enough.set()

    try:
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            futures = [pool.submit(post, i) for i in range(WEBHOOKS)]
            assert enough.wait(timeout=600), f"only {len(acked)} answers"
            os.killpg(proc.pid, signal.SIGKILL)  # no flush, no atexit: what Azure does
            proc.wait(timeout=30)
            for future in futures:
                future.result(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)

    with lock:
        acked_now = set(acked)
    n_acked = len(acked_now)
    # Answers the client had not read yet at the kill, at most one per connection in flight.
    bound = PARALLEL
    now = datetime.now(UTC)
    uploads_ok = sum(1 for r in ingestion.requests if r.status == 204 and r.row_count)

    with TableServiceClient.from_connection_string(relay_env["RELAY_STORAGE_CONNECTION_STRING"]) as service:
        tables = open_store_tables(service, relay_env["RELAY_TABLE_PREFIX"])
        counters = HourlyCounters(tables.counters, lambda: now)
        hours = counters.read_range(now - timedelta(hours=2), now)
        received = sum(values.get("received", 0) for _hour, values in hours)
        delivered = sum(values.get("delivered", 0) for _hour, values in hours)
        window = AttemptLedger(tables.ledger, lambda: now, counters).failure_window(timedelta(hours=12))

        # Counters: every acked webhook counted; at most the in-flight ones counted but not acked.
        assert n_acked <= received <= n_acked + bound, (n_acked, received)
        assert n_acked <= delivered <= n_acked + bound, (n_acked, delivered)
        # The rule's inputs: every request to the API that an acked webhook made is an attempt.
        assert window.failures == 0
        assert n_acked <= window.attempts <= n_acked + bound, (n_acked, window.attempts)
        # ... and they match the requests the API saw, but for those in flight at the kill
        # (counted ahead and not yet sent, or sent and not yet corrected).
        assert abs(window.attempts - uploads_ok) <= bound, (uploads_ok, window.attempts)

        # Dedup: every acked body has its key, "done" or (its mark lost with the process)
        # "processing" until the timeout; the unacked ones at most "processing".
        keys = {e["RowKey"]: e for e in tables.dedup.list_entities()}
        for i in acked_now:
            assert keys[hashlib.sha256(_body(i)).hexdigest()]["status"] in ("done", "processing"), i
        processing = [e for e in keys.values() if e["status"] == "processing"]
        # A key left "processing" by the dead process expires with its timeout, not with the TTL:
        for entity in processing:
            started, expires = as_utc(entity["started_at"]), as_utc(entity["expires_at"])
            assert started is not None and expires is not None
            assert expires - started <= PROCESSING_TIMEOUT
        # ... so once the timeout has passed, the resend is processed and the purge removes it.
        later = DedupKeys(tables.dedup, lambda: now + PROCESSING_TIMEOUT + timedelta(seconds=1))
        if processing:
            assert later.begin(str(processing[0]["RowKey"]), timedelta(hours=24), PROCESSING_TIMEOUT) == "new"
        later.purge()
        left = [e for e in tables.dedup.list_entities() if e["status"] == "processing"]
        assert len(left) <= 1  # the one taken over just above, now a live claim
        print(
            f"acked {n_acked}, counted {received}, attempts {window.attempts}, uploads {uploads_ok}, "
            f"processing {len(processing)}"
        )
        tables.close()
