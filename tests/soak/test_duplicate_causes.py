"""Issue 24: the soak's books classify duplicates by cause. A copy explained by an upload that
landed and then hung past the webhook's read timeout is "timed-out-but-landed"; any other is
"unexplained". Since the relay's landed check, every duplicate fails the books; the cause stays
for diagnosis."""

from __future__ import annotations

import json
import random

from local.standins.logs_ingestion import RecordedRequest
from soak.books import TIMED_OUT_BUT_LANDED, compute, judge_duplicates
from soak.events import EventFactory
from soak.sender import Attempt, Delivery


def _upload(
    request_id: str, ids: list[str], *, fault: str | None = None, at: float = 10.0, status: int = 204
) -> RecordedRequest:
    body = json.dumps([{"EventType": "new_hits", "RawData": json.dumps({"x": i})} for i in ids]).encode()
    return RecordedRequest(status, body, len(ids), request_id, at, "/dcr", None, "app", fault)


def _books(uploads: list[RecordedRequest], ids: list[str]) -> dict[str, object]:
    delivery = Delivery(EventFactory(random.Random(3)).notification(1_796_000_000))
    delivery.outcome = "acked"
    delivery.attempts = [Attempt(0.0, 0, 202, 4.1)]
    rows = [row for u in uploads if u.status == 204 for row in json.loads(u.body)]
    result = compute(deliveries=[delivery], rows=rows, quarantined={})
    judge_duplicates(result, uploads, 0.0, read_timeout=4.0)
    return result


def _ids() -> list[str]:
    ids = EventFactory(random.Random(3)).notification(1_796_000_000).identities
    assert len(ids) >= 3
    return ids


def test_a_copy_from_an_upload_that_landed_then_hung_is_timed_out_but_landed_and_still_fails() -> None:
    ids = _ids()
    uploads = [
        _upload("hung", ids[:2], fault="delay=40 land", at=50.0),  # the webhook timed out at 4 s
        _upload("resent", ids[:2], at=20.0),  # the worker's resend of the queued rows
        _upload("rest", ids[2:]),
    ]
    result = _books(uploads, ids)
    assert result["duplicates"] == 2
    assert result["duplicates_timed_out_but_landed"] == 2
    assert result["duplicates_unexplained"] == 0
    assert result["ok"] is False  # the landed check should have found the rows before the resend
    assert result["duplicate_causes"] == {TIMED_OUT_BUT_LANDED: sorted(ids[:2]), "unexplained": []}


def test_any_other_duplicate_fails_the_books() -> None:
    ids = _ids()
    uploads = [
        _upload("first", ids[:1]),
        _upload("again", ids[:1]),  # e.g. a settle lost to a storage outage: no hang explains it
        _upload("short-hang", ids[1:2], fault="delay=2 land"),  # answered inside the read timeout
        _upload("short-again", ids[1:2]),
        _upload("hung", ids[2:3], fault="delay=40", status=0),  # hung and dropped: nothing landed from it
        _upload("rest", ids[2:]),
    ]
    result = _books(uploads, ids)
    assert result["duplicates_unexplained"] == 2
    assert result["duplicates_timed_out_but_landed"] == 0
    assert result["ok"] is False
