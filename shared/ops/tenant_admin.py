"""The operator's tenant operations: add, list, show, update, rotate the secret, disable, enable,
remove, audit (issue 22). Shared by the admin routes (master-key auth) and, through them, relayctl.

Every change is validated by ``spec_problems`` (the same checks as the default tenant's settings,
plus the tenant's own rules) and audited by the registry. A refusal is ``TenantRefused``: an
``InvalidInput`` with the HTTP status it is answered with. Messages never quote a secret, and quote
at most 40 characters of any other caller value.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Final, Protocol, TypeVar

from shared.clock import iso_ms
from shared.ops.admin import InvalidInput, parse_reason
from shared.settings import TEXT_DEFAULTS
from shared.store.tenants import (
    TenantConflict,
    TenantExists,
    TenantNotFound,
    TenantRecord,
    TenantRegistry,
    diff,
)
from shared.tenancy.destination import DestinationCredential
from shared.tenancy.names import DEFAULT_TENANT, NAME_EXAMPLE, reserved_problem, shown, slug_problem
from shared.tenancy.refs import normalized, versionless
from shared.tenancy.spec import (
    TenantSpec,
    base_table_prefix,
    spec_of,
    spec_problems,
    tenant_table_prefix,
)
from shared.tenancy.tenant_ops import MAX_EXPORT_ENTRIES, SecretStoreUnavailable

T = TypeVar("T")
AUDIT_ROWS: Final[int] = 20
MAX_VALUE_CHARS: Final[int] = 2048
REMOVE_THEN: Final[tuple[str, ...]] = ("", "drain", "export")
CREDENTIAL_FIELDS: Final[tuple[str, ...]] = ("kind", "client_id", "entra_tenant_id", "secret_ref")
_SECRET_KEY: Final[str] = "WEBHOOK_SHARED_SECRET"
_BODY_EXAMPLE: Final[str] = (
    '{"name": "contoso-eu", "settings": {"LOGS_INGESTION_ENDPOINT": "https://…", '
    '"LOGS_DCR_IMMUTABLE_ID": "dcr-…"}, "secret_refs": {"WEBHOOK_SHARED_SECRET": '
    '"https://<vault>.vault.azure.net/secrets/<name>"}, "credential": {"kind": "managed_identity"}}'
)


class SecretWriter(Protocol):
    """Writes a secret as a new Key Vault version; returns the versionless reference. Raises
    ``SecretStoreUnavailable`` when the vault cannot be written."""

    def set(self, ref: str, value: str) -> str: ...


class TenantQueues(Protocol):
    """What waits in a tenant's queue, and what removing it does with that."""

    def pending(self, name: str) -> int: ...

    def export(self, name: str) -> list[dict[str, Any]]: ...

    def discard(self, name: str, ids: list[str]) -> int: ...

    def drain_then_remove(self, name: str) -> None: ...


class TenantSwitches(Protocol):
    """An operator's disable and enable of one tenant."""

    def disable(self, name: str, by: str, reason: str) -> None: ...

    def enable(self, name: str, by: str) -> None: ...


class TenantRefused(InvalidInput):
    """A tenant operation refused: ``status`` is the HTTP answer, ``problems`` each problem's fix."""

    def __init__(self, code: str, message: str, status: int = 400, problems: list[str] | None = None) -> None:
        super().__init__(code, message)
        self.status = status
        self.problems = problems or []


def _unknown(name: str) -> TenantRefused:
    hint = (
        "the default tenant is the app settings, not a registry entry"
        if name == DEFAULT_TENANT
        else "see `relayctl tenant list` for the tenants there are"
    )
    return TenantRefused("unknown_tenant", f"no tenant named {shown(name)}: {hint}.", 404)


def check_name(name: str, *, adding: bool = False) -> None:
    """Refuse a name that is not a slug (400); on add, a reserved one too."""
    problem = slug_problem(name)
    if problem:
        raise TenantRefused("invalid_tenant_name", problem[:1].upper() + problem[1:])
    if adding and (problem := reserved_problem(name)):
        raise TenantRefused("reserved_tenant_name", problem[:1].upper() + problem[1:])


def _strings(body: Mapping[str, Any], key: str, *, clearable: bool) -> dict[str, str | None]:
    """``body[key]`` as {name: value}: strings (true/false and numbers as text), null to clear."""
    raw = body.get(key, {})
    if not isinstance(raw, dict):
        raise TenantRefused(
            "invalid_body", f"`{key}` must be a JSON object of names to values, e.g. {_BODY_EXAMPLE}"
        )
    out: dict[str, str | None] = {}
    for name, value in raw.items():
        if value is None and clearable:
            out[str(name)] = None
        elif isinstance(value, bool):
            out[str(name)] = "true" if value else "false"
        elif isinstance(value, str | int | float) and len(str(value)) <= MAX_VALUE_CHARS:
            out[str(name)] = str(value).strip()
        else:
            what = "null (to clear it) or " if clearable else ""
            raise TenantRefused(
                "invalid_body",
                f"`{key}.{shown(str(name))}` must be {what}a string of at most {MAX_VALUE_CHARS} characters.",
            )
    return out


def _merge(current: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, str]:
    merged = dict(current)
    for key, value in changes.items():
        if value is None or value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def credential_fields(cred: DestinationCredential) -> dict[str, str]:
    """The credential as the registry stores it (no secret: ``secret_ref`` is a reference)."""
    values = {
        "kind": cred.kind,
        "client_id": cred.client_id,
        "entra_tenant_id": cred.entra_tenant_id,
        "secret_ref": cred.secret_ref,
    }
    return {k: v for k, v in values.items() if v}


def _spec(name: str, record_like: Mapping[str, Mapping[str, str]]) -> TenantSpec:
    return spec_of(name, record_like["settings"], record_like["secret_refs"], record_like["credential"])


class TenantAdmin:
    """The tenant operations over the registry and the injected collaborators."""

    def __init__(
        self,
        registry: TenantRegistry,
        queues: TenantQueues,
        switches: TenantSwitches,
        secret_writer: SecretWriter,
        base_env: Mapping[str, str],
        *,
        changed: Callable[[], None] | None = None,
    ) -> None:
        """``changed``: called after each registry write, so this instance serves the change at
        once (a tenant removed with then=drain gets 404 from its next webhook on), not only
        after its next periodic registry read."""
        self.registry = registry
        self.queues = queues
        self.switches = switches
        self.secret_writer = secret_writer
        self.base_env = dict(base_env)
        self._changed = changed or (lambda: None)

    # ---- reading ------------------------------------------------------------------------------

    def list(self) -> dict[str, Any]:
        return {"tenants": [self._summary(r) for r in self.registry.list()]}

    def show(self, name: str) -> dict[str, Any]:
        record = self._get(name)
        return {**self._summary(record), "audit": self.audit(name)["audit"]}

    def audit(self, name: str, limit: int = AUDIT_ROWS) -> dict[str, Any]:
        check_name(name)
        rows = self.registry.audit(name, limit)
        return {
            "tenant": name,
            "audit": [
                {
                    "at": iso_ms(a.at) if a.at else None,
                    "by": a.by,
                    "action": a.action,
                    "changed": a.changed,
                    "detail": a.detail,
                }
                for a in rows
            ],
        }

    def _get(self, name: str) -> TenantRecord:
        check_name(name)
        record = self.registry.get(name)
        if record is None:
            raise _unknown(name)
        return record

    def _summary(self, record: TenantRecord) -> dict[str, Any]:
        return {
            "name": record.name,
            "route": f"/api/wallarm/{record.name}",
            "table_prefix": record.table_prefix,
            "settings": dict(record.settings),
            "secret_refs": dict(record.secret_refs),
            "credential": dict(record.credential),
            "removing": record.removing,
            "created_at": iso_ms(record.created_at) if record.created_at else None,
            "updated_at": iso_ms(record.updated_at) if record.updated_at else None,
            "updated_by": record.updated_by,
        }

    # ---- changing -----------------------------------------------------------------------------

    def _validated(self, spec: TenantSpec) -> TenantSpec:
        problems = spec_problems(spec, self.base_env)
        if problems:
            raise TenantRefused(
                "invalid_tenant",
                f"tenant {shown(spec.name)} has {len(problems)} problem(s), each with its fix under "
                "`problems`; nothing was changed.",
                problems=problems,
            )
        return spec

    def add(self, body: Mapping[str, Any], by: str) -> dict[str, Any]:
        unknown = set(body) - {"name", "settings", "secret_refs", "credential"}
        if unknown:
            raise TenantRefused(
                "invalid_body",
                f"unknown fields {sorted(shown(k) for k in unknown)}: an add takes name, settings, "
                f"secret_refs and credential, e.g. {_BODY_EXAMPLE}",
            )
        name = body.get("name")
        if not isinstance(name, str):
            raise TenantRefused("invalid_tenant_name", f"`name` must be a string, e.g. {NAME_EXAMPLE}.")
        check_name(name, adding=True)
        fields = {
            k: _merge({}, _strings(body, k, clearable=False))
            for k in ("settings", "secret_refs", "credential")
        }
        spec = self._validated(_spec(name, fields))
        prefix = tenant_table_prefix(base_table_prefix(self.base_env), name)
        self._refuse_leftovers(name)
        try:
            record = self.registry.add(self._record(spec, prefix), by)
        except TenantExists as err:
            why = (
                "it exists"
                if err.taken_by == name
                else f"its tables would be tenant {shown(err.taken_by)}'s (names compare without hyphens)"
            )
            raise TenantRefused(
                "tenant_exists",
                f"tenant {shown(name)} cannot be added: {why}; choose another name, or change the "
                "existing tenant with update.",
                409,
            ) from None
        self._changed()
        return {**self._summary(record), "next": self._next_steps(record)}

    def _refuse_leftovers(self, name: str) -> None:
        """A name's tables outlive its tenant: entries a previous tenant of that name left there (a
        webhook another instance took in its last seconds, an export killed before its clean-up)
        would be delivered to the new tenant's destination. Refused rather than done silently."""
        if self.registry.get(name) is not None:
            return  # the add answers tenant_exists
        left = self.queues.pending(name)
        if left:
            raise TenantRefused(
                "tenant_tables_not_empty",
                f"a previous tenant named {shown(name)} left {left} queued, parked or quarantined "
                "entries in its tables; adding the name again would deliver them to this tenant's "
                "destination, so nothing was added: choose another name (the entries stay where "
                "they are for an operator to inspect).",
                409,
            )

    def _record(self, spec: TenantSpec, prefix: str, old: TenantRecord | None = None) -> TenantRecord:
        base = old or TenantRecord(name=spec.name, table_prefix=prefix)
        return replace(
            base,
            settings=dict(spec.settings),
            secret_refs=dict(spec.secret_refs),
            credential=credential_fields(spec.credential),
        )

    def _next_steps(self, record: TenantRecord) -> str:
        header = record.settings.get("WEBHOOK_SECRET_HEADER") or self.base_env.get(
            "WEBHOOK_SECRET_HEADER", TEXT_DEFAULTS["WEBHOOK_SECRET_HEADER"]
        )
        return (
            f"point the tenant's Wallarm webhook at https://<app>.azurewebsites.net/api/wallarm/{record.name}"
            f"?code=<function key> with the custom header {header}: <the secret in Key Vault> "
            f"(`relayctl tenant rotate-secret {record.name}` writes a fresh one and shows it once)"
        )

    def update(self, name: str, body: Mapping[str, Any], by: str) -> dict[str, Any]:
        unknown = set(body) - {"settings", "secret_refs", "credential"}
        if unknown or not body:
            raise TenantRefused(
                "invalid_body",
                "an update takes settings, secret_refs and/or credential (a value null clears it), e.g. "
                '{"settings": {"LOGS_STREAM_NAME": "Custom-WallarmSentinel_CL"}}',
            )
        old = self._get(name)
        fields = {
            "settings": _merge(old.settings, _strings(body, "settings", clearable=True)),
            "secret_refs": _merge(old.secret_refs, _strings(body, "secret_refs", clearable=True)),
            "credential": _merge(old.credential, _strings(body, "credential", clearable=True)),
        }
        spec = self._validated(_spec(name, fields))
        new = self._record(spec, old.table_prefix, old)
        if new == old:
            return {**self._summary(old), "changed": []}
        updated = self._guarded(name, lambda: self.registry.update(old, new, by))
        self._changed()
        return {**self._summary(updated), "changed": diff(old, updated)[0]}

    def _guarded(self, name: str, write: Callable[[], T]) -> T:
        """A registry write; a lost race or a vanished tenant as the caller's answer."""
        try:
            return write()
        except TenantConflict:
            raise TenantRefused(
                "tenant_changed",
                f"tenant {shown(name)} was changed by someone else meanwhile; nothing was changed: "
                "look at it again (`relayctl tenant show`) and repeat the change if it still applies.",
                409,
            ) from None
        except TenantNotFound:
            raise _unknown(name) from None

    def rotate_secret(self, name: str, by: str) -> dict[str, Any]:
        """Write a fresh shared secret as a new Key Vault version and show it once (never stored
        anywhere but Key Vault, never logged)."""
        old = self._get(name)
        ref = old.secret_refs.get(_SECRET_KEY)
        if not ref:
            raise TenantRefused(
                "no_secret_ref",
                f"tenant {shown(name)} has no {_SECRET_KEY} reference to rotate: set one with "
                "update (secret_refs), then rotate.",
                409,
            )
        value = secrets.token_urlsafe(32)
        try:
            written = normalized(self.secret_writer.set(ref, value))
        except SecretStoreUnavailable as err:
            raise TenantRefused("secret_store_unavailable", str(err), 501) from None
        stored = versionless(ref) if written == versionless(ref) else written
        note = "new Key Vault version"
        if stored != ref:  # a pinned version would keep the old secret: store the versionless ref
            new = replace(old, secret_refs={**old.secret_refs, _SECRET_KEY: stored})
            self._guarded(name, lambda: self.registry.update(old, new, by, action="rotate_secret", note=note))
        else:
            self.registry.record(
                name, by, "rotate_secret", {f"secret_refs.{_SECRET_KEY}": stored, "note": note}
            )
        self._changed()
        header = old.settings.get("WEBHOOK_SECRET_HEADER") or self.base_env.get(
            "WEBHOOK_SECRET_HEADER", TEXT_DEFAULTS["WEBHOOK_SECRET_HEADER"]
        )
        return {
            "tenant": name,
            "secret": value,
            "header": header,
            "secret_ref": stored,
            "next": f"paste the secret into the Wallarm integration's custom header {header} now: it is "
            "shown only this once and kept only in Key Vault",
        }

    def disable(self, name: str, by: str, reason: str) -> dict[str, Any]:
        self._get(name)
        reason = parse_reason(reason)
        self.switches.disable(name, by, reason)
        self.registry.record(name, by, "disable", {"reason": reason})
        return {"tenant": name, "enabled": False, "reason": reason, "changed_by": by}

    def enable(self, name: str, by: str) -> dict[str, Any]:
        self._get(name)
        self.switches.enable(name, by)
        self.registry.record(name, by, "enable", {})
        return {"tenant": name, "enabled": True, "changed_by": by}

    def remove(self, name: str, by: str, then: str = "") -> dict[str, Any]:
        """Remove a tenant. With queued entries, only when told what to do with them: ``drain``
        (no new webhooks; removed once delivered) or ``export`` (returned here, then removed)."""
        if then not in REMOVE_THEN:
            raise TenantRefused(
                "invalid_then", "then must be drain or export (or absent when nothing is queued)."
            )
        old = self._get(name)
        pending = self.queues.pending(name)
        if pending and not then:
            raise TenantRefused(
                "tenant_has_queued_events",
                f"tenant {shown(name)} has {pending} queued, parked or quarantined entries; nothing was "
                "removed: remove it with then=drain (it takes no new webhooks, its queue is delivered, "
                "then it is removed) or then=export (the entries come back in the answer and are "
                "removed with it): relayctl tenant remove NAME --drain, or --export FILE.",
                409,
            )
        if pending and then == "drain":
            marked = replace(old, removing=True)
            note = f"drain: {pending} entries wait"
            self._guarded(name, lambda: self.registry.update(old, marked, by, action="remove", note=note))
            self.queues.drain_then_remove(name)
            self._changed()
            return {"tenant": name, "removing": True, "pending_entries": pending, "removed": False}
        if pending and pending > MAX_EXPORT_ENTRIES:
            raise TenantRefused(
                "too_many_to_export",
                f"tenant {shown(name)} has {pending} entries, more than one export holds "
                f"({MAX_EXPORT_ENTRIES}); nothing was removed: use then=drain.",
                409,
            )
        if pending:  # marked first, so no new webhook queues behind the export's back
            marked = replace(old, removing=True)
            old = self._guarded(
                name, lambda: self.registry.update(old, marked, by, action="remove", note="export")
            )
            self._changed()
        rows = self.queues.export(name) if pending else []
        note = f"export: {len(rows)} entries" if rows else ""
        current = old
        self._guarded(name, lambda: self.registry.remove(current, by, note=note))
        self._changed()
        if rows:
            self.queues.discard(name, [str(r["id"]) for r in rows])
        answer: dict[str, Any] = {"tenant": name, "removed": True}
        if then == "export":
            answer["exported"] = rows
        return answer
