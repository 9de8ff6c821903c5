"""Key Vault secret references: the forms accepted, and a clear refusal for the rest."""

from __future__ import annotations

import pytest

from shared.tenancy.secrets import SecretRef, SecretRefError, parse_secret_ref, vault_audience

V = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "https://relay-kv.vault.azure.net/secrets/webhook-secret",
            SecretRef("https://relay-kv.vault.azure.net", "webhook-secret"),
        ),
        (
            "https://relay-kv.vault.azure.net/secrets/webhook-secret/",
            SecretRef("https://relay-kv.vault.azure.net", "webhook-secret"),
        ),
        (
            f"https://Relay-KV.vault.azure.net/secrets/w/{V.upper()}",
            SecretRef("https://relay-kv.vault.azure.net", "w", V),
        ),
        (
            "https://kv.vault.usgovcloudapi.net/secrets/a",
            SecretRef("https://kv.vault.usgovcloudapi.net", "a"),
        ),
        ("https://kv.vault.azure.cn:443/secrets/a", SecretRef("https://kv.vault.azure.cn", "a")),
        ("https://127.0.0.1:8443/secrets/a", SecretRef("https://127.0.0.1:8443", "a")),
        (
            "@Microsoft.KeyVault(SecretUri=https://relay-kv.vault.azure.net/secrets/webhook-secret/)",
            SecretRef("https://relay-kv.vault.azure.net", "webhook-secret"),
        ),
        (
            f" @Microsoft.KeyVault(VaultName=relay-kv; SecretName=tok; SecretVersion={V}) ",
            SecretRef("https://relay-kv.vault.azure.net", "tok", V),
        ),
    ],
)
def test_accepted_forms(text: str, expected: SecretRef) -> None:
    assert parse_secret_ref(text) == expected


def test_uri_forms() -> None:
    ref = parse_secret_ref(f"https://kv.vault.azure.net/secrets/a/{V}")
    assert ref.uri == f"https://kv.vault.azure.net/secrets/a/{V}"
    assert ref.versionless == "https://kv.vault.azure.net/secrets/a"
    assert ref.host == "kv.vault.azure.net"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("plain-secret-value-" + "x" * 80, "not an https Key Vault secret URI"),
        ("http://kv.vault.azure.net/secrets/a", "https"),
        ("https://example.com/secrets/a", "not a Key Vault host"),
        ("https://kv.vault.azure.net:8443/secrets/a", "not a Key Vault host"),
        ("https://127.0.0.1/secrets/a", "needs its port"),
        ("https://kv.vault.azure.net/keys/a", "/secrets/<name>"),
        ("https://kv.vault.azure.net/secrets/a/b/c", "/secrets/<name>"),
        ("https://kv.vault.azure.net/secrets/bad_name", "secret name"),
        ("https://kv.vault.azure.net/secrets/a/notaversion", "32 hex digits"),
        ("https://kv.vault.azure.net/secrets/a?x=1", "no query"),
        ("@Microsoft.KeyVault(SecretName=a)", "SecretUri="),
        ("@Microsoft.KeyVault(VaultName=a_b;SecretName=a)", "not a vault name"),
    ],
)
def test_refused_with_a_fix(text: str, says: str) -> None:
    with pytest.raises(SecretRefError) as err:
        parse_secret_ref(text)
    message = str(err.value)
    assert says in message
    assert "x" * 41 not in message  # never echoes much of the input (it may be a pasted secret)


@pytest.mark.parametrize(
    ("vault", "audience"),
    [
        ("https://kv.vault.azure.net", "https://vault.azure.net"),
        ("https://kv.vault.usgovcloudapi.net", "https://vault.usgovcloudapi.net"),
        ("https://kv.vault.azure.cn", "https://vault.azure.cn"),
        ("https://127.0.0.1:8443", "https://vault.azure.net"),
    ],
)
def test_token_audience_follows_the_vaults_cloud(vault: str, audience: str) -> None:
    assert vault_audience(vault) == audience
