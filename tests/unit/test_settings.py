"""load_settings: a valid minimum, every problem at once, messages that name the setting and the fix."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest

from shared.delivery.policy import DEFAULT_SCHEDULE, RetrySchedule
from shared.intake.selection import ALL_RISKS, Selection
from shared.settings import Settings, SettingsError, load_settings

SECRET = "s3cr3t-value-0123456789abcdef"

MINIMAL: dict[str, str] = {
    "LOGS_INGESTION_ENDPOINT": "https://relay-dce.westeurope-1.ingest.monitor.azure.com/",
    "LOGS_DCR_IMMUTABLE_ID": "dcr-0123456789abcdef0123456789abcdef",
    "RELAY_STORAGE_TABLE_ENDPOINT": "https://relaystore.table.core.windows.net/",
}


def load(**overrides: str) -> Settings:
    return load_settings({**MINIMAL, **overrides})


def problems_of(env: dict[str, str]) -> list[str]:
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    return info.value.problems


def problems_without(name: str) -> list[str]:
    """The problems of the minimal settings without `name`."""
    return problems_of({k: v for k, v in MINIMAL.items() if k != name})


def one_problem(**overrides: str) -> str:
    problems = problems_of({**MINIMAL, **overrides})
    assert len(problems) == 1, problems
    return problems[0]


# -- a minimal valid configuration and the defaults -------------------------------------------


def test_minimal_env_loads_with_trailing_slashes_removed() -> None:
    settings = load_settings(MINIMAL)
    assert settings.logs_endpoint == "https://relay-dce.westeurope-1.ingest.monitor.azure.com"
    assert settings.dcr_immutable_id == MINIMAL["LOGS_DCR_IMMUTABLE_ID"]
    assert settings.storage_table_endpoint == "https://relaystore.table.core.windows.net"
    assert settings.storage_connection_string is None


def test_defaults() -> None:
    settings = load_settings(MINIMAL)
    assert settings.stream_name == "Custom-WallarmSentinel_CL"
    assert settings.table_prefix == "wallarmrelay"
    assert settings.selection == Selection()
    assert settings.selection == Selection(
        hits=True,
        hit_headers=False,
        system_events=True,
        vulnerabilities=True,
        security_issue_risks=ALL_RISKS,
        hourly_count=True,
    )
    assert settings.retry_schedule == DEFAULT_SCHEDULE
    assert settings.webhook_secret is None
    assert settings.webhook_secret_header == "X-Wallarm-Relay-Secret"
    assert settings.allowed_networks == ()
    assert settings.azure_client_id is None
    assert settings.ca_bundle is None
    assert settings.max_body_bytes == 5 * 1024 * 1024
    assert settings.auto_disable_ratio == 0.6
    assert settings.auto_disable_window == timedelta(hours=12)
    assert settings.auto_disable_min_attempts == 20
    assert settings.webhook_budget == timedelta(seconds=6)
    assert settings.claim_lease == timedelta(minutes=3)


def test_connection_string_alone_is_enough_storage() -> None:
    env = {k: v for k, v in MINIMAL.items() if k != "RELAY_STORAGE_TABLE_ENDPOINT"}
    env["RELAY_STORAGE_CONNECTION_STRING"] = "UseDevelopmentStorage=true"
    settings = load_settings(env)
    assert settings.storage_connection_string == "UseDevelopmentStorage=true"
    assert settings.storage_table_endpoint is None


def test_values_are_read() -> None:
    settings = load(
        LOGS_STREAM_NAME="Custom-Other_CL",
        RELAY_TABLE_PREFIX="relay2",
        WEBHOOK_SHARED_SECRET=SECRET,
        ALLOWED_SOURCE_NETWORKS="34.94.16.0/24; 2001:db8::/32 , 10.1.2.3",
        SELECT_HIT_HEADERS="yes",
        SELECT_HITS="0",
        SELECT_SECURITY_ISSUE_RISKS=" Critical, high ",
        RETRY_SCHEDULE="5s; every 1h",
        AUTO_DISABLE_FAILURE_RATIO="1",
        MAX_BODY_BYTES="2048",
        AZURE_CLIENT_ID=" 11111111-2222-4333-8444-555555555555 ",
    )
    assert settings.stream_name == "Custom-Other_CL"
    assert settings.table_prefix == "relay2"
    assert settings.webhook_secret == SECRET
    assert settings.allowed_networks == (
        ipaddress.ip_network("34.94.16.0/24"),
        ipaddress.ip_network("2001:db8::/32"),
        ipaddress.ip_network("10.1.2.3/32"),
    )
    assert settings.selection.hit_headers is True
    assert settings.selection.hits is False
    assert settings.selection.security_issue_risks == frozenset({"critical", "high"})
    assert settings.retry_schedule == RetrySchedule.parse("5s; every 1h")
    assert settings.auto_disable_ratio == 1.0
    assert settings.max_body_bytes == 2048
    assert settings.azure_client_id == "11111111-2222-4333-8444-555555555555"


def test_risks_none_selects_no_security_issues() -> None:
    assert load(SELECT_SECURITY_ISSUE_RISKS="None").selection.security_issue_risks == frozenset()


def test_cidr_host_bits_are_accepted() -> None:
    assert load(ALLOWED_SOURCE_NETWORKS="34.94.16.7/24").allowed_networks == (
        ipaddress.ip_network("34.94.16.0/24"),
    )


def test_secret_is_not_in_repr() -> None:
    settings = load(WEBHOOK_SHARED_SECRET=SECRET)
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)


# -- each problem names the setting and the fix -----------------------------------------------


@pytest.mark.parametrize(
    ("name", "hint"),
    [("LOGS_INGESTION_ENDPOINT", "ingest.monitor.azure.com"), ("LOGS_DCR_IMMUTABLE_ID", "immutableId")],
)
def test_a_missing_setting_says_where_to_find_it(name: str, hint: str) -> None:
    (problem,) = problems_without(name)
    assert problem.startswith(f"{name} is missing")
    assert hint in problem


@pytest.mark.parametrize("endpoint", ["http://relay.westeurope-1.ingest.monitor.azure.com", "relay.example"])
def test_endpoint_must_be_https(endpoint: str) -> None:
    problem = one_problem(LOGS_INGESTION_ENDPOINT=endpoint)
    assert problem.startswith(f"LOGS_INGESTION_ENDPOINT={endpoint!r} must be an https:// URL")
    assert "bearer token" in problem


@pytest.mark.parametrize("dcr", ["wallarm-dcr", "/subscriptions/x/resourceGroups/y/providers/dcr"])
def test_dcr_id_must_be_the_immutable_id(dcr: str) -> None:
    problem = one_problem(LOGS_DCR_IMMUTABLE_ID=dcr)
    assert problem.startswith(f"LOGS_DCR_IMMUTABLE_ID={dcr!r} does not start with 'dcr-'")
    assert "immutableId" in problem and "JSON view" in problem


def test_stream_must_start_with_custom() -> None:
    problem = one_problem(LOGS_STREAM_NAME="WallarmSentinel_CL")
    assert problem.startswith("LOGS_STREAM_NAME='WallarmSentinel_CL' must start with 'Custom-'")
    assert "Custom-WallarmSentinel_CL" in problem and "not the table name" in problem


def test_missing_storage_names_both_settings() -> None:
    (problem,) = problems_without("RELAY_STORAGE_TABLE_ENDPOINT")
    assert "RELAY_STORAGE_TABLE_ENDPOINT" in problem and "RELAY_STORAGE_CONNECTION_STRING" in problem
    assert "Table Storage" in problem


@pytest.mark.parametrize("prefix", ["1relay", "relay-x", "", "a" * 41])
def test_bad_table_prefix(prefix: str) -> None:
    assert one_problem(RELAY_TABLE_PREFIX=prefix).startswith(
        f"RELAY_TABLE_PREFIX={prefix!r} is not a table name prefix: use letters"
    )


def test_table_prefix_of_40_chars_is_fine() -> None:
    assert load(RELAY_TABLE_PREFIX="a" * 40).table_prefix == "a" * 40


def test_short_secret_without_echoing_it() -> None:
    problem = one_problem(WEBHOOK_SHARED_SECRET="fifteen-chars-x")
    assert problem.startswith("WEBHOOK_SHARED_SECRET is shorter than 16 characters")
    assert "fifteen-chars-x" not in problem


def test_secret_of_16_chars_is_fine() -> None:
    assert load(WEBHOOK_SHARED_SECRET="x" * 16).webhook_secret == "x" * 16


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        ("pässwörd-0123456789abcdef", "non-ASCII"),
        ("secret-with\tcontrol-chars-0123", "control"),
        (" s3cr3t-value-0123456789abcdef", "whitespace"),
        ("s3cr3t-value-0123456789abcdef\n", "whitespace"),
        ("s3cr3t-value-0123456789abcdef ", "whitespace"),
    ],
)
def test_secret_that_no_http_client_can_send_is_refused_without_echoing_it(secret: str, why: str) -> None:
    problems = problems_of({**MINIMAL, "WEBHOOK_SHARED_SECRET": secret})
    assert any(p.startswith("WEBHOOK_SHARED_SECRET") and why in p for p in problems), problems
    assert all("never match" in p for p in problems)
    assert not any(secret.strip() in p for p in problems)


def test_secret_with_an_inner_space_is_fine() -> None:
    assert load(WEBHOOK_SHARED_SECRET="correct horse battery staple").webhook_secret


@pytest.mark.parametrize(
    "name",
    ["LOGS_INGESTION_ENDPOINT", "LOGS_DCR_IMMUTABLE_ID", "LOGS_STREAM_NAME", "RELAY_STORAGE_TABLE_ENDPOINT"],
)
@pytest.mark.parametrize("stray", ["\u200b", " ", "\x07", "é"])
def test_names_ids_and_urls_with_stray_characters_are_refused(name: str, stray: str) -> None:
    value = {**MINIMAL, "LOGS_STREAM_NAME": "Custom-WallarmSentinel_CL"}[name]
    problems = problems_of({**MINIMAL, name: value[:12] + stray + value[12:]})
    assert any(p.startswith(f"{name}=") and "non-ASCII" in p for p in problems), problems


def test_client_id_must_be_a_guid() -> None:
    assert one_problem(AZURE_CLIENT_ID="relay-identity").startswith(
        "AZURE_CLIENT_ID='relay-identity' is not a GUID"
    )


@pytest.mark.parametrize("header", ["X Wallarm Secret", "X-Secret:", "X-Sécret"])
def test_secret_header_must_be_an_http_header_name(header: str) -> None:
    problems = problems_of({**MINIMAL, "WEBHOOK_SECRET_HEADER": header})
    assert any(p.startswith("WEBHOOK_SECRET_HEADER=") and "header name" in p for p in problems)


def test_table_prefix_must_be_ascii() -> None:
    assert one_problem(RELAY_TABLE_PREFIX="relayé").startswith(
        "RELAY_TABLE_PREFIX='relayé' is not a table name prefix: use letters"
    )


def test_bad_cidr_names_the_entry_and_shows_an_example() -> None:
    problem = one_problem(ALLOWED_SOURCE_NETWORKS="34.94.16.0/24, 34.94.300.0/24")
    assert problem.startswith("ALLOWED_SOURCE_NETWORKS: '34.94.300.0/24' is not an IP address or CIDR")
    assert "e.g. ALLOWED_SOURCE_NETWORKS=34.94.16.0/24" in problem


def test_bad_boolean() -> None:
    assert one_problem(SELECT_HIT_HEADERS="maybe") == (
        "SELECT_HIT_HEADERS='maybe' is not a boolean: use true or false, e.g. SELECT_HIT_HEADERS=false."
    )


def test_unknown_risk_level() -> None:
    problem = one_problem(SELECT_SECURITY_ISSUE_RISKS="critical,severe,urgent")
    assert problem.startswith("SELECT_SECURITY_ISSUE_RISKS has unknown levels ['severe', 'urgent']")
    assert "critical, high, medium, low, info" in problem and "none" in problem


def test_bad_retry_schedule_carries_the_parser_message() -> None:
    assert one_problem(RETRY_SCHEDULE="1s,3s") == (
        "RETRY_SCHEDULE: end the schedule with a positive '; every <duration>' (e.g. every 30m); use delays "
        "like 10s, 1m or 1h, comma-separated, cycles separated by ';', ending with 'every <delay>', "
        "e.g. RETRY_SCHEDULE=1s,3s,5s,10s,10s; 1m,3m,10m,30m; every 30m."
    )
    assert one_problem(RETRY_SCHEDULE="1x; every 1m").startswith("RETRY_SCHEDULE: '1x' is not a duration")


def test_ratio_above_one() -> None:
    assert one_problem(AUTO_DISABLE_FAILURE_RATIO="1.5") == (
        "AUTO_DISABLE_FAILURE_RATIO='1.5' must be at most 1: use a number between 0.01 and 1, "
        "e.g. AUTO_DISABLE_FAILURE_RATIO=0.6."
    )


def test_ratio_below_minimum() -> None:
    assert (
        one_problem(AUTO_DISABLE_FAILURE_RATIO="0")
        == "AUTO_DISABLE_FAILURE_RATIO='0' must be at least 0.01: use a number between 0.01 and 1, "
        "e.g. AUTO_DISABLE_FAILURE_RATIO=0.6."
    )


def test_not_a_number() -> None:
    assert one_problem(MAX_BODY_BYTES="5MB") == (
        "MAX_BODY_BYTES='5MB' is not a number: use a whole number of bytes, at least 1024, "
        "e.g. MAX_BODY_BYTES=5242880."
    )


def test_every_problem_is_reported_at_once() -> None:
    env = {
        "LOGS_INGESTION_ENDPOINT": "http://relay.example",
        "LOGS_DCR_IMMUTABLE_ID": "wallarm-dcr",
        "LOGS_STREAM_NAME": "WallarmSentinel_CL",
        "WEBHOOK_SHARED_SECRET": "short",
        "ALLOWED_SOURCE_NETWORKS": "not-a-net",
        "SELECT_HITS": "perhaps",
        "SELECT_SECURITY_ISSUE_RISKS": "severe",
        "RETRY_SCHEDULE": "1s",
        "AUTO_DISABLE_FAILURE_RATIO": "2",
        "MAX_BODY_BYTES": "10",
    }
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    problems = info.value.problems
    named = [
        "LOGS_INGESTION_ENDPOINT",
        "LOGS_DCR_IMMUTABLE_ID",
        "LOGS_STREAM_NAME",
        "RELAY_STORAGE_TABLE_ENDPOINT",
        "WEBHOOK_SHARED_SECRET",
        "ALLOWED_SOURCE_NETWORKS",
        "SELECT_HITS",
        "SELECT_SECURITY_ISSUE_RISKS",
        "RETRY_SCHEDULE",
        "AUTO_DISABLE_FAILURE_RATIO",
        "MAX_BODY_BYTES",
    ]
    assert len(problems) == len(named)
    for name in named:
        assert any(name in p for p in problems), name
    # One message, one line per problem, and it is a ValueError for callers that catch that.
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert message.startswith("Invalid relay configuration:\n- ")
    assert message.count("\n- ") == len(problems)


# -- cloud audience of the Logs Ingestion API ---------------------------------------------------


def test_audience_defaults_to_the_public_cloud() -> None:
    assert load().ingestion_audience == "https://monitor.azure.com"


@pytest.mark.parametrize(
    ("raw", "audience"),
    [
        ("usgov", "https://monitor.azure.us"),
        ("China", "https://monitor.azure.cn"),
        ("https://monitor.azure.us/", "https://monitor.azure.us"),
    ],
)
def test_audience_by_cloud_name_or_url(raw: str, audience: str) -> None:
    assert load(LOGS_INGESTION_AUDIENCE=raw).ingestion_audience == audience


def test_audience_must_be_a_cloud_or_https() -> None:
    problem = one_problem(LOGS_INGESTION_AUDIENCE="monitor.azure.us")
    assert "LOGS_INGESTION_AUDIENCE" in problem and "usgov" in problem
