"""Proxies and CA bundle read once per client give what requests worked out on every request."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from requests.utils import select_proxy

from shared.store.tables import DEVELOPMENT_STORAGE, table_service_from
from shared.transport import client_options

_VARS = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
)
_URLS = (
    "https://acct.table.core.windows.net/Tables",
    "http://127.0.0.1:10002/devstoreaccount1/Tables",
    "https://dce-1.westeurope-1.ingest.monitor.azure.com/dataCollectionRules/dcr-1/streams/s",
    "https://internal.example.org:8443/x",
)
_ENVS: tuple[dict[str, str], ...] = (
    {},
    {"HTTPS_PROXY": "http://10.0.0.1:3128"},
    {"HTTPS_PROXY": "http://10.0.0.1:3128", "HTTP_PROXY": "http://10.0.0.2:3128"},
    {"HTTPS_PROXY": "http://10.0.0.1:3128", "NO_PROXY": ".core.windows.net,127.0.0.1"},
    {"https_proxy": "http://10.0.0.3:3128", "HTTPS_PROXY": "http://10.0.0.1:3128"},
    {"ALL_PROXY": "socks5://10.0.0.4:1080", "no_proxy": "internal.example.org"},
    {"HTTPS_PROXY": "http://10.0.0.1:3128", "NO_PROXY": "*"},
    {"HTTP_PROXY": "http://10.0.0.2:3128", "NO_PROXY": "127.0.0.0/8"},
    {"REQUESTS_CA_BUNDLE": "/etc/corp-ca.pem"},
    {"CURL_CA_BUNDLE": "/etc/curl-ca.pem", "HTTPS_PROXY": "http://10.0.0.1:3128"},
)


def _set(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name in _VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("env", _ENVS, ids=lambda e: ",".join(e) or "none")
@pytest.mark.parametrize("verify", [True, "/srv/relay-ca.pem"])
def test_same_proxy_and_bundle_as_requests_per_request(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], verify: bool | str
) -> None:
    _set(monkeypatch, env)
    session = requests.Session()  # trust_env: what azure-core's transport did on every request
    for url in _URLS:
        expected = session.merge_environment_settings(url, {}, None, verify, None)
        options = client_options(url, verify=verify)
        assert options["use_env_settings"] is False
        assert select_proxy(url, options.get("proxies", {})) == select_proxy(url, expected["proxies"])
        assert options.get("connection_verify", True) == expected["verify"]


class _Recorder(BaseHTTPRequestHandler):
    """Answers 503 to anything; a proxied request names the whole URL in its request line."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.seen.append(self.path)
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_PATCH = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def recorder() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Recorder.seen.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("bypass", [False, True])
def test_table_client_goes_through_the_proxy_unless_no_proxy(
    monkeypatch: pytest.MonkeyPatch, recorder: str, bypass: bool
) -> None:
    """HTTP_PROXY sends the Table requests to the proxy; NO_PROXY for the host sends them direct."""
    # The account's endpoint is the recorder too: direct requests reach it with a path only.
    env = {"HTTP_PROXY": recorder, "NO_PROXY": "127.0.0.1" if bypass else "example.invalid"}
    _set(monkeypatch, env)
    connection = DEVELOPMENT_STORAGE.replace("http://127.0.0.1:10002", recorder)
    service = table_service_from(connection, None, None, retry_total=0, connection_timeout=2, read_timeout=2)
    with pytest.raises(HttpResponseError):
        service.get_table_client("proxied").get_entity("p", "r")
    assert len(_Recorder.seen) == 1
    assert _Recorder.seen[0].startswith("/") is bypass, _Recorder.seen[0]
