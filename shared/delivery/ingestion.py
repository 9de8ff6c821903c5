"""The only code that calls the Logs Ingestion API.

It packs rows into requests under the API's size limit, always passes `on_error` so a failed chunk
is known exactly (an accepted chunk is never resent), and reports an outcome per request. It
decides nothing about schedules: the caller queues what failed.
"""

from __future__ import annotations

import io
import json
import time
import zlib
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, cast

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from shared.batches import by_size
from shared.delivery.policy import is_poison
from shared.health.attempts import Attempt as Attempt  # re-exported: delivery reports in these terms
from shared.health.attempts import ChunkFailure as ChunkFailure
from shared.health.attempts import DeliveryReport as DeliveryReport
from shared.limits import INGESTION_AUDIENCES
from shared.schema import Row
from shared.transport import client_options

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.monitor.ingestion import LogsIngestionClient, LogsUploadError

# The SDK's own chunk size (azure.monitor.ingestion._helpers.MAX_CHUNK_SIZE_BYTES), measured the
# same way: the sum of each row's json.dumps size. Gzip keeps the request as sent far under 1 MB.
MAX_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Packed:
    """One request's rows and its body: the gzipped JSON array the SDK would send for them."""

    rows: list[Row]
    body: bytes


def pack(rows: Sequence[Row], max_bytes: int = MAX_CHUNK_BYTES) -> list[Packed]:
    """Cut and serialise rows as the SDK's `upload()` does (`_helpers._create_gzip_requests`),
    each row dumped once: the sizes and the body come from the same text. Byte for byte the same
    JSON (`json.dumps` of a list joins its items with ", "); `json.dumps` escapes non-ASCII, so a
    row's UTF-8 size is its length."""
    texts = [json.dumps(row) for row in rows]
    out: list[Packed] = []
    for batch in by_size(range(len(texts)), lambda i: len(texts[i]), max_bytes):
        out.append(
            Packed([rows[i] for i in batch], gzip_json("[" + ", ".join(texts[i] for i in batch) + "]"))
        )
    return out


def gzip_json(text: str) -> bytes:
    """Gzip as the SDK does (zlib, gzip wrapper, default level)."""
    compress = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    return compress.compress(text.encode("utf-8")) + compress.flush()


# A longer wait asked by the server is held to this: "1e400" or a date in 9999 would otherwise
# keep acknowledged rows out of the table for good (or overflow the due time).
RETRY_AFTER_CAP_SECONDS = 3600.0


def _retry_after(headers: Any) -> float | None:
    """Seconds the server asked us to wait (retry-after-ms, or Retry-After as seconds or a date),
    at most ``RETRY_AFTER_CAP_SECONDS``."""
    for name, scale in (("retry-after-ms", 0.001), ("x-ms-retry-after-ms", 0.001), ("Retry-After", 1.0)):
        value = headers.get(name)
        if not value:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError, OverflowError):
                continue
            if when.tzinfo is None:  # "-0000": UTC, by RFC 5322
                when = when.replace(tzinfo=UTC)
            seconds = (when - datetime.now(UTC)).total_seconds()
        if seconds != seconds:  # nan
            continue
        return min(max(seconds, 0.0), RETRY_AFTER_CAP_SECONDS)
    return None


def _error_code(err: HttpResponseError) -> str:
    if err.error is not None and err.error.code:
        return str(err.error.code)
    try:
        body = json.loads(err.response.text()) if err.response is not None else {}
        return str(body.get("error", {}).get("code", "")) or f"HTTP{err.status_code}"
    except (ValueError, AttributeError):
        return f"HTTP{err.status_code}"


def packed_size(payload: bytes) -> int:
    """Uncompressed size of a one-member gzip payload: its trailer's ISIZE (RFC 1952, mod 2**32)."""
    return int.from_bytes(payload[-4:], "little") if len(payload) >= 18 else 0


def describe_failure(err: Exception, rows: list[Row]) -> ChunkFailure:
    """Turn an SDK exception into a failure with what an operator needs: status, code, request id."""
    if isinstance(err, HttpResponseError) and err.response is not None:
        headers: Any = getattr(err.response, "headers", {})
        status = err.status_code
        code = _error_code(err)
        # Azure's error messages describe the request, never echo row values.
        message = (err.message or "").splitlines()[0][:300]
        return ChunkFailure(
            rows=rows,
            status=status,
            error=code,
            request_id=str(headers.get("x-ms-request-id", "")),
            retry_after=_retry_after(headers),
            poison=is_poison(status, len(rows)),
            message=message,
        )
    if isinstance(err, ServiceResponseError):
        code, message = "response_error", "connection dropped or read timed out; the rows may have landed"
    elif isinstance(err, ServiceRequestError):
        code, message = "request_error", "could not connect to the ingestion endpoint"
    elif isinstance(err, ClientAuthenticationError):
        code, message = "authentication_error", "could not get a token for https://monitor.azure.com"
    else:
        code, message = type(err).__name__, "unexpected error calling the Logs Ingestion API"
    return ChunkFailure(rows, None, code, "", None, False, message)


class Deliverer:
    """Uploads rows with one shared `LogsIngestionClient` (built once per worker)."""

    def __init__(
        self,
        client: LogsIngestionClient,
        dcr_immutable_id: str,
        stream_name: str,
        monotonic: Callable[[], float] = time.monotonic,
        request_timeout: float = 0.0,
    ) -> None:
        self._request_timeout = request_timeout
        self._client = client
        self._dcr = dcr_immutable_id
        self._stream = stream_name
        self._monotonic = monotonic

    def deliver(self, rows: Sequence[Row], deadline: float | None = None) -> DeliveryReport:
        """Upload `rows` before `deadline` (monotonic); chunks left are reported not attempted.

        After the first chunk, a chunk starts only if a request that runs into the read timeout
        would still end by the deadline, so a hanging API cannot push the answer past it.
        """
        return self.deliver_chunks(pack(rows), deadline)

    def deliver_chunks(self, chunks: Sequence[Packed], deadline: float | None = None) -> DeliveryReport:
        """`deliver` for rows packed beforehand (`pack`), e.g. while a dedup claim is in flight."""
        report = DeliveryReport()
        for index, chunk in enumerate(chunks):
            # The first chunk only needs time left; later ones need room for a full request.
            reserve = self._request_timeout if index > 0 else 0.0
            if deadline is not None and self._monotonic() + reserve >= deadline:
                for rest in chunks[index:]:
                    report.not_attempted.extend(rest.rows)
                break
            self._upload(chunk.rows, report, body=chunk.body)
        return report

    def deliver_packed(self, payload: bytes, rows: Sequence[Row]) -> DeliveryReport:
        """`deliver` for rows already stored as one gzipped JSON array (a queue entry's payload):
        sent as they are in one request when the array fits one (no JSON or gzip work here, the
        most of an upload's CPU), otherwise chunked as `deliver` does. A 413 splits as usual."""
        if not rows or packed_size(payload) > MAX_CHUNK_BYTES:
            return self.deliver(rows)
        report = DeliveryReport()
        self._upload(list(rows), report, body=payload)
        return report

    def probe(self, rows: Sequence[Row] = ()) -> Attempt:
        """Checks token, role and DCR/stream. With no rows it sends an empty JSON array (the SDK
        sends nothing for an empty list, so the body goes as a stream) and writes no row."""
        report = DeliveryReport()
        self._send(list(rows), report)
        return report.attempts[0]

    def _upload(self, chunk: list[Row], report: DeliveryReport, body: bytes | None = None) -> None:
        failure = self._send(chunk, report, body)
        if failure is None:
            report.accepted.extend(chunk)
        elif failure.status == 413 and len(chunk) > 1:
            # Too large as sent (e.g. rows that gzip poorly): halve and try again right away.
            middle = len(chunk) // 2
            self._upload(chunk[:middle], report)
            self._upload(chunk[middle:], report)
        else:
            report.failures.append(failure)

    def _send(
        self, chunk: list[Row], report: DeliveryReport, body: bytes | None = None
    ) -> ChunkFailure | None:
        """One request: ``chunk`` as the SDK serialises it, or ``body`` (the chunk as gzipped JSON)."""
        errors: list[LogsUploadError] = []
        request_ids: list[str] = []

        def keep_request_id(pipeline_response: Any) -> None:
            # Azure support asks for x-ms-request-id of accepted requests too (e.g. rows dropped by the DCR).
            request_ids.append(str(pipeline_response.http_response.headers.get("x-ms-request-id", "")))

        started = self._monotonic()
        try:
            if chunk and body is None:
                self._client.upload(
                    rule_id=self._dcr,
                    stream_name=self._stream,
                    logs=cast(list[MutableMapping[str, Any]], chunk),
                    on_error=errors.append,
                    raw_response_hook=keep_request_id,
                )
            else:
                self._client.upload(
                    rule_id=self._dcr,
                    stream_name=self._stream,
                    logs=io.BytesIO(b"[]" if body is None else body),  # gzip is detected by its magic
                    raw_response_hook=keep_request_id,
                )
        except Exception as err:  # noqa: BLE001 - credential and transport errors surface here, not in on_error
            errors_exc: Exception | None = err
        else:
            errors_exc = errors[0].error if errors else None
        elapsed = self._monotonic() - started
        if errors_exc is None:
            request_id = request_ids[-1] if request_ids else ""
            report.attempts.append(Attempt(True, len(chunk), 204, "", request_id, elapsed))
            return None
        failure = describe_failure(errors_exc, chunk)
        report.attempts.append(
            Attempt(False, len(chunk), failure.status, failure.error, failure.request_id, elapsed)
        )
        return failure


def build_ingestion_client(
    endpoint: str,
    credential: TokenCredential,
    *,
    read_timeout: float,
    connect_timeout: float,
    ca_bundle: str | None = None,
    audience: str = INGESTION_AUDIENCES["public"],
) -> LogsIngestionClient:
    """One client per worker. azure-core retries are off: the relay's queue owns every retry so
    that each attempt is in the ledger and Retry-After is honoured without blocking a webhook.
    `audience` is the cloud's Logs Ingestion audience (US Gov and China differ from public)."""
    from azure.monitor.ingestion import LogsIngestionClient

    kwargs: dict[str, Any] = {
        "credential_scopes": [f"{audience.rstrip('/')}/.default"],
        "retry_total": 0,
        "read_timeout": read_timeout,
        "connection_timeout": connect_timeout,
        # Proxies and CA bundle from the environment, read once (shared/transport.py).
        **client_options(endpoint, verify=ca_bundle or True),
    }
    return LogsIngestionClient(endpoint=endpoint, credential=credential, logging_enable=False, **kwargs)
