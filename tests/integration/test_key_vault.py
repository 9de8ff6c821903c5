"""Key Vault secrets by reference: the REAL ManagedIdentityCredential (identity stand-in) ->
KeyVaultSecrets (azure-core pipeline) -> the Key Vault stand-in over HTTPS."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta

import pytest
from azure.identity import ManagedIdentityCredential
from store_fixtures import FakeClock

from local.standins import tls
from local.standins.identity import SYSTEM_CLIENT_ID as RELAY
from local.standins.identity import ManagedIdentityStandIn, TokenIssuer
from local.standins.key_vault import KeyVaultStandIn
from shared.tenancy.secrets import STALE_FOR, KeyVaultSecrets, SecretUnavailable

VALUE = "s3cr3t-value-that-must-never-be-logged"
TTL = timedelta(minutes=5)


@pytest.fixture(scope="module")
def vault_standin(token_issuer: TokenIssuer) -> Iterator[KeyVaultStandIn]:
    with KeyVaultStandIn(token_issuer) as standin:
        yield standin


@pytest.fixture
def vault(vault_standin: KeyVaultStandIn) -> Iterator[KeyVaultStandIn]:
    vault_standin.reset()
    yield vault_standin
    vault_standin.reset()


@pytest.fixture
def secrets(
    managed_identity_env: dict[str, str], identity: ManagedIdentityStandIn, tls_ca: str, clock: FakeClock
) -> Iterator[KeyVaultSecrets]:
    credential = ManagedIdentityCredential()
    store = KeyVaultSecrets(credential, ca_bundle=tls_ca, ttl=TTL, clock=clock)
    yield store
    store.close()
    credential.close()


def test_get_reads_the_newest_version_or_the_pinned_one(
    vault: KeyVaultStandIn, secrets: KeyVaultSecrets
) -> None:
    first = vault.seed("webhook-secret", "one")
    vault.seed("webhook-secret", VALUE)
    assert secrets.get(vault.secret_uri("webhook-secret")) == VALUE
    assert secrets.get(vault.secret_uri("webhook-secret", first)) == "one"
    wrapped = f"@Microsoft.KeyVault(SecretUri={vault.secret_uri('webhook-secret')}/)"
    assert secrets.get(wrapped) == VALUE
    assert [(r.method, r.status, r.client_id) for r in vault.requests] == [
        ("GET", 200, RELAY),
        ("GET", 200, RELAY),
    ]  # the wrapped form is the same reference as the bare URI: served from the cache


def test_set_writes_a_new_version_and_drops_the_cache(
    vault: KeyVaultStandIn, secrets: KeyVaultSecrets
) -> None:
    ref = vault.secret_uri("wallarm-api-token")
    vault.seed("wallarm-api-token", "old")
    assert secrets.get(ref) == "old"
    assert secrets.set(ref + "/" + vault.versions("wallarm-api-token")[0], VALUE) == ref
    assert len(vault.versions("wallarm-api-token")) == 2
    assert secrets.get(ref) == VALUE
    assert [r.method for r in vault.requests] == ["GET", "PUT", "GET"]


def test_cache_lasts_the_ttl(vault: KeyVaultStandIn, secrets: KeyVaultSecrets, clock: FakeClock) -> None:
    ref = vault.secret_uri("rotating")
    vault.seed("rotating", "v1")
    assert secrets.get(ref) == "v1"
    vault.seed("rotating", "v2")  # rotated behind the relay's back
    clock.advance(TTL - timedelta(seconds=1))
    assert secrets.get(ref) == "v1"
    assert len(vault.requests) == 1
    clock.advance(timedelta(seconds=1))
    assert secrets.get(ref) == "v2"
    assert len(vault.requests) == 2


def test_stale_on_error_during_an_outage_then_recovery(
    vault: KeyVaultStandIn, secrets: KeyVaultSecrets, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ref = vault.secret_uri("webhook-secret")
    vault.seed("webhook-secret", VALUE)
    assert secrets.get(ref) == VALUE
    vault.set_outage(503)
    clock.advance(TTL)
    assert secrets.get(ref) == VALUE  # refresh failed: the last value, logged once
    tried = len(vault.requests)
    assert tried > 1
    clock.advance(timedelta(seconds=10))
    assert secrets.get(ref) == VALUE
    assert len(vault.requests) == tried  # not hammered: the next try waits
    clock.advance(timedelta(seconds=30))
    assert secrets.get(ref) == VALUE
    assert len(vault.requests) > tried
    stale = [r for r in caplog.records if "keyvault_stale" in r.getMessage()]
    assert len(stale) == 1 and stale[0].levelno == logging.WARNING

    vault.set_outage(None)
    vault.seed("webhook-secret", "rotated")
    clock.advance(timedelta(seconds=30))
    assert secrets.get(ref) == "rotated"
    assert any("keyvault_recovered" in r.getMessage() for r in caplog.records)

    # An outage longer than the hour of grace fails, as it must.
    vault.set_outage(503)
    clock.advance(TTL + STALE_FOR)
    with pytest.raises(SecretUnavailable) as err:
        secrets.get(ref)
    assert err.value.status == 503 and err.value.transient
    assert VALUE not in caplog.text and "rotated" not in caplog.text


def test_typed_errors_403_404_401(
    vault: KeyVaultStandIn,
    secrets: KeyVaultSecrets,
    managed_identity_env: dict[str, str],
    tls_ca: str,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    vault.seed("webhook-secret", VALUE)
    ref = vault.secret_uri("webhook-secret")

    with pytest.raises(SecretUnavailable) as missing:
        secrets.get(vault.secret_uri("no-such-secret"))
    assert (missing.value.status, missing.value.code) == (404, "SecretNotFound")
    assert missing.value.name == "no-such-secret" and missing.value.vault_host == vault.vault_url[8:]
    assert missing.value.request_id and not missing.value.transient

    vault.grant("someone-else", "*", read=True, write=True)  # the relay holds no grant now
    with pytest.raises(SecretUnavailable) as denied:
        secrets.get(ref)
    assert (denied.value.status, denied.value.code) == (403, "Forbidden")
    assert "Key Vault Secrets User" in str(denied.value)
    with pytest.raises(SecretUnavailable) as denied_write:
        secrets.set(ref, VALUE)
    assert denied_write.value.status == 403

    vault.grant(RELAY, "webhook-secret")  # read only
    assert secrets.get(ref) == VALUE
    with pytest.raises(SecretUnavailable):
        secrets.set(ref, "x")

    wrong_cloud = KeyVaultSecrets(
        ManagedIdentityCredential(), ca_bundle=tls_ca, audience="https://vault.azure.cn"
    )
    with pytest.raises(SecretUnavailable) as refused:
        wrong_cloud.get(ref)
    assert (refused.value.status, refused.value.code) == (401, "Unauthorized")
    wrong_cloud.close()

    for err in (missing, denied, denied_write, refused):
        assert VALUE not in str(err.value)
    assert VALUE not in caplog.text


def test_a_revoked_grant_is_not_served_stale(
    vault: KeyVaultStandIn, secrets: KeyVaultSecrets, clock: FakeClock
) -> None:
    vault.seed("webhook-secret", VALUE)
    ref = vault.secret_uri("webhook-secret")
    assert secrets.get(ref) == VALUE
    vault.grant("someone-else")
    clock.advance(TTL)
    with pytest.raises(SecretUnavailable) as err:
        secrets.get(ref)
    assert err.value.status == 403


def test_standin_answers_like_key_vault_without_a_token(vault: KeyVaultStandIn) -> None:
    vault.seed("webhook-secret", VALUE)
    request = urllib.request.Request(vault.secret_uri("webhook-secret") + "?api-version=7.5")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, context=tls.client_ssl_context(), timeout=5)
    assert err.value.code == 401
    challenge = err.value.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer authorization="https://login.microsoftonline.com/')
    assert 'resource="https://vault.azure.net"' in challenge
    assert err.value.headers["x-ms-request-id"]
    assert json.loads(err.value.read())["error"]["code"] == "Unauthorized"


def test_answer_shape(vault: KeyVaultStandIn, token_issuer: TokenIssuer) -> None:
    token, _ = token_issuer.issue("https://vault.azure.net", RELAY)
    request = urllib.request.Request(
        vault.secret_uri("new-one") + "?api-version=7.5",
        data=json.dumps({"value": VALUE}).encode(),
        method="PUT",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, context=tls.client_ssl_context(), timeout=5) as resp:
        bundle = json.loads(resp.read())
    assert bundle["value"] == VALUE
    assert bundle["id"] == vault.secret_uri("new-one", vault.versions("new-one")[0])
    assert bundle["attributes"]["enabled"] is True


def test_an_answer_larger_than_any_key_vault_secret_is_not_read(
    vault: KeyVaultStandIn, secrets: KeyVaultSecrets
) -> None:
    vault.seed("huge", "x" * (4 * 1024 * 1024))  # Key Vault keeps at most 25 KB
    with pytest.raises(SecretUnavailable) as caught:
        secrets.get(vault.secret_uri("huge"))
    assert caught.value.code == "TooLarge"
    vault.seed("fine", "y" * 25_000)
    assert secrets.get(vault.secret_uri("fine")) == "y" * 25_000
