"""Shared fixtures: HTTPS Azure stand-ins, Azurite, and the REAL SDK clients wired to them.

Servers are session-scoped (started once); ``ingestion`` resets the ingestion stand-in around
every test so faults and rows never leak between tests. Azurite failing to start fails the
tests that need it (never a skip): run ``npm ci`` first, or set ``AZURITE_CONNECTION_STRING``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from azure.data.tables import TableServiceClient
from azure.identity import ManagedIdentityCredential
from azure.monitor.ingestion import LogsIngestionClient
from store_fixtures import reset_around

from local.standins import tls
from local.standins.azurite import Azurite
from local.standins.identity import ManagedIdentityStandIn, TokenIssuer
from local.standins.logs_ingestion import LogsIngestionStandIn

# Fast retries for tests: azure-core still honours Retry-After when a response carries one.
FAST_RETRY: dict[str, float | int] = {
    "retry_total": 3,
    "retry_backoff_factor": 0.01,
    "retry_backoff_max": 0.05,
}


@pytest.fixture(scope="session")
def fast_retry() -> dict[str, float | int]:
    """azure-core retry kwargs that keep retry tests fast (pass as ``**fast_retry`` to a client)."""
    return dict(FAST_RETRY)


@pytest.fixture(scope="session")
def tls_ca() -> str:
    """Path of the stand-in CA's PEM (pass as ``connection_verify``)."""
    return tls.ca_bundle_path()


@pytest.fixture(scope="session")
def token_issuer() -> TokenIssuer:
    return TokenIssuer()


@pytest.fixture(scope="session")
def identity_standin(token_issuer: TokenIssuer) -> Iterator[ManagedIdentityStandIn]:
    with ManagedIdentityStandIn(token_issuer) as standin:
        yield standin


@pytest.fixture(scope="session")
def ingestion_standin(token_issuer: TokenIssuer, tls_ca: str) -> Iterator[LogsIngestionStandIn]:
    with LogsIngestionStandIn(token_issuer) as standin:
        yield standin


@pytest.fixture
def ingestion(ingestion_standin: LogsIngestionStandIn) -> Iterator[LogsIngestionStandIn]:
    with reset_around(ingestion_standin) as standin:
        yield standin


@pytest.fixture
def identity(identity_standin: ManagedIdentityStandIn) -> Iterator[ManagedIdentityStandIn]:
    with reset_around(identity_standin) as standin:
        yield standin


@pytest.fixture
def managed_identity_env(identity: ManagedIdentityStandIn, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Sets IDENTITY_ENDPOINT/IDENTITY_HEADER as App Service does; clears AZURE_CLIENT_ID."""
    env = identity.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("AZURE_CLIENT_ID", "IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET"):
        monkeypatch.delenv(name, raising=False)
    return env


@pytest.fixture
def ingestion_client(
    ingestion: LogsIngestionStandIn,
    managed_identity_env: dict[str, str],
    tls_ca: str,
) -> Iterator[LogsIngestionClient]:
    """The REAL LogsIngestionClient + REAL ManagedIdentityCredential against the stand-ins."""
    credential = ManagedIdentityCredential()
    client = LogsIngestionClient(
        ingestion.endpoint, credential=credential, connection_verify=tls_ca, **FAST_RETRY
    )
    with client:
        yield client
    credential.close()


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """One Azurite Table service per session (or the one in AZURITE_CONNECTION_STRING)."""
    emulator = Azurite()
    emulator.start()  # raises AzuriteError (test error, not skip) when it cannot start
    yield emulator
    emulator.stop()


@pytest.fixture
def table_service(azurite: Azurite) -> Iterator[TableServiceClient]:
    with TableServiceClient.from_connection_string(azurite.connection_string) as service:
        yield service


@pytest.fixture
def unique_prefix(request: pytest.FixtureRequest) -> str:
    """A per-test table-name prefix: alphanumeric, starts with a letter, short (tables allow 63)."""
    stem = re.sub(r"[^A-Za-z0-9]", "", request.node.name)[:16] or "t"
    return f"t{stem}{uuid.uuid4().hex[:8]}"
