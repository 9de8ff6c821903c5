"""Tenant names, Key Vault references and specs: what is refused, and that each refusal says how
to fix it without repeating more than 40 characters of the value (never a secret's)."""

from __future__ import annotations

import pytest

from shared.tenancy.names import (
    DEFAULT_TENANT,
    RESERVED_NAMES,
    reserved_problem,
    slug_problem,
    tenant_table_prefix,
)
from shared.tenancy.refs import keyvault_ref_problem, normalized, versionless
from shared.tenancy.spec import (
    DestinationCredential,
    TenantSpec,
    credential_problems,
    spec_problems,
    tenant_env,
)

REF = "https://relayvault.vault.azure.net/secrets/contoso-hook"
GUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
BASE = {
    "LOGS_INGESTION_ENDPOINT": "https://default.westeurope-1.ingest.monitor.azure.com",
    "LOGS_DCR_IMMUTABLE_ID": "dcr-default",
    "RELAY_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",
    "WEBHOOK_SHARED_SECRET": "the-default-tenant-secret-0123456789",
    "WALLARM_API_TOKEN": "default-token",
    "RELAY_TABLE_PREFIX": "wallarmrelay",
}
OWN = {
    "LOGS_INGESTION_ENDPOINT": "https://contoso.westeurope-1.ingest.monitor.azure.com",
    "LOGS_DCR_IMMUTABLE_ID": "dcr-contoso",
}


def spec(name: str = "contoso-eu", **changes: object) -> TenantSpec:
    values: dict[str, object] = {
        "name": name,
        "settings": dict(OWN),
        "secret_refs": {"WEBHOOK_SHARED_SECRET": REF},
        "credential": DestinationCredential(),
        **changes,
    }
    return TenantSpec(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name", ["", "a" * 200, "contoso-ü", "Contoso", "a--b", "../x", "-ab", "ab-", "ab", "1ab", "a b", "a_b"]
)
def test_names_that_are_not_slugs_are_refused_with_the_rule_and_an_example(name: str) -> None:
    problem = slug_problem(name)
    assert problem is not None and "e.g. contoso-eu" in problem
    assert name[:41] not in problem or len(name) <= 40


def test_a_long_name_is_quoted_cut_to_40_characters() -> None:
    problem = slug_problem("a" * 200)
    assert problem is not None and "a" * 41 not in problem and "a" * 40 in problem


@pytest.mark.parametrize("name", ["abc", "contoso-eu", "a1-b2-c3", "a" * 32])
def test_slugs_pass(name: str) -> None:
    assert slug_problem(name) is None


def test_reserved_names() -> None:
    assert {"default", "test", "relay", "tenants", "all", "api", "admin", "status"} == RESERVED_NAMES
    assert all(reserved_problem(n) for n in RESERVED_NAMES) and reserved_problem("contoso") is None
    assert spec_problems(spec("tenants"), BASE)[0].startswith("the tenant name 'tenants' is reserved")


def test_table_prefix_squashes_hyphens_and_the_default_keeps_its_tables() -> None:
    assert tenant_table_prefix("wallarmrelay", "contoso-eu") == "wallarmrelaytcontosoeu"
    assert tenant_table_prefix("wallarmrelay", "a-b") == tenant_table_prefix("wallarmrelay", "ab")
    assert tenant_table_prefix("wallarmrelay", DEFAULT_TENANT) == "wallarmrelay"


@pytest.mark.parametrize(
    "ref",
    [
        REF,
        REF + "/0123456789abcdef0123456789abcdef",
        REF + "/",
        "https://gov-vault.vault.usgovcloudapi.net/secrets/x",
        "https://cn-vault.vault.azure.cn/secrets/x",
        "https://127.0.0.1:8443/secrets/x",
        "https://localhost:8443/secrets/x",
        "https://[::1]:8443/secrets/x",
        f"@Microsoft.KeyVault(SecretUri={REF})",
    ],
)
def test_key_vault_references_pass(ref: str) -> None:
    assert keyvault_ref_problem(ref) is None


@pytest.mark.parametrize(
    ("ref", "said"),
    [
        ("hunter2-plain-secret", "put the secret in Key Vault"),
        ("", "put the secret in Key Vault"),
        ("http://relayvault.vault.azure.net/secrets/x", "https://"),
        ("https://relayvault.example.com/secrets/x", "not a Key Vault"),
        ("https://relayvault.vault.azure.net.evil.example/secrets/x", "not a Key Vault"),
        ("https://user:pw@relayvault.vault.azure.net/secrets/x", "no user name or password"),
        ("https://relayvault.vault.azure.net/secrets/x?api-version=7.5", "no query or fragment"),
        ("https://relayvault.vault.azure.net/secrets/x#v", "no query or fragment"),
        ("https://relayvault.vault.azure.net/keys/x", "/secrets/<name>"),
        ("https://relayvault.vault.azure.net/secrets/x/notaversion", "/secrets/<name>"),
        ("https://relayvault.vault.azure.net/secrets/../x", "/secrets/<name>"),
        ("@Microsoft.KeyVault(VaultName=v;SecretName=s)", "SecretUri="),
    ],
)
def test_what_is_not_a_reference_is_refused_without_repeating_it(ref: str, said: str) -> None:
    problem = keyvault_ref_problem(ref)
    assert problem is not None and said in problem
    assert not ref or ref not in problem


def test_references_are_stored_unwrapped_and_rotated_versionless() -> None:
    assert normalized(f" @Microsoft.KeyVault(SecretUri={REF}/) ") == REF
    assert versionless(REF + "/0123456789abcdef0123456789abcdef") == REF
    assert versionless(REF) == REF


def test_a_valid_spec_has_no_problems() -> None:
    assert spec_problems(spec(), BASE) == []


def test_the_default_tenants_secrets_and_destination_are_never_inherited() -> None:
    env = tenant_env(
        {**BASE, "WEBSITE_HOSTNAME": "relay.azurewebsites.net"}, spec(), {"WEBHOOK_SHARED_SECRET": "s" * 32}
    )
    assert env["WEBHOOK_SHARED_SECRET"] == "s" * 32 and "WALLARM_API_TOKEN" not in env
    assert env["LOGS_DCR_IMMUTABLE_ID"] == "dcr-contoso"
    assert env["RELAY_TABLE_PREFIX"] == "wallarmrelaytcontosoeu"
    assert env["WALLARM_INTEGRATION_URL"] == "https://relay.azurewebsites.net/api/wallarm/contoso-eu"
    problems = spec_problems(spec(settings={}, secret_refs={}), BASE)
    assert any(p.startswith("WEBHOOK_SHARED_SECRET is missing") for p in problems)
    assert any(p.startswith("LOGS_INGESTION_ENDPOINT is missing") for p in problems)
    assert any(p.startswith("LOGS_DCR_IMMUTABLE_ID is missing") for p in problems)


def test_keys_a_tenant_may_not_set_and_secrets_as_settings_are_refused() -> None:
    problems = spec_problems(
        spec(
            settings={**OWN, "WEBHOOK_SHARED_SECRET": "plain", "RELAY_TABLE_PREFIX": "x"},
            secret_refs={"WEBHOOK_SHARED_SECRET": REF, "LOGS_DCR_IMMUTABLE_ID": REF},
        ),
        BASE,
    )
    assert any("WEBHOOK_SHARED_SECRET is a secret, never a setting" in p for p in problems)
    assert any("'RELAY_TABLE_PREFIX' is not a setting a tenant may set" in p for p in problems)
    assert any("'LOGS_DCR_IMMUTABLE_ID' is not a tenant secret" in p for p in problems)
    assert not any("plain" in p for p in problems)


def test_settings_are_checked_by_load_settings() -> None:
    problems = spec_problems(spec(settings={**OWN, "LOGS_STREAM_NAME": "WallarmSentinel_CL"}), BASE)
    assert any(
        p.startswith("LOGS_STREAM_NAME='WallarmSentinel_CL' must start with 'Custom-'") for p in problems
    )


def test_a_plain_secret_as_reference_is_refused_and_never_repeated() -> None:
    problems = spec_problems(spec(secret_refs={"WEBHOOK_SHARED_SECRET": "hunter2-plain-secret"}), BASE)
    assert any("put the secret in Key Vault" in p for p in problems)
    assert not any("hunter2" in p for p in problems)


def test_a_name_too_long_for_its_tables_says_how_long_it_may_be() -> None:
    problems = spec_problems(spec("a" * 32), BASE)
    assert problems == [p for p in problems if "too long for its tables" in p] and len(problems) == 1
    assert "at most 27 letters and digits" in problems[0]


@pytest.mark.parametrize(
    ("cred", "said"),
    [
        (DestinationCredential("app_secret", GUID, GUID), "--credential-secret-ref"),
        (DestinationCredential("app_certificate", None, GUID, REF), "--client-id"),
        (DestinationCredential("federated_identity", GUID), "--entra-tenant-id"),
        (DestinationCredential("federated_identity", GUID, GUID, REF), "takes no secret"),
        (DestinationCredential("managed_identity", None, GUID), "takes no Entra tenant id"),
        (DestinationCredential("managed_identity", "not-a-guid"), "is not a GUID"),
        (DestinationCredential("app_secret", GUID, GUID, "plain"), "put the secret in Key Vault"),
        (DestinationCredential("password"), "is not one of"),
    ],
)
def test_credential_fields_per_kind(cred: DestinationCredential, said: str) -> None:
    assert any(said in p for p in credential_problems(cred))


@pytest.mark.parametrize(
    "cred",
    [
        DestinationCredential(),
        DestinationCredential("managed_identity", GUID),
        DestinationCredential("app_secret", GUID, GUID, REF),
        DestinationCredential("app_certificate", GUID, GUID, REF),
        DestinationCredential("federated_identity", GUID, GUID),
    ],
)
def test_complete_credentials_pass(cred: DestinationCredential) -> None:
    assert credential_problems(cred) == []


@pytest.mark.parametrize(
    "ref",
    [
        "https://127.0.0.1:8443/secrets/hook",
        "https://localhost:8443/secrets/hook",
        "@Microsoft.KeyVault(SecretUri=https://[::1]:8443/secrets/hook)",
    ],
)
def test_a_loopback_vault_is_the_local_stand_in_and_refused_on_azure(ref: str) -> None:
    local = spec(secret_refs={"WEBHOOK_SHARED_SECRET": ref})
    assert spec_problems(local, BASE) == []
    on_azure = {**BASE, "WEBSITE_INSTANCE_ID": "instance-0"}
    assert any("loopback" in p for p in spec_problems(local, on_azure))
    cert = spec(
        credential=DestinationCredential(
            kind="app_certificate", client_id=GUID, entra_tenant_id=GUID, secret_ref=ref
        )
    )
    assert any("loopback" in p for p in spec_problems(cert, on_azure))
    assert spec_problems(spec(), on_azure) == []
