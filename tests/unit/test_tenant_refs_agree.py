"""Red team (issue 22): a reference `add` accepts (shared/tenancy/refs.py) is one the relay can
read (shared/tenancy/secrets.py). They disagreed on ports and loopback hosts, and a tenant added
with `https://kv.vault.azure.net:8443/secrets/x` broke every directory refresh."""

from __future__ import annotations

import itertools

import pytest

from shared.tenancy.refs import keyvault_ref_problem
from shared.tenancy.secrets import SecretRefError, parse_secret_ref

HOSTS = [
    "relay-kv.vault.azure.net",
    "Relay-KV.vault.azure.net",
    "kv.vault.usgovcloudapi.net",
    "kv.vault.azure.cn",
    "kv.vault.microsoftazure.de",
    "a.b.vault.azure.net",
    "vault.azure.net.evil.com",
    "evilvault.azure.net",
    "kv.vault.azure.net.",
    "127.0.0.1",
    "localhost",
    "[::1]",
    "10.0.0.1",
]
PORTS = ["", ":443", ":8443", ":0", ":99999", ":x"]
PATHS = [
    "/secrets/hook",
    "/secrets/hook/",
    "/secrets/hook/0123456789abcdef0123456789abcdef",
    "/secrets/hook/0123456789ABCDEF0123456789ABCDEF/",
    "//secrets/hook",
    "/secrets/hook/x",
    "/secrets/bad_name",
    "/secrets/" + "a" * 128,
    "/keys/hook",
    "/secrets/hook?api-version=7.5",
    "/secrets/hook#v",
]


@pytest.mark.parametrize(
    "ref",
    [f"https://{h}{p}{path}" for h, p, path in itertools.product(HOSTS, PORTS, PATHS)]
    + ["https://user:pw@kv.vault.azure.net/secrets/a", "HTTPS://kv.vault.azure.net/secrets/a"],
)
def test_what_add_accepts_the_reader_can_read(ref: str) -> None:
    if keyvault_ref_problem(ref) is not None:
        return
    try:
        parse_secret_ref(ref)
    except SecretRefError as err:
        pytest.fail(f"accepted at add, unreadable by KeyVaultSecrets: {err}")


@pytest.mark.parametrize(
    ("ref", "said"),
    [
        ("https://relayvault.vault.azure.net:8443/secrets/hook", "port 443 only"),
        ("https://127.0.0.1/secrets/hook", "needs its port"),
        ("https://localhost/secrets/hook", "needs its port"),
    ],
)
def test_a_port_the_reader_would_refuse_is_refused_at_add_with_the_fix(ref: str, said: str) -> None:
    problem = keyvault_ref_problem(ref)
    assert problem is not None and said in problem and ref not in problem
