"""relayctl's tenant commands: parsing, the checks that keep a secret off the wire, and export files.

What can be checked here is checked before any call (a name that is not a slug, a setting that is
not NAME=VALUE, a secret reference that is not a Key Vault URI), so a plain secret typed by mistake
is refused on the operator's machine and never sent. Messages never repeat a value.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import urllib.parse
from typing import Any

from shared.ops.user_error import UserError
from shared.tenancy.names import shown, slug_problem
from shared.tenancy.refs import REF_EXAMPLE, keyvault_ref_problem
from shared.tenancy.spec import CREDENTIAL_KINDS, TENANT_SECRETS

Request = tuple[str, str, dict[str, str] | None, dict[str, Any] | None]
SETTING_EXAMPLE = "--setting LOGS_STREAM_NAME=Custom-WallarmSentinel_CL"


def add_tenant_commands(sub: Any) -> None:
    """`relayctl tenant add|list|show|update|rotate-secret|disable|enable|remove`."""
    tenant = sub.add_parser("tenant", help="manage tenants (add, list, show, update, rotate-secret, …)")
    commands = tenant.add_subparsers(dest="tenant_command", required=True)
    add = commands.add_parser("add", help="add a tenant: its settings, secret references and credential")
    add.add_argument("name", help="a slug: 3-32 lowercase letters, digits and single hyphens")
    _spec_options(add)
    commands.add_parser("list", help="every tenant, with its settings and references")
    commands.add_parser("show", help="one tenant, with its last 20 audit rows").add_argument("name")
    update = commands.add_parser(
        "update", help="change some of a tenant's settings, references or credential"
    )
    update.add_argument("name")
    _spec_options(update)
    update.add_argument(
        "--unset", action="append", default=[], metavar="NAME", help="drop a setting or secret reference"
    )
    commands.add_parser(
        "rotate-secret", help="write a fresh shared secret to Key Vault and show it once"
    ).add_argument("name")
    disable = commands.add_parser("disable", help="disable one tenant (its events are parked)")
    disable.add_argument("name")
    disable.add_argument("--reason", default="", help="why (one line, at most 200 characters)")
    commands.add_parser("enable", help="re-enable one tenant").add_argument("name")
    remove = commands.add_parser("remove", help="remove a tenant; with queued events, --drain or --export")
    remove.add_argument("name")
    then = remove.add_mutually_exclusive_group()
    then.add_argument(
        "--drain", action="store_true", help="take no new webhooks, deliver the queue, then remove"
    )
    then.add_argument("--export", metavar="FILE", help="write the queued entries to FILE (new), then remove")


def _spec_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--setting", action="append", default=[], metavar="NAME=VALUE", help="a tenant setting"
    )
    command.add_argument(
        "--secret-ref",
        action="append",
        default=[],
        metavar="NAME=URI",
        help=f"a secret's Key Vault reference ({', '.join(sorted(TENANT_SECRETS))}), e.g. {REF_EXAMPLE}",
    )
    command.add_argument("--credential", choices=CREDENTIAL_KINDS, help="how the relay reaches the DCR")
    command.add_argument("--client-id", help="the app registration's (or user-assigned identity's) client id")
    command.add_argument("--entra-tenant-id", help="the customer's Entra tenant id (app registrations)")
    command.add_argument(
        "--credential-secret-ref", metavar="URI", help="the client secret's or certificate's reference"
    )


def _fix(problem: str, marker: str) -> UserError:
    """A checker's one-line problem ('<what><marker><fix>') as relayctl's two lines."""
    what, _, fix = problem.partition(marker)
    return UserError(what.rstrip(".") + ".", (fix or "see relayctl tenant --help").rstrip(".") + ".")


def _name(args: argparse.Namespace) -> str:
    problem = slug_problem(args.name)
    if problem:
        raise _fix(problem, ": use ")
    return urllib.parse.quote(args.name, safe="")


def _pairs(values: list[str], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for number, value in enumerate(values, start=1):
        key, sep, rest = value.partition("=")
        if not sep or not key.strip() or not rest.strip():
            raise UserError(
                f"{option} number {number} is not NAME=VALUE.",
                f"give one name and its value, e.g. {SETTING_EXAMPLE}.",
            )
        out[key.strip()] = rest.strip()
    return out


def _ref(option: str, value: str) -> str:
    problem = keyvault_ref_problem(value)
    if problem:
        what, _, fix = problem.partition(": ")
        raise UserError(f"{option}: {what}; nothing was sent.", fix.rstrip(".") + ".")
    return value


def _body(args: argparse.Namespace) -> dict[str, Any]:
    settings: dict[str, Any] = dict(_pairs(args.setting, "--setting"))
    for key in settings:
        if key in TENANT_SECRETS:
            raise UserError(
                f"--setting {key}: a secret is never a setting, and nothing was sent.",
                f"put it in Key Vault and pass --secret-ref {key}={REF_EXAMPLE}.",
            )
    refs: dict[str, Any] = {
        k: _ref(f"--secret-ref {shown(k)}", v) for k, v in _pairs(args.secret_ref, "--secret-ref").items()
    }
    for key in getattr(args, "unset", []):
        (refs if key in TENANT_SECRETS else settings)[key] = None
    credential = {
        "kind": args.credential,
        "client_id": args.client_id,
        "entra_tenant_id": args.entra_tenant_id,
        "secret_ref": _ref("--credential-secret-ref", args.credential_secret_ref)
        if args.credential_secret_ref
        else None,
    }
    body: dict[str, Any] = {"settings": settings, "secret_refs": refs}
    body["credential"] = {k: v for k, v in credential.items() if v}
    return {k: v for k, v in body.items() if v}


def tenant_request(args: argparse.Namespace) -> Request:
    """(method, path, query, body) of a tenant command; UserError for what is wrong before the call."""
    command = args.tenant_command
    if command == "list":
        return "GET", "relay/tenants", None, None
    path = f"relay/tenants/{_name(args)}"
    if command == "add":
        return "POST", "relay/tenants", None, {"name": args.name, **_body(args)}
    if command == "show":
        return "GET", path, None, None
    if command == "update":
        body = _body(args)
        if not body:
            raise UserError(
                "nothing to update.",
                "pass --setting, --secret-ref, --unset or a credential option, e.g. "
                f"relayctl tenant update {args.name} {SETTING_EXAMPLE}.",
            )
        return "PATCH", path, None, body
    if command == "remove":
        then = "drain" if args.drain else "export" if args.export else ""
        return "DELETE", path, {"then": then} if then else None, None
    if command == "disable":
        return "POST", f"{path}/disable", {"reason": args.reason}, None
    return "POST", f"{path}/{command}", None, None


def open_export(args: argparse.Namespace) -> str | None:
    """Create the export file (new, owner-only) before the call, so rows always have somewhere to go."""
    path: str | None = getattr(args, "export", None) if args.command == "tenant" else None
    if not path:
        return None
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        raise UserError(
            f"--export {path} exists.", "name a new file: an export never overwrites one."
        ) from None
    except OSError as err:
        raise UserError(
            f"cannot create --export {path}: {err.strerror}.", "name a file in a writable directory."
        ) from None
    return path


def write_export(path: str, status: int, text: str) -> str:
    """Write the answer's exported entries to ``path`` and answer with their count instead; on an
    error answer, drop the empty file."""
    answer: Any = None
    with contextlib.suppress(ValueError):
        answer = json.loads(text)
    if status >= 300 or not isinstance(answer, dict):
        os.unlink(path)
        return text
    rows = answer.pop("exported", [])
    with open(path, "w", encoding="utf-8") as out:
        json.dump(rows, out, indent=2)
    return json.dumps({**answer, "exported_entries": len(rows), "exported_to": path})
