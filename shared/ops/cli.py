"""relayctl: the operator's CLI over the relay's admin endpoints.

    python -m shared.ops.cli --url https://<app>.azurewebsites.net --key <master key> status
    python -m shared.ops.cli ... disable --reason "DCR migration"
    python -m shared.ops.cli ... enable
    python -m shared.ops.cli ... replay [--id ENTRY_ID ...]
    python -m shared.ops.cli ... reconcile --from 2026-11-25T10:00Z --to 2026-11-25T12:00Z
    python -m shared.ops.cli ... status --tenant contoso-eu
    python -m shared.ops.cli ... tenant add contoso-eu --setting LOGS_INGESTION_ENDPOINT=https://… \
        --setting LOGS_DCR_IMMUTABLE_ID=dcr-… \
        --secret-ref WEBHOOK_SHARED_SECRET=https://<vault>.vault.azure.net/secrets/contoso-hook
    python -m shared.ops.cli ... tenant list | show NAME | update NAME … | rotate-secret NAME
    python -m shared.ops.cli ... tenant disable NAME [--reason …] | enable NAME
    python -m shared.ops.cli ... tenant remove NAME [--drain | --export FILE]

URL and key may come from RELAY_URL and RELAY_ADMIN_KEY (the host's master key:
`az functionapp keys list -g <rg> -n <app> --query masterKey -o tsv`). The key travels in the
x-functions-key header, never in the URL, so it stays out of proxy logs; redirects are not
followed, so it is never sent on to another address.

Exit status: 0 done; 1 the relay answered with an error (its JSON answer is printed); 2 the call
could not be made as given (one line saying what is wrong, one saying how to fix it).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, NoReturn

from shared.ops.cli_tenants import add_tenant_commands, open_export, tenant_request, write_export
from shared.ops.user_error import UserError

__all__ = ["UserError", "call", "main", "parser"]

MASTER_KEY_COMMAND = "az functionapp keys list -g <rg> -n <app> --query masterKey -o tsv"
URL_EXAMPLE = "https://<app>.azurewebsites.net (http://127.0.0.1:7071 for python -m local.run)"
EPILOG = f"""environment:
  RELAY_URL        the Function App's base URL, without /api, e.g.
                   {URL_EXAMPLE}
  RELAY_ADMIN_KEY  the host's master key (a function key is refused with 401):
                   {MASTER_KEY_COMMAND}
                   (python -m local.run prints its own, or takes RELAY_LOCAL_MASTER_KEY)

examples:
  relayctl status
  relayctl disable --reason "DCR migration"
  relayctl enable
  relayctl replay --id 001764072000000-0000001a2b3c4d --id 001764072000000-0000001a2b3c4e
  relayctl reconcile --from 2026-11-25T10:00Z --to 2026-11-25T12:00Z
  relayctl status --tenant contoso-eu
  relayctl tenant add contoso-eu --setting LOGS_INGESTION_ENDPOINT=https://<dce>.ingest.monitor.azure.com \
      --setting LOGS_DCR_IMMUTABLE_ID=dcr-<id> \
      --secret-ref WEBHOOK_SHARED_SECRET=https://<vault>.vault.azure.net/secrets/contoso-hook
  relayctl tenant rotate-secret contoso-eu
  relayctl tenant remove contoso-eu --export contoso-eu-queue.json

exit status: 0 done; 1 the relay answered with an error (its JSON answer is printed);
2 the call could not be made as given (what is wrong, and how to fix it)."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect becomes an HTTPError: following it would send the master key to another address."""

    def redirect_request(self, *args: object, **kwargs: object) -> NoReturn:
        raise _Redirected


class _Redirected(Exception):
    pass


_OPENER = urllib.request.build_opener(_NoRedirect)


def _check(url: str, key: str) -> str:
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in url.strip()):
        raise UserError(
            f"--url {url!r} is not an http(s) URL.", f"use the relay's base URL, e.g. {URL_EXAMPLE}."
        )
    if not key.isascii() or not key.isprintable() or not key.strip():
        raise UserError(
            "--key is not a key: it holds spaces, control or non-ASCII characters.",
            f"copy the master key again: {MASTER_KEY_COMMAND}",
        )
    return url.strip().rstrip("/").removesuffix("/api")


def call(
    url: str,
    key: str,
    method: str,
    path: str,
    params: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> tuple[int, str]:
    """(status, body) of an admin call; UserError when it cannot be made or the key is refused."""
    base = _check(url, key)
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    headers = {"x-functions-key": key.strip()}
    data = b"" if method == "POST" else None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(f"{base}/api/{path}{query}", method=method, data=data, headers=headers)
    try:
        with _OPENER.open(req, timeout=30) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except _Redirected:
        raise UserError(
            f"the relay at {base} answered with a redirect; relayctl does not follow it, so the key "
            "is never sent to another address.",
            f"use the address it redirects to (usually https://) as --url or RELAY_URL, e.g. {URL_EXAMPLE}.",
        ) from None
    except urllib.error.HTTPError as err:
        answer = err.read().decode("utf-8", "replace")
        if err.code in (401, 403):
            raise UserError(
                f"the relay refused the key (HTTP {err.code}): admin commands need the host's master key, "
                "not a function key.",
                f"get it with `{MASTER_KEY_COMMAND}` and pass it as --key or RELAY_ADMIN_KEY.",
            ) from None
        if err.code == 404 and not _is_relay_error(answer):
            raise UserError(
                f"no relay admin endpoint at {base}/api/{path} (HTTP 404).",
                f"check --url or RELAY_URL: the Function App's base URL, without /api, e.g. {URL_EXAMPLE}.",
            ) from None
        return err.code, answer
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", None) or err
        raise UserError(
            f"cannot reach the relay at {base}: {reason}.",
            "check --url or RELAY_URL and that the relay is running (python -m local.run locally; "
            "on Azure, that the Function App is started).",
        ) from None


def _is_relay_error(body: str) -> bool:
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    return isinstance(parsed, dict) and isinstance(parsed.get("error"), dict)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="relayctl",
        description="Operate a wallarm-sentinel-relay through its admin endpoints.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--url", default=os.environ.get("RELAY_URL"), help="the Function App's base URL (default: $RELAY_URL)"
    )
    p.add_argument(
        "--key",
        default=os.environ.get("RELAY_ADMIN_KEY"),
        help="the host's master key (default: $RELAY_ADMIN_KEY)",
    )
    sub = p.add_subparsers(dest="command", required=True)
    status = sub.add_parser(
        "status", help="state, queue depth, oldest pending age, 12 h failure ratio, quarantine"
    )
    disable = sub.add_parser("disable", help="disable (events are parked, settings kept)")
    disable.add_argument(
        "--reason", default="", help="why, recorded with who and when (one line, at most 200 characters)"
    )
    enable = sub.add_parser("enable", help="re-enable and replay parked events in order")
    replay = sub.add_parser("replay", help="replay quarantined entries once the cause is fixed")
    replay.add_argument(
        "--id",
        action="append",
        default=[],
        help="only this quarantined entry (repeat for several, at most 100; ids are under `quarantined` "
        "in `relayctl status`); an id that is not quarantined makes the command fail",
    )
    reconcile = sub.add_parser("reconcile", help="re-run reconciliation with Wallarm's API for a time range")
    reconcile.add_argument("--from", dest="start", required=True, help="ISO 8601 start (UTC if no offset)")
    reconcile.add_argument("--to", dest="end", required=True, help="ISO 8601 end (UTC if no offset)")
    for command in (status, disable, enable, replay, reconcile):
        command.add_argument(
            "--tenant",
            default="",
            help="the tenant to act on (default: the default tenant; `status --tenant all` for every tenant)",
        )
    add_tenant_commands(sub)
    return p


Request = tuple[str, str, dict[str, str] | None, dict[str, Any] | None]
"""(method, path, query, JSON body) of one admin call."""


def _request(args: argparse.Namespace) -> Request:
    if args.command == "tenant":
        return tenant_request(args)
    method, path, params = _relay_request(args)
    if args.tenant:
        params = {**(params or {}), "tenant": args.tenant}
    return method, path, params, None


def _relay_request(args: argparse.Namespace) -> tuple[str, str, dict[str, str] | None]:
    if args.command == "status":
        return "GET", "relay/status", None
    if args.command == "disable":
        return "POST", "relay/disable", {"reason": args.reason}
    if args.command == "enable":
        return "POST", "relay/enable", None
    if args.command == "reconcile":
        return "POST", "relay/reconcile", {"from": args.start, "to": args.end}
    return "POST", "relay/replay", {"id": ",".join(args.id)} if args.id else None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if not args.url or not args.key:
            missing = " and ".join(n for n, v in (("--url", args.url), ("--key", args.key)) if not v)
            raise UserError(
                f"{missing} not given.",
                f"pass them, or set RELAY_URL (e.g. {URL_EXAMPLE}) and RELAY_ADMIN_KEY "
                f"(`{MASTER_KEY_COMMAND}`); see relayctl --help.",
            )
        request = _request(args)
        export = open_export(args)  # before the call: the rows must have somewhere to go
        status, text = call(args.url, args.key, *request)
        if export is not None:
            text = write_export(export, status, text)
    except UserError as err:
        print(f"relayctl: {err.what}\nfix: {err.fix}", file=sys.stderr)
        return 2
    try:
        print(json.dumps(json.loads(text), indent=2))
    except ValueError:
        print(text or f"HTTP {status}")
    return 0 if status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
