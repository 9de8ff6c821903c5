"""Where Wallarm's clouds answer, and which API URLs may carry the token.

Pure facts and checks that both the settings (validation at start-up) and the API client use, so
neither has to import the other.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

CLOUD_URLS: Final[Mapping[str, str]] = {
    "us": "https://us1.api.wallarm.com",
    "eu": "https://api.wallarm.com",
}


def api_url_problem(url: str) -> str | None:
    """Why `url` may not carry the token, or None. Judged on the parsed URL, never its prefix:
    `http://127.0.0.1.evil.example` and `http://127.0.0.1@evil.example` are not loopback."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "it does not parse as a URL"
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "user info (`user@`) is not allowed in it"
    if not host:
        return "it has no host"
    if parts.query or parts.fragment:
        return "it may not have a query or fragment"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and is_loopback(host):
        return None
    return "only a loopback stand-in may use http://"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
