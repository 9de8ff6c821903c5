"""Typed, validated app settings. Every name here is documented in the README's settings table.

Settings are read once per worker from the environment (Functions app settings). All problems are
collected and reported together, each naming the setting and what to do, so a misconfigured
deployment fails at start-up with one actionable message instead of at the first webhook.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final
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


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def _minutes(value: float) -> timedelta:
    return timedelta(minutes=value)


def _hours(value: float) -> timedelta:
    return timedelta(hours=value)


def _days(value: float) -> timedelta:
    return timedelta(days=value)


def _int(value: float) -> int:
    return int(value)


@dataclass(frozen=True)
class Number:
    """A numeric app setting: its name, the field it fills, default and minimum (in the setting's
    own unit, as the README's settings table writes them) and the unit's conversion."""

    name: str
    field: str
    default: float
    minimum: float
    unit: Callable[[float], Any] = float

    @property
    def value(self) -> Any:
        """The default as the field holds it."""
        return self.unit(self.default)


@dataclass(frozen=True)
class Flag:
    """A true/false app setting and the field it fills."""

    name: str
    field: str
    default: bool


@dataclass(frozen=True)
class Text:
    """An app setting checked by its own code below; ``default`` as the README's table writes it."""

    name: str
    default: str


# The table of settings: each default lives here once (the dataclasses below take theirs from it;
# tests/unit/test_settings_spec.py holds the README's settings table against it).
NUMBERS: Final[dict[str, Number]] = {
    n.name: n
    for n in (
        Number("MAX_BODY_BYTES", "max_body_bytes", 5 * 1024 * 1024, 1024, _int),
        Number("WEBHOOK_DELIVERY_BUDGET_SECONDS", "webhook_budget", 6, 0, _seconds),
        Number("WEBHOOK_READ_TIMEOUT_SECONDS", "webhook_read_timeout", 4, 0.1),
        Number("WORKER_READ_TIMEOUT_SECONDS", "worker_read_timeout", 60, 1),
        Number("RETRY_WORKER_RUN_SECONDS", "worker_run_for", 50, 0, _seconds),
        Number("RETRY_POLL_SECONDS", "worker_poll", 1, 0.05, _seconds),
        Number("RETRY_CLAIM_LEASE_SECONDS", "claim_lease", 180, 10, _seconds),
        Number("AUTO_DISABLE_FAILURE_RATIO", "auto_disable_ratio", 0.6, 0.01),
        Number("AUTO_DISABLE_WINDOW_HOURS", "auto_disable_window", 12, 0.01, _hours),
        Number("AUTO_DISABLE_MIN_ATTEMPTS", "auto_disable_min_attempts", 20, 1, _int),
        Number("AUTO_DISABLE_GRACE_MINUTES", "auto_disable_grace", 40, 0, _minutes),
        Number("RECOVERY_PROBE_SECONDS", "recovery_probe", 30, 1, _seconds),
        Number("DEDUP_WINDOW_HOURS", "dedup_window", 24, 0, _hours),
        Number("LEDGER_RETENTION_DAYS", "ledger_retention", 7, 1, _days),
        Number("COUNTER_RETENTION_DAYS", "counter_retention", 35, 1, _days),
    )
}
COMPLETENESS_NUMBERS: Final[dict[str, Number]] = {
    n.name: n
    for n in (
        Number("RECONCILE_DELAY_MINUTES", "reconcile_delay", 30, 10, _minutes),
        Number("RECONCILE_OVERLAP_MINUTES", "reconcile_overlap", 60, 0, _minutes),
        Number("RECONCILE_CATCH_UP_HOURS", "reconcile_catch_up", 6, 1, _hours),
        Number("WATCHDOG_QUIET_HOURS", "quiet_after", 3, 0, _hours),
    )
}
SELECTION_FLAGS: Final[tuple[Flag, ...]] = (
    Flag("SELECT_HITS", "hits", True),
    Flag("SELECT_HIT_HEADERS", "hit_headers", False),
    Flag("SELECT_SYSTEM_EVENTS", "system_events", True),
    Flag("SELECT_VULNERABILITIES", "vulnerabilities", True),
    Flag("SELECT_HOURLY_COUNT", "hourly_count", True),
)
COMPLETENESS_FLAGS: Final[dict[str, Flag]] = {
    f.name: f
    for f in (
        Flag("WATCHDOG_CHECK_INTEGRATION", "watch_integration", False),
        Flag("WATCHDOG_REENABLE", "reenable", False),
    )
}
TEXTS: Final[tuple[Text, ...]] = (
    Text("LOGS_INGESTION_ENDPOINT", "required"),
    Text("LOGS_DCR_IMMUTABLE_ID", "required"),
    Text("LOGS_STREAM_NAME", "Custom-WallarmSentinel_CL"),
    Text("LOGS_INGESTION_AUDIENCE", "public"),
    Text("AZURE_CLIENT_ID", "—"),
    Text("RELAY_STORAGE_TABLE_ENDPOINT", "—"),
    Text("RELAY_STORAGE_CONNECTION_STRING", "—"),
    Text("RELAY_TABLE_PREFIX", "wallarmrelay"),
    Text("RELAY_CA_BUNDLE", "—"),
    Text("WEBHOOK_SHARED_SECRET", "—"),
    Text("WEBHOOK_SECRET_HEADER", "X-Wallarm-Relay-Secret"),
    Text("ALLOWED_SOURCE_NETWORKS", "— (all)"),
    Text("SELECT_SECURITY_ISSUE_RISKS", "all"),
    Text("RETRY_SCHEDULE", "Wallarm's"),
    Text("WALLARM_API_TOKEN", "—"),
    Text("WALLARM_API_CLOUD", "—"),
    Text("WALLARM_API_URL", "per cloud"),
    Text("WALLARM_CLIENT_ID", "— (asked once)"),
    Text("LOGS_WORKSPACE_ID", "—"),
    Text("LOGS_QUERY_ENDPOINT", "https://api.loganalytics.io"),
    Text("WALLARM_INTEGRATION_URL", "https://$WEBSITE_HOSTNAME/api/wallarm"),
)
TEXT_DEFAULTS: Final[dict[str, str]] = {t.name: t.default for t in TEXTS}


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
    query_endpoint: str = TEXT_DEFAULTS["LOGS_QUERY_ENDPOINT"]
    reconcile_delay: timedelta = COMPLETENESS_NUMBERS["RECONCILE_DELAY_MINUTES"].value
    reconcile_overlap: timedelta = COMPLETENESS_NUMBERS["RECONCILE_OVERLAP_MINUTES"].value
    reconcile_catch_up: timedelta = COMPLETENESS_NUMBERS["RECONCILE_CATCH_UP_HOURS"].value
    watch_integration: bool = COMPLETENESS_FLAGS["WATCHDOG_CHECK_INTEGRATION"].default
    integration_url: str | None = None
    reenable: bool = COMPLETENESS_FLAGS["WATCHDOG_REENABLE"].default
    quiet_after: timedelta = COMPLETENESS_NUMBERS["WATCHDOG_QUIET_HOURS"].value

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
    table_prefix: str = TEXT_DEFAULTS["RELAY_TABLE_PREFIX"]
    ingestion_audience: str = INGESTION_AUDIENCES["public"]
    azure_client_id: str | None = None
    ca_bundle: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_secret_header: str = TEXT_DEFAULTS["WEBHOOK_SECRET_HEADER"]
    allowed_networks: tuple[IpNetwork, ...] = ()
    max_body_bytes: int = NUMBERS["MAX_BODY_BYTES"].value
    selection: Selection = field(default_factory=Selection)
    retry_schedule: RetrySchedule = DEFAULT_SCHEDULE
    webhook_budget: timedelta = NUMBERS["WEBHOOK_DELIVERY_BUDGET_SECONDS"].value
    webhook_read_timeout: float = NUMBERS["WEBHOOK_READ_TIMEOUT_SECONDS"].value
    worker_read_timeout: float = NUMBERS["WORKER_READ_TIMEOUT_SECONDS"].value
    connect_timeout: float = 3.0
    worker_run_for: timedelta = NUMBERS["RETRY_WORKER_RUN_SECONDS"].value
    worker_poll: timedelta = NUMBERS["RETRY_POLL_SECONDS"].value
    claim_lease: timedelta = NUMBERS["RETRY_CLAIM_LEASE_SECONDS"].value
    auto_disable_ratio: float = NUMBERS["AUTO_DISABLE_FAILURE_RATIO"].value
    auto_disable_window: timedelta = NUMBERS["AUTO_DISABLE_WINDOW_HOURS"].value
    auto_disable_min_attempts: int = NUMBERS["AUTO_DISABLE_MIN_ATTEMPTS"].value
    auto_disable_grace: timedelta = NUMBERS["AUTO_DISABLE_GRACE_MINUTES"].value
    recovery_probe: timedelta = NUMBERS["RECOVERY_PROBE_SECONDS"].value
    dedup_window: timedelta = NUMBERS["DEDUP_WINDOW_HOURS"].value
    ledger_retention: timedelta = NUMBERS["LEDGER_RETENTION_DAYS"].value
    counter_retention: timedelta = NUMBERS["COUNTER_RETENTION_DAYS"].value
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


def _numbers(env: Mapping[str, str], specs: Mapping[str, Number], problems: list[str]) -> dict[str, Any]:
    """field -> value of each numeric setting in ``specs`` (the default where it is unset or wrong)."""
    return {
        spec.field: spec.unit(_number(env, spec.name, spec.default, problems, minimum=spec.minimum))
        for spec in specs.values()
    }


def _flags(env: Mapping[str, str], specs: Iterable[Flag], problems: list[str]) -> dict[str, Any]:
    """field -> value of each true/false setting in ``specs``."""
    return {spec.field: _bool(env, spec.name, spec.default, problems) for spec in specs}


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
        or TEXT_DEFAULTS["LOGS_QUERY_ENDPOINT"],
        integration_url=integration_url,
        **_numbers(env, COMPLETENESS_NUMBERS, problems),
        **_flags(env, COMPLETENESS_FLAGS.values(), problems),
    )


def _ingestion_target(env: Mapping[str, str], problems: list[str]) -> tuple[str, str, str]:
    """The Logs Ingestion endpoint, DCR immutable ID and stream name."""
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

    stream = env.get("LOGS_STREAM_NAME", TEXT_DEFAULTS["LOGS_STREAM_NAME"]).strip()
    if not stream.startswith("Custom-"):
        problems.append(
            f"LOGS_STREAM_NAME={stream!r} must start with 'Custom-' (the DCR's input stream, "
            "e.g. Custom-WallarmSentinel_CL), not the table name."
        )
    return endpoint, dcr, stream


def _storage(env: Mapping[str, str], problems: list[str]) -> tuple[str | None, str | None, str]:
    """The Table Storage connection string or endpoint, and the table prefix."""
    conn = env.get("RELAY_STORAGE_CONNECTION_STRING", "").strip() or None
    table_endpoint = env.get("RELAY_STORAGE_TABLE_ENDPOINT", "").strip().rstrip("/") or None
    if not conn and not table_endpoint:
        problems.append(
            "Neither RELAY_STORAGE_TABLE_ENDPOINT (https://<account>.table.core.windows.net, used with "
            "the managed identity) nor RELAY_STORAGE_CONNECTION_STRING (local Azurite) is set: the retry "
            "queue and ledger need Table Storage."
        )

    prefix = env.get("RELAY_TABLE_PREFIX", TEXT_DEFAULTS["RELAY_TABLE_PREFIX"]).strip()
    if not (prefix.isascii() and prefix.isalnum()) or not prefix[:1].isalpha() or len(prefix) > 40:
        problems.append(
            f"RELAY_TABLE_PREFIX={prefix!r} must be letters and digits, start with a letter, ≤ 40 chars."
        )
    return conn, table_endpoint, prefix


def _schedule(raw: str, problems: list[str]) -> RetrySchedule:
    if not raw.strip():
        return DEFAULT_SCHEDULE
    try:
        return RetrySchedule.parse(raw.strip())
    except ValueError as err:
        problems.append(f"RETRY_SCHEDULE: {err}")
        return DEFAULT_SCHEDULE


def _lease_problems(numbers: Mapping[str, Any]) -> list[str]:
    """A claim lease must hold one upload request twice over. The worker starts an entry only
    with half its lease left, and renews the lease while the entry's requests go on (several
    chunks, 413 splits); should a renewal fail (Table Storage slow), the request already running
    must still end inside the lease, or another instance delivers the entry too (issue 19)."""
    read = float(numbers["worker_read_timeout"])
    connect = Settings.connect_timeout
    needed = 2 * (read + connect)
    lease = numbers["claim_lease"].total_seconds()
    if lease >= needed:
        return []
    return [
        f"RETRY_CLAIM_LEASE_SECONDS={lease:g} is too short for WORKER_READ_TIMEOUT_SECONDS={read:g}: "
        f"an upload starts with half the lease left and one request can take {read:g} s plus "
        f"{connect:g} s to connect, so set the lease to at least {needed:g} "
        f"(2 x (read timeout + {connect:g})) or lower the read timeout."
    ]


def load_settings(env: Mapping[str, str]) -> Settings:
    """Build Settings from app settings, raising SettingsError with every problem found."""
    problems: list[str] = _plain_string_problems(env)
    endpoint, dcr, stream = _ingestion_target(env, problems)
    conn, table_endpoint, prefix = _storage(env, problems)
    secret = env.get("WEBHOOK_SHARED_SECRET", "") or None
    if secret is not None:
        problems.extend(_secret_problems(secret))
    selection = Selection(
        **_flags(env, SELECTION_FLAGS, problems),
        security_issue_risks=_risks(env.get("SELECT_SECURITY_ISSUE_RISKS"), problems),
    )
    schedule = _schedule(env.get("RETRY_SCHEDULE", ""), problems)
    numbers = _numbers(env, NUMBERS, problems)
    if numbers["auto_disable_ratio"] > 1:
        problems.append("AUTO_DISABLE_FAILURE_RATIO must be between 0.01 and 1 (Wallarm uses 0.6).")
    problems.extend(_lease_problems(numbers))
    # Everything that can add a problem is read before the check, so all problems are reported at once.
    values: dict[str, Any] = dict(
        ingestion_audience=_audience(env.get("LOGS_INGESTION_AUDIENCE", ""), problems),
        allowed_networks=_networks(env.get("ALLOWED_SOURCE_NETWORKS", ""), problems),
        completeness=_completeness(env, problems),
        **numbers,
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
        webhook_secret_header=env.get(
            "WEBHOOK_SECRET_HEADER", TEXT_DEFAULTS["WEBHOOK_SECRET_HEADER"]
        ).strip(),
        selection=selection,
        retry_schedule=schedule,
        **values,
    )
