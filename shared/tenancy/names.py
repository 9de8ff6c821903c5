"""Tenant names: the slug rule, the reserved names and the tables a tenant's name maps to.

Pure: no I/O. A tenant's name appears in its route (``/api/wallarm/{tenant}``), its table names and
the ``ClientName``-adjacent telemetry dimension, so it is held to a small, safe alphabet.
"""

from __future__ import annotations

import re
from typing import Final

DEFAULT_TENANT: Final[str] = "default"
"""The single-integration settings, as a tenant: its tables are today's, its route ``/api/wallarm``."""
RESERVED_NAMES: Final[frozenset[str]] = frozenset(
    {"default", "test", "relay", "tenants", "all", "api", "admin", "status"}
)
"""Names a tenant may not take: they are routes, query words or the default tenant itself."""
SLUG: Final = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
NAME_EXAMPLE: Final[str] = "contoso-eu"
_SHOWN: Final[int] = 40  # never echo more of a caller's value than this


def shown(value: str) -> str:
    """A caller's value as a message may quote it: printable ASCII only, at most 40 characters."""
    cut = value[:_SHOWN]
    safe = "".join(ch if " " <= ch <= "~" else "?" for ch in cut)
    return repr(safe) + ("…" if len(value) > _SHOWN else "")


def slug_problem(name: str) -> str | None:
    """Why ``name`` is not a tenant name (with the fix and an example), or None when it is one."""
    rule = (
        "use 3 to 32 characters: lowercase letters, digits and single hyphens, starting with a letter "
        f"and ending with a letter or digit, e.g. {NAME_EXAMPLE}"
    )
    if not name:
        return f"the tenant name is empty: {rule}."
    if not SLUG.match(name):
        return f"the tenant name {shown(name)} is not a slug: {rule}."
    if "--" in name:
        return f"the tenant name {shown(name)} has two hyphens in a row: {rule}."
    return None


def reserved_problem(name: str) -> str | None:
    """Why ``name`` is reserved, or None."""
    if name not in RESERVED_NAMES:
        return None
    taken = ", ".join(sorted(RESERVED_NAMES))
    return (
        f"the tenant name {shown(name)} is reserved (reserved: {taken}): choose another, e.g. {NAME_EXAMPLE}."
    )


def squashed(name: str) -> str:
    """The name as a table name holds it: without hyphens (Azure table names are alphanumeric)."""
    return name.replace("-", "")


def tenant_table_prefix(base_prefix: str, name: str) -> str:
    """The table prefix of tenant ``name``: ``base_prefix`` + "t" + the name without hyphens.

    The default tenant keeps ``base_prefix`` itself, so a deployment that never adds a tenant keeps
    its tables. Table names are case-insensitive and alphanumeric, so ``a-b`` and ``ab`` would
    share tables: the registry refuses the second (see ``squashed``)."""
    if name == DEFAULT_TENANT:
        return base_prefix
    return f"{base_prefix}t{squashed(name)}"
