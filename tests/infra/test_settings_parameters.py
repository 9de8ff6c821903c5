"""Settings survive a redeploy: every setting a user may change is a Bicep parameter and an azd value.

The settings spec (shared/settings.py) against infra/main.bicep (a parameter per setting, its name
the setting's in camelCase, with the code's default), infra/main.parameters.json (filled from the
azd environment value of the setting's own name, same default, so `azd provision` with no arguments
keeps what the last deployment set) and the app settings the Function App module gets. Secrets
(the webhook shared secret, the Wallarm API token) are Key Vault references whose vault role is
created before the app settings that use them.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

from shared.settings import COMPLETENESS_FLAGS, COMPLETENESS_NUMBERS, NUMBERS, SELECTION_FLAGS, TEXTS

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "infra" / "main.bicep"
PARAMETERS = ROOT / "infra" / "main.parameters.json"
README = ROOT / "README.md"
# Set by the deployment from the resources it creates, never by the user.
DERIVED = {
    "LOGS_INGESTION_ENDPOINT",
    "LOGS_DCR_IMMUTABLE_ID",
    "LOGS_STREAM_NAME",
    "LOGS_INGESTION_AUDIENCE",
    "AZURE_CLIENT_ID",
    "RELAY_STORAGE_TABLE_ENDPOINT",
    "LOGS_WORKSPACE_ID",
}
# Not for Azure: storage is reached with the identity (shared keys are off), the CA bundle is the
# local stand-in's.
LOCAL_ONLY = {"RELAY_STORAGE_CONNECTION_STRING", "RELAY_CA_BUNDLE"}
# Read by the Functions host (timer triggers), not by load_settings; defaults from the README table.
SCHEDULES = ("RETRY_WORKER_SCHEDULE", "HOURLY_COUNT_SCHEDULE", "COMPLETENESS_SCHEDULE")
SECRETS = {"WEBHOOK_SHARED_SECRET": "webhookSecretSetting", "WALLARM_API_TOKEN": "wallarmApiTokenSetting"}
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"


def camel(name: str) -> str:
    first, *rest = name.lower().split("_")
    return first + "".join(part.title() for part in rest)


def number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def readme_default(name: str) -> str:
    row = re.search(rf"^\| `{name}` \| `?([^`|]+)`? \|", README.read_text(encoding="utf-8"), flags=re.M)
    assert row, f"{name} is not in the README's settings table"
    return row.group(1).strip()


def text_default(default: str) -> str:
    """A literal default is the parameter's default; a described one ("—", "all", "Wallarm's", "per
    cloud", "https://$WEBSITE_HOSTNAME/…") means unset, so the parameter is empty."""
    literal = re.fullmatch(r"[A-Za-z0-9:/._-]+", default) and default not in ("all", "required")
    return default if literal else ""


def user_settings() -> dict[str, str]:
    """Every setting a user may change -> the parameter default the code's default implies."""
    out = {n.name: number(n.default) for n in [*NUMBERS.values(), *COMPLETENESS_NUMBERS.values()]}
    out |= {f.name: str(f.default).lower() for f in [*SELECTION_FLAGS, *COMPLETENESS_FLAGS.values()]}
    out |= {t.name: text_default(t.default) for t in TEXTS if t.name not in DERIVED | LOCAL_ONLY}
    out |= {name: readme_default(name) for name in SCHEDULES}
    return out


@cache
def main_bicep() -> dict[str, Any]:
    doc: dict[str, Any] = dict(BicepParser().parse(file_path=MAIN))
    return doc


def dotted(expr: Any) -> str:
    """`a.b.c` from pycep's nested property accessors (other expressions as JSON)."""
    if isinstance(expr, dict) and expr.get("operator", {}).get("type") == "property_accessor":
        operands = expr["operator"]["operands"]
        return f"{dotted(operands['operand_1'])}.{dotted(operands['operand_2'])}"
    return expr if isinstance(expr, str) else json.dumps(expr)


def app_settings(doc: dict[str, Any]) -> dict[str, Any]:
    settings: dict[str, Any] = doc["modules"]["functionApp"]["config"]["params"]["relaySettings"]
    return settings


def test_every_spec_setting_is_a_parameter_derived_or_local_only() -> None:
    spec = set(NUMBERS) | set(COMPLETENESS_NUMBERS) | {f.name for f in SELECTION_FLAGS}
    spec |= set(COMPLETENESS_FLAGS) | {t.name for t in TEXTS}
    assert spec >= DERIVED | LOCAL_ONLY, "a derived or local-only name is no longer a setting"
    assert spec - DERIVED - LOCAL_ONLY <= set(user_settings())


@pytest.mark.parametrize("name", sorted(user_settings()))
def test_setting_is_a_bicep_parameter_with_the_code_default(name: str) -> None:
    params = main_bicep()["parameters"]
    param = camel(name)
    assert param in params, f"{name}: add `param {param} string` to infra/main.bicep"
    assert params[param]["type"] == "string", f"{param}: app settings are strings"
    secure = any(d.get("type") == "secure" for d in params[param].get("decorators", []))
    assert secure is (name in SECRETS), f"{param}: @secure() exactly for the secrets"
    default = params[param].get("default", None)
    assert default == user_settings()[name], f"{param}: default differs from the code"


@pytest.mark.parametrize("name", sorted(user_settings()))
def test_azd_fills_the_parameter_from_the_setting_name_with_the_same_default(name: str) -> None:
    values = json.loads(PARAMETERS.read_text(encoding="utf-8"))["parameters"]
    assert camel(name) in values, f"{name}: add {camel(name)} to infra/main.parameters.json"
    assert values[camel(name)]["value"] == f"${{{name}={user_settings()[name]}}}"


@pytest.mark.parametrize("name", sorted(user_settings()))
def test_parameter_is_wired_into_the_app_settings(name: str) -> None:
    settings = app_settings(main_bicep())
    assert settings.get(name) == SECRETS.get(name, camel(name)), f"{name} is not set from its parameter"


def test_derived_settings_are_set_by_the_deployment() -> None:
    settings = app_settings(main_bicep())
    module = ROOT / "infra" / "modules" / "functionapp.bicep"
    host: dict[str, Any] = dict(BicepParser().parse(file_path=module))
    assert set(settings) | set(host["variables"]["hostSettings"]["value"]) >= DERIVED
    # The GUID (customerId), not the resource id.
    assert dotted(settings["LOGS_WORKSPACE_ID"]) == "workspace.outputs.customerId"


def test_secrets_are_key_vault_references_never_plain_values() -> None:
    variables = main_bicep()["variables"]
    blob = json.dumps({v: variables[v] for v in SECRETS.values()})
    for param in ("webhookSharedSecret", "wallarmApiToken"):
        assert f'"{param}"' in blob  # only tested for emptiness ...
        assert "${" + param not in blob  # ... never interpolated into the setting
    assert blob.count("@Microsoft.KeyVault(SecretUri=${vault.outputs.uri}secrets/") == 2


def test_the_vault_role_exists_before_the_app_settings_read_the_vault() -> None:
    vault = BicepParser().parse(file_path=ROOT / "infra" / "modules" / "keyvault.bicep")
    role = vault["resources"]["secretsUser"]["config"]
    assert role["scope"] == "vault"
    assert role["properties"]["principalId"] == "relayPrincipalId"
    assert KEY_VAULT_SECRETS_USER in json.dumps(vault["variables"])
    written = (vault["resources"][r]["config"]["config"] for r in ("webhookSecret", "wallarmToken"))
    secrets = {body["properties"]["value"] for body in written}
    assert secrets == {"webhookSharedSecret", "wallarmApiToken"}
    main = main_bicep()
    principal = main["modules"]["vault"]["config"]["params"]["relayPrincipalId"]
    assert dotted(principal) == "identity.outputs.principalId"
    assert "vault" in json.dumps(main["modules"]["functionApp"]["config"]["dependsOn"])


def test_outputs_give_the_workspace_guid_under_the_setting_name() -> None:
    outputs = main_bicep()["outputs"]
    assert dotted(outputs["LOGS_WORKSPACE_ID"]["value"]) == "workspace.outputs.customerId"
    assert dotted(outputs["LOG_ANALYTICS_WORKSPACE_RESOURCE_ID"]["value"]) == "workspace.outputs.id"


def test_coverage_report(capsys: pytest.CaptureFixture[str]) -> None:
    """N of N, printed for the record (`pytest -s`): every user setting is a parameter."""
    params = main_bicep()["parameters"]
    covered = [n for n in user_settings() if camel(n) in params]
    with capsys.disabled():
        print(f"\nsettings -> parameters: {len(covered)} of {len(user_settings())}")
    assert len(covered) == len(user_settings())
