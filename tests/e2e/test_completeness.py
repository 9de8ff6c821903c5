"""End to end: Wallarm cannot deliver (wrong secret), disables its integration; the relay notices,
reconciles the missing hits from Wallarm's API exactly once, and a second run adds nothing.

Real parts: the relay from the composition root, Azurite, the HTTPS ingestion stand-in, the real
LogsQueryClient against the query stand-in over the ingested rows, and the Wallarm Cloud stand-in
delivering to the relay's webhook handler.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import shared.delivery.ingestion as ingestion_module
import shared.intake.webhook as webhook_module
from local.standins.log_query import LogQueryStandIn
from local.standins.logs_ingestion import LogsIngestionStandIn
from local.standins.wallarm_api import Hit, WallarmApiStandIn, WebhookIntegration
from shared.completeness.api_hits import BACKFILL_KEY
from shared.intake.hit_keys import dedup_key
from shared.intake.webhook import WebhookRequest
from shared.ops.services import Services

from .conftest import INDEX, SECRET, WRONG, FakeClock, MakeServices, WallarmRelay


def at(clock: FakeClock, hh: int, mm: int) -> int:
    return int(clock().replace(hour=hh, minute=mm, second=0).timestamp())


def hit_rows(ingestion: LogsIngestionStandIn) -> list[dict[str, Any]]:
    return [json.loads(r["RawData"]) for r in ingestion.accepted if r["EventType"] == "new_hits"]


def ids(raws: list[dict[str, Any]]) -> Counter[str]:
    return Counter(r["details"]["hit"]["id"][1] for r in raws)


def outage(clock: FakeClock, wallarm: WallarmApiStandIn, integration: WebhookIntegration) -> list[Hit]:
    """Four hits delivered; then the relay's secret rotates without Wallarm being told: ten hits
    (two to three per request, one only visible 15 min late) are not delivered and the
    integration is disabled. One experimental hit is never sent and never reconciled."""
    wallarm.disable_min_attempts = 10
    for i in range(4):
        wallarm.add_hit(Hit(INDEX, f"ok{i}", f"req-ok{i // 2}", at(clock, 12, 1 + i)))
    clock.advance(300)  # 12:05
    assert wallarm.deliver() == (4, 0)
    integration.headers = {"X-Wallarm-Relay-Secret": WRONG}
    lost = [
        wallarm.add_hit(Hit(INDEX, f"lost{i}", f"req-lost{i // 3}", at(clock, 12, 6 + i))) for i in range(8)
    ]
    wallarm.add_hit(Hit(INDEX, "exp", "req-exp", at(clock, 12, 7), experimental=True))
    clock.advance(600)  # 12:15
    for _ in range(3):
        wallarm.deliver()
        clock.advance(60)
    assert not integration.active
    clock.now = clock().replace(hour=12, minute=30)
    lost.append(wallarm.add_hit(Hit(INDEX, "lost8", "req-lost9", at(clock, 12, 30))))
    lost.append(wallarm.add_hit(Hit(INDEX, "late", "req-late", at(clock, 12, 31), visible_after=900)))
    assert len(wallarm.undelivered) == 10
    integration.headers = {"X-Wallarm-Relay-Secret": SECRET}  # fixed in Wallarm, still disabled
    return lost


Start = Callable[..., Services]


@pytest.fixture
def start(wallarm_relay: WallarmRelay) -> Start:
    """Starts the relay with reconciliation on, as the stand-in Wallarm's webhook target. The query
    stand-in shows rows at once here, so hits are added at the first look (no second look);
    tests/e2e/test_reconcile_windows.py holds the second look against delayed rows."""
    return lambda **extra: wallarm_relay(**{"RECONCILE_CONFIRM_MINUTES": "0", **extra})


def test_outage_is_reported_and_reconciled_exactly_once(
    start: Start,
    clock: FakeClock,
    wallarm: WallarmApiStandIn,
    integration: WebhookIntegration,
    ingestion: LogsIngestionStandIn,
    log_query: LogQueryStandIn,
) -> None:
    svc = start()
    assert svc.completeness.watchdog.run()["integration"]["problem"] is None  # baseline
    lost = outage(clock, wallarm, integration)
    assert ids(hit_rows(ingestion)) == Counter({f"ok{i}": 1 for i in range(4)})

    clock.now = clock().replace(hour=13, minute=40)
    first = svc.completeness.run_timer()

    # The watchdog reports the disable: an alert row, once.
    assert first["watchdog"]["integration"]["problem"] == "disabled"
    alerts = [r for r in ingestion.accepted if r["EventType"] == "integration_broken"]
    assert len(alerts) == 1 and json.loads(alerts[0]["RawData"])["detected_by"] == "watchdog"

    # Reconciliation fills exactly the ten missing hits, once, marked as backfilled.
    window = next(w for w in first["reconciled"] if w["start"] == "2026-11-25T12:00:00.000Z")
    assert (window["in_wallarm"], window["present"], window["added"]) == (14, 4, 10)
    raws = hit_rows(ingestion)
    assert ids(raws) == Counter({h.doc: 1 for h in lost} | {f"ok{i}": 1 for i in range(4)})
    assert sum(1 for r in raws if BACKFILL_KEY in r) == 10
    assert "exp" not in ids(raws)
    assert log_query.queries  # the real LogsQueryClient asked the workspace

    # A second run adds nothing: the timer finds every window done, a manual re-run finds all present.
    assert svc.completeness.run_timer()["reconciled"] == []
    # The steady-state cost: one hour later, one hit page and one integration read.
    clock.advance(3600)
    before, queries = len(wallarm.requests), len(log_query.queries)
    (next_window,) = svc.completeness.run_timer()["reconciled"]
    assert next_window["start"] == "2026-11-25T13:00:00.000Z" and next_window["added"] == 0
    calls = [r[:2] for r in wallarm.requests[before:]]
    assert calls == [("GET", "/v2/integration"), ("POST", "/v1/objects/hit")]
    assert len(log_query.queries) == queries + 1
    code, again = svc.completeness.reconcile_range("2026-11-25T12:00:00Z", "2026-11-25T13:00:00Z", "operator")
    assert code == 200
    assert [(w["in_wallarm"], w["present"], w["added"], w["runs"]) for w in again["windows"]] == [
        (14, 14, 0, 2)
    ]
    assert len(hit_rows(ingestion)) == 14
    assert svc.completeness.watchdog.run()["integration"]["problem"] == "disabled"
    assert len([r for r in ingestion.accepted if r["EventType"] == "integration_broken"]) == 1  # not repeated

    # A late webhook for a backfilled hit (Wallarm re-enabled and resending) is not written twice.
    body = json.dumps(
        [{"summary": "hit", "details": {"notification_type": "new_hits", "hit": lost[0].webhook_view()}}]
    ).encode()
    answer = svc.webhook.handle(
        WebhookRequest(
            body, {"content-type": "application/json", "x-wallarm-relay-secret": SECRET}, "127.0.0.1"
        )
    )
    assert answer.status == 200 and answer.body["delivered"] == 0
    assert len(hit_rows(ingestion)) == 14

    status = svc.completeness.status()
    assert [w["start"][11:16] for w in status["windows"][:2]] == ["13:00", "12:00"]  # newest first
    assert (status["windows"][1]["added"], status["windows"][1]["by"]) == (0, "operator")
    assert status["watchdog"]["integration"]["problem"] == "disabled"


def test_reenable_is_opt_in_needs_a_healthy_relay_and_then_reconciles_the_gap(
    start: Start,
    clock: FakeClock,
    wallarm: WallarmApiStandIn,
    integration: WebhookIntegration,
    ingestion: LogsIngestionStandIn,
) -> None:
    svc = start(WATCHDOG_REENABLE="true")
    # The watchdog must have seen it healthy and pointing here: its record of the disable.
    assert svc.completeness.watchdog.run()["integration"]["problem"] is None
    outage(clock, wallarm, integration)
    clock.now = clock().replace(hour=13, minute=40)

    ingestion.set_outage(503)  # the relay's own probe fails: leave Wallarm's integration alone
    result = svc.completeness.watchdog.run()["integration"]
    assert result["reenabled"] == "skipped: the relay's own probe is not healthy" and not integration.active
    ingestion.set_outage(None)
    clock.advance(5)
    svc.worker.run_once()  # the retry worker delivers the queued alert row

    result = svc.completeness.watchdog.run()["integration"]
    assert result["reenabled"] == "reenabled" and integration.active
    assert ("PUT", f"/v2/integration/{integration.id}", 200) in wallarm.requests
    assert len(hit_rows(ingestion)) == 14  # the gap was reconciled right after
    clock.advance(600)
    integration.active = False  # a person, while the relay answers normally: never undone
    assert svc.completeness.watchdog.run()["integration"]["reenabled"].startswith("skipped: disabled again")


def test_without_an_integration_token_a_quiet_pipe_is_reported_once(
    make_services: MakeServices, clock: FakeClock, ingestion: LogsIngestionStandIn
) -> None:
    svc = make_services(clock, WATCHDOG_QUIET_HOURS="2")
    assert svc.completeness.reconciler is None
    body = b'[{"summary":"x","details":{"notification_type":"create_user"}}]'
    svc.webhook.handle(WebhookRequest(body, {"content-type": "application/json"}, None))
    svc.webhook.flush()  # its counts are written just after the answer
    clock.advance(3600)
    assert svc.completeness.watchdog.run() == {
        "quiet": {"checked": True, "problem": None, "received_recently": 1}
    }
    clock.advance(3 * 3600)
    assert svc.completeness.watchdog.run()["quiet"]["problem"] == "quiet"
    assert svc.completeness.watchdog.run()["quiet"]["problem"] == "quiet"
    assert [r["EventType"] for r in ingestion.accepted].count("relay_pipe_quiet") == 1


@pytest.mark.usefixtures("integration")
def test_reconciliation_waits_for_the_relays_own_backlog(
    start: Start, clock: FakeClock, wallarm: WallarmApiStandIn, ingestion: LogsIngestionStandIn
) -> None:
    svc = start()
    assert svc.completeness.reconciler is not None
    ingestion.set_outage(503)
    wallarm.add_hit(Hit(INDEX, "queued", "req-q", at(clock, 12, 1)))
    clock.advance(300)
    assert wallarm.deliver() == (1, 0)  # acked: queued in the relay, not in the table
    clock.now = clock().replace(hour=13, minute=40)
    # Deferred (adding it would duplicate it), and recorded so: not `ok`, run again later.
    assert [r.status for r in svc.completeness.reconciler.run_due()] == ["deferred"]
    assert not ingestion.accepted


@pytest.mark.usefixtures("integration")
def test_a_workspace_the_relay_may_not_read_fails_the_window_visibly(
    start: Start, clock: FakeClock, log_query: LogQueryStandIn
) -> None:
    svc = start()
    assert svc.completeness.reconciler is not None
    log_query.deny(True)
    clock.now = clock().replace(hour=13, minute=40)
    (failed,) = svc.completeness.reconciler.run_due()
    assert failed.status == "failed" and "403" in failed.error
    assert svc.completeness.status()["windows"][0]["status"] == "failed"
    log_query.deny(False)
    assert all(r.status == "ok" for r in svc.completeness.reconciler.run_due())


def test_reconcile_range_validates_its_input(
    make_services: MakeServices, clock: FakeClock, completeness_env: dict[str, str]
) -> None:
    svc = make_services(clock, **completeness_env)
    assert svc.completeness.reconcile_range("yesterday", "2026-11-25T13:00Z", "op")[0] == 400
    assert svc.completeness.reconcile_range("2026-11-25T13:00Z", "2026-11-25T12:00Z", "op")[0] == 400
    off = make_services(clock)
    assert off.completeness.reconcile_range("2026-11-25T12:00Z", "2026-11-25T13:00Z", "op")[0] == 409


def test_relayctl_reconcile_posts_the_range_with_the_key_in_a_header() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from shared.ops import cli

    seen: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            seen.append((self.path, self.headers.get("x-functions-key")))
            body = b'{"windows": []}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        argv = [
            "--url",
            url,
            "--key",
            "k",
            "reconcile",
            "--from",
            "2026-11-25T10:00Z",
            "--to",
            "2026-11-25T12:00Z",
        ]
        assert cli.main(argv) == 0
    finally:
        server.shutdown()
        server.server_close()
    assert seen == [("/api/relay/reconcile?from=2026-11-25T10%3A00Z&to=2026-11-25T12%3A00Z", "k")]


def test_a_changed_integration_is_reported_once(
    start: Start, integration: WebhookIntegration, ingestion: LogsIngestionStandIn
) -> None:
    svc = start()
    watchdog = svc.completeness.watchdog
    assert watchdog.run()["integration"]["problem"] is None
    integration.events = {"siem": False, "system": True}  # someone unticked the hits
    integration.format = "jsonl"
    assert watchdog.run()["integration"]["problems"] == ["events", "format"]
    assert watchdog.run()["integration"]["problems"] == ["events"]  # jsonl is fine once seen
    changed = [
        json.loads(r["RawData"]) for r in ingestion.accepted if r["EventType"] == "relay_integration_changed"
    ]
    assert [c["problem"] for c in changed] == ["events, format", "events"]
    integration.events = {"siem": True, "system": True}
    assert watchdog.run()["integration"]["problem"] is None


@pytest.mark.usefixtures("integration")
def test_fresh_webhook_hits_cost_no_extra_table_request(
    start: Start, clock: FakeClock, wallarm: WallarmApiStandIn, ingestion: LogsIngestionStandIn
) -> None:
    svc = start()
    assert svc.webhook.dedup is not None
    wallarm.add_hit(Hit(INDEX, "fresh", "req-f", int(clock().timestamp()) - 60))
    wallarm.add_hit(Hit(INDEX, "old", "req-o", int(clock().timestamp()) - 3600))
    assert wallarm.deliver() == (2, 0)
    keys = list(svc.webhook.dedup.keys._table.list_entities())
    assert len(keys) == 3  # two bodies, and only the hour-old hit claimed its id
    assert len(hit_rows(ingestion)) == 2


def test_a_late_hit_the_guard_drops_leaves_every_other_row_packed_once(
    start: Start, clock: FakeClock, ingestion: LogsIngestionStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 21: the late-hit guard decides before the rows are packed, so dropping a hit that
    reconciliation already added does not serialise and gzip the webhook's rows a second time."""
    svc = start()
    packed: list[int] = []

    def counting(module: Any) -> Callable[..., Any]:
        real = module.pack

        def pack(rows: Any, *args: Any, **kwargs: Any) -> Any:
            packed.append(len(rows))
            return real(rows, *args, **kwargs)

        return pack

    monkeypatch.setattr(ingestion_module, "pack", counting(ingestion_module))
    monkeypatch.setattr(webhook_module, "pack", counting(webhook_module))
    old = Hit(INDEX, "old", "req-o", int(clock().timestamp()) - 3600)
    fresh = Hit(INDEX, "fresh", "req-f", int(clock().timestamp()) - 60)
    keys = svc.webhook.dedup.keys  # reconciliation's claim of the old hit
    key = dedup_key(f"{INDEX}/old")
    assert keys.begin(key, ttl=timedelta(hours=24), stale_after=timedelta(minutes=10)) == "new"
    keys.finish(key, ttl=timedelta(hours=24))
    body = json.dumps(
        [
            {"summary": "hit", "details": {"notification_type": "new_hits", "hit": hit.webhook_view()}}
            for hit in (old, fresh)
        ]
    ).encode()
    answer = svc.webhook.handle(
        WebhookRequest(
            body, {"content-type": "application/json", "x-wallarm-relay-secret": SECRET}, "127.0.0.1"
        )
    )
    assert (answer.status, answer.body["delivered"]) == (200, 1)
    assert ids(hit_rows(ingestion)) == Counter({"fresh": 1})
    assert packed == [1]  # the fresh row, once; the dropped one never


def test_a_hit_reaching_the_cloud_after_its_window_ran_is_caught_by_the_next_windows_overlap(
    start: Start, clock: FakeClock, wallarm: WallarmApiStandIn, ingestion: LogsIngestionStandIn
) -> None:
    svc = start()
    assert svc.completeness.reconciler is not None
    wallarm.add_hit(Hit(INDEX, "very-late", "req-vl", at(clock, 12, 50), visible_after=70 * 60), notify=False)
    clock.now = clock().replace(hour=13, minute=40)
    runs = svc.completeness.reconciler.run_due()
    assert runs[-1].start.hour == 12 and (runs[-1].in_wallarm, runs[-1].added) == (
        0,
        0,
    )  # not in the cloud yet
    clock.now = clock().replace(hour=14, minute=40)
    (next_window,) = svc.completeness.reconciler.run_due()
    assert (next_window.start.hour, next_window.in_wallarm, next_window.added) == (13, 1, 1)
    assert ids(hit_rows(ingestion)) == Counter({"very-late": 1})
    hour = svc.counters.read(clock().replace(minute=0))
    assert hour["backfilled"] == 1  # shown in the next relay_hourly_stats row


def test_a_row_whose_raw_data_lost_the_hit_id_still_counts_as_present_by_its_request(
    start: Start, clock: FakeClock, wallarm: WallarmApiStandIn, ingestion: LogsIngestionStandIn
) -> None:
    svc = start()
    assert svc.completeness.reconciler is not None
    hit = wallarm.add_hit(Hit(INDEX, "flat", "req-flat", at(clock, 12, 5)), notify=False)
    flat = {k: v for k, v in hit.webhook_view().items() if k != "id"}  # a Wallarm 2.x flat hit
    body = json.dumps([flat]).encode()
    answer = svc.webhook.handle(
        WebhookRequest(body, {"content-type": "application/json", "x-wallarm-relay-secret": SECRET}, None)
    )
    assert answer.status == 200 and len(hit_rows(ingestion)) == 1
    clock.now = clock().replace(hour=13, minute=40)
    window = svc.completeness.reconciler.run_due()[-1]
    assert (window.in_wallarm, window.present, window.added) == (1, 1, 0)
    assert len(hit_rows(ingestion)) == 1


def test_a_hit_the_relay_cannot_map_is_skipped_and_the_window_still_adds_the_others(
    start: Start,
    clock: FakeClock,
    wallarm: WallarmApiStandIn,
    integration: WebhookIntegration,
    ingestion: LogsIngestionStandIn,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Red team (stop 29): an API hit whose mapping raised (a 400-digit time once did) crashed
    the whole timer run after claiming its key, every hour, and no hit of the window was added."""
    import shared.completeness.reconcile as reconcile_module

    svc = start()
    lost = outage(clock, wallarm, integration)
    real_map = reconcile_module.map_event

    def map_or_fail(event: Any, received_at: Any) -> Any:
        if event.details.get("hit", {}).get("id", [None, None])[1] == lost[0].doc:
            raise OverflowError("int too large to convert to float")
        return real_map(event, received_at)

    monkeypatch.setattr(reconcile_module, "map_event", map_or_fail)
    clock.now = clock().replace(hour=13, minute=40)
    with caplog.at_level("WARNING"):
        first = svc.completeness.run_timer()
    window = next(w for w in first["reconciled"] if w["start"] == "2026-11-25T12:00:00.000Z")
    assert window["added"] == 9
    assert ids(hit_rows(ingestion)) == Counter({h.doc: 1 for h in lost[1:]} | {f"ok{i}": 1 for i in range(4)})
    assert "could not be mapped (OverflowError)" in caplog.text

    monkeypatch.setattr(reconcile_module, "map_event", real_map)  # the fix deployed: its key was let go
    code, again = svc.completeness.reconcile_range("2026-11-25T12:00:00Z", "2026-11-25T13:00:00Z", "operator")
    assert code == 200 and again["windows"][0]["added"] == 1
    assert ids(hit_rows(ingestion))[lost[0].doc] == 1
