"""An unresolved Key Vault reference, as App Service passes it, through the wired app (issue 20,
item 1): the probe names it with its fix, and a webhook is never checked against its text."""

from __future__ import annotations

import pytest
from wallarm_fixtures import load_fixture

import function_app

from .conftest import Call, body_json

REFERENCE = "@Microsoft.KeyVault(SecretUri=https://relay-kv.vault.azure.net/secrets/webhook-secret/)"


@pytest.mark.parametrize(
    "name", ["WEBHOOK_SHARED_SECRET", "WALLARM_API_TOKEN", "APPLICATIONINSIGHTS_CONNECTION_STRING"]
)
def test_the_probe_reports_keyvault_reference_unresolved(
    call: Call, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, REFERENCE)
    function_app.services.cache_clear()
    probe = call("test_integration", method="GET")
    assert probe.status_code == 500
    error = body_json(probe)["error"]
    assert error["code"] == "keyvault_reference_unresolved"
    assert error["settings"] == [name]
    for fix in ("Key Vault Secrets User", "propagate", "SecretUri"):
        assert fix in error["advice"]
    assert "relay-kv" not in probe.get_body().decode()


def test_a_webhook_is_not_answered_wrong_secret_while_the_reference_is_unresolved(
    call: Call, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_SHARED_SECRET", REFERENCE)
    function_app.services.cache_clear()
    # Wallarm sends the real secret; before, it was compared with the reference's text: 401.
    resp = call(
        "wallarm_webhook", load_fixture("create_user"), headers={"X-Wallarm-Relay-Secret": "real-secret"}
    )
    assert resp.status_code == 500  # Wallarm resends once the vault role is in place
    assert body_json(resp)["error"]["code"] == "keyvault_reference_unresolved"


def test_other_misconfiguration_keeps_its_code(call: Call, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_BODY_BYTES", "5MB")
    function_app.services.cache_clear()
    error = body_json(call("test_integration", method="GET"))["error"]
    assert error["code"] == "misconfigured" and "e.g. MAX_BODY_BYTES=5242880" in error["problems"][0]
