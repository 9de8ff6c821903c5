"""Typed, validated app settings. Every name here is documented in the README's settings table.

Settings are read once per worker from the environment (Functions app settings). All problems are
collected and reported together, each naming the setting and what to do, so a misconfigured
deployment fails at start-up with one actionable message instead of at the first webhook.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlparse

from shared.mapping import SECURITY_ISSUE_RISKS
from shared.policy import DEFAULT_SCHEDULE, RetrySchedule
from shared.selection import Selection

# Names and identifiers among the string settings: one stray byte makes each of them fail later,
# far from the cause (a 401/404 from Azure, a header that never matches), so they are checked here.
PLAIN_STRING_SETTINGS = (
    "LOGS_INGESTION_ENDPOINT",
    "LOGS_DCR_IMMUTABLE_ID",
    "LOGS_STREAM_NAME",
    "AZURE_CLIENT_ID",
    "RELAY_STORAGE_TABLE_ENDPOINT",
    "WEBHOOK_SECRET_HEADER",
)
_HTTP_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 field-name
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
# Entra audience of the Logs Ingestion API per cloud (LOGS_INGESTION_AUDIENCE takes a name or a URL).
INGESTION_AUDIENCES = {
    "public": "https://monitor.azure.com",
    "usgov": "https://monitor.azure.us",
    "china": "https://monitor.azure.cn",
}
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class SettingsError(ValueError):
    """One or more settings are missing or invalid; the message lists each with a fix."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("Invalid relay configuration:\n- " + "\n- ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class CompletenessSettings:
    """Reconciliation from Wallarm's API and the integration watchdog (README "Completeness")."""

    wallarm_api_token: str | None = field(default=None, repr=False)
    wallarm_api_url: str = "https://api.wallarm.com"
    wallarm_cloud: str = "eu"
    wallarm_client_id: int | None = None
    workspace_id: str | None = None
    query_endpoint: str = "https://api.loganalytics.io"
    reconcile_delay: timedelta = timedelta(minutes=30)
    reconcile_overlap: timedelta = timedelta(hours=1)
    reconcile_catch_up: timedelta = timedelta(hours=6)
    watch_integration: bool = False
    integration_url: str | None = None
    reenable: bool = False
    quiet_after: timedelta = timedelta(hours=3)

    @property
    def reconcile_enabled(self) -> bool:
        return self.wallarm_api_token is not None


@dataclass(frozen=True)
class Settings:
    logs_endpoint: str
    dcr_immutable_id: str
    stream_name: str
    storage_connection_string: str | None
    storage_table_endpoint: str | None
    table_prefix: str = "wallarmrelay"
    ingestion_audience: str = INGESTION_AUDIENCES["public"]
    azure_client_id: str | None = None
    ca_bundle: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_secret_header: str = "X-Wallarm-Relay-Secret"
    allowed_networks: tuple[IpNetwork, ...] = ()
    max_body_bytes: int = 5 * 1024 * 1024
    selection: Selection = field(default_factory=Selection)
    retry_schedule: RetrySchedule = DEFAULT_SCHEDULE
    webhook_budget: timedelta = timedelta(seconds=6)
    webhook_read_timeout: float = 4.0
    worker_read_timeout: float = 60.0
    connect_timeout: float = 3.0
    worker_run_for: timedelta = timedelta(seconds=50)
    worker_poll: timedelta = timedelta(seconds=1)
    claim_lease: timedelta = timedelta(minutes=3)
    auto_disable_ratio: float = 0.6
    auto_disable_window: timedelta = timedelta(hours=12)
    auto_disable_min_attempts: int = 20
    auto_disable_grace: timedelta = timedelta(minutes=40)
    recovery_probe: timedelta = timedelta(seconds=30)
    dedup_window: timedelta = timedelta(hours=24)
    ledger_retention: timedelta = timedelta(days=7)
    counter_retention: timedelta = timedelta(days=35)
    completeness: CompletenessSettings = field(default_factory=CompletenessSettings)


def _bool(env: Mapping[str, str], name: str, default: bool, problems: list[str]) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    problems.append(f"{name}={raw!r} is not a boolean: use true or false.")
    return default


def _number(
    env: Mapping[str, str], name: str, default: float, problems: list[str], *, minimum: float = 0
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        problems.append(f"{name}={raw!r} is not a number.")
        return default
    if value < minimum:
        problems.append(f"{name}={raw!r} must be at least {minimum:g}.")
        return default
    return value


def _networks(raw: str, problems: list[str]) -> tuple[IpNetwork, ...]:
    nets: list[IpNetwork] = []
    for part in (p.strip() for p in raw.replace(";", ",").split(",")):
        if not part:
            continue
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            problems.append(
                f"ALLOWED_SOURCE_NETWORKS: {part!r} is not an IP address or CIDR (e.g. 34.94.16.0/24)."
            )
    return tuple(nets)


def _plain_string_problems(env: Mapping[str, str]) -> list[str]:
    """Whitespace inside, control or non-ASCII characters in a name, ID or URL setting."""
    problems = []
    for name in PLAIN_STRING_SETTINGS:
        value = env.get(name, "").strip()
        if any(not ("!" <= ch <= "~") for ch in value):
            problems.append(
                f"{name}={value!r} contains spaces, control or non-ASCII characters: copy the value "
                "again from the Azure portal or the deployment outputs (a pasted value often carries them)."
            )
    client_id = env.get("AZURE_CLIENT_ID", "").strip()
    if client_id and not _GUID.match(client_id):
        problems.append(
            f"AZURE_CLIENT_ID={client_id!r} is not a GUID: use the identity's client ID "
            "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx), not its name or resource ID."
        )
    header = env.get("WEBHOOK_SECRET_HEADER", "").strip()
    if header and not _HTTP_TOKEN.match(header):
        problems.append(
            f"WEBHOOK_SECRET_HEADER={header!r} is not a valid HTTP header name: use letters, digits "
            "and dashes, e.g. X-Wallarm-Relay-Secret."
        )
    return problems


def _secret_problems(secret: str) -> list[str]:
    """Why a shared secret can never match what an HTTP client sends (never echoing it)."""
    fix = "set a long random ASCII value, e.g. the output of `openssl rand -hex 32`"
    problems = []
    if any(not (" " <= ch <= "~") for ch in secret):
        problems.append(
            "WEBHOOK_SHARED_SECRET contains control or non-ASCII characters: HTTP clients cannot send "
            f"them in a header, so a webhook could never match; {fix}."
        )
    if secret != secret.strip():
        problems.append(
            "WEBHOOK_SHARED_SECRET starts or ends with whitespace: HTTP drops it from header values, so "
            "a webhook could never match; remove it (a secret copied with its trailing newline is the "
            "usual cause)."
        )
    if len(secret) < 16:
        problems.append(f"WEBHOOK_SHARED_SECRET is shorter than 16 characters: {fix}.")
    return problems


def _audience(raw: str, problems: list[str]) -> str:
    value = raw.strip().rstrip("/")
    if not value:
        return INGESTION_AUDIENCES["public"]
    if value.lower() in INGESTION_AUDIENCES:
        return INGESTION_AUDIENCES[value.lower()]
    if urlparse(value).scheme != "https" or not urlparse(value).netloc:
        problems.append(
            f"LOGS_INGESTION_AUDIENCE={value!r} must be public, usgov, china or an https:// audience "
            "(e.g. https://monitor.azure.us), the infra output of the same name."
        )
        return INGESTION_AUDIENCES["public"]
    return value


def _risks(raw: str | None, problems: list[str]) -> frozenset[str]:
    if raw is None or not raw.strip():
        return frozenset(SECURITY_ISSUE_RISKS)
    if raw.strip().lower() == "none":
        return frozenset()
    risks = {r.strip().lower() for r in raw.split(",") if r.strip()}
    unknown = risks - set(SECURITY_ISSUE_RISKS)
    if unknown:
        problems.append(
            f"SELECT_SECURITY_ISSUE_RISKS has unknown levels {sorted(unknown)}: use any of "
            f"{', '.join(SECURITY_ISSUE_RISKS)} (comma-separated) or none."
        )
    return frozenset(risks & set(SECURITY_ISSUE_RISKS))


def _completeness(env: Mapping[str, str], problems: list[str]) -> CompletenessSettings:
    from shared.wallarm.api import CLOUD_URLS

    def minutes(name: str, default: float, minimum: float) -> timedelta:
        return timedelta(minutes=_number(env, name, default, problems, minimum=minimum))

    token = env.get("WALLARM_API_TOKEN", "").strip() or None
    cloud = env.get("WALLARM_API_CLOUD", "").strip().lower()
    url = env.get("WALLARM_API_URL", "").strip().rstrip("/")
    workspace = env.get("LOGS_WORKSPACE_ID", "").strip() or None
    if token is not None and token.startswith("@Microsoft.KeyVault("):
        problems.append(
            "WALLARM_API_TOKEN is an unresolved Key Vault reference: give the relay's identity "
            "'Key Vault Secrets User' on the vault and check the SecretUri."
        )
    if token is not None:
        if not url and cloud not in CLOUD_URLS:
            problems.append(
                f"WALLARM_API_CLOUD={cloud!r}: set us or eu (the Wallarm Cloud of WALLARM_API_TOKEN), "
                "or WALLARM_API_URL."
            )
        if workspace is None:
            problems.append(
                "LOGS_WORKSPACE_ID is missing: reconciliation reads the table; set the workspace ID "
                "(a GUID, the infra output of the same name)."
            )
    if url and not (url.startswith(("https://", "http://127.0.0.1"))):
        problems.append(f"WALLARM_API_URL={url!r} must be an https:// URL.")
    client = env.get("WALLARM_CLIENT_ID", "").strip()
    if client and not client.isdigit():
        problems.append(f"WALLARM_CLIENT_ID={client!r} must be a number (Wallarm's client id).")
    host = env.get("WEBSITE_HOSTNAME", "").strip()
    integration_url = env.get("WALLARM_INTEGRATION_URL", "").strip() or (
        f"https://{host}/api/wallarm" if host else None
    )
    return CompletenessSettings(
        wallarm_api_token=token,
        wallarm_api_url=url or CLOUD_URLS.get(cloud, CLOUD_URLS["eu"]),
        wallarm_cloud=cloud or "eu",
        wallarm_client_id=int(client) if client.isdigit() else None,
        workspace_id=workspace,
        query_endpoint=env.get("LOGS_QUERY_ENDPOINT", "").strip().rstrip("/")
        or "https://api.loganalytics.io",
        reconcile_delay=minutes("RECONCILE_DELAY_MINUTES", 30, 10),
        reconcile_overlap=minutes("RECONCILE_OVERLAP_MINUTES", 60, 0),
        reconcile_catch_up=timedelta(hours=_number(env, "RECONCILE_CATCH_UP_HOURS", 6, problems, minimum=1)),
        watch_integration=_bool(env, "WATCHDOG_CHECK_INTEGRATION", False, problems),
        integration_url=integration_url,
        reenable=_bool(env, "WATCHDOG_REENABLE", False, problems),
        quiet_after=timedelta(hours=_number(env, "WATCHDOG_QUIET_HOURS", 3, problems, minimum=0)),
    )


def load_settings(env: Mapping[str, str]) -> Settings:
    """Build Settings from app settings, raising SettingsError with every problem found."""
    problems: list[str] = _plain_string_problems(env)

    def num(name: str, default: float, minimum: float) -> float:
        return _number(env, name, default, problems, minimum=minimum)

    endpoint = env.get("LOGS_INGESTION_ENDPOINT", "").strip().rstrip("/")
    if not endpoint:
        problems.append(
            "LOGS_INGESTION_ENDPOINT is missing: set it to the DCR's logs ingestion endpoint "
            "(https://<name>.<region>-1.ingest.monitor.azure.com), the infra output of the same name."
        )
    elif urlparse(endpoint).scheme != "https" or not urlparse(endpoint).netloc:
        problems.append(
            f"LOGS_INGESTION_ENDPOINT={endpoint!r} must be an https:// URL "
            "(the SDK refuses to send a bearer token over plain http)."
        )

    dcr = env.get("LOGS_DCR_IMMUTABLE_ID", "").strip()
    if not dcr:
        problems.append(
            "LOGS_DCR_IMMUTABLE_ID is missing: use the DCR's immutableId (dcr-…), not its resource name."
        )
    elif not dcr.startswith("dcr-"):
        problems.append(
            f"LOGS_DCR_IMMUTABLE_ID={dcr!r} does not start with 'dcr-': use the DCR's immutableId "
            "(Azure portal → the DCR → JSON view), not its name or resource ID."
        )

    stream = env.get("LOGS_STREAM_NAME", "Custom-WallarmSentinel_CL").strip()
    if not stream.startswith("Custom-"):
        problems.append(
            f"LOGS_STREAM_NAME={stream!r} must start with 'Custom-' (the DCR's input stream, "
            "e.g. Custom-WallarmSentinel_CL), not the table name."
        )

    conn = env.get("RELAY_STORAGE_CONNECTION_STRING", "").strip() or None
    table_endpoint = env.get("RELAY_STORAGE_TABLE_ENDPOINT", "").strip().rstrip("/") or None
    if not conn and not table_endpoint:
        problems.append(
            "Neither RELAY_STORAGE_TABLE_ENDPOINT (https://<account>.table.core.windows.net, used with "
            "the managed identity) nor RELAY_STORAGE_CONNECTION_STRING (local Azurite) is set: the retry "
            "queue and ledger need Table Storage."
        )

    prefix = env.get("RELAY_TABLE_PREFIX", "wallarmrelay").strip()
    if not (prefix.isascii() and prefix.isalnum()) or not prefix[:1].isalpha() or len(prefix) > 40:
        problems.append(
            f"RELAY_TABLE_PREFIX={prefix!r} must be letters and digits, start with a letter, ≤ 40 chars."
        )

    secret = env.get("WEBHOOK_SHARED_SECRET", "") or None
    if secret is not None:
        problems.extend(_secret_problems(secret))

    selection = Selection(
        hits=_bool(env, "SELECT_HITS", True, problems),
        hit_headers=_bool(env, "SELECT_HIT_HEADERS", False, problems),
        system_events=_bool(env, "SELECT_SYSTEM_EVENTS", True, problems),
        vulnerabilities=_bool(env, "SELECT_VULNERABILITIES", True, problems),
        security_issue_risks=_risks(env.get("SELECT_SECURITY_ISSUE_RISKS"), problems),
        hourly_count=_bool(env, "SELECT_HOURLY_COUNT", True, problems),
    )

    schedule = DEFAULT_SCHEDULE
    raw_schedule = env.get("RETRY_SCHEDULE", "").strip()
    if raw_schedule:
        try:
            schedule = RetrySchedule.parse(raw_schedule)
        except ValueError as err:
            problems.append(f"RETRY_SCHEDULE: {err}")

    ratio = num("AUTO_DISABLE_FAILURE_RATIO", 0.6, 0.01)
    if ratio > 1:
        problems.append("AUTO_DISABLE_FAILURE_RATIO must be between 0.01 and 1 (Wallarm uses 0.6).")

    # Everything that can add a problem is read before the check, so all problems are reported at once.
    values: dict[str, Any] = dict(
        ingestion_audience=_audience(env.get("LOGS_INGESTION_AUDIENCE", ""), problems),
        allowed_networks=_networks(env.get("ALLOWED_SOURCE_NETWORKS", ""), problems),
        max_body_bytes=int(num("MAX_BODY_BYTES", 5 * 1024 * 1024, 1024)),
        webhook_budget=timedelta(seconds=num("WEBHOOK_DELIVERY_BUDGET_SECONDS", 6, 0)),
        webhook_read_timeout=num("WEBHOOK_READ_TIMEOUT_SECONDS", 4, 0.1),
        worker_read_timeout=num("WORKER_READ_TIMEOUT_SECONDS", 60, 1),
        worker_run_for=timedelta(seconds=num("RETRY_WORKER_RUN_SECONDS", 50, 0)),
        worker_poll=timedelta(seconds=num("RETRY_POLL_SECONDS", 1, 0.05)),
        claim_lease=timedelta(seconds=num("RETRY_CLAIM_LEASE_SECONDS", 180, 10)),
        auto_disable_window=timedelta(hours=num("AUTO_DISABLE_WINDOW_HOURS", 12, 0.01)),
        auto_disable_min_attempts=int(num("AUTO_DISABLE_MIN_ATTEMPTS", 20, 1)),
        auto_disable_grace=timedelta(minutes=num("AUTO_DISABLE_GRACE_MINUTES", 40, 0)),
        recovery_probe=timedelta(seconds=num("RECOVERY_PROBE_SECONDS", 30, 1)),
        dedup_window=timedelta(hours=num("DEDUP_WINDOW_HOURS", 24, 0)),
        ledger_retention=timedelta(days=num("LEDGER_RETENTION_DAYS", 7, 1)),
        counter_retention=timedelta(days=num("COUNTER_RETENTION_DAYS", 35, 1)),
        completeness=_completeness(env, problems),
    )
    if problems:
        raise SettingsError(problems)

    return Settings(
        logs_endpoint=endpoint,
        dcr_immutable_id=dcr,
        stream_name=stream,
        storage_connection_string=conn,
        storage_table_endpoint=table_endpoint,
        table_prefix=prefix,
        azure_client_id=env.get("AZURE_CLIENT_ID", "").strip() or None,
        ca_bundle=env.get("RELAY_CA_BUNDLE", "").strip() or None,
        webhook_secret=secret,
        webhook_secret_header=env.get("WEBHOOK_SECRET_HEADER", "X-Wallarm-Relay-Secret").strip(),
        selection=selection,
        retry_schedule=schedule,
        auto_disable_ratio=ratio,
        **values,
    )
