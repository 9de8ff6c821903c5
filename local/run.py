"""Run the relay locally: `python -m local.run` (README's run command).

Where Azure is absent it starts local stand-ins: Azurite for Table Storage, a managed-identity
token endpoint, an HTTPS Logs Ingestion API and a Key Vault (empty: a tenant's secret references
point at it, `https://127.0.0.1:<port>/secrets/<name>`). Set LOGS_INGESTION_ENDPOINT (and the other
settings of README) to send to a real workspace instead; set RELAY_STORAGE_CONNECTION_STRING or
RELAY_STORAGE_TABLE_ENDPOINT to use real storage. Then it serves function_app over HTTP on
127.0.0.1:7071 and runs each timer on its NCRONTAB schedule from the same app settings as the
Functions host (RETRY_WORKER_SCHEDULE, HOURLY_COUNT_SCHEDULE, COMPLETENESS_SCHEDULE; UTC).
"""

from __future__ import annotations

import argparse
import errno
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
from local.standins.azurite import AzuriteError
from shared.settings import IpNetwork, SettingsError

ROOT = Path(__file__).resolve().parent.parent


def _start_standins(stack: ExitStack) -> dict[str, str]:
    """Start what Azure would provide, return the app settings that point at it."""
    from local.standins import tls
    from local.standins.azurite import Azurite
    from local.standins.identity import ManagedIdentityStandIn, TokenIssuer
    from local.standins.key_vault import KeyVaultStandIn
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
        vault = stack.enter_context(KeyVaultStandIn(issuer))
        env.update(identity.env())
        env["LOGS_INGESTION_ENDPOINT"] = ingestion.endpoint
        env["LOGS_DCR_IMMUTABLE_ID"] = ingestion.dcr_id
        env["LOGS_STREAM_NAME"] = ingestion.stream
        env["RELAY_CA_BUNDLE"] = tls.ca_bundle_path()
        print(
            f"  Logs Ingestion  stand-in at {ingestion.endpoint} (rows: {ingestion.endpoint}/_standin/rows)"
        )
        print(f"  Identity        managed-identity stand-in at {identity.endpoint}")
        print(f"  Key Vault       stand-in at {vault.vault_url} (references: {vault.secret_uri('<name>')})")
        print(f"  Stand-in CA     {env['RELAY_CA_BUNDLE']} (curl --cacert)")
    return env


class UserError(Exception):
    """Something the person running the relay can fix: what is wrong, and how."""

    def __init__(self, what: str, fix: str) -> None:
        super().__init__(what)
        self.what = what
        self.fix = fix


def _port(raw: str) -> int:
    """--port / RELAY_LOCAL_PORT: 0 (any free port) to 65535."""
    if not raw.strip().isdigit() or int(raw) > 65535:
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not a port: use a number from 1 to 65535, e.g. --port 7072 or RELAY_LOCAL_PORT=7072"
        )
    return int(raw)


def _log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in logging.getLevelNamesMapping():
        raise UserError(
            f"RELAY_LOG_LEVEL={raw!r} is not a log level.",
            "use DEBUG, INFO, WARNING or ERROR, e.g. RELAY_LOG_LEVEL=DEBUG.",
        )
    return level


def _settings_error(err: Exception) -> UserError:
    problems = getattr(err, "problems", [str(err)])
    listed = "".join(f"\n  - {problem}" for problem in problems)
    return UserError(
        f"the relay's settings are invalid ({len(problems)} problem{'s' * (len(problems) != 1)}):{listed}",
        "set each setting as its line says (`export NAME=value`, or `unset NAME` for its default) "
        "and run `python -m local.run` again.",
    )


def _listen_error(err: OSError, port: int) -> UserError:
    if err.errno == errno.EADDRINUSE:
        return UserError(
            f"port {port} on 127.0.0.1 is already in use (another local.run or `func start`?).",
            f"stop that process (`lsof -i :{port}` names it) or use another port, "
            f"e.g. `python -m local.run --port {port + 1 if port < 65535 else 7072}`.",
        )
    return UserError(
        f"cannot listen on 127.0.0.1:{port}: {err.strerror or err}.",
        "use a port above 1023 that is free, e.g. `python -m local.run --port 7072`.",
    )


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
    """Runs the relay until Ctrl+C; a user error is two lines on stderr (what, fix) and exit 2."""
    try:
        return _main(argv)
    except UserError as err:
        print(f"local.run: {err.what}\nfix: {err.fix}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl+C while the stand-ins start
        return 130


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--port",
        type=_port,
        default=os.environ.get("RELAY_LOCAL_PORT", "7071"),
        help="port on 127.0.0.1 (default: RELAY_LOCAL_PORT or 7071)",
    )
    parser.add_argument("--no-timers", action="store_true", help="do not run the timer functions")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=_log_level(os.environ.get("RELAY_LOG_LEVEL", "INFO")),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("azure", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    sys.path.insert(0, str(ROOT))

    with ExitStack() as stack:
        print("wallarm-sentinel-relay, local run")
        try:
            env = _start_standins(stack)
        except AzuriteError as err:
            raise UserError(
                f"the Table Storage stand-in did not start: {err}",
                "run scripts/setup once (it installs Azurite), or set RELAY_STORAGE_CONNECTION_STRING "
                "to a Table Storage you have.",
            ) from None
        os.environ.update(env)
        for name, default in SCHEDULE_DEFAULTS.items():
            os.environ.setdefault(name, default)
        os.environ.setdefault("RELAY_TABLE_PREFIX", "wallarmrelay")

        from function_app import app, services
        from shared.health.probe import storage_advice
        from shared.store.tables import StoreUnavailable

        function_key = os.environ.get("RELAY_LOCAL_FUNCTION_KEY") or secrets.token_urlsafe(16)
        master_key = os.environ.get("RELAY_LOCAL_MASTER_KEY") or secrets.token_urlsafe(16)
        try:
            host = LocalHost(app, port=args.port, function_key=function_key, master_key=master_key)
        except OSError as err:
            raise _listen_error(err, args.port) from None
        try:
            svc = services()  # fail now, with the settings problems listed, rather than on the first webhook
            schedules = {} if args.no_timers else timer_schedules(host, os.environ)
        except SettingsError as err:
            raise _settings_error(err) from None
        except StoreUnavailable as err:
            raise UserError(f"Table Storage is unavailable ({err}).", storage_advice(err)) from None
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
