"""The completeness settings block: off by default, and what reconciliation needs when it is on."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.settings import SettingsError, load_settings

MINIMAL: dict[str, str] = {
    "LOGS_INGESTION_ENDPOINT": "https://relay-dce.westeurope-1.ingest.monitor.azure.com/",
    "LOGS_DCR_IMMUTABLE_ID": "dcr-0123456789abcdef0123456789abcdef",
    "RELAY_STORAGE_TABLE_ENDPOINT": "https://relaystore.table.core.windows.net/",
}
TOKEN = "t" * 64
WORKSPACE = "11111111-2222-3333-4444-555555555555"


def problems(**env: str) -> list[str]:
    with pytest.raises(SettingsError) as info:
        load_settings({**MINIMAL, **env})
    return info.value.problems


def test_off_by_default_with_the_quiet_check_on() -> None:
    cs = load_settings(MINIMAL).completeness
    assert not cs.reconcile_enabled and cs.wallarm_api_token is None
    assert (cs.watch_integration, cs.reenable, cs.quiet_after) == (False, False, timedelta(hours=3))
    assert (cs.reconcile_delay, cs.reconcile_overlap) == (timedelta(minutes=30), timedelta(hours=1))
    assert cs.integration_url is None


def test_cloud_picks_the_api_host_and_the_hostname_the_integration_url() -> None:
    env = {**MINIMAL, "WALLARM_API_TOKEN": TOKEN, "WALLARM_API_CLOUD": "US", "LOGS_WORKSPACE_ID": WORKSPACE}
    cs = load_settings(
        {**env, "WEBSITE_HOSTNAME": "relay.azurewebsites.net", "WALLARM_CLIENT_ID": "42"}
    ).completeness
    assert cs.reconcile_enabled and cs.wallarm_api_url == "https://us1.api.wallarm.com"
    assert cs.integration_url == "https://relay.azurewebsites.net/api/wallarm"
    assert cs.wallarm_client_id == 42
    assert "t" * 64 not in repr(cs)  # the token never shows in a repr or a log line
    assert (
        load_settings({**env, "WALLARM_API_CLOUD": "eu"}).completeness.wallarm_api_url
        == "https://api.wallarm.com"
    )


def test_a_token_needs_a_cloud_and_a_workspace_and_all_problems_come_at_once() -> None:
    found = problems(WALLARM_API_TOKEN=TOKEN, WALLARM_CLIENT_ID="acme", WATCHDOG_REENABLE="maybe")
    assert len(found) == 4
    assert any(p.startswith("WALLARM_API_CLOUD is missing") for p in found)
    assert any(p.startswith("LOGS_WORKSPACE_ID is missing") for p in found)
    assert any("WALLARM_CLIENT_ID" in p for p in found)
    assert any("WATCHDOG_REENABLE" in p for p in found)


def test_api_url_must_be_https_except_a_loopback_stand_in() -> None:
    base = {"WALLARM_API_TOKEN": TOKEN, "LOGS_WORKSPACE_ID": WORKSPACE}
    assert problems(**base, WALLARM_API_URL="http://api.example.com") == [
        "WALLARM_API_URL must be an https:// URL: only a loopback stand-in may use http://; use "
        "https://<host>, e.g. WALLARM_API_URL=https://us1.api.wallarm.com."
    ]
    cs = load_settings({**MINIMAL, **base, "WALLARM_API_URL": "http://127.0.0.1:8081/"}).completeness
    assert cs.wallarm_api_url == "http://127.0.0.1:8081"


def test_delay_has_a_floor_so_the_webhook_guard_keeps_a_margin() -> None:
    assert problems(RECONCILE_DELAY_MINUTES="5") == [
        "RECONCILE_DELAY_MINUTES='5' must be at least 10: use a number of minutes, at least 10, "
        "e.g. RECONCILE_DELAY_MINUTES=30."
    ]


def test_an_unresolved_key_vault_reference_is_named() -> None:
    reference = "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/wallarm-api-token)"
    (problem,) = problems(WALLARM_API_TOKEN=reference, WALLARM_API_CLOUD="eu", LOGS_WORKSPACE_ID=WORKSPACE)
    assert "unresolved Key Vault reference" in problem and "Key Vault Secrets User" in problem
