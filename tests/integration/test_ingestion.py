"""Deliverer with the REAL LogsIngestionClient and ManagedIdentityCredential against the stand-ins."""

from __future__ import annotations

import functools
import gzip
import json
import random
import string
import time
from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, cast

import pytest
from azure.core.exceptions import HttpResponseError
from azure.identity import ManagedIdentityCredential
from azure.monitor.ingestion._helpers import _split_chunks

from local.standins.identity import ManagedIdentityStandIn
from local.standins.logs_ingestion import MAX_BODY_BYTES, LogsIngestionStandIn
from shared.delivery.ingestion import (
    MAX_CHUNK_BYTES,
    Deliverer,
    _retry_after,
    build_ingestion_client,
    describe_failure,
    pack,
    packed_size,
)
from shared.schema import COLUMNS, Row
from shared.store.queue_entry import compress_rows


def make_row(n: int, raw_bytes: int = 100, rng: random.Random | None = None) -> Row:
    """A schema-valid row; random RawData so gzip cannot shrink big rows to nothing."""
    rng = rng or random.Random(n)
    row: Row = dict.fromkeys(COLUMNS, "")
    row.update(
        {
            "TimeGenerated": "2025-01-01T00:00:00Z",
            "Vendor": "Wallarm",
            "EventType": "new_hits",
            "Severity": "high",
            "Summary": f"hit {n} ünïcödé",
            "RawData": "".join(rng.choices(string.ascii_letters + string.digits, k=raw_bytes)),
        }
    )
    return row


def row_size(row: Row) -> int:
    """A row's size as the SDK measures it for its 1 MiB chunks."""
    return len(json.dumps(row).encode("utf-8"))


def rows_for_chunks(chunks: int, per_chunk: int = 20) -> list[Row]:
    """Rows of ~60 KB (under the 64 KB field cap) filling `chunks` SDK chunks of `per_chunk` rows."""
    size = MAX_CHUNK_BYTES // per_chunk - 1000
    rows = [make_row(i, size) for i in range(chunks * per_chunk)]
    assert len(pack(rows)) == chunks
    return rows


def summaries(rows: list[Row] | list[dict[str, Any]]) -> list[str]:
    return [str(r["Summary"]) for r in rows]


@pytest.fixture
def deliverer(
    ingestion: LogsIngestionStandIn, managed_identity_env: dict[str, str], tls_ca: str
) -> Iterator[Deliverer]:
    credential = ManagedIdentityCredential()
    client = build_ingestion_client(
        ingestion.endpoint, credential, read_timeout=2, connect_timeout=2, ca_bundle=tls_ca
    )
    with client:
        yield Deliverer(client, ingestion.dcr_id, ingestion.stream)
    credential.close()


# -- chunking -----------------------------------------------------------------------------------


@functools.cache
def _varied_rows() -> list[list[Row]]:
    rng = random.Random(7)
    cases: list[list[Row]] = [
        [],
        [make_row(0)],
        [make_row(i, rng.randint(0, 200_000), rng) for i in range(40)],
        [make_row(i, 60_000, rng) for i in range(50)],
        [make_row(0, 2 * MAX_CHUNK_BYTES, rng), make_row(1, 10, rng), make_row(2, 2 * MAX_CHUNK_BYTES, rng)],
    ]
    # Rows summing to exactly the limit, then one byte over.
    first = make_row(0, 1000, rng)
    second = make_row(1, 0, rng)
    second["RawData"] = "x" * (MAX_CHUNK_BYTES - row_size(first) - row_size(second))
    assert row_size(first) + row_size(second) == MAX_CHUNK_BYTES
    cases.append([first, second])
    over = dict(second, RawData=second["RawData"] + "y")
    cases.append([first, over])
    return cases


@pytest.mark.parametrize("rows", _varied_rows(), ids=lambda rows: f"{len(rows)}rows")
def test_pack_cuts_like_the_sdk(rows: list[Row]) -> None:
    ours = [p.rows for p in pack(rows)]
    sdk = list(_split_chunks(cast(list[MutableMapping[str, Any]], rows)))
    assert ours == sdk
    assert [r for chunk in ours for r in chunk] == rows


def test_pack_boundary_exact_limit_fits_one_byte_more_does_not() -> None:
    exact, over = _varied_rows()[-2:]
    assert len(pack(exact)) == 1
    assert len(pack(over)) == 2


def test_each_chunk_is_one_request_under_1_mib_as_sent(
    deliverer: Deliverer, ingestion: LogsIngestionStandIn
) -> None:
    rows = rows_for_chunks(3)
    report = deliverer.deliver(rows)
    assert report.all_accepted
    assert summaries(report.accepted) == summaries(rows)
    requests = ingestion.requests
    assert [r.row_count for r in requests] == [len(p.rows) for p in pack(rows)]
    for request in requests:
        assert request.status == 204
        assert request.content_encoding == "gzip"
        assert len(request.body) < MAX_BODY_BYTES
        assert len(json.loads(gzip.decompress(request.body))) == request.row_count
    assert [a.ok for a in report.attempts] == [True, True, True]
    assert [a.rows for a in report.attempts] == [20, 20, 20]
    assert sorted(summaries(ingestion.accepted)) == sorted(summaries(rows))


# -- failures -----------------------------------------------------------------------------------


def test_failure_in_chunk_2_of_3_is_reported_and_never_resent(
    deliverer: Deliverer, ingestion: LogsIngestionStandIn
) -> None:
    rows = rows_for_chunks(3)
    chunks = [p.rows for p in pack(rows)]
    ingestion.inject_delay(0.001, land=True)  # the first request passes (a fault consumed, rows land)
    ingestion.inject(503, retry_after=12)
    report = deliverer.deliver(rows)

    assert summaries(report.accepted) == summaries(chunks[0] + chunks[2])
    assert report.not_attempted == []
    (failure,) = report.failures
    assert failure.rows == chunks[1]
    assert failure.status == 503
    assert failure.error == "ServiceUnavailable"
    assert failure.retry_after == 12
    assert failure.poison is False
    assert failure.message
    requests = ingestion.requests
    assert len(requests) == 3  # chunk 2 is not re-sent: the relay's queue owns retries
    assert failure.request_id == requests[1].request_id != ""
    assert [a.ok for a in report.attempts] == [True, False, True]
    assert report.attempts[1].status == 503
    assert report.attempts[1].request_id == failure.request_id
    assert report.attempts[1].error == "ServiceUnavailable"
    assert sorted(summaries(ingestion.accepted)) == sorted(summaries(chunks[0] + chunks[2]))


def test_400_is_poison_and_names_the_error_code(
    deliverer: Deliverer, ingestion: LogsIngestionStandIn
) -> None:
    ingestion.inject(400, code="InvalidPayload")
    report = deliverer.deliver([make_row(1), make_row(2)])
    (failure,) = report.failures
    assert (failure.status, failure.error, failure.poison) == (400, "InvalidPayload", True)
    assert failure.retry_after is None


def test_413_on_a_multi_row_chunk_splits_and_lands_everything(
    deliverer: Deliverer, ingestion: LogsIngestionStandIn
) -> None:
    rows = [make_row(i) for i in range(5)]
    ingestion.inject(413)
    report = deliverer.deliver(rows)
    assert report.all_accepted
    assert sorted(summaries(report.accepted)) == sorted(summaries(rows))
    assert [(a.ok, a.rows, a.status) for a in report.attempts] == [
        (False, 5, 413),
        (True, 2, 204),
        (True, 3, 204),
    ]
    assert sorted(summaries(ingestion.accepted)) == sorted(summaries(rows))


def test_a_queue_payload_that_fits_one_request_is_sent_as_stored(
    deliverer: Deliverer, ingestion: LogsIngestionStandIn
) -> None:
    rows = [make_row(i, 2000) for i in range(30)]
    payload = compress_rows(rows)
    report = deliverer.deliver_packed(payload, rows)
    assert report.all_accepted and [(a.ok, a.rows) for a in report.attempts] == [(True, 30)]
    (request,) = ingestion.requests
    assert (request.content_encoding, request.body) == ("gzip", payload)  # not serialised again
    assert summaries(ingestion.accepted) == summaries(rows)
    assert packed_size(payload) == len(gzip.decompress(payload))


def test_a_queue_payload_over_one_request_is_chunked_as_deliver_does(
    deliverer: Deliverer, ingestion: LogsIngestionStandIn
) -> None:
    rows = rows_for_chunks(2)
    payload = compress_rows(rows)
    assert packed_size(payload) > MAX_CHUNK_BYTES
    report = deliverer.deliver_packed(payload, rows)
    assert report.all_accepted and [(a.ok, a.rows) for a in report.attempts] == [(True, 20), (True, 20)]
    assert summaries(ingestion.accepted) == summaries(rows)


def test_413_on_a_queue_payload_splits_and_lands_everything(
    deliverer: Deliverer, ingestion: LogsIngestionStandIn
) -> None:
    rows = [make_row(i) for i in range(5)]
    ingestion.inject(413)
    report = deliverer.deliver_packed(compress_rows(rows), rows)
    assert report.all_accepted
    assert [(a.ok, a.rows, a.status) for a in report.attempts] == [
        (False, 5, 413),
        (True, 2, 204),
        (True, 3, 204),
    ]
    assert sorted(summaries(ingestion.accepted)) == sorted(summaries(rows))


def test_413_on_a_single_row_is_poison(deliverer: Deliverer, ingestion: LogsIngestionStandIn) -> None:
    ingestion.inject(413)
    report = deliverer.deliver([make_row(1)])
    (failure,) = report.failures
    assert (failure.status, failure.error, failure.poison) == (413, "ContentLengthLimitExceeded", True)
    assert len(ingestion.requests) == 1


def test_retry_after_seconds_from_the_service(deliverer: Deliverer, ingestion: LogsIngestionStandIn) -> None:
    ingestion.inject(429, retry_after=37)
    (failure,) = deliverer.deliver([make_row(1)]).failures
    assert (failure.status, failure.retry_after, failure.poison) == (429, 37.0, False)


class _Response:
    """Just enough of an azure-core response for describe_failure (HTTP dates cannot be injected)."""

    def __init__(self, status: int, headers: dict[str, str], body: str = "") -> None:
        self.status_code = status
        self.headers = headers
        self.reason = "Too Many Requests"
        self._body = body

    def text(self, encoding: str | None = None) -> str:
        return self._body


def test_retry_after_as_an_http_date() -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    response = _Response(429, {"Retry-After": format_datetime(when, usegmt=True), "x-ms-request-id": "r-1"})
    failure = describe_failure(HttpResponseError(response=cast(Any, response)), [make_row(1)])
    assert failure.retry_after is not None
    assert 110 <= failure.retry_after <= 121
    assert (failure.status, failure.request_id, failure.error) == (429, "r-1", "HTTP429")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"retry-after-ms": "2500"}, 2.5),
        ({"x-ms-retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "100", "Retry-After": "9"}, 0.1),  # the precise header wins
        ({"Retry-After": "-3"}, 0.0),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # a date in the past
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_header_forms(headers: dict[str, str], expected: float | None) -> None:
    assert _retry_after(headers) == expected


def test_error_code_from_the_body_when_the_sdk_has_none() -> None:
    body = json.dumps({"error": {"code": "InvalidStream", "message": "m"}})
    response = _Response(404, {}, body)
    failure = describe_failure(HttpResponseError(response=cast(Any, response)), [])
    assert (failure.status, failure.error) == (404, "InvalidStream")


def test_dropped_connection_is_a_response_error(
    deliverer: Deliverer, ingestion: LogsIngestionStandIn
) -> None:
    ingestion.inject_drop()
    report = deliverer.deliver([make_row(1)])
    (failure,) = report.failures
    assert failure.status is None
    assert failure.error == "response_error"
    assert "may have landed" in failure.message
    assert failure.poison is False
    assert report.attempts[0].ok is False
    assert len(ingestion.requests) == 1


def test_deadline_already_passed_sends_nothing(deliverer: Deliverer, ingestion: LogsIngestionStandIn) -> None:
    rows = [make_row(i) for i in range(3)]
    report = deliverer.deliver(rows, deadline=time.monotonic() - 1)
    assert report.not_attempted == rows
    assert report.accepted == report.failures == report.attempts == []
    assert report.all_accepted is False
    assert ingestion.requests == []


def test_deadline_in_the_future_delivers(deliverer: Deliverer, ingestion: LogsIngestionStandIn) -> None:
    report = deliverer.deliver([make_row(1)], deadline=time.monotonic() + 30)
    assert report.all_accepted


def test_deadline_passing_between_chunks_leaves_the_rest_not_attempted(
    ingestion: LogsIngestionStandIn, managed_identity_env: dict[str, str], tls_ca: str
) -> None:
    ticks = iter([0.0, 0.0, 1.0, 100.0, 100.0])  # check, start, end of chunk 1, check chunk 2, ...
    credential = ManagedIdentityCredential()
    client = build_ingestion_client(
        ingestion.endpoint, credential, read_timeout=2, connect_timeout=2, ca_bundle=tls_ca
    )
    rows = [make_row(i, 400_000) for i in range(3)]
    chunks = [p.rows for p in pack(rows)]
    assert len(chunks) == 2
    with client:
        report = Deliverer(client, ingestion.dcr_id, ingestion.stream, monotonic=lambda: next(ticks)).deliver(
            rows, deadline=50.0
        )
    credential.close()
    assert summaries(report.accepted) == summaries(chunks[0])
    assert report.not_attempted == chunks[1]
    assert len(ingestion.requests) == 1


def test_probe_sends_an_empty_array_and_writes_no_row(
    deliverer: Deliverer, ingestion: LogsIngestionStandIn
) -> None:
    attempt = deliverer.probe()
    assert (attempt.ok, attempt.rows, attempt.status) == (True, 0, 204)
    (request,) = ingestion.requests
    assert request.body == b"[]"
    assert request.content_encoding is None
    assert ingestion.accepted == []


def test_probe_reports_a_wrong_stream(
    ingestion: LogsIngestionStandIn, managed_identity_env: dict[str, str], tls_ca: str
) -> None:
    credential = ManagedIdentityCredential()
    client = build_ingestion_client(
        ingestion.endpoint, credential, read_timeout=2, connect_timeout=2, ca_bundle=tls_ca
    )
    with client:
        attempt = Deliverer(client, ingestion.dcr_id, "Custom-Missing_CL").probe()
    credential.close()
    assert (attempt.ok, attempt.status) == (False, 404)
    assert attempt.request_id == ingestion.requests[0].request_id


@pytest.mark.slow
def test_auth_failure_is_reported_not_raised(
    deliverer: Deliverer, ingestion: LogsIngestionStandIn, identity: ManagedIdentityStandIn
) -> None:
    identity.inject(500, times=5)
    report = deliverer.deliver([make_row(1)])
    assert report.accepted == []
    (failure,) = report.failures
    assert failure.poison is False
    assert failure.request_id == ""
    assert report.attempts[0].ok is False
    assert ingestion.requests == []  # no token, no ingestion request
    assert failure.error == "authentication_error", failure
    assert failure.status is None


def test_accepted_requests_keep_their_request_id(
    ingestion: LogsIngestionStandIn, managed_identity_env: dict[str, str], tls_ca: str
) -> None:
    client = build_ingestion_client(
        ingestion.endpoint, ManagedIdentityCredential(), read_timeout=2, connect_timeout=2, ca_bundle=tls_ca
    )
    attempt = Deliverer(client, ingestion.dcr_id, ingestion.stream).probe()
    assert attempt.ok and attempt.request_id == ingestion.requests[-1].request_id


def test_client_asks_for_a_token_of_the_configured_cloud_audience(
    ingestion: LogsIngestionStandIn, managed_identity_env: dict[str, str], tls_ca: str
) -> None:
    """A US Gov endpoint accepts only monitor.azure.us tokens: the default (public) one is refused."""
    credential = ManagedIdentityCredential()
    ingestion.audience = "https://monitor.azure.us"
    try:
        results = []
        for audience in ("https://monitor.azure.us", "https://monitor.azure.com"):
            client = build_ingestion_client(
                ingestion.endpoint,
                credential,
                read_timeout=2,
                connect_timeout=2,
                ca_bundle=tls_ca,
                audience=audience,
            )
            with client:
                attempt = Deliverer(client, ingestion.dcr_id, ingestion.stream).probe()
            results.append((attempt.ok, attempt.status))
    finally:
        ingestion.audience = "https://monitor.azure.com"
        credential.close()
    assert results == [(True, 204), (False, 401)]
