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

from shared.delivery.policy import DEFAULT_SCHEDULE, RetrySchedule
from shared.intake.mapping import SECURITY_ISSUE_RISKS
from shared.intake.selection import Selection
from shared.limits import (
    INGESTION_AUDIENCES,
    WALLARM_DISABLE_RATIO,
    WALLARM_DISABLE_WINDOW,
    RetryWorkerLimits,
)
from shared.wallarm_cloud import CLOUD_URLS, api_url_problem

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
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# What App Service leaves in a setting whose Key Vault (or App Configuration) reference did not
# resolve: the reference text itself, which must never be taken as the value.
_UNRESOLVED_REFERENCE = re.compile(r"^\s*@Microsoft\.(KeyVault|AppConfiguration)\(", re.IGNORECASE)


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


def _plain(value: float) -> str:
    """5242880, not 5.24288e+06; 0.6 stays 0.6."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


_LARGEST = 1e9  # beyond any sensible value, and below what timedelta and socket timeouts hold
_LONGEST = timedelta(days=36_500)  # a duration setting: far past sense, far inside the calendar
_NOUNS = {
    "_BYTES": "bytes",
    "_SECONDS": "seconds",
    "_MINUTES": "minutes",
    "_HOURS": "hours",
    "_DAYS": "days",
    "_ATTEMPTS": "attempts",
}


@dataclass(frozen=True)
class Number:
    """A numeric app setting: its name, the field it fills, default and minimum (in the setting's
    own unit, as the README's settings table writes them) and the unit's conversion."""

    name: str
    field: str
    default: float
    minimum: float
    unit: Callable[[float], Any] = float
    maximum: float | None = None

    @property
    def value(self) -> Any:
        """The default as the field holds it."""
        return self.unit(self.default)

    @property
    def form(self) -> str:
        """The accepted form, as an error message names it (the unit comes from the name's suffix)."""
        kind = "a whole number" if self.unit is _int else "a number"
        noun = next((n for suffix, n in _NOUNS.items() if self.name.endswith(suffix)), "")
        if self.maximum is not None:
            return f"{kind} between {_plain(self.minimum)} and {_plain(self.maximum)}"
        return f"{kind}{f' of {noun}' if noun else ''}, at least {_plain(self.minimum)}"


@dataclass(frozen=True)
class Flag:
    """A true/false app setting and the field it fills."""

    name: str
    field: str
    default: bool


@dataclass(frozen=True)
class Text:
    """An app setting checked by its own code below; ``default`` as the README's table writes it,
    ``example`` a valid value its error messages show."""

    name: str
    default: str
    example: str = ""


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
        # Rows are usually queryable 20 s to 3 min after upload (FACTS.md): ask after 5.
        Number("LANDED_CHECK_DELAY_SECONDS", "landed_check_delay", 300, 0, _seconds),
        Number("AUTO_DISABLE_FAILURE_RATIO", "auto_disable_ratio", WALLARM_DISABLE_RATIO, 0.01, maximum=1),
        Number(
            "AUTO_DISABLE_WINDOW_HOURS",
            "auto_disable_window",
            WALLARM_DISABLE_WINDOW / _hours(1),
            0.01,
            _hours,
        ),
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
        # A manual range: at most a week per request, and no older than Wallarm keeps hits (3 months
        # on free plans, 6 on paid); a missing hit is added only when a second look this much later
        # still misses it (rows can take minutes, sometimes longer, to become queryable).
        Number("RECONCILE_MAX_RANGE_HOURS", "reconcile_max_range", 168, 1, _hours),
        Number("RECONCILE_MAX_AGE_DAYS", "reconcile_max_age", 90, 1, _days),
        Number("RECONCILE_CONFIRM_MINUTES", "reconcile_confirm", 50, 0, _minutes),
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
    Text(
        "LOGS_INGESTION_ENDPOINT", "required", "https://relay-dce-a1b2.westeurope-1.ingest.monitor.azure.com"
    ),
    Text("LOGS_DCR_IMMUTABLE_ID", "required", "dcr-0123456789abcdef0123456789abcdef"),
    Text("LOGS_STREAM_NAME", "Custom-WallarmSentinel_CL", "Custom-WallarmSentinel_CL"),
    Text("LOGS_INGESTION_AUDIENCE", "public", "usgov"),
    Text("AZURE_CLIENT_ID", "—", "0f8fad5b-d9cb-469f-a165-70867728950e"),
    Text("RELAY_STORAGE_TABLE_ENDPOINT", "—", "https://relaystore.table.core.windows.net"),
    Text(
        "RELAY_STORAGE_CONNECTION_STRING",
        "—",
        "DefaultEndpointsProtocol=https;AccountName=<account>;AccountKey=<key>;"
        "EndpointSuffix=core.windows.net (or UseDevelopmentStorage=true for Azurite)",
    ),
    Text("RELAY_TABLE_PREFIX", "wallarmrelay", "wallarmrelay"),
    Text("RELAY_CA_BUNDLE", "—", "/etc/ssl/certs/ca-certificates.crt"),
    Text("WEBHOOK_SHARED_SECRET", "—", "the output of `openssl rand -hex 32`"),
    Text("WEBHOOK_SECRET_HEADER", "X-Wallarm-Relay-Secret", "X-Wallarm-Relay-Secret"),
    Text("ALLOWED_SOURCE_NETWORKS", "— (all)", "34.94.16.0/24,2600:1900:4000::/44"),
    Text("SELECT_SECURITY_ISSUE_RISKS", "all", "high,medium"),
    Text("RETRY_SCHEDULE", "Wallarm's", "1s,3s,5s,10s,10s; 1m,3m,10m,30m; every 30m"),
    Text("WALLARM_API_TOKEN", "—", "a Wallarm API token, as a Key Vault reference"),
    Text("WALLARM_API_CLOUD", "—", "eu"),
    Text("WALLARM_API_URL", "per cloud", "https://us1.api.wallarm.com"),
    Text("WALLARM_CLIENT_ID", "— (asked once)", "12345"),
    Text("LOGS_WORKSPACE_ID", "—", "11111111-2222-3333-4444-555555555555"),
    Text("LOGS_QUERY_ENDPOINT", "https://api.loganalytics.io", "https://api.loganalytics.us"),
    Text(
        "WALLARM_INTEGRATION_URL",
        "https://$WEBSITE_HOSTNAME/api/wallarm",
        "https://relay-app.azurewebsites.net/api/wallarm",
    ),
)
TEXT_DEFAULTS: Final[dict[str, str]] = {t.name: t.default for t in TEXTS}
_EXAMPLES: Final[dict[str, str]] = {t.name: t.example for t in TEXTS}

# Every other environment variable the code reads, with who reads it and why: not relay settings
# (load_settings does not read them) but documented beside them, so that nothing the relay depends
# on is known only from its source. tests/unit/test_env_reads.py holds the code's reads against this list
# and the spec above.
READ_ELSEWHERE: Final[dict[str, str]] = {
    "AZURE_TENANT_ID": "azure-identity: the tenant of an app registration (with AZURE_CLIENT_SECRET), "
    "or of the developer's login for local runs",
    "AZURE_CLIENT_SECRET": "azure-identity: an app registration's secret (keep it in Key Vault)",
    "AZURE_AUTHORITY_HOST": "azure-identity: the Entra ID host for an app registration outside the "
    "public cloud, e.g. login.microsoftonline.us",
    "RETRY_WORKER_SCHEDULE": "Functions host: the retry worker's NCRONTAB schedule",
    "HOURLY_COUNT_SCHEDULE": "Functions host: the hourly count's NCRONTAB schedule",
    "COMPLETENESS_SCHEDULE": "Functions host: the watchdog and reconciliation's NCRONTAB schedule",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "telemetry export to Application Insights",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "telemetry export: Authorization=AAD uses the identity",
    "REQUESTS_CA_BUNDLE": "proxy and CA environment, as requests reads it",
    "CURL_CA_BUNDLE": "proxy and CA environment, as requests reads it",
    "WEBSITE_HOSTNAME": "set by the platform: the app's host name (WALLARM_INTEGRATION_URL's default)",
    "WEBSITE_AUTH_ENABLED": "set by the platform: App Service authentication is on (trusts "
    "x-ms-client-principal-name for the admin audit)",
    "WEBSITE_INSTANCE_ID": "set by the platform: running on Azure (never use a developer login)",
    "IDENTITY_ENDPOINT": "set by the platform: the managed identity's token endpoint",
    "MSI_ENDPOINT": "set by older platforms: the managed identity's token endpoint",
    "RELAY_URL": "relayctl: the Function App's base URL, e.g. https://<app>.azurewebsites.net",
    "RELAY_ADMIN_KEY": "relayctl: the host's master key "
    "(az functionapp keys list -g <rg> -n <app> --query masterKey -o tsv)",
    "RELAY_LOCAL_PORT": "local.run: the port to listen on (7071)",
    "RELAY_LOCAL_FUNCTION_KEY": "local.run: a fixed function key instead of a random one",
    "RELAY_LOCAL_MASTER_KEY": "local.run: a fixed master key instead of a random one",
    "RELAY_LOG_LEVEL": "local.run: the log level (INFO), e.g. DEBUG",
    "AZURITE_TABLE_BIN": "local stand-ins: the azurite-table executable to run",
    "AZURITE_CONNECTION_STRING": "local stand-ins: an Azurite already running, instead of starting one",
}


@dataclass(frozen=True)
class WallarmApiLimits:
    """Bounds of every Wallarm API call (not app settings: constants, stated in the README).

    A flaky API, a broken proxy or a hostile server must not hold the hourly timer until the
    Functions timeout or fill a 512 MB instance: each HTTP exchange ends at `request_seconds`
    whatever the server drips, each client call (a window's pages with their retries) at
    `call_seconds`, an answer larger than `answer_bytes` is dropped unread past the cap, and a
    window stops after `pages` pages or `window_bytes` bytes (500 hits a page: 20,000 hits).
    """

    request_seconds: float = 30.0
    call_seconds: float = 120.0
    answer_bytes: int = 8 * 1024 * 1024
    window_bytes: int = 64 * 1024 * 1024
    pages: int = 40


class SettingsError(ValueError):
    """One or more settings are missing or invalid; the message lists each with a fix.
    ``unresolved`` names the settings that hold an unresolved Key Vault reference."""

    def __init__(self, problems: list[str], unresolved: Iterable[str] = ()) -> None:
        super().__init__("Invalid relay configuration:\n- " + "\n- ".join(problems))
        self.problems = problems
        self.unresolved = tuple(unresolved)


def is_unresolved_reference(value: str) -> bool:
    """App Service passed a Key Vault (or App Configuration) reference's text, not its value."""
    return bool(_UNRESOLVED_REFERENCE.match(value))


KEYVAULT_FIX = (
    "give the app's identity (its system-assigned one, unless keyVaultReferenceIdentity names another) "
    "the role 'Key Vault Secrets User' on the vault, e.g. `az role assignment create --role "
    "'Key Vault Secrets User' --assignee <principal id> --scope <vault resource id>`; wait for the role "
    "to propagate (up to 30 minutes) and restart the app; check that the reference's SecretUri names an "
    "existing secret (https://<vault>.vault.azure.net/secrets/<name>)"
)


def keyvault_problem(name: str) -> str:
    """The one message for a setting whose Key Vault reference did not resolve (never its text)."""
    return (
        f"{name} is an unresolved Key Vault reference: App Service passed the reference text, not the "
        f"secret, so it is not used; {KEYVAULT_FIX}."
    )


def unresolved_references(env: Mapping[str, str]) -> list[str]:
    """The settings the relay reads (spec and READ_ELSEWHERE) that hold an unresolved reference."""
    return sorted(name for name in setting_names() if is_unresolved_reference(env.get(name, "")))


def setting_names() -> frozenset[str]:
    """Every environment variable the relay reads: the spec, then READ_ELSEWHERE."""
    spec = [*NUMBERS, *COMPLETENESS_NUMBERS, *COMPLETENESS_FLAGS, *(f.name for f in SELECTION_FLAGS)]
    return frozenset([*spec, *(t.name for t in TEXTS), *READ_ELSEWHERE])


def _use(name: str, form: str) -> str:
    """How to fix a setting: its accepted form and an example value."""
    return f"use {form}, e.g. {name}={_EXAMPLES[name]}"


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
    reconcile_max_range: timedelta = COMPLETENESS_NUMBERS["RECONCILE_MAX_RANGE_HOURS"].value
    reconcile_max_age: timedelta = COMPLETENESS_NUMBERS["RECONCILE_MAX_AGE_DAYS"].value
    reconcile_confirm: timedelta = COMPLETENESS_NUMBERS["RECONCILE_CONFIRM_MINUTES"].value
    watch_integration: bool = COMPLETENESS_FLAGS["WATCHDOG_CHECK_INTEGRATION"].default
    integration_url: str | None = None
    reenable: bool = COMPLETENESS_FLAGS["WATCHDOG_REENABLE"].default
    quiet_after: timedelta = COMPLETENESS_NUMBERS["WATCHDOG_QUIET_HOURS"].value
    api_limits: WallarmApiLimits = WallarmApiLimits()

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
    landed_check_delay: timedelta = NUMBERS["LANDED_CHECK_DELAY_SECONDS"].value
    auto_disable_ratio: float = NUMBERS["AUTO_DISABLE_FAILURE_RATIO"].value
    auto_disable_window: timedelta = NUMBERS["AUTO_DISABLE_WINDOW_HOURS"].value
    auto_disable_min_attempts: int = NUMBERS["AUTO_DISABLE_MIN_ATTEMPTS"].value
    auto_disable_grace: timedelta = NUMBERS["AUTO_DISABLE_GRACE_MINUTES"].value
    recovery_probe: timedelta = NUMBERS["RECOVERY_PROBE_SECONDS"].value
    dedup_window: timedelta = NUMBERS["DEDUP_WINDOW_HOURS"].value
    ledger_retention: timedelta = NUMBERS["LEDGER_RETENTION_DAYS"].value
    counter_retention: timedelta = NUMBERS["COUNTER_RETENTION_DAYS"].value
    worker_limits: RetryWorkerLimits = RetryWorkerLimits()
    completeness: CompletenessSettings = field(default_factory=CompletenessSettings)


def _bool(env: Mapping[str, str], name: str, default: bool, problems: list[str]) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    problems.append(
        f"{name}={raw!r} is not a boolean: use true or false, e.g. {name}={str(default).lower()}."
    )
    return default


def _number_problem(spec: Number, raw: str) -> tuple[str, Any]:
    """What is wrong with ``raw`` for ``spec`` ('' when nothing), and its value as the field holds it."""
    try:
        value = float(raw)
    except ValueError:
        return "is not a number", None
    if value != value or value in (float("inf"), float("-inf")):
        return "is not a finite number", None
    if spec.unit is _int and not value.is_integer():
        return "is not a whole number", None
    if value < spec.minimum:
        return f"must be at least {_plain(spec.minimum)}", None
    if value > (_LARGEST if spec.maximum is None else spec.maximum):
        return f"must be at most {_plain(_LARGEST if spec.maximum is None else spec.maximum)}", None
    try:
        converted = spec.unit(value)
    except OverflowError:  # e.g. 1e300 hours: more than a timedelta holds
        return "is too large", None
    if isinstance(converted, timedelta) and converted > _LONGEST:
        # 1e9 hours fits a timedelta but not now + it: every use would raise OverflowError.
        return "is longer than 100 years", None
    return "", converted


def _number(env: Mapping[str, str], spec: Number, problems: list[str]) -> Any:
    """The setting's value as its field holds it (the default where it is unset or wrong)."""
    raw = env.get(spec.name, "").strip()
    if not raw:
        return spec.value
    wrong, value = _number_problem(spec, raw)
    if wrong:
        problems.append(
            f"{spec.name}={raw!r} {wrong}: use {spec.form}, e.g. {spec.name}={_plain(spec.default)}."
        )
        return spec.value
    return value


def _numbers(env: Mapping[str, str], specs: Mapping[str, Number], problems: list[str]) -> dict[str, Any]:
    """field -> value of each numeric setting in ``specs`` (the default where it is unset or wrong)."""
    return {spec.field: _number(env, spec, problems) for spec in specs.values()}


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
                f"ALLOWED_SOURCE_NETWORKS: {part!r} is not an IP address or CIDR: "
                f"{_use('ALLOWED_SOURCE_NETWORKS', 'IP addresses or CIDR ranges, comma-separated')}."
            )
    return tuple(nets)


CLIENT_ID_FORM = "the identity's client ID (not its name or resource ID)"


def _plain_string_problems(env: Mapping[str, str]) -> list[str]:
    """Whitespace inside, control or non-ASCII characters in a name, ID or URL setting."""
    problems = []
    for name in PLAIN_STRING_SETTINGS:
        value = env.get(name, "").strip()
        if any(not ("!" <= ch <= "~") for ch in value):
            problems.append(
                f"{name}={value!r} contains spaces, control or non-ASCII characters: copy the value "
                "again from the Azure portal or the deployment outputs (a pasted value often carries "
                f"them), e.g. {name}={_EXAMPLES[name]}."
            )
    client_id = env.get("AZURE_CLIENT_ID", "").strip()
    if client_id and not _GUID.match(client_id):
        problems.append(
            f"AZURE_CLIENT_ID={client_id!r} is not a GUID: {_use('AZURE_CLIENT_ID', CLIENT_ID_FORM)}."
        )
    header = env.get("WEBHOOK_SECRET_HEADER", "").strip()
    if header and not _HTTP_TOKEN.match(header):
        problems.append(
            f"WEBHOOK_SECRET_HEADER={header!r} is not a valid HTTP header name: "
            f"{_use('WEBHOOK_SECRET_HEADER', 'letters, digits and dashes')}."
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
            f"usual cause), or {fix}."
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
            "(the infra output of the same name), e.g. LOGS_INGESTION_AUDIENCE=usgov or "
            "https://monitor.azure.us."
        )
        return INGESTION_AUDIENCES["public"]
    return value


def _risks(raw: str | None, problems: list[str]) -> frozenset[str]:
    if raw is None or raw.strip().lower() in ("", "all"):  # "all", the README's default, too
        return frozenset(SECURITY_ISSUE_RISKS)
    if raw.strip().lower() == "none":
        return frozenset()
    risks = {r.strip().lower() for r in raw.split(",") if r.strip()}
    unknown = risks - set(SECURITY_ISSUE_RISKS)
    if unknown:
        levels = ", ".join(SECURITY_ISSUE_RISKS)
        problems.append(
            f"SELECT_SECURITY_ISSUE_RISKS has unknown levels {sorted(unknown)}: "
            f"{_use('SELECT_SECURITY_ISSUE_RISKS', f'any of {levels} (comma-separated), all or none')}."
        )
    return frozenset(risks & set(SECURITY_ISSUE_RISKS))


_URLS = ("WALLARM_API_URL", "LOGS_QUERY_ENDPOINT", "WALLARM_INTEGRATION_URL")


def _https_or_loopback(url: str) -> bool:
    """An https:// URL, or plain http to a stand-in on 127.0.0.1 (not http://127.0.0.1.example.com)."""
    parts = urlparse(url)
    return bool(parts.netloc) and (
        parts.scheme == "https" or (parts.scheme == "http" and parts.hostname == "127.0.0.1")
    )


def _url_problem(env: Mapping[str, str], name: str) -> str:
    """An https:// URL (plain http only to a loopback stand-in); '' when unset or fine."""
    url = env.get(name, "").strip()
    if not url or _https_or_loopback(url):
        return ""
    return f"{name}={url!r} must be an https:// URL: {_use(name, 'https://<host>/…')}."


def _completeness(env: Mapping[str, str], problems: list[str]) -> CompletenessSettings:
    token = env.get("WALLARM_API_TOKEN", "").strip() or None
    cloud = env.get("WALLARM_API_CLOUD", "").strip().lower()
    url = env.get("WALLARM_API_URL", "").strip().rstrip("/")
    workspace = env.get("LOGS_WORKSPACE_ID", "").strip() or None
    clouds = " or ".join(CLOUD_URLS)
    if cloud and cloud not in CLOUD_URLS:  # refused with or without a token: it is wrong either way
        problems.append(
            f"WALLARM_API_CLOUD={cloud!r} is not a Wallarm Cloud: {_use('WALLARM_API_CLOUD', clouds)} "
            "(the Cloud your Wallarm Console is in; the ME Cloud was retired in July 2026), or set "
            "WALLARM_API_URL."
        )
    elif token is not None and not url and not cloud:
        problems.append(
            f"WALLARM_API_CLOUD is missing: set {clouds} (the Wallarm Cloud of WALLARM_API_TOKEN), e.g. "
            "WALLARM_API_CLOUD=eu, or WALLARM_API_URL."
        )
    if token is not None and workspace is None:
        problems.append(
            "LOGS_WORKSPACE_ID is missing: reconciliation reads the table; "
            f"{_use('LOGS_WORKSPACE_ID', 'the workspace ID, a GUID (the infra output of the same name)')}."
        )
    if workspace is not None and not _GUID.match(workspace):
        problems.append(
            f"LOGS_WORKSPACE_ID={workspace!r} is not a GUID: use the workspace ID (Log Analytics "
            "workspace → Overview → Workspace ID), not its name or resource ID, e.g. "
            f"LOGS_WORKSPACE_ID={_EXAMPLES['LOGS_WORKSPACE_ID']}."
        )
    if url and (why := api_url_problem(url)) is not None:
        # Not echoed: a URL with user info may carry a password; the token goes only to this host.
        problems.append(
            f"WALLARM_API_URL must be an https:// URL: {why}; {_use('WALLARM_API_URL', 'https://<host>')}."
        )
    others = (name for name in _URLS if name != "WALLARM_API_URL")
    problems.extend(problem for problem in (_url_problem(env, name) for name in others) if problem)
    client = env.get("WALLARM_CLIENT_ID", "").strip()
    if client and not client.isdigit():
        problems.append(
            f"WALLARM_CLIENT_ID={client!r} must be a number: "
            f"{_use('WALLARM_CLIENT_ID', 'the numeric id of your Wallarm client')}."
        )
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
    endpoint_form = "the DCR's logs ingestion endpoint, the infra output of the same name"
    if not endpoint:
        problems.append(
            f"LOGS_INGESTION_ENDPOINT is missing: {_use('LOGS_INGESTION_ENDPOINT', endpoint_form)}."
        )
    elif urlparse(endpoint).scheme != "https" or not urlparse(endpoint).netloc:
        problems.append(
            f"LOGS_INGESTION_ENDPOINT={endpoint!r} must be an https:// URL (the SDK refuses to send a "
            f"bearer token over plain http): {_use('LOGS_INGESTION_ENDPOINT', endpoint_form)}."
        )

    dcr = env.get("LOGS_DCR_IMMUTABLE_ID", "").strip()
    dcr_form = "the DCR's immutableId (Azure portal → the DCR → JSON view), not its name or resource ID"
    if not dcr:
        problems.append(f"LOGS_DCR_IMMUTABLE_ID is missing: {_use('LOGS_DCR_IMMUTABLE_ID', dcr_form)}.")
    elif not dcr.startswith("dcr-"):
        problems.append(
            f"LOGS_DCR_IMMUTABLE_ID={dcr!r} does not start with 'dcr-': "
            f"{_use('LOGS_DCR_IMMUTABLE_ID', dcr_form)}."
        )

    stream = env.get("LOGS_STREAM_NAME", TEXT_DEFAULTS["LOGS_STREAM_NAME"]).strip()
    if not stream.startswith("Custom-"):
        problems.append(
            f"LOGS_STREAM_NAME={stream!r} must start with 'Custom-': "
            f"{_use('LOGS_STREAM_NAME', 'the DCR input stream, not the table name')}."
        )
    return endpoint, dcr, stream


def _storage(env: Mapping[str, str], problems: list[str]) -> tuple[str | None, str | None, str]:
    """The Table Storage connection string or endpoint, and the table prefix."""
    conn = env.get("RELAY_STORAGE_CONNECTION_STRING", "").strip() or None
    table_endpoint = env.get("RELAY_STORAGE_TABLE_ENDPOINT", "").strip().rstrip("/") or None
    if not conn and not table_endpoint:
        problems.append(
            "Neither RELAY_STORAGE_TABLE_ENDPOINT (used with the managed identity) nor "
            "RELAY_STORAGE_CONNECTION_STRING (local Azurite) is set: the retry queue and ledger need "
            "Table Storage; set one, e.g. RELAY_STORAGE_TABLE_ENDPOINT="
            f"{_EXAMPLES['RELAY_STORAGE_TABLE_ENDPOINT']}."
        )
    if conn and not _connection_string_ok(conn):  # never echoed: it holds the account key
        problems.append(
            "RELAY_STORAGE_CONNECTION_STRING is not a Table Storage connection string (key=value pairs "
            "with AccountName and AccountKey, TableEndpoint and SharedAccessSignature, or "
            "UseDevelopmentStorage=true): copy it from the storage account's Access keys page, e.g. "
            f"{_EXAMPLES['RELAY_STORAGE_CONNECTION_STRING']}."
        )
    if table_endpoint and not _https_or_loopback(table_endpoint):
        problems.append(
            f"RELAY_STORAGE_TABLE_ENDPOINT={table_endpoint!r} must be an https:// URL: "
            f"{_use('RELAY_STORAGE_TABLE_ENDPOINT', 'the storage account table endpoint')}."
        )

    prefix = env.get("RELAY_TABLE_PREFIX", TEXT_DEFAULTS["RELAY_TABLE_PREFIX"]).strip()
    if not (prefix.isascii() and prefix.isalnum()) or not prefix[:1].isalpha() or len(prefix) > 40:
        problems.append(
            f"RELAY_TABLE_PREFIX={prefix!r} is not a table name prefix: "
            f"{_use('RELAY_TABLE_PREFIX', 'letters and digits, starting with a letter, at most 40')}."
        )
    return conn, table_endpoint, prefix


def _connection_string_ok(conn: str) -> bool:
    """The pairs azure-data-tables needs (it raises a bare ValueError later otherwise)."""
    pairs = [part.split("=", 1) for part in conn.split(";") if part.strip()]
    if not pairs or any(len(pair) != 2 or not pair[0].strip() for pair in pairs):
        return False
    keys = {key.strip().lower(): value.strip() for key, value in pairs}
    return (
        keys.get("usedevelopmentstorage", "").lower() == "true"
        or {"accountname", "accountkey"} <= keys.keys()
        or {"tableendpoint", "sharedaccesssignature"} <= keys.keys()
    )


def _schedule(raw: str, problems: list[str]) -> RetrySchedule:
    if not raw.strip():
        return DEFAULT_SCHEDULE
    try:
        return RetrySchedule.parse(raw.strip())
    except ValueError as err:
        form = (
            "delays like 10s, 1m or 1h, comma-separated, cycles separated by ';', ending with 'every <delay>'"
        )
        problems.append(f"RETRY_SCHEDULE: {err}; {_use('RETRY_SCHEDULE', form)}.")
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
    """Build Settings from app settings, raising SettingsError with every problem found.

    A setting holding an unresolved Key Vault reference gets that one problem, and is read as
    unset: its text is never taken as a value, and its other checks would only blur the cause."""
    unresolved = unresolved_references(env)
    if unresolved:
        found = [keyvault_problem(name) for name in unresolved]
        kept = {k: v for k, v in env.items() if k not in unresolved}
        try:
            load_settings(kept)
        except SettingsError as err:
            mentions = re.compile(r"\b(" + "|".join(unresolved) + r")\b")
            found += [p for p in err.problems if not mentions.search(p)]
        raise SettingsError(found, unresolved)
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
