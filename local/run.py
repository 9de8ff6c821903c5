"""Run the relay locally: `python -m local.run` (README's run command).

Where Azure is absent it starts local stand-ins: Azurite for Table Storage, a managed-identity
token endpoint and an HTTPS Logs Ingestion API. Set LOGS_INGESTION_ENDPOINT (and the other
settings of README) to send to a real workspace instead; set RELAY_STORAGE_CONNECTION_STRING or
RELAY_STORAGE_TABLE_ENDPOINT to use real storage. Then it serves function_app over HTTP on
127.0.0.1:7071 and runs each timer on its NCRONTAB schedule from the same app settings as the
Functions host (RETRY_WORKER_SCHEDULE, HOURLY_COUNT_SCHEDULE, COMPLETENESS_SCHEDULE; UTC).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import secrets
import shlex
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from contextlib import ExitStack, suppress
from pathlib import Path

from local.host import LocalHost
from local.ncrontab import NcrontabError, Schedule, parse, resolve
from shared.settings import IpNetwork, SettingsError

ROOT = Path(__file__).resolve().parent.parent


def _start_standins(stack: ExitStack) -> dict[str, str]:
    """Start what Azure would provide, return the app settings that point at it."""
    from local.standins import tls
    from local.standins.azurite import Azurite
    from local.standins.identity import ManagedIdentityStandIn, TokenIssuer
    from local.standins.logs_ingestion import LogsIngestionStandIn

    env: dict[str, str] = {}
    if not os.environ.get("RELAY_STORAGE_CONNECTION_STRING") and not os.environ.get(
        "RELAY_STORAGE_TABLE_ENDPOINT"
    ):
        azurite = Azurite()
        azurite.start()
        stack.callback(azurite.stop)
        env["RELAY_STORAGE_CONNECTION_STRING"] = azurite.connection_string
        print(f"  Table Storage   Azurite at {azurite.table_endpoint}")
    if not os.environ.get("LOGS_INGESTION_ENDPOINT"):
        issuer = TokenIssuer()
        identity = stack.enter_context(ManagedIdentityStandIn(issuer))
        ingestion = stack.enter_context(LogsIngestionStandIn(issuer))
        env.update(identity.env())
        env["LOGS_INGESTION_ENDPOINT"] = ingestion.endpoint
        env["LOGS_DCR_IMMUTABLE_ID"] = ingestion.dcr_id
        env["LOGS_STREAM_NAME"] = ingestion.stream
        env["RELAY_CA_BUNDLE"] = tls.ca_bundle_path()
        print(
            f"  Logs Ingestion  stand-in at {ingestion.endpoint} (rows: {ingestion.endpoint}/_standin/rows)"
        )
        print(f"  Identity        managed-identity stand-in at {identity.endpoint}")
        print(f"  Stand-in CA     {env['RELAY_CA_BUNDLE']} (curl --cacert)")
    return env


SCHEDULE_DEFAULTS = {
    "RETRY_WORKER_SCHEDULE": "0 * * * * *",
    "HOURLY_COUNT_SCHEDULE": "0 0 * * * *",
    "COMPLETENESS_SCHEDULE": "0 20 * * * *",
}
"""As local.settings.example.json, the README and infra/main.bicep set them."""


def timer_schedules(host: LocalHost, env: Mapping[str, str]) -> dict[str, Schedule]:
    """Each timer's schedule, resolved from the app settings (`%NAME%`) as the Functions host
    resolves it; SettingsError lists each one that the host would refuse."""
    schedules: dict[str, Schedule] = {}
    problems: list[str] = []
    for timer in host.timers:
        try:
            schedules[timer.name] = parse(resolve(timer.schedule, env))
        except NcrontabError as err:
            problems.append(f"{timer.schedule.strip('%')} (timer {timer.name}): {err}.")
    if problems:
        raise SettingsError(problems)
    return schedules


def _headers(function_key: str, env: Mapping[str, str]) -> list[tuple[str, str]]:
    """The webhook's headers: the function key, and the shared secret when one is set (never
    `?code=` in the URL: a query string ends up in proxy and browser logs)."""
    headers = [("x-functions-key", function_key)]
    if env.get("WEBHOOK_SHARED_SECRET"):
        name = env.get("WEBHOOK_SECRET_HEADER", "").strip() or "X-Wallarm-Relay-Secret"
        headers.append((name, env["WEBHOOK_SHARED_SECRET"]))
    return headers


def banner_commands(url: str, function_key: str, master_key: str, env: Mapping[str, str]) -> list[str]:
    """The commands the banner prints, each one working as printed (shell-quoted) in every
    configuration: with or without WEBHOOK_SHARED_SECRET, whatever WEBHOOK_SECRET_HEADER says."""
    q = shlex.quote
    hook = _headers(function_key, env)
    send_args = " ".join(f"--header {q(f'{k}: {v}')}" for k, v in hook)
    curl_args = " ".join(f"-H {q(f'{k}: {v}')}" for k, v in hook)
    event = '[{"summary":"hi","details":{"notification_type":"create_user"}}]'
    return [
        "Send it an event:",
        f"  python -m local.send {q(url + '/api/wallarm')} {send_args}",
        f"  curl -sS --fail-with-body -X POST {q(url + '/api/wallarm')} {curl_args} "
        f"-H 'Content-Type: application/json' --data {q(event)}",
        f"Test integration: curl -sS --fail-with-body {q(url + '/api/wallarm/test')} {curl_args}",
        f"Status:           curl -sS --fail-with-body -H {q('x-functions-key: ' + master_key)} "
        f"{q(url + '/api/relay/status')}",
    ]


def allow_list_note(networks: Sequence[IpNetwork]) -> str | None:
    """The banner's commands come from 127.0.0.1: an allow-list without it refuses them all."""
    if networks and not any(ipaddress.ip_address("127.0.0.1") in net for net in networks):
        return (
            "Note: ALLOWED_SOURCE_NETWORKS leaves out 127.0.0.1, so the webhook and the probe answer "
            "403 source_not_allowed here; add 127.0.0.1/32 to it to try them locally."
        )
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("RELAY_LOCAL_PORT", "7071")))
    parser.add_argument("--no-timers", action="store_true", help="do not run the timer functions")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("RELAY_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("azure", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    sys.path.insert(0, str(ROOT))

    with ExitStack() as stack:
        print("wallarm-sentinel-relay, local run")
        env = _start_standins(stack)
        os.environ.update(env)
        for name, default in SCHEDULE_DEFAULTS.items():
            os.environ.setdefault(name, default)
        os.environ.setdefault("RELAY_TABLE_PREFIX", "wallarmrelay")

        from function_app import app, services

        function_key = os.environ.get("RELAY_LOCAL_FUNCTION_KEY") or secrets.token_urlsafe(16)
        master_key = os.environ.get("RELAY_LOCAL_MASTER_KEY") or secrets.token_urlsafe(16)
        host = LocalHost(app, port=args.port, function_key=function_key, master_key=master_key)
        svc = services()  # fail now, with the settings problems listed, rather than on the first webhook
        schedules = {} if args.no_timers else timer_schedules(host, os.environ)
        host.start()
        stack.callback(host.stop)
        for name, schedule in schedules.items():
            host.start_timer(name, schedule)
            print(f"  Timer           {name}: {schedule.expression} (UTC)")
        sample = ROOT / "tests" / "fixtures" / "wallarm" / "new_hits.json"
        print(f"\nRelay listening on {host.url}/api/wallarm  (function key: {function_key})")
        for line in banner_commands(host.url, function_key, master_key, os.environ):
            print(line)
        if sample.exists():
            print(f"Sample payloads:  {sample.parent}")
        if note := allow_list_note(svc.settings.allowed_networks):
            print(note)
        print("Ctrl+C to stop.")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
