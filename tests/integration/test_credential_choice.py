"""Which credential each environment gets (issue 20, item 4), and the developer's own login
working end to end: a stand-in `az` on PATH hands out a token the Logs Ingestion stand-in accepts."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from azure.identity import (
    AzureCliCredential,
    AzureDeveloperCliCredential,
    ChainedTokenCredential,
    ClientSecretCredential,
    ManagedIdentityCredential,
)

from local.standins.identity import TokenIssuer
from local.standins.logs_ingestion import LogsIngestionStandIn
from shared.delivery.identity import (
    CLIENT_SECRET,
    DEVELOPER,
    MANAGED_IDENTITY,
    build_credential,
    credential_kind,
)
from shared.delivery.ingestion import Deliverer, build_ingestion_client

CLIENT = "0f8fad5b-d9cb-469f-a165-70867728950e"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
SECRET = {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_SECRET": "app-registration-secret"}
APP_SERVICE = {"WEBSITE_INSTANCE_ID": "0123abcd", "IDENTITY_ENDPOINT": "http://127.0.0.1:41741/msi/token"}


@pytest.mark.parametrize(
    ("env", "client_id", "kind"),
    [
        # On Azure: the managed identity, system- or user-assigned; never a login on the machine.
        (APP_SERVICE, None, MANAGED_IDENTITY),
        (APP_SERVICE, CLIENT, MANAGED_IDENTITY),
        ({"WEBSITE_INSTANCE_ID": "0123abcd"}, None, MANAGED_IDENTITY),
        ({"IDENTITY_ENDPOINT": "http://127.0.0.1:1/token"}, None, MANAGED_IDENTITY),  # local stand-in
        ({"MSI_ENDPOINT": "http://127.0.0.1:1/token"}, CLIENT, MANAGED_IDENTITY),
        # An app registration's secret wins everywhere, when complete.
        ({**APP_SERVICE, **SECRET}, CLIENT, CLIENT_SECRET),
        (SECRET, CLIENT, CLIENT_SECRET),
        # Off Azure with no managed identity: the developer's own login.
        ({}, None, DEVELOPER),
        ({}, CLIENT, DEVELOPER),
        ({"AZURE_TENANT_ID": TENANT}, None, DEVELOPER),
        (SECRET, None, DEVELOPER),  # a secret without a client id is no app registration
        ({"WEBSITE_INSTANCE_ID": ""}, None, DEVELOPER),  # set but empty is not Azure
    ],
)
def test_credential_for_each_environment(env: dict[str, str], client_id: str | None, kind: str) -> None:
    assert credential_kind(client_id, env) == kind
    built = build_credential(client_id, env=env)
    expected = {
        MANAGED_IDENTITY: ManagedIdentityCredential,
        CLIENT_SECRET: ClientSecretCredential,
        DEVELOPER: ChainedTokenCredential,
    }[kind]
    assert isinstance(built, expected)
    if kind == DEVELOPER:
        assert isinstance(built, ChainedTokenCredential)
        assert [type(c) for c in built.credentials] == [AzureCliCredential, AzureDeveloperCliCredential]


@pytest.fixture
def fake_az(tmp_path: Path, token_issuer: TokenIssuer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An `az` first on PATH that answers `az account get-access-token` as the CLI does, with a
    token from the stand-ins' issuer, and records its arguments."""
    token, expires_on = token_issuer.issue("https://monitor.azure.com", "developer")
    answer = json.dumps({"accessToken": token, "expires_on": expires_on, "tokenType": "Bearer"})
    calls = tmp_path / "az-calls.txt"
    script = tmp_path / "az"
    script.write_text(f"#!/bin/sh\necho \"$@\" >> '{calls}'\ncat <<'EOF'\n{answer}\nEOF\n", encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    return calls


def test_a_local_run_sends_with_the_developers_az_login(
    fake_az: Path, ingestion: LogsIngestionStandIn, tls_ca: str
) -> None:
    credential = build_credential(None, env={"AZURE_TENANT_ID": TENANT}, ca_bundle=tls_ca)
    client = build_ingestion_client(
        ingestion.endpoint, credential, read_timeout=10, connect_timeout=10, ca_bundle=tls_ca
    )
    attempt = Deliverer(client, ingestion.dcr_id, ingestion.stream).probe()
    assert attempt.ok, attempt
    (call,) = fake_az.read_text(encoding="utf-8").splitlines()
    assert "account get-access-token" in call
    assert "--resource https://monitor.azure.com" in call and f"--tenant {TENANT}" in call


def test_without_a_login_the_probe_says_how_to_log_in(
    tmp_path: Path, ingestion: LogsIngestionStandIn, tls_ca: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.health.probe import advice_for

    monkeypatch.setenv("PATH", str(tmp_path))  # neither az nor azd
    client = build_ingestion_client(
        ingestion.endpoint,
        build_credential(None, env={}),
        read_timeout=10,
        connect_timeout=10,
        ca_bundle=tls_ca,
    )
    attempt = Deliverer(client, ingestion.dcr_id, ingestion.stream).probe()
    assert attempt.error == "authentication_error"
    assert "az login" in advice_for(attempt)
