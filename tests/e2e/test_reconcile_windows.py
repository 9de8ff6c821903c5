"""Issue 19, findings 1, 2, 5, 6 and ingestion latency: reconcile windows are closed whole UTC
hours, a manual range is bounded and runs as a job, and nothing is written twice while rows sit
in quarantine or are not queryable yet.

Real parts: the relay from the composition root, Azurite, the HTTPS ingestion stand-in, the real
LogsQueryClient against the query stand-in (with delayed visibility), the Wallarm Cloud stand-in.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from local.standins.log_query import LogQueryStandIn
from local.standins.logs_ingestion import LogsIngestionStandIn
from local.standins.wallarm_api import Hit, WallarmApiStandIn
from shared.completeness.reconcile import Reconciler
from shared.completeness.timer import Completeness
from shared.ops.services import Services
from shared.store.windows import WindowRecord

from .conftest import INDEX, Call, FakeClock, WallarmRelay, body_json

Work = Callable[[], None]


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def epoch(text: str) -> int:
    return int(ts(text).timestamp())


def hit_ids(ingestion: LogsIngestionStandIn) -> Counter[str]:
    raws = [json.loads(r["RawData"]) for r in ingestion.accepted if r["EventType"] == "new_hits"]
    return Counter(r["details"]["hit"]["id"][1] for r in raws)


class Jobs:
    """A job runner the test drives: work is held until `run_all` (or never: a killed job)."""

    def __init__(self) -> None:
        self.held: list[Work] = []

    def __call__(self, work: Work) -> None:
        self.held.append(work)

    def run_all(self) -> None:
        while self.held:
            self.held.pop(0)()


@pytest.fixture
def jobs() -> Jobs:
    return Jobs()


Start = Callable[..., Services]


@pytest.fixture
def start(wallarm_relay: WallarmRelay, jobs: Jobs) -> Start:
    """The relay with reconciliation on, as the stand-in Wallarm's webhook target; manual jobs
    run when the test says so."""

    def make(**extra: str) -> Services:
        svc = wallarm_relay(**extra)
        job_runner = getattr(svc.completeness, "jobs", None)  # (absent before issue 19)
        if job_runner is not None:
            job_runner.runner = jobs
        return svc

    return make


def parts(svc: Services) -> tuple[Completeness, Reconciler]:
    assert svc.completeness.reconciler is not None
    return svc.completeness, svc.completeness.reconciler


def noon_at(reconciler: Reconciler, clock: FakeClock, when: str) -> WindowRecord:
    """The hourly run at `when`: its record of the 12:00 window."""
    clock.now = ts(when)
    return next(r for r in reconciler.run_due() if r.start.hour == 12)


def window(svc: Services, start: str) -> WindowRecord | None:
    return parts(svc)[0].log.get_window(ts(start))


# -- finding 1: the right hour, whole hours, nothing not yet closed ------------------------------


def test_an_offset_range_records_its_utc_hour(start: Start, clock: FakeClock) -> None:
    svc = start(RECONCILE_CONFIRM_MINUTES="0")
    clock.now = ts("2026-11-25T16:00:00Z")
    code, body = parts(svc)[0].reconcile_range("2026-11-25T14:00+02:00", "2026-11-25T15:00+02:00", "op")
    assert code == 200, body
    assert [w["start"] for w in body["windows"]] == ["2026-11-25T12:00:00.000Z"]
    record = window(svc, "2026-11-25T12:00:00Z")
    assert record is not None and record.status == "ok"
    assert window(svc, "2026-11-25T14:00:00Z") is None  # the local hour is not marked done


def test_a_one_minute_range_reconciles_the_whole_hour(
    start: Start, clock: FakeClock, wallarm: WallarmApiStandIn, ingestion: LogsIngestionStandIn
) -> None:
    svc = start(RECONCILE_CONFIRM_MINUTES="0")
    wallarm.add_hit(Hit(INDEX, "h1430", "req-1430", epoch("2026-11-25T14:30:00Z")), notify=False)
    clock.now = ts("2026-11-25T16:00:00Z")
    code, body = parts(svc)[0].reconcile_range("2026-11-25T14:00Z", "2026-11-25T14:01Z", "op")
    assert code == 200, body
    (only,) = body["windows"]
    assert (only["start"], only["end"]) == ("2026-11-25T14:00:00.000Z", "2026-11-25T15:00:00.000Z")
    assert (only["in_wallarm"], only["added"], only["status"]) == (1, 1, "ok")  # the hour, whole
    assert hit_ids(ingestion) == Counter({"h1430": 1})


def test_the_future_and_the_open_hour_are_refused_and_never_marked_ok(start: Start, clock: FakeClock) -> None:
    svc = start(RECONCILE_CONFIRM_MINUTES="0")
    completeness, _ = parts(svc)
    clock.now = ts("2026-11-25T16:10:00Z")
    for frm, to in (
        ("2026-11-25T18:00Z", "2026-11-25T19:00Z"),  # the future
        ("2026-11-25T16:00Z", "2026-11-25T16:05Z"),  # the open hour
        ("2026-11-25T15:00Z", "2026-11-25T16:00Z"),  # closed 10 min ago, within RECONCILE_DELAY
    ):
        code, body = completeness.reconcile_range(frm, to, "op")
        assert (code, body["error"]["code"]) == (400, "invalid_range"), (frm, body)
    # A range that runs into the future is cut at the last closed hour.
    code, body = completeness.reconcile_range("2026-11-25T14:00Z", "2026-11-26T00:00Z", "op")
    assert code == 200 and body["clipped_to"] == "2026-11-25T15:00:00.000Z"
    assert [w["start"][11:16] for w in body["windows"]] == ["14:00"]
    for hour in ("15", "16"):
        assert window(svc, f"2026-11-25T{hour}:00:00Z") is None


def test_the_reconciler_refuses_a_partial_or_open_window(start: Start, clock: FakeClock) -> None:
    _, reconciler = parts(start())
    clock.now = ts("2026-11-25T16:10:00Z")
    with pytest.raises(ValueError, match="whole UTC hour"):
        reconciler.run(ts("2026-11-25T14:00Z"), ts("2026-11-25T14:01Z"), by="op", overlap=timedelta(0))
    with pytest.raises(ValueError, match="not closed"):
        reconciler.run(ts("2026-11-25T16:00Z"), ts("2026-11-25T17:00Z"), by="op", overlap=timedelta(0))


# -- findings 5 and 6: bounded ranges, extreme dates ---------------------------------------------


# (from, to, what the refusal names)
RANGES_PAST_THE_LIMITS = [
    ("1970-01-01T00:00Z", "2100-01-01T00:00Z", "RECONCILE_MAX_AGE_DAYS"),
    ("2026-11-10T00:00Z", "2026-11-20T00:00Z", "at most 168"),
    ("2026-11-10T00:00Z", "9999-12-31T23:59Z", "RECONCILE_MAX_RANGE_HOURS"),
    ("0001-01-01T00:00+01:00", "2026-11-25T10:00Z", "outside the dates"),
    ("0001-01-01T01:00+01:00", "2026-11-25T10:00Z", "RECONCILE_MAX_AGE_DAYS"),
    ("9999-12-31T23:59Z", "9999-12-31T23:59:59-01:00", "outside the dates"),
    ("9999-12-31T22:00Z", "9999-12-31T23:59Z", "future"),
    ("x" * 5000, "2026-11-25T10:00Z", "ISO 8601"),
]


@pytest.mark.parametrize(("frm", "to", "says"), RANGES_PAST_THE_LIMITS)
def test_a_range_past_the_limits_is_refused_with_the_limit(
    start: Start, clock: FakeClock, frm: str, to: str, says: str
) -> None:
    completeness, _ = parts(start())
    clock.now = ts("2026-11-25T16:00:00Z")
    code, body = completeness.reconcile_range(frm, to, "op")
    assert (code, body["error"]["code"]) == (400, "invalid_range")
    assert says in body["error"]["message"]
    assert "x" * 10 not in body["error"]["message"]  # never the caller's value


def test_extreme_dates_through_the_route_are_400_not_500(
    call: Call, monkeypatch: pytest.MonkeyPatch, completeness_env: dict[str, str]
) -> None:
    for key, value in completeness_env.items():
        monkeypatch.setenv(key, value)
    for frm, to in (
        ("2026-11-01T00:00Z", "9999-12-31T23:59Z"),
        ("0001-01-01T00:00+01:00", "2026-11-01T00:00Z"),
        ("1970-01-01T00:00Z", "2100-01-01T00:00Z"),
    ):
        resp = call("relay_admin", route_params={"action": "reconcile"}, params={"from": frm, "to": to})
        assert resp.status_code == 400, resp.get_body()
        assert body_json(resp)["error"]["code"] == "invalid_range"


# -- finding 5: a long range is a background job, one per window ---------------------------------


def test_a_long_range_runs_as_a_job_that_status_reports(
    start: Start, clock: FakeClock, wallarm: WallarmApiStandIn, ingestion: LogsIngestionStandIn, jobs: Jobs
) -> None:
    svc = start(RECONCILE_CONFIRM_MINUTES="0")
    completeness, _ = parts(svc)
    wallarm.add_hit(Hit(INDEX, "h09", "req-09", epoch("2026-11-25T09:10:00Z")), notify=False)
    clock.now = ts("2026-11-25T16:00:00Z")
    code, body = completeness.reconcile_range("2026-11-25T08:00Z", "2026-11-25T11:00Z", "op")
    assert code == 202 and body["job"]["state"] == "running" and body["job"]["windows"] == 3
    job_id = body["job"]["id"]
    assert not ingestion.accepted  # nothing ran inside the request
    status = completeness.status()
    assert status["jobs"][0]["id"] == job_id and status["jobs"][0]["state"] == "running"
    assert [w["status"] for w in status["windows"][:3]] == ["queued"] * 3  # not ok until run
    jobs.run_all()
    assert completeness.jobs is not None and completeness.jobs.wait(job_id, 1)
    (done,) = completeness.status()["jobs"]
    assert (done["state"], done["done"], done["added"]) == ("done", 3, 1)
    assert [w["status"] for w in completeness.status()["windows"][:3]] == ["ok"] * 3
    assert hit_ids(ingestion) == Counter({"h09": 1})


def test_a_second_request_for_an_overlapping_range_gets_409(
    start: Start, clock: FakeClock, jobs: Jobs
) -> None:
    completeness, _ = parts(start())
    clock.now = ts("2026-11-25T16:00:00Z")
    code, first = completeness.reconcile_range("2026-11-25T08:00Z", "2026-11-25T11:00Z", "op")
    assert code == 202
    code, again = completeness.reconcile_range("2026-11-25T10:00Z", "2026-11-25T12:00Z", "op2")
    assert code == 409 and again["error"]["code"] == "reconcile_running"
    assert again["job"]["id"] == first["job"]["id"]
    code, one = completeness.reconcile_range("2026-11-25T10:00Z", "2026-11-25T11:00Z", "op2")
    assert code == 409  # a single hour inside a running job too
    code, _ = completeness.reconcile_range("2026-11-25T11:00Z", "2026-11-25T13:00Z", "op2")
    assert code == 202  # no overlap
    jobs.run_all()
    code, _ = completeness.reconcile_range("2026-11-25T10:00Z", "2026-11-25T12:00Z", "op2")
    assert code == 202  # the first has ended


def test_a_job_killed_mid_way_leaves_its_windows_to_the_timer(
    start: Start,
    clock: FakeClock,
    wallarm: WallarmApiStandIn,
    ingestion: LogsIngestionStandIn,
    jobs: Jobs,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    svc = start(RECONCILE_CONFIRM_MINUTES="0")
    completeness, reconciler = parts(svc)
    # Three days ago: far outside the timer's 6-hour catch-up span.
    for hour in ("08", "09", "10"):
        wallarm.add_hit(
            Hit(INDEX, f"h{hour}", f"req-{hour}", epoch(f"2026-11-22T{hour}:20:00Z")), notify=False
        )
    clock.now = ts("2026-11-25T16:00:00Z")
    code, body = completeness.reconcile_range("2026-11-22T08:00Z", "2026-11-22T11:00Z", "op")
    assert code == 202

    class Killed(BaseException):
        """The process dies (SIGKILL): nothing after this point runs, not even `finally` writes."""

    real_run = reconciler.run
    calls = []

    def dies_on_second(*args: Any, **kwargs: Any) -> WindowRecord:
        calls.append(args[0])
        if len(calls) == 2:
            raise Killed
        return real_run(*args, **kwargs)

    monkeypatch.setattr(reconciler, "run", dies_on_second)
    with pytest.raises(Killed):
        jobs.run_all()
    monkeypatch.setattr(reconciler, "run", real_run)
    assert hit_ids(ingestion) == Counter({"h08": 1})
    statuses = {w["start"][11:13]: w["status"] for w in completeness.status()["windows"]}
    assert (statuses["08"], statuses["09"], statuses["10"]) == ("ok", "queued", "queued")

    # While its heartbeat is fresh the timer leaves the job's windows alone.
    assert all(r.start.day == 25 for r in reconciler.run_due())
    clock.advance(31 * 60)
    assert completeness.status()["jobs"][0]["state"] == "abandoned"
    reopened = [r for r in reconciler.run_due() if r.start.day == 22]
    assert [(r.start.hour, r.status, r.added) for r in reopened] == [(9, "ok", 1), (10, "ok", 1)]
    assert hit_ids(ingestion) == Counter({"h08": 1, "h09": 1, "h10": 1})
    # An operator may now ask again for the same range: the dead job no longer holds it.
    code, _ = completeness.reconcile_range("2026-11-22T08:00Z", "2026-11-22T11:00Z", "op")
    assert code == 202


# -- finding 2: quarantined rows are not duplicated ----------------------------------------------


@pytest.mark.usefixtures("integration")
def test_quarantined_hits_are_not_reconciled_and_replay_lands_each_once(
    start: Start, clock: FakeClock, wallarm: WallarmApiStandIn, ingestion: LogsIngestionStandIn
) -> None:
    svc = start(RECONCILE_CONFIRM_MINUTES="0")  # the quarantine alone must hold reconciliation back
    _, reconciler = parts(svc)
    ingestion.set_outage(400)  # the DCR refuses the rows: acked, then quarantined
    for i in range(3):
        wallarm.add_hit(Hit(INDEX, f"q{i}", f"req-q{i}", epoch(f"2026-11-25T12:0{i + 1}:00Z")))
    clock.advance(300)
    assert wallarm.deliver() == (3, 0)
    svc.webhook.flush()
    stats = reconciler.queue.stats()  # a 400 is not retried: quarantined at once
    assert (stats.pending, stats.parked, stats.quarantined_rows) == (0, 0, 3)
    ingestion.set_outage(None)  # the DCR is fixed

    clock.now = ts("2026-11-25T13:40:00Z")
    runs = reconciler.run_due()
    assert [r.status for r in runs] == ["deferred"] and "3 quarantined" in runs[0].error
    assert hit_ids(ingestion) == Counter()

    svc.admin.replay_quarantined()
    svc.worker.run_once()
    assert hit_ids(ingestion) == Counter({"q0": 1, "q1": 1, "q2": 1})
    clock.advance(3600)
    runs = reconciler.run_due()
    assert all(r.status == "ok" for r in runs) and sum(r.added for r in runs) == 0
    assert hit_ids(ingestion) == Counter({"q0": 1, "q1": 1, "q2": 1})


# -- ingestion latency: "not yet queryable" is not "missing" -------------------------------------


@pytest.mark.usefixtures("integration")
def test_a_queue_entry_delivered_just_before_the_run_is_not_added_while_not_queryable(
    start: Start,
    clock: FakeClock,
    wallarm: WallarmApiStandIn,
    ingestion: LogsIngestionStandIn,
    log_query: LogQueryStandIn,
) -> None:
    svc = start()  # the default second look (RECONCILE_CONFIRM_MINUTES=50)
    _, reconciler = parts(svc)
    log_query.delay_visibility(20 * 60, clock=lambda: clock().timestamp())  # 20 min to be queryable
    ingestion.set_outage(503)
    wallarm.add_hit(Hit(INDEX, "late-q", "req-lq", epoch("2026-11-25T12:01:00Z")))
    clock.advance(300)
    assert wallarm.deliver() == (1, 0)  # fresh: claims no dedup key; queued
    ingestion.set_outage(None)
    clock.now = ts("2026-11-25T13:39:50Z")
    svc.worker.run_once()  # the queue drains ten seconds before the timer
    log_query.observe()
    assert hit_ids(ingestion) == Counter({"late-q": 1}) and reconciler.queue.stats().pending == 0

    noon = noon_at(reconciler, clock, "2026-11-25T13:40:00Z")
    assert hit_ids(ingestion) == Counter({"late-q": 1})  # not written twice
    assert (noon.status, noon.suspect, noon.added) == ("unconfirmed", 1, 0)

    noon = noon_at(reconciler, clock, "2026-11-25T14:40:00Z")  # the row is queryable now
    assert (noon.status, noon.present, noon.added) == ("ok", 1, 0)
    assert hit_ids(ingestion) == Counter({"late-q": 1})


@pytest.mark.usefixtures("integration")
def test_a_fresh_webhook_hit_not_queryable_for_an_hour_is_not_duplicated(
    start: Start,
    clock: FakeClock,
    wallarm: WallarmApiStandIn,
    ingestion: LogsIngestionStandIn,
    log_query: LogQueryStandIn,
) -> None:
    svc = start()
    _, reconciler = parts(svc)
    log_query.delay_visibility(55 * 60, clock=lambda: clock().timestamp())
    clock.now = ts("2026-11-25T12:50:00Z")
    wallarm.add_hit(Hit(INDEX, "fresh", "req-fresh", epoch("2026-11-25T12:49:00Z")))
    assert wallarm.deliver() == (1, 0)
    log_query.observe()
    noon = noon_at(reconciler, clock, "2026-11-25T13:40:00Z")
    assert hit_ids(ingestion) == Counter({"fresh": 1})  # not written twice
    assert (noon.status, noon.added) == ("unconfirmed", 0)
    noon = noon_at(reconciler, clock, "2026-11-25T14:40:00Z")
    assert (noon.status, noon.added) == ("ok", 0)
    assert hit_ids(ingestion) == Counter({"fresh": 1})


@pytest.mark.usefixtures("integration")
def test_a_hit_still_missing_at_the_second_look_is_added_once(
    start: Start,
    clock: FakeClock,
    wallarm: WallarmApiStandIn,
    ingestion: LogsIngestionStandIn,
    log_query: LogQueryStandIn,
) -> None:
    svc = start()
    completeness, reconciler = parts(svc)
    log_query.delay_visibility(20 * 60, clock=lambda: clock().timestamp())
    wallarm.add_hit(Hit(INDEX, "lost", "req-lost", epoch("2026-11-25T12:10:00Z")), notify=False)
    assert noon_at(reconciler, clock, "2026-11-25T13:40:00Z").status == "unconfirmed"
    assert (
        noon_at(reconciler, clock, "2026-11-25T14:25:00Z").status == "unconfirmed"
    )  # too early for the second look (45 min)
    assert not hit_ids(ingestion)
    noon = noon_at(reconciler, clock, "2026-11-25T14:39:58Z")  # the next hourly run, two seconds early
    assert (noon.status, noon.added) == ("ok", 1)
    log_query.observe()
    clock.advance(3600)
    assert all(r.start.hour != 12 for r in reconciler.run_due())
    code, body = completeness.reconcile_range("2026-11-25T12:00Z", "2026-11-25T13:00Z", "op")
    assert code == 200 and body["windows"][0]["added"] == 0
    assert hit_ids(ingestion) == Counter({"lost": 1})
    assert ts(body["windows"][0]["start"]).tzinfo == UTC


def test_two_instances_register_overlapping_jobs_one_at_a_time(
    start: Start, clock: FakeClock, jobs: Jobs
) -> None:
    one, _ = parts(start())
    other, _ = parts(start())  # a second instance: the same tables, no shared memory
    assert one.jobs is not None and other.jobs is not None
    other.jobs.sleep = clock.sleep
    clock.now = ts("2026-11-25T16:00:00Z")
    # The first instance is between "no overlapping job" and "mine is registered".
    assert one.log.take_job_lock("instance-one", timedelta(seconds=30))
    code, body = other.reconcile_range("2026-11-25T08:00Z", "2026-11-25T11:00Z", "op")
    assert (code, body["error"]["code"]) == (409, "reconcile_busy")
    one.log.release_job_lock("instance-one")
    code, first = one.reconcile_range("2026-11-25T08:00Z", "2026-11-25T11:00Z", "op")
    assert code == 202
    code, body = other.reconcile_range("2026-11-25T09:00Z", "2026-11-25T10:00Z", "op")
    assert (code, body["job"]["id"]) == (409, first["job"]["id"])
    # A holder that died frees the lock after its lease.
    assert one.log.take_job_lock("dead-instance", timedelta(seconds=30))
    clock.advance(31)
    code, _ = other.reconcile_range("2026-11-25T12:00Z", "2026-11-25T14:00Z", "op")
    assert code == 202


def test_the_route_answers_202_and_status_reports_the_job_run_in_its_thread(
    call: Call, monkeypatch: pytest.MonkeyPatch, completeness_env: dict[str, str]
) -> None:
    import function_app

    for key, value in completeness_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RECONCILE_CONFIRM_MINUTES", "0")
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    frm, to = (now - timedelta(hours=6)).isoformat(), (now - timedelta(hours=3)).isoformat()
    resp = call("relay_admin", route_params={"action": "reconcile"}, params={"from": frm, "to": to})
    assert resp.status_code == 202, resp.get_body()
    job = body_json(resp)["job"]
    assert job["windows"] == 3
    completeness = function_app.services().completeness
    assert completeness.jobs is not None
    assert completeness.jobs.wait(job["id"], 120)  # the real background thread
    status = body_json(call("relay_status", method="GET"))
    (reported,) = [j for j in status["completeness"]["jobs"] if j["id"] == job["id"]]
    assert (reported["state"], reported["done"]) == ("done", 3)


@pytest.mark.usefixtures("integration")
def test_a_hit_reconciliation_added_is_not_added_again_while_not_queryable(
    start: Start,
    clock: FakeClock,
    wallarm: WallarmApiStandIn,
    ingestion: LogsIngestionStandIn,
    log_query: LogQueryStandIn,
) -> None:
    svc = start()
    completeness, reconciler = parts(svc)
    log_query.delay_visibility(3 * 3600, clock=lambda: clock().timestamp())  # a very slow workspace
    wallarm.add_hit(Hit(INDEX, "lost", "req-lost", epoch("2026-11-25T12:10:00Z")), notify=False)
    clock.now = ts("2026-11-25T13:40:00Z")
    reconciler.run_due()
    clock.now = ts("2026-11-25T14:40:00Z")
    assert next(r for r in reconciler.run_due() if r.start.hour == 12).added == 1
    log_query.observe()
    # Re-runs while the added row is still not queryable: its dedup key holds it back.
    for when in ("2026-11-25T15:00:00Z", "2026-11-25T16:00:00Z"):
        clock.now = ts(when)
        code, body = completeness.reconcile_range("2026-11-25T12:00Z", "2026-11-25T13:00Z", "op")
        assert code == 200, body
    (last,) = body["windows"]
    assert (last["status"], last["added"], last["already_added"]) == ("ok", 0, 1)
    assert hit_ids(ingestion) == Counter({"lost": 1})


@pytest.mark.usefixtures("integration")
def test_windows_deferred_longer_than_the_catch_up_span_are_still_reconciled(
    start: Start, clock: FakeClock, wallarm: WallarmApiStandIn, ingestion: LogsIngestionStandIn
) -> None:
    svc = start(RECONCILE_CONFIRM_MINUTES="0")
    _, reconciler = parts(svc)
    ingestion.set_outage(400)
    wallarm.add_hit(Hit(INDEX, "q", "req-q", epoch("2026-11-25T12:01:00Z")))
    clock.advance(300)
    assert wallarm.deliver() == (1, 0)  # quarantined
    ingestion.set_outage(None)
    wallarm.add_hit(Hit(INDEX, "lost", "req-lost", epoch("2026-11-25T13:20:00Z")), notify=False)
    clock.now = ts("2026-11-25T14:40:00Z")
    assert reconciler.run_due()[0].status == "deferred"
    clock.now = ts("2026-11-26T02:40:00Z")  # 13:00 has left the 6-hour catch-up span
    reconciler.run_due()
    svc.admin.replay_quarantined()
    svc.worker.run_once()
    runs = reconciler.run_due()
    assert (13, "ok", 1) in [(r.start.hour, r.status, r.added) for r in runs if r.start.day == 25]
    assert hit_ids(ingestion) == Counter({"q": 1, "lost": 1})
