"""Every settings error says what is wrong, the accepted form and an example; Key Vault references
that did not resolve are named, never taken as the value (issue 20, items 1, 5 and 6)."""

from __future__ import annotations

import pytest

from shared.settings import (
    COMPLETENESS_FLAGS,
    COMPLETENESS_NUMBERS,
    NUMBERS,
    SELECTION_FLAGS,
    TEXTS,
    Flag,
    Number,
    SettingsError,
    is_unresolved_reference,
    keyvault_problem,
    load_settings,
    setting_names,
)

MINIMAL: dict[str, str] = {
    "LOGS_INGESTION_ENDPOINT": "https://relay-dce.westeurope-1.ingest.monitor.azure.com",
    "LOGS_DCR_IMMUTABLE_ID": "dcr-0123456789abcdef0123456789abcdef",
    "RELAY_STORAGE_TABLE_ENDPOINT": "https://relaystore.table.core.windows.net",
}
REFERENCE = "@Microsoft.KeyVault(SecretUri=https://relay-kv.vault.azure.net/secrets/webhook-secret/)"
# A wrong value for each text setting of the spec; the ones that take any text say why instead.
BAD_TEXT: dict[str, str] = {
    "LOGS_INGESTION_ENDPOINT": "http://relay-dce.westeurope-1.ingest.monitor.azure.com",
    "LOGS_DCR_IMMUTABLE_ID": "relay-dcr",
    "LOGS_STREAM_NAME": "WallarmSentinel_CL",
    "LOGS_INGESTION_AUDIENCE": "mars",
    "AZURE_CLIENT_ID": "relay-identity",
    "RELAY_STORAGE_TABLE_ENDPOINT": "relaystore.table.core.windows.net",
    "RELAY_STORAGE_CONNECTION_STRING": "relaystore",
    "RELAY_TABLE_PREFIX": "wallarm-relay",
    "WEBHOOK_SHARED_SECRET": "short",
    "WEBHOOK_SECRET_HEADER": "X-Relay:Secret",
    "ALLOWED_SOURCE_NETWORKS": "34.94.300.0/24",
    "SELECT_SECURITY_ISSUE_RISKS": "severe",
    "RETRY_SCHEDULE": "1s,3s",
    "WALLARM_API_CLOUD": "de",
    "WALLARM_API_URL": "http://api.wallarm.com",
    "WALLARM_CLIENT_ID": "acme",
    "LOGS_WORKSPACE_ID": "/subscriptions/0000/resourceGroups/rg/providers/"
    "Microsoft.OperationalInsights/workspaces/relay-law",
    "LOGS_QUERY_ENDPOINT": "http://api.loganalytics.io",
    "WALLARM_INTEGRATION_URL": "relay.azurewebsites.net/api/wallarm",
}
ANY_TEXT = {
    "RELAY_CA_BUNDLE": "a path; azure-core reports a missing file at the first call",
    "WALLARM_API_TOKEN": "opaque; Wallarm's 401 is reported by the watchdog",
}
EXAMPLES = {t.name: t.example for t in TEXTS}


def problems(**env: str) -> list[str]:
    with pytest.raises(SettingsError) as info:
        load_settings({**MINIMAL, **env})
    return info.value.problems


def test_every_text_setting_has_a_bad_value_or_a_reason() -> None:
    assert set(BAD_TEXT) | set(ANY_TEXT) == {t.name for t in TEXTS}
    assert all(t.example for t in TEXTS)


@pytest.mark.parametrize("name", sorted(BAD_TEXT))
def test_each_text_error_names_the_setting_the_form_and_an_example(name: str) -> None:
    (problem,) = problems(**{name: BAD_TEXT[name]})
    assert problem.startswith(name), problem
    assert "e.g." in problem and EXAMPLES[name] in problem, problem


@pytest.mark.parametrize("spec", [*NUMBERS.values(), *COMPLETENESS_NUMBERS.values()], ids=lambda s: s.name)
@pytest.mark.parametrize("bad", ["5MB", "60%", "nan", "inf", "-inf", "1e300", "-1"])
def test_each_number_error_names_the_form_and_an_example(spec: Number, bad: str) -> None:
    name = spec.name
    (problem,) = problems(**{name: bad})  # never an OverflowError or ValueError of its own
    assert problem.startswith(f"{name}={bad!r} ")
    assert f": use {spec.form}, e.g. {name}=" in problem, problem


@pytest.mark.parametrize("flag", [*SELECTION_FLAGS, *COMPLETENESS_FLAGS.values()], ids=lambda f: f.name)
def test_each_flag_error_names_the_form_and_an_example(flag: Flag) -> None:
    name = flag.name
    (problem,) = problems(**{name: "perhaps"})
    assert "use true or false, e.g." in problem


def test_the_issue_examples_say_the_accepted_form() -> None:
    (ratio,) = problems(AUTO_DISABLE_FAILURE_RATIO="60%")
    assert "a number between 0.01 and 1, e.g. AUTO_DISABLE_FAILURE_RATIO=0.6" in ratio
    (size,) = problems(MAX_BODY_BYTES="5MB")
    assert "a whole number of bytes, at least 1024, e.g. MAX_BODY_BYTES=5242880" in size
    (fraction,) = problems(MAX_BODY_BYTES="5242880.5")
    assert "is not a whole number" in fraction
    (schedule,) = problems(RETRY_SCHEDULE="every thirty minutes")
    assert "e.g. RETRY_SCHEDULE=1s,3s,5s,10s,10s; 1m,3m,10m,30m; every 30m" in schedule
    example = schedule.split("e.g. RETRY_SCHEDULE=")[1].rstrip(".")
    load_settings({**MINIMAL, "RETRY_SCHEDULE": example})  # the example itself is valid


def test_an_unknown_wallarm_cloud_is_refused_without_a_token_too() -> None:
    (cloud,) = problems(WALLARM_API_CLOUD="de")
    assert cloud.startswith("WALLARM_API_CLOUD='de' is not a Wallarm Cloud: use us or eu")
    (me,) = problems(WALLARM_API_CLOUD="me")
    assert "retired" in me
    assert load_settings({**MINIMAL, "WALLARM_API_CLOUD": "US"}).completeness.wallarm_cloud == "us"


@pytest.mark.parametrize("name", ["WALLARM_API_URL", "LOGS_QUERY_ENDPOINT", "RELAY_STORAGE_TABLE_ENDPOINT"])
def test_plain_http_only_to_a_loopback_stand_in(name: str) -> None:
    (problem,) = problems(**{name: "http://127.0.0.1.attacker.example/"})
    assert "must be an https:// URL" in problem
    load_settings({**MINIMAL, name: "http://127.0.0.1:10002/devstoreaccount1"})


def test_a_workspace_resource_id_is_refused_for_the_workspace_guid() -> None:
    (problem,) = problems(LOGS_WORKSPACE_ID=BAD_TEXT["LOGS_WORKSPACE_ID"])
    assert "not a GUID" in problem and "not its name or resource ID" in problem


def test_a_malformed_connection_string_is_refused_and_never_echoed() -> None:
    (problem,) = problems(RELAY_STORAGE_CONNECTION_STRING="AccountName=relay;AcountKey=c2VjcmV0")
    assert "c2VjcmV0" not in problem and "Access keys" in problem
    for good in (
        "UseDevelopmentStorage=true",
        "DefaultEndpointsProtocol=https;AccountName=relay;AccountKey=c2VjcmV0;EndpointSuffix=core.windows.net",
        "TableEndpoint=https://relay.table.core.windows.net;SharedAccessSignature=sv=2024&sig=x",
    ):
        load_settings({**MINIMAL, "RELAY_STORAGE_CONNECTION_STRING": good})


def test_all_the_readmes_default_for_risks_is_accepted_as_a_value() -> None:
    settings = load_settings({**MINIMAL, "SELECT_SECURITY_ISSUE_RISKS": "all"})
    assert settings.selection == load_settings(MINIMAL).selection


# -- Key Vault references ------------------------------------------------------------------------


def test_an_unresolved_webhook_secret_reference_is_a_start_up_error_not_a_secret() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({**MINIMAL, "WEBHOOK_SHARED_SECRET": REFERENCE})
    assert info.value.problems == [keyvault_problem("WEBHOOK_SHARED_SECRET")]
    assert info.value.unresolved == ("WEBHOOK_SHARED_SECRET",)
    message = info.value.problems[0]
    for fix in ("Key Vault Secrets User", "propagate", "SecretUri", "restart"):
        assert fix in message
    assert "relay-kv" not in str(info.value)  # the reference is named by its setting, not echoed


@pytest.mark.parametrize("name", sorted(setting_names()))
def test_every_setting_the_relay_reads_is_checked_for_an_unresolved_reference(name: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({**MINIMAL, name: REFERENCE})
    # One problem for one cause: a required setting's reference is not also reported "missing".
    assert info.value.problems == [keyvault_problem(name)]
    assert info.value.unresolved == (name,)


def test_other_problems_are_still_reported_beside_a_reference() -> None:
    found = problems(WALLARM_API_TOKEN=REFERENCE, MAX_BODY_BYTES="5MB", AZURE_CLIENT_SECRET=REFERENCE)
    assert found[:2] == [keyvault_problem("AZURE_CLIENT_SECRET"), keyvault_problem("WALLARM_API_TOKEN")]
    assert len(found) == 3 and found[2].startswith("MAX_BODY_BYTES=")


@pytest.mark.parametrize(
    ("value", "unresolved"),
    [
        (REFERENCE, True),
        ("  @microsoft.keyvault(VaultName=relay-kv;SecretName=secret)", True),
        ("@Microsoft.AppConfiguration(Endpoint=https://relay.azconfig.io; Key=secret)", True),
        ("a-secret-that-mentions-@Microsoft.KeyVault(", False),
        ("", False),
    ],
)
def test_what_counts_as_an_unresolved_reference(value: str, unresolved: bool) -> None:
    assert is_unresolved_reference(value) is unresolved
