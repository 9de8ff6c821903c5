"""The stand-ins behave like Azure for the REAL SDK clients (azure-monitor-ingestion, azure-identity)."""

from __future__ import annotations

import base64
import io
import json
import os
import ssl
import time
import urllib.request
from collections.abc import MutableMapping
from typing import Any, cast

import pytest
from azure.core import MatchConditions
from azure.core.credentials import AccessToken
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceResponseError,
)
from azure.core.rest import HttpResponse
from azure.data.tables import TableServiceClient, UpdateMode
from azure.identity import ClientSecretCredential, ManagedIdentityCredential
from azure.monitor.ingestion import LogsIngestionClient, LogsUploadError

from local.standins import tls
from local.standins.azurite import Azurite
from local.standins.identity import EntraIdStandIn, ManagedIdentityStandIn, TokenIssuer
from local.standins.logs_ingestion import MAX_FIELD_BYTES, LogsIngestionStandIn, gzip_rows
from shared.schema import COLUMNS, STREAM


def row(n: int = 0, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict.fromkeys(COLUMNS, "")
    base.update(
        {
            "TimeGenerated": "2025-01-01T00:00:00Z",
            "Vendor": "Wallarm",
            "EventType": "new_hits",
            "Severity": "high",
            "Summary": f"hit {n}",
            "RawData": json.dumps({"n": n}),
        }
    )
    base.update(overrides)
    return base


class StaticCredential:
    """A TokenCredential returning a fixed token (to present forged or expired tokens)."""

    def __init__(self, token: str, expires_on: int | None = None) -> None:
        self._token = AccessToken(token, expires_on if expires_on is not None else int(time.time()) + 3600)

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return self._token


# Mirrors tests/conftest.py FAST_RETRY (conftest is not importable as a module).
RETRY_TOTAL = 3
FAST: dict[str, Any] = {"retry_total": RETRY_TOTAL, "retry_backoff_factor": 0.01, "retry_backoff_max": 0.05}


def _client(ingestion: LogsIngestionStandIn, credential: Any, ca: str, **kwargs: Any) -> LogsIngestionClient:
    options: dict[str, Any] = {**FAST, **kwargs}
    return LogsIngestionClient(ingestion.endpoint, credential=credential, connection_verify=ca, **options)


def _upload_fails(ingestion: LogsIngestionStandIn, ca: str, error: type[Exception], **kwargs: Any) -> None:
    """One row through the real client and the managed identity: the upload raises `error`."""
    with (
        ManagedIdentityCredential() as cred,
        _client(ingestion, cred, ca, **kwargs) as client,
        pytest.raises(error),
    ):
        client.upload(ingestion.dcr_id, ingestion.stream, [row()])


def _admin(ingestion: LogsIngestionStandIn, path: str, payload: dict[str, Any] | None = None) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(
        ingestion.endpoint + path, data=data, method="GET" if data is None else "POST"
    )
    with urllib.request.urlopen(req, context=tls.client_ssl_context(), timeout=5) as resp:  # noqa: S310
        body = resp.read()
        return json.loads(body) if body else None


# --- happy paths


def test_upload_lands_rows_gzipped_with_managed_identity(
    ingestion_client: LogsIngestionClient,
    ingestion: LogsIngestionStandIn,
    identity: ManagedIdentityStandIn,
) -> None:
    rows: list[MutableMapping[str, Any]] = [row(i) for i in range(5)]
    ingestion_client.upload(ingestion.dcr_id, ingestion.stream, rows)
    assert ingestion.accepted == rows
    [req] = ingestion.requests
    assert req.status == 204 and req.row_count == 5 and req.content_encoding == "gzip"
    assert req.body[:2] == b"\x1f\x8b"
    assert req.client_id == identity.system_client_id
    assert identity.token_requests == 1
    assert identity.requests[0].resource == "https://monitor.azure.com"


def test_token_is_cached_across_uploads(
    ingestion_client: LogsIngestionClient,
    ingestion: LogsIngestionStandIn,
    identity: ManagedIdentityStandIn,
) -> None:
    for i in range(3):
        ingestion_client.upload(ingestion.dcr_id, ingestion.stream, [row(i)])
    assert len(ingestion.accepted) == 3
    assert identity.token_requests == 1


def test_user_assigned_identity_sends_client_id(
    ingestion: LogsIngestionStandIn,
    identity: ManagedIdentityStandIn,
    managed_identity_env: dict[str, str],
    tls_ca: str,
) -> None:
    uami = "22222222-2222-4222-8222-222222222222"
    with ManagedIdentityCredential(client_id=uami) as cred, _client(ingestion, cred, tls_ca) as client:
        client.upload(ingestion.dcr_id, ingestion.stream, [row()])
    assert identity.client_ids_requested == [uami]
    assert ingestion.requests[0].client_id == uami


def test_identity_endpoint_failure_surfaces(
    ingestion: LogsIngestionStandIn,
    identity: ManagedIdentityStandIn,
    managed_identity_env: dict[str, str],
    tls_ca: str,
) -> None:
    identity.inject(400)
    _upload_fails(ingestion, tls_ca, ClientAuthenticationError)
    assert ingestion.requests == []


def test_wrong_identity_header_is_refused(
    ingestion: LogsIngestionStandIn,
    identity: ManagedIdentityStandIn,
    managed_identity_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tls_ca: str,
) -> None:
    monkeypatch.setenv("IDENTITY_HEADER", "not-the-secret")
    _upload_fails(ingestion, tls_ca, ClientAuthenticationError)
    assert identity.requests[0].status == 401


def test_client_secret_credential_against_entra_standin(
    ingestion: LogsIngestionStandIn,
    token_issuer: TokenIssuer,
    tls_ca: str,
) -> None:
    client_id, secret = "33333333-3333-4333-8333-333333333333", "s3cr3t"
    with EntraIdStandIn(token_issuer, {client_id: secret}) as entra:
        cred = ClientSecretCredential(
            entra.tenant_id,
            client_id,
            secret,
            authority=entra.authority,
            disable_instance_discovery=True,
            connection_verify=tls_ca,
        )
        with _client(ingestion, cred, tls_ca) as client:
            client.upload(ingestion.dcr_id, ingestion.stream, [row()])
        assert ingestion.requests[0].client_id == client_id
        assert entra.token_requests == 1

        bad = ClientSecretCredential(
            entra.tenant_id,
            client_id,
            "wrong",
            authority=entra.authority,
            disable_instance_discovery=True,
            connection_verify=tls_ca,
        )
        with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
            bad.get_token("https://monitor.azure.com/.default")


def test_requests_ca_bundle_env_is_honoured(
    ingestion: LogsIngestionStandIn,
    token_issuer: TokenIssuer,
    tls_ca: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_ca)
    token, exp = token_issuer.issue("https://monitor.azure.com", "x")
    with LogsIngestionClient(ingestion.endpoint, credential=StaticCredential(token, exp)) as client:
        client.upload(ingestion.dcr_id, ingestion.stream, [row()])
    assert len(ingestion.accepted) == 1


# --- errors as Azure sends them


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c"])
def test_forged_token_is_401(ingestion: LogsIngestionStandIn, tls_ca: str, token: str) -> None:
    with (
        _client(ingestion, StaticCredential(token), tls_ca) as client,
        pytest.raises(ClientAuthenticationError) as err,
    ):
        client.upload(ingestion.dcr_id, ingestion.stream, [row()])
    assert err.value.status_code == 401
    resp = cast(HttpResponse, err.value.response)
    assert resp.headers["WWW-Authenticate"].startswith("Bearer ")
    assert resp.headers["x-ms-request-id"]
    assert ingestion.accepted == [] and len(ingestion.requests) == 1  # 401 without claims: no retry


def test_expired_and_wrong_audience_tokens_are_401(
    ingestion: LogsIngestionStandIn,
    token_issuer: TokenIssuer,
    tls_ca: str,
) -> None:
    expired, _ = token_issuer.issue("https://monitor.azure.com", "x", lifetime_seconds=-5)
    other, exp = token_issuer.issue("https://storage.azure.com", "x")
    for cred in (StaticCredential(expired, int(time.time()) + 3600), StaticCredential(other, exp)):
        with _client(ingestion, cred, tls_ca) as client, pytest.raises(ClientAuthenticationError):
            client.upload(ingestion.dcr_id, ingestion.stream, [row()])
    codes = [(r.status, r.error_code) for r in ingestion.requests]
    assert codes == [(401, "ExpiredAuthenticationToken"), (401, "InvalidAuthenticationTokenAudience")]
    assert ingestion.accepted == []


def test_other_issuer_token_is_401(ingestion: LogsIngestionStandIn, tls_ca: str) -> None:
    foreign, exp = TokenIssuer().issue("https://monitor.azure.com", "x")
    with (
        _client(ingestion, StaticCredential(foreign, exp), tls_ca) as client,
        pytest.raises(ClientAuthenticationError),
    ):
        client.upload(ingestion.dcr_id, ingestion.stream, [row()])


def test_wrong_dcr_and_stream_are_404(
    ingestion_client: LogsIngestionClient, ingestion: LogsIngestionStandIn
) -> None:
    with pytest.raises(ResourceNotFoundError) as err:
        ingestion_client.upload("dcr-ffffffffffffffffffffffffffffffff", ingestion.stream, [row()])
    assert err.value.status_code == 404
    with pytest.raises(ResourceNotFoundError) as err2:
        ingestion_client.upload(ingestion.dcr_id, "Custom-Other_CL", [row()])
    assert err2.value.error is not None and err2.value.error.code == "InvalidStream"
    assert ingestion.accepted == []


def test_single_record_over_1mib_is_413_via_on_error(
    ingestion_client: LogsIngestionClient,
    ingestion: LogsIngestionStandIn,
) -> None:
    # Incompressible: the limit applies to the gzipped body as sent.
    huge = row(1, Description=base64.b64encode(os.urandom(1_200_000)).decode())
    errors: list[LogsUploadError] = []
    ingestion_client.upload(
        ingestion.dcr_id, ingestion.stream, [row(0), huge, row(2)], on_error=errors.append
    )
    assert len(errors) == 1
    error = errors[0].error
    assert isinstance(error, HttpResponseError) and error.status_code == 413
    assert error.error is not None and error.error.code == "ContentLengthLimitExceeded"
    assert "Maximum allowed content length: 1048576 bytes (1 MB)" in str(error)
    assert errors[0].failed_logs == [huge]
    assert [r["Summary"] for r in ingestion.accepted] == ["hit 0", "hit 2"]
    assert [r.status for r in ingestion.requests] == [204, 413, 204]


def test_compressible_1mib_chunk_is_accepted(
    ingestion_client: LogsIngestionClient, ingestion: LogsIngestionStandIn
) -> None:
    rows: list[MutableMapping[str, Any]] = [
        row(i, Description="x" * 60_000) for i in range(17)
    ]  # ~1 MB uncompressed, tiny gzipped
    ingestion_client.upload(ingestion.dcr_id, ingestion.stream, rows)
    assert len(ingestion.accepted) == 17


def test_invalid_json_and_non_array_are_400(
    ingestion_client: LogsIngestionClient, ingestion: LogsIngestionStandIn
) -> None:
    with pytest.raises(HttpResponseError) as err:
        ingestion_client.upload(ingestion.dcr_id, ingestion.stream, io.BytesIO(b"{not json"))
    assert err.value.status_code == 400
    with pytest.raises(HttpResponseError) as err2:
        ingestion_client.upload(ingestion.dcr_id, ingestion.stream, io.BytesIO(gzip_rows(row())))  # type: ignore[arg-type]
    assert err2.value.status_code == 400 and err2.value.error is not None
    assert err2.value.error.code == "InvalidPayload"


# --- retries (azure-core RetryPolicy)


def test_429_retry_after_is_honoured(
    ingestion_client: LogsIngestionClient, ingestion: LogsIngestionStandIn
) -> None:
    ingestion.inject(429, times=2, retry_after=0.3)
    start = time.monotonic()
    ingestion_client.upload(ingestion.dcr_id, ingestion.stream, [row()])
    elapsed = time.monotonic() - start
    assert [r.status for r in ingestion.requests] == [429, 429, 204]
    assert elapsed >= 0.6
    assert len(ingestion.accepted) == 1


def test_429_without_retry_after_is_not_retried(
    ingestion_client: LogsIngestionClient,
    ingestion: LogsIngestionStandIn,
) -> None:
    ingestion.inject(429)
    with pytest.raises(HttpResponseError) as err:
        ingestion_client.upload(ingestion.dcr_id, ingestion.stream, [row()])
    assert err.value.status_code == 429 and len(ingestion.requests) == 1


def test_500_and_503_are_retried(
    ingestion_client: LogsIngestionClient, ingestion: LogsIngestionStandIn
) -> None:
    ingestion.inject(500)
    ingestion.inject(503, retry_after=0.05)
    ingestion_client.upload(ingestion.dcr_id, ingestion.stream, [row()])
    assert [r.status for r in ingestion.requests] == [500, 503, 204]
    assert len(ingestion.accepted) == 1


def test_outage_exhausts_retries(
    ingestion_client: LogsIngestionClient, ingestion: LogsIngestionStandIn
) -> None:
    ingestion.set_outage(503)
    with pytest.raises(HttpResponseError) as err:
        ingestion_client.upload(ingestion.dcr_id, ingestion.stream, [row()])
    assert err.value.status_code == 503
    assert len(ingestion.requests) == 1 + RETRY_TOTAL
    ingestion.set_outage(None)
    ingestion_client.upload(ingestion.dcr_id, ingestion.stream, [row()])
    assert len(ingestion.accepted) == 1


def test_dropped_connection_raises_and_is_not_retried(
    ingestion_client: LogsIngestionClient,
    ingestion: LogsIngestionStandIn,
) -> None:
    ingestion.inject_drop()
    with pytest.raises(ServiceResponseError):
        ingestion_client.upload(ingestion.dcr_id, ingestion.stream, [row()])
    assert len(ingestion.requests) == 1 and ingestion.accepted == []
    ingestion_client.upload(ingestion.dcr_id, ingestion.stream, [row()])  # the next request works
    assert len(ingestion.accepted) == 1


def test_timed_out_but_landed(
    ingestion: LogsIngestionStandIn,
    managed_identity_env: dict[str, str],
    tls_ca: str,
) -> None:
    ingestion.inject_delay(0.6, land=True)
    _upload_fails(ingestion, tls_ca, ServiceResponseError, read_timeout=0.2)
    assert len(ingestion.accepted) == 1  # the duplicate risk the relay must design for
    # The held request finishes after a reset: it must not leak into the next test.
    ingestion.reset()
    time.sleep(0.6)
    assert ingestion.requests == [] and ingestion.accepted == []


def test_slow_and_lost(
    ingestion: LogsIngestionStandIn, managed_identity_env: dict[str, str], tls_ca: str
) -> None:
    ingestion.inject_delay(0.2, land=False)
    _upload_fails(ingestion, tls_ca, ServiceResponseError)
    assert ingestion.accepted == []


# --- DCR behaviour on 204


def test_mismatched_rows_are_dropped_and_long_fields_truncated(
    ingestion_client: LogsIngestionClient,
    ingestion: LogsIngestionStandIn,
) -> None:
    long_raw = "é" * (MAX_FIELD_BYTES // 2 + 10)  # 2-byte chars, over 64 KB in UTF-8
    rows: list[MutableMapping[str, Any]] = [
        row(0),
        row(1, Extra="x"),
        row(2, Severity=3),
        row(3, TimeGenerated="yesterday"),
        row(4, RawData=long_raw),
    ]
    ingestion_client.upload(ingestion.dcr_id, ingestion.stream, rows)
    assert [r.status for r in ingestion.requests] == [204]
    assert [r["Summary"] for r in ingestion.accepted] == ["hit 0", "hit 4"]
    reasons = [d.reason for d in ingestion.dropped]
    assert reasons == [
        "unknown columns: Extra",
        "column Severity: int is not string",
        "column TimeGenerated: str is not datetime",
    ]
    [cut] = ingestion.truncated_fields
    assert cut.column == "RawData" and cut.original_bytes > MAX_FIELD_BYTES
    assert cut.kept_bytes <= MAX_FIELD_BYTES
    assert len(ingestion.accepted[1]["RawData"].encode()) == cut.kept_bytes


# --- admin surface


def test_admin_surface_inspects_and_injects(
    ingestion_client: LogsIngestionClient,
    ingestion: LogsIngestionStandIn,
) -> None:
    _admin(ingestion, "/_standin/fault", {"status": 503, "times": 1, "retry_after": 0.01})
    ingestion_client.upload(ingestion.dcr_id, ingestion.stream, [row(7)])
    assert [r["Summary"] for r in _admin(ingestion, "/_standin/rows")] == ["hit 7"]
    summary = _admin(ingestion, "/_standin/requests")
    assert [s["status"] for s in summary] == [503, 204]
    _admin(ingestion, "/_standin/fault", {"outage": 500})
    with pytest.raises(HttpResponseError):
        ingestion_client.upload(ingestion.dcr_id, ingestion.stream, [row()])
    _admin(ingestion, "/_standin/fault", {"outage": None})
    _admin(ingestion, "/_standin/reset", {})
    assert _admin(ingestion, "/_standin/rows") == []


def test_every_response_has_request_id(ingestion: LogsIngestionStandIn, token_issuer: TokenIssuer) -> None:
    token, _ = token_issuer.issue("https://monitor.azure.com", "x")
    ctx: ssl.SSLContext = tls.client_ssl_context()
    url = (
        f"{ingestion.endpoint}/dataCollectionRules/{ingestion.dcr_id}/streams/{STREAM}?api-version=2023-01-01"
    )
    req = urllib.request.Request(
        url,
        data=json.dumps([row()]).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:  # noqa: S310
        assert resp.status == 204 and resp.headers["x-ms-request-id"]
    bad = urllib.request.Request(
        url.replace("2023-01-01", "2021-01-01"),
        data=b"[]",
        method="POST",
        headers={"Authorization": f"Bearer {token}"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(bad, context=ctx, timeout=5)  # noqa: S310
    assert err.value.code == 400 and err.value.headers["x-ms-request-id"]
    assert json.loads(err.value.read())["error"]["code"] == "InvalidApiVersion"


# --- Azurite


def test_azurite_entity_round_trip_with_etag_conflict(
    azurite: Azurite,
    table_service: TableServiceClient,
    unique_prefix: str,
) -> None:
    table = table_service.create_table(f"{unique_prefix}queue")
    entity = {"PartitionKey": "p", "RowKey": "r", "Attempts": 0}
    table.create_entity(entity)
    got = table.get_entity("p", "r")
    etag = got.metadata["etag"]
    table.update_entity(
        {**entity, "Attempts": 1},
        mode=UpdateMode.MERGE,
        etag=etag,
        match_condition=MatchConditions.IfNotModified,
    )
    with pytest.raises(ResourceModifiedError):
        table.update_entity(
            {**entity, "Attempts": 2},
            mode=UpdateMode.MERGE,
            etag=etag,
            match_condition=MatchConditions.IfNotModified,
        )
    assert table.get_entity("p", "r")["Attempts"] == 1
    assert azurite.table_endpoint.startswith("http://127.0.0.1:") or azurite.external
