"""A tenant as data: its settings, its secrets (as Key Vault references only) and its credential.

``spec_problems`` validates a spec the way the default tenant's settings are validated, by the same
``load_settings``, plus the rules only a tenant has (its name, its allowed keys, references instead
of secrets, the credential's fields). Every message says how to fix the problem.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from shared.settings import TEXT_DEFAULTS, SettingsError, load_settings
from shared.tenancy.destination import DestinationCredential
from shared.tenancy.names import reserved_problem, shown, slug_problem, tenant_table_prefix
from shared.tenancy.refs import LOOPBACK_HOSTS, REF_EXAMPLE, keyvault_ref_problem, normalized, unwrap

TENANT_SETTINGS: Final[tuple[str, ...]] = (
    "LOGS_INGESTION_ENDPOINT",
    "LOGS_DCR_IMMUTABLE_ID",
    "LOGS_STREAM_NAME",
    "LOGS_INGESTION_AUDIENCE",
    "LOGS_WORKSPACE_ID",
    "WEBHOOK_SECRET_HEADER",
    "ALLOWED_SOURCE_NETWORKS",
    "SELECT_HITS",
    "SELECT_HIT_HEADERS",
    "SELECT_SYSTEM_EVENTS",
    "SELECT_VULNERABILITIES",
    "SELECT_HOURLY_COUNT",
    "SELECT_SECURITY_ISSUE_RISKS",
    "WALLARM_API_URL",
    "WALLARM_API_CLOUD",
    "WALLARM_CLIENT_ID",
    "WALLARM_INTEGRATION_URL",
    "WATCHDOG_CHECK_INTEGRATION",
    "WATCHDOG_REENABLE",
)
"""The settings a tenant may set; the rest of its environment is the default tenant's."""
TENANT_SECRETS: Final[frozenset[str]] = frozenset({"WEBHOOK_SHARED_SECRET", "WALLARM_API_TOKEN"})
"""The settings a tenant holds only as Key Vault references, never as values."""
OWN_SETTINGS: Final[frozenset[str]] = TENANT_SECRETS | {
    "LOGS_INGESTION_ENDPOINT",
    "LOGS_DCR_IMMUTABLE_ID",
    "LOGS_WORKSPACE_ID",
    "WALLARM_CLIENT_ID",
    "WALLARM_INTEGRATION_URL",
}
"""Never inherited from the default tenant: a tenant that left one out would otherwise answer to
the default's secret, write to its DCR or watch its Wallarm integration."""
CREDENTIAL_KINDS: Final[tuple[str, ...]] = (
    "managed_identity",
    "app_secret",
    "app_certificate",
    "federated_identity",
)
MAX_TABLE_PREFIX: Final[int] = 40  # what load_settings allows RELAY_TABLE_PREFIX
_GUID: Final = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_GUID_EXAMPLE: Final[str] = "0f8fad5b-d9cb-469f-a165-70867728950e"
_PLACEHOLDERS: Final[dict[str, str]] = {
    "WEBHOOK_SHARED_SECRET": "p" * 32,
    "WALLARM_API_TOKEN": "p" * 32,
}
"""What stands for a referenced secret while the spec is checked: the secret itself is not read."""


@dataclass(frozen=True)
class TenantSpec:
    """One tenant: its name, settings (TENANT_SETTINGS keys), secret references (TENANT_SECRETS keys)
    and destination credential."""

    name: str
    settings: Mapping[str, str] = field(default_factory=dict)
    secret_refs: Mapping[str, str] = field(default_factory=dict)
    credential: DestinationCredential = field(default_factory=DestinationCredential)


def base_table_prefix(base_env: Mapping[str, str]) -> str:
    """The default tenant's table prefix (RELAY_TABLE_PREFIX or its default)."""
    return base_env.get("RELAY_TABLE_PREFIX", TEXT_DEFAULTS["RELAY_TABLE_PREFIX"]).strip()


def tenant_env(
    base_env: Mapping[str, str], spec: TenantSpec, resolved_secrets: Mapping[str, str]
) -> dict[str, str]:
    """The environment a tenant's Settings are loaded from: the default's (without OWN_SETTINGS),
    overlaid by the tenant's settings and its resolved secrets, on the tenant's own tables."""
    env = {key: value for key, value in base_env.items() if key not in OWN_SETTINGS}
    env.update(spec.settings)
    env.update({key: resolved_secrets[key] for key in spec.secret_refs if key in resolved_secrets})
    env["RELAY_TABLE_PREFIX"] = tenant_table_prefix(base_table_prefix(base_env), spec.name)
    host = base_env.get("WEBSITE_HOSTNAME", "").strip()
    if "WALLARM_INTEGRATION_URL" not in spec.settings and host:
        env["WALLARM_INTEGRATION_URL"] = f"https://{host}/api/wallarm/{spec.name}"
    return env


def spec_problems(spec: TenantSpec, base_env: Mapping[str, str]) -> list[str]:
    """Every problem of ``spec``, each with its fix; [] when the tenant can run."""
    name_problem = slug_problem(spec.name) or reserved_problem(spec.name)
    if name_problem:
        return [name_problem]  # the rest would be checked under a name that cannot exist
    problems = [*_key_problems(spec), *_ref_problems(spec), *credential_problems(spec.credential)]
    if "WEBHOOK_SHARED_SECRET" not in spec.secret_refs:
        problems.append(
            "WEBHOOK_SHARED_SECRET is missing: each tenant has its own shared secret; pass its Key Vault "
            f"reference, e.g. --secret-ref WEBHOOK_SHARED_SECRET={REF_EXAMPLE} (then `relayctl tenant "
            "rotate-secret NAME` writes a fresh value there and shows it once)."
        )
    problems.extend(_loopback_on_azure(spec, base_env))
    checked = spec
    base = base_table_prefix(base_env)
    prefix = tenant_table_prefix(base, spec.name)
    if len(prefix) > MAX_TABLE_PREFIX:
        most = MAX_TABLE_PREFIX - len(base) - 1
        problems.append(
            f"the tenant name {shown(spec.name)} is too long for its tables (prefix {base!r} + 't' + the "
            f"name without hyphens, at most {MAX_TABLE_PREFIX} characters): use at most {most} letters "
            "and digits (hyphens do not count)."
        )
        checked = TenantSpec(spec.name[:1] + "x", spec.settings, spec.secret_refs, spec.credential)
    env = tenant_env(base_env, checked, {k: _PLACEHOLDERS[k] for k in spec.secret_refs if k in _PLACEHOLDERS})
    try:
        load_settings(env)
    except SettingsError as err:
        problems.extend(err.problems)
    return problems


def _loopback_on_azure(spec: TenantSpec, base_env: Mapping[str, str]) -> list[str]:
    """A loopback vault is the local stand-in: on Azure, the relay would hand its Key Vault token
    to whatever listens on the instance's own port. (WEBSITE_INSTANCE_ID, set by the platform only:
    the local run has a managed-identity endpoint too.)"""
    if not base_env.get("WEBSITE_INSTANCE_ID"):
        return []
    refs = [*spec.secret_refs.values(), *([spec.credential.secret_ref] if spec.credential.secret_ref else [])]
    if any((urlsplit(unwrap(ref)).hostname or "") in LOOPBACK_HOSTS for ref in refs):
        return [
            "a secret reference names a loopback address, which is the local Key Vault stand-in: on "
            f"Azure, use the vault's own URI, e.g. {REF_EXAMPLE}."
        ]
    return []


def _key_problems(spec: TenantSpec) -> list[str]:
    problems = []
    for key in spec.settings:
        if key in TENANT_SECRETS:
            problems.append(
                f"{key} is a secret, never a setting: pass its Key Vault reference instead, e.g. "
                f"--secret-ref {key}={REF_EXAMPLE}."
            )
        elif key not in TENANT_SETTINGS:
            problems.append(
                f"{shown(key)} is not a setting a tenant may set: use one of {', '.join(TENANT_SETTINGS)} "
                "(the rest is the default tenant's)."
            )
    for key in spec.secret_refs:
        if key not in TENANT_SECRETS:
            problems.append(
                f"{shown(key)} is not a tenant secret: secret references are for "
                f"{' and '.join(sorted(TENANT_SECRETS))} only."
            )
    return problems


def _ref_problems(spec: TenantSpec) -> list[str]:
    return [
        f"{key}: {why}."
        for key, ref in spec.secret_refs.items()
        if key in TENANT_SECRETS and (why := keyvault_ref_problem(ref)) is not None
    ]


def credential_problems(cred: DestinationCredential) -> list[str]:
    """What a credential lacks or has too much of, for its kind."""
    if cred.kind not in CREDENTIAL_KINDS:
        return [f"the credential kind {shown(cred.kind)} is not one of {', '.join(CREDENTIAL_KINDS)}."]
    problems = []
    needs_app = cred.kind != "managed_identity"
    needs_secret = cred.kind in ("app_secret", "app_certificate")
    if cred.client_id is None and needs_app:
        problems.append(
            f"the {cred.kind} credential needs the app registration's client id: pass --client-id, "
            f"e.g. --client-id {_GUID_EXAMPLE}."
        )
    if cred.client_id is not None and not _GUID.match(cred.client_id):
        problems.append(
            f"the credential's client id {shown(cred.client_id)} is not a GUID: use the application "
            f"(client) id, e.g. {_GUID_EXAMPLE}."
        )
    if needs_app and cred.entra_tenant_id is None:
        problems.append(
            f"the {cred.kind} credential needs the customer's Entra tenant id: pass --entra-tenant-id, "
            f"e.g. --entra-tenant-id {_GUID_EXAMPLE}."
        )
    if not needs_app and cred.entra_tenant_id is not None:
        problems.append(
            "a managed_identity credential takes no Entra tenant id (the identity's own tenant, or a "
            "Lighthouse delegation, decides): remove it, or use app_secret, app_certificate or "
            "federated_identity for an app registration in the customer's tenant."
        )
    if cred.entra_tenant_id is not None and not _GUID.match(cred.entra_tenant_id):
        problems.append(
            f"the credential's Entra tenant id {shown(cred.entra_tenant_id)} is not a GUID: use the "
            f"directory (tenant) id, e.g. {_GUID_EXAMPLE}."
        )
    problems.extend(_credential_secret_problems(cred, needs_secret))
    return problems


def _credential_secret_problems(cred: DestinationCredential, needs_secret: bool) -> list[str]:
    what = "client secret" if cred.kind == "app_secret" else "PEM certificate with its private key"
    if needs_secret and cred.secret_ref is None:
        return [
            f"the {cred.kind} credential needs its {what} in Key Vault: pass --credential-secret-ref, "
            f"e.g. --credential-secret-ref {REF_EXAMPLE}."
        ]
    if not needs_secret and cred.secret_ref is not None:
        return [f"a {cred.kind} credential takes no secret: remove --credential-secret-ref."]
    if cred.secret_ref is not None and (why := keyvault_ref_problem(cred.secret_ref)) is not None:
        return [f"the credential's secret: {why}."]
    return []


def credential_of(fields: Mapping[str, str]) -> DestinationCredential:
    """A destination credential from its stored fields (``secret_ref`` a reference, never a secret)."""
    return DestinationCredential(
        kind=fields.get("kind") or "managed_identity",
        client_id=fields.get("client_id") or None,
        entra_tenant_id=fields.get("entra_tenant_id") or None,
        secret_ref=normalized(fields["secret_ref"]) if fields.get("secret_ref") else None,
    )


def spec_of(
    name: str, settings: Mapping[str, str], secret_refs: Mapping[str, str], credential: Mapping[str, str]
) -> TenantSpec:
    """A tenant's spec from its stored (or requested) fields."""
    return TenantSpec(
        name=name,
        settings=dict(settings),
        secret_refs={k: normalized(v) for k, v in secret_refs.items()},
        credential=credential_of(credential),
    )
