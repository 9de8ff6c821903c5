"""Key Vault secret references: the only form a tenant's secret may take (issue 22).

Pure: no I/O. A reference names a secret (``https://<vault>.vault.azure.net/secrets/<name>``, an
optional version after it); the relay resolves it with its own identity. A message here never
quotes the value it refuses: a value that is not a reference may well be the secret itself.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

VAULT_SUFFIXES: Final[tuple[str, ...]] = (".vault.azure.net", ".vault.usgovcloudapi.net", ".vault.azure.cn")
"""The Key Vault DNS suffixes of the public, US Government and China clouds."""
LOOPBACK_HOSTS: Final[frozenset[str]] = frozenset({"127.0.0.1", "localhost", "::1"})
"""The local Key Vault stand-in's hosts (tests and python -m local.run), always with a port.
KeyVaultSecrets reads by the same rules (``shared/tenancy/secrets.py`` imports these): a reference
accepted here is one the relay can read, so no stored tenant fails every directory refresh."""
REF_EXAMPLE: Final[str] = "https://<vault>.vault.azure.net/secrets/<name>"
_VAULT_LABEL: Final = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,22})[a-z0-9]$")
_SECRET_NAME: Final = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_VERSION: Final = re.compile(r"^[0-9a-fA-F]{32}$")
_APP_SERVICE_FORM: Final = re.compile(r"^@Microsoft\.KeyVault\((.*)\)$", re.IGNORECASE | re.DOTALL)
_PUT_IT_IN_KEY_VAULT: Final[str] = (
    "put the secret in Key Vault (`az keyvault secret set --vault-name <vault> --name <name> --value "
    f"<secret>`) and pass its secret URI, e.g. {REF_EXAMPLE}"
)


def unwrap(value: str) -> str:
    """The secret URI of ``value``: App Service's ``@Microsoft.KeyVault(SecretUri=…)`` form unwrapped,
    surrounding whitespace dropped; any other value as given (``keyvault_ref_problem`` judges it)."""
    text = value.strip()
    wrapped = _APP_SERVICE_FORM.match(text)
    if wrapped is None:
        return text
    key, _, uri = wrapped.group(1).strip().partition("=")
    return uri.strip() if key.strip().lower() == "secreturi" else text


def keyvault_ref_problem(value: str) -> str | None:
    """Why ``value`` is not a Key Vault secret reference (with the fix), or None when it is one."""
    text = unwrap(value)
    if _APP_SERVICE_FORM.match(text):
        return (
            "a @Microsoft.KeyVault(...) reference must name its secret as SecretUri=<secret URI>: "
            f"pass the secret URI itself, e.g. {REF_EXAMPLE}"
        )
    if "://" not in text:
        return (
            "a plain value is not a Key Vault reference, and a secret is never stored as one: "
            f"{_PUT_IT_IN_KEY_VAULT}"
        )
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").lower()
        _ = parts.port  # a malformed port raises here
    except ValueError:
        return f"the reference is not a URL: {_PUT_IT_IN_KEY_VAULT}"
    if parts.scheme.lower() != "https":
        return (
            "a Key Vault reference must be an https:// URL (the relay sends its token to it): "
            f"use {REF_EXAMPLE}"
        )
    if "@" in parts.netloc:
        return f"a Key Vault reference carries no user name or password: use {REF_EXAMPLE}"
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        return f"a Key Vault reference has no query or fragment: use {REF_EXAMPLE}"
    if not _vault_host(host):
        clouds = ", ".join(f"<vault>{s}" for s in VAULT_SUFFIXES)
        return (
            f"the reference's host is not a Key Vault ({clouds}): use the vault's secret URI, "
            f"e.g. {REF_EXAMPLE}"
        )
    if host in LOOPBACK_HOSTS and parts.port is None:
        return "the local Key Vault stand-in's reference needs its port, e.g. https://127.0.0.1:8443/secrets/<name>"
    if host not in LOOPBACK_HOSTS and parts.port not in (None, 443):
        return f"a Key Vault answers on port 443 only: leave the port out, e.g. {REF_EXAMPLE}"
    segments = parts.path.split("/")
    if not (
        len(segments) in (3, 4)
        and segments[0] == ""
        and segments[1] == "secrets"
        and _SECRET_NAME.match(segments[2])
        and (len(segments) == 3 or _VERSION.match(segments[3]) or segments[3] == "")
    ):
        return (
            "the reference's path must be /secrets/<name> or /secrets/<name>/<version> (names: letters, "
            f"digits and hyphens; versions: 32 hex digits): use {REF_EXAMPLE}"
        )
    return None


def _vault_host(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    return any(
        host.endswith(suffix) and _VAULT_LABEL.match(host[: -len(suffix)]) for suffix in VAULT_SUFFIXES
    )


def normalized(ref: str) -> str:
    """The reference as stored: unwrapped, without surrounding whitespace or a trailing slash."""
    return unwrap(ref).rstrip("/")


def versionless(ref: str) -> str:
    """The reference without its version (the latest version is then used): what a rotation stores."""
    text = normalized(ref)
    parts = text.split("/")
    if len(parts) == 6 and parts[3] == "secrets":  # https: '' host secrets name version
        return "/".join(parts[:5])
    return text
