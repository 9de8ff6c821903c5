"""Repository-wide rules, ported: non-ASCII, documentation links, ID change, and the solution
checks (Microsoft Sentinel branding, support object, domains and verticals).

The solution checks run in Azure-Sentinel on the packaged mainTemplate.json/createUiDefinition.json,
which the V3 packager builds from the solution's content and SolutionMetadata.json; no packager
runs here, so they are applied to those sources: branding to every content file the package
embeds, support and categories to SolutionMetadata.json (what becomes the metadata resource).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

from sentinel_checks.core import ROOT, Finding, Solution, load_json, load_yaml

NON_ASCII = re.compile(r"[^\u0000-\u007F]+")
LOCALE_LINK = re.compile(
    r"(https://docs.microsoft.com|https://azure.microsoft.com)(/[a-z]{2}-[a-z]{2})", re.IGNORECASE
)
# JavaScript's \b and \s are ASCII-only (no u flag); re.ASCII matches them.
BRANDING = re.compile(r"(?<!Microsoft\s)(?<!-)\bSentinel\b", re.ASCII)
TEMPLATE_ID_CHANGE = re.compile(
    r"((id: [0-9a-fA-F]{8}\-[0-9a-fA-F]{4}\-[0-9a-fA-F]{4}\-[0-9a-fA-F]{4}\-[0-9a-fA-F]{12})([\s\S].*)?){2}"
)
VALID_DOMAINS = frozenset(
    {
        "Application", "Cloud Provider", "Compliance", "DevOps", "Identity", "Internet of Things (IoT)",
        "IT Operations", "Migration", "Networking", "Platform", "Security - Others",
        "Security - Threat Intelligence", "Security - Threat Protection", "Security - 0-day Vulnerability",
        "Security - Automation (SOAR)", "Security - Cloud Security", "Security - Information Protection",
        "Security - Insider Threat", "Security - Network", "Security - Vulnerability Management", "Storage",
        "Training and Tutorials", "User Behavior (UEBA)",
    }
)  # fmt: skip
VALID_VERTICALS = frozenset({"Aeronautics", "Education", "Finance", "Healthcare", "Manufacturing", "Retail"})
EMAIL = re.compile(r"^[^\s@]+@[^\s@]+\.[^\s@]+$")
LINK = re.compile(r"^https?://\S+$")
PACKAGED_SUFFIXES = (".json", ".yaml", ".yml")


def non_ascii_problem(text: str, name: str) -> str | None:
    match = NON_ASCII.search(text)
    if not match:
        return None
    return f"${name} includes the non ascii char:{match.group()} string index:{match.start()}"


def locale_link_problem(text: str, rel: str) -> str | None:
    return f"Documentation links should not include locale: {rel}, " if LOCALE_LINK.search(text) else None


def branding_problems(text: str) -> list[str]:
    return [
        f"The string 'Sentinel' is invalid. It should be preceded by 'Microsoft' at index {m.start() + 1}"
        for m in BRANDING.finditer(text)
    ]


def support_problem(support: Any) -> str | None:
    """IsValidSupportObject for one metadata resource's `support`."""
    if support is None:
        return 'The "properties" field must have "support" field.'
    if "name" not in support:
        return 'The support object must have a "name" field.'
    if str(support["name"]).strip() == "":
        return 'The support object "name" field value cannot be empty.'
    email, link = str(support.get("email", "")).strip(), str(support.get("link", "")).strip()
    if not email and not link:
        return (
            'The support object must have either "email" or "link" field and the value should not be empty.'
        )
    if email and not EMAIL.match(str(support["email"])):
        return f"Invalid email format for support email: {support['email']}"
    if link and not LINK.match(str(support["link"])):
        return f"Invalid url format for support link: {support['link']}"
    return None


def domains_problem(categories: Any) -> str | None:
    """IsValidSolutionDomainsVerticals for one metadata resource's `categories`."""
    if categories is None:
        return None
    domains = categories.get("domains")
    if not domains:
        return (
            "The solution must include at least one valid domain. Please provide a domain in the 'domains' field "
            "of the 'categories' object."
        )
    bad_domains = [d for d in domains if d not in VALID_DOMAINS]
    bad_verticals = [v for v in categories.get("verticals") or [] if v not in VALID_VERTICALS]
    if not bad_domains and not bad_verticals:
        return None
    message = "Invalid"
    if bad_domains:
        message += f" domains: [{', '.join(bad_domains)}]"
    if bad_verticals:
        message += f" verticals: [{', '.join(bad_verticals)}]"
    return message + " provided."


def id_change_problem(diff: str, rel: str) -> str | None:
    """IsIdHasChanged: two `id: <guid>` lines in one file's diff (the old one removed, a new one added)."""
    match = TEMPLATE_ID_CHANGE.search(diff)
    if match and match.start() > 0:
        return f'Changes:\n {diff} \n As you can see, the id of file - "{rel}" has changed.'
    return None


def _git_diff(base: str, path: Path) -> str | None:
    try:
        result = subprocess.run(
            ["git", "diff", base, "--", str(path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


def base_ref() -> str | None:
    """The branch a pull request would target: SENTINEL_BASE_REF, else `main` when it exists."""
    ref = os.environ.get("SENTINEL_BASE_REF", "main")
    ok = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", ref], cwd=ROOT, capture_output=True, check=False
    )
    return ref if ok.returncode == 0 else None


def check(solution: Solution, base: str | None = None) -> list[Finding]:
    findings: list[Finding] = []
    detections = [*solution.rules(), *solution.hunting(), *solution.parsers()]
    for path in detections:
        problem = non_ascii_problem(path.read_text(encoding="utf-8"), path.name)
        if problem:
            findings.append(Finding("Non-Ascii", solution.rel(path), problem))
    for path in solution.files(""):
        if path.suffix in (".csv", ".png"):
            continue
        problem = locale_link_problem(path.read_text(encoding="utf-8", errors="replace"), solution.rel(path))
        if problem:
            findings.append(Finding("Documentation Links", solution.rel(path), problem))
    packaged = [
        p
        for p in solution.files(*PACKAGED_SUFFIXES)
        if p.parent != solution.root or p.name == "SolutionMetadata.json"
    ]
    for path in packaged:
        for problem in branding_problems(path.read_text(encoding="utf-8")):
            findings.append(Finding("Solution (Microsoft Sentinel branding)", solution.rel(path), problem))
    metadata_path = solution.root / "SolutionMetadata.json"
    if metadata_path.exists():
        metadata = load_json(metadata_path)
        for validator, problem in (
            ("Solution (support object)", support_problem(metadata.get("support"))),
            ("Solution (domains and verticals)", domains_problem(metadata.get("categories"))),
        ):
            if problem:
                findings.append(Finding(validator, "SolutionMetadata.json", problem))
    findings += placeholder_warnings(solution)
    if base:
        for path in solution.files(".yaml", ".yml", ".json"):
            diff = _git_diff(base, path)
            problem = id_change_problem(diff, solution.rel(path)) if diff else None
            if problem:
                findings.append(Finding("ID Change", solution.rel(path), problem))
    return findings


def placeholder_warnings(solution: Solution) -> list[Finding]:
    """Not one of Microsoft's checks: contacts on the reserved .invalid domain (RFC 2606) stand for
    the publisher's real ones, which only the publisher can give (a Content Hub pull request needs them)."""
    out = []
    for path in solution.files(".json"):
        if ".invalid" in path.read_text(encoding="utf-8"):
            out.append(
                Finding(
                    "Submission readiness",
                    solution.rel(path),
                    "placeholder contact (.invalid): set the publisher's",
                    "warning",
                )
            )
    return out


def ids(paths: list[Path]) -> dict[str, str]:
    return {p.name: str(load_yaml(p).get("id")) for p in paths}
