"""relayctl: the operator's CLI over the relay's admin endpoints.

    python -m shared.cli --url https://<app>.azurewebsites.net --key <master key> status
    python -m shared.cli ... disable --reason "DCR migration"
    python -m shared.cli ... enable
    python -m shared.cli ... replay [--id ENTRY_ID ...]
    python -m shared.cli ... reconcile --from 2026-11-25T10:00Z --to 2026-11-25T12:00Z

URL and key may come from RELAY_URL and RELAY_ADMIN_KEY (the host's master key:
`az functionapp keys list -g <rg> -n <app> --query masterKey -o tsv`). The key travels in the
x-functions-key header, never in the URL, so it stays out of proxy logs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request


def call(url: str, key: str, method: str, path: str, params: dict[str, str] | None = None) -> tuple[int, str]:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    req = urllib.request.Request(
        f"{url.rstrip('/')}/api/{path}{query}",
        method=method,
        data=b"" if method == "POST" else None,
        headers={"x-functions-key": key},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="relayctl", description="Operate a wallarm-sentinel-relay.")
    parser.add_argument("--url", default=os.environ.get("RELAY_URL"), help="the Function App's base URL")
    parser.add_argument("--key", default=os.environ.get("RELAY_ADMIN_KEY"), help="the host master key")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="state, queue depth, oldest pending age, 12 h failure ratio, quarantine")
    disable = sub.add_parser("disable", help="disable (events are parked, settings kept)")
    disable.add_argument("--reason", default="")
    sub.add_parser("enable", help="re-enable and replay parked events in order")
    replay = sub.add_parser("replay", help="replay quarantined entries once the cause is fixed")
    replay.add_argument("--id", action="append", default=[], help="only these entry ids")
    reconcile = sub.add_parser("reconcile", help="re-run reconciliation with Wallarm's API for a time range")
    reconcile.add_argument("--from", dest="start", required=True, help="ISO 8601 start (UTC if no offset)")
    reconcile.add_argument("--to", dest="end", required=True, help="ISO 8601 end (UTC if no offset)")
    args = parser.parse_args(argv)
    if not args.url or not args.key:
        parser.error("--url and --key (or RELAY_URL and RELAY_ADMIN_KEY) are required")
    if args.command == "status":
        status, text = call(args.url, args.key, "GET", "relay/status")
    elif args.command == "disable":
        status, text = call(args.url, args.key, "POST", "relay/disable", {"reason": args.reason})
    elif args.command == "enable":
        status, text = call(args.url, args.key, "POST", "relay/enable")
    elif args.command == "reconcile":
        status, text = call(
            args.url, args.key, "POST", "relay/reconcile", {"from": args.start, "to": args.end}
        )
    else:
        status, text = call(
            args.url, args.key, "POST", "relay/replay", {"id": ",".join(args.id)} if args.id else None
        )
    try:
        print(json.dumps(json.loads(text), indent=2))
    except ValueError:
        print(text or f"HTTP {status}")
    return 0 if status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
