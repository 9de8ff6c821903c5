"""Issue 19, finding 3: the Wallarm API URL is judged on its parsed host, in settings and client."""

from __future__ import annotations

import pytest

from shared.completeness.wallarm_api import WallarmApi
from shared.settings import SettingsError, load_settings
from shared.wallarm_cloud import api_url_problem

MINIMAL = {
    "LOGS_INGESTION_ENDPOINT": "https://dce.westeurope-1.ingest.monitor.azure.com",
    "LOGS_DCR_IMMUTABLE_ID": "dcr-00000000000000000000000000000000",
    "RELAY_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",
    "WALLARM_API_TOKEN": "t" * 64,
    "LOGS_WORKSPACE_ID": "00000000-0000-0000-0000-000000000000",
}
REFUSED = [
    "http://127.0.0.1.evil.example",
    "http://127.0.0.1@evil.example",
    "http://127.0.0.1:8080@evil.example",
    "https://user:secret@api.wallarm.com",
    "http://localhost.evil.example",
    "http://evil.example/127.0.0.1",
    "http://api.example.com",
    "ftp://127.0.0.1",
    "https://",
    "http://127.0.0.1:port",
    "https://api.wallarm.com?x=1",
    "//127.0.0.1",
    "http://[::ffff:8.8.8.8]",
]
ALLOWED = [
    "https://api.wallarm.com",
    "https://us1.api.wallarm.com/",
    "http://127.0.0.1:8081",
    "http://127.5.6.7",
    "http://[::1]:8081",
    "http://localhost:8081",
]


@pytest.mark.parametrize("url", REFUSED)
def test_a_url_that_is_not_https_or_loopback_is_refused_by_settings(url: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({**MINIMAL, "WALLARM_API_URL": url})
    (problem,) = err.value.problems
    assert problem.startswith("WALLARM_API_URL must be an https:// URL")
    assert "secret" not in problem and "evil" not in problem  # the value is never echoed


@pytest.mark.parametrize("url", REFUSED)
def test_the_client_refuses_the_same_urls(url: str) -> None:
    assert api_url_problem(url) is not None
    with pytest.raises(ValueError, match="https://"):
        WallarmApi(url, "t" * 64)


@pytest.mark.parametrize("url", ALLOWED)
def test_https_and_loopback_urls_are_allowed(url: str) -> None:
    assert api_url_problem(url) is None
    assert load_settings({**MINIMAL, "WALLARM_API_URL": url}).completeness.wallarm_api_url == url.rstrip("/")
