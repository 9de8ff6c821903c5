"""Issue 22 attacked before it ships: each test here was red on t22-core and names the defect it
pins. The real parts: function_app's functions with azure.functions requests (as the host calls
them), Azurite, the Key Vault, identity and ingestion stand-ins over HTTPS."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
from azure.data.tables import TableServiceClient

import function_app
from local.standins.identity import TokenIssuer
from local.standins.key_vault import KeyVaultStandIn
from local.standins.logs_ingestion import LogsIngestionStandIn
from shared.ops import routes
from shared.ops.services import Services
from shared.store.tenants import PARTITION

from .conftest import Call, body_json

HEADER = "X-Wallarm-Relay-Secret"
HIT = json.dumps([{"summary": "s", "details": {"notification_type": "new_hits", "client_name": "c"}}])


@pytest.fixture(scope="module")
def vaults(token_issuer: TokenIssuer) -> Iterator[tuple[KeyVaultStandIn, KeyVaultStandIn]]:
    """Two vaults: one tenant's can misbehave while the other's answers."""
    with KeyVaultStandIn(token_issuer) as first, KeyVaultStandIn(token_issuer) as second:
        yield first, second


@pytest.fixture
def vault(vaults: tuple[KeyVaultStandIn, KeyVaultStandIn]) -> Iterator[KeyVaultStandIn]:
    for each in vaults:
        each.reset()
    yield vaults[0]
    for each in vaults:
        each.reset()


def tenant_body(name: str, ingestion: LogsIngestionStandIn, ref: str) -> dict[str, object]:
    return {
        "name": name,
        "settings": {
            "LOGS_INGESTION_ENDPOINT": ingestion.endpoint,
            "LOGS_DCR_IMMUTABLE_ID": ingestion.dcr_id,
            "LOGS_STREAM_NAME": ingestion.stream,
        },
        "secret_refs": {"WEBHOOK_SHARED_SECRET": ref},
    }


def admin(svc: Services) -> routes.TenantAdmin:
    assert svc.tenant_admin is not None
    return svc.tenant_admin


def hook(call: Call, tenant: str, secret: str, body: str = HIT) -> int:
    resp = call("tenant_webhook", body.encode(), headers={HEADER: secret}, route_params={"tenant": tenant})
    return resp.status_code


# --- a reference the add accepts but the reader cannot parse ----------------------------------


@pytest.mark.parametrize(
    "ref",
    [
        "https://relayvault.vault.azure.net:8443/secrets/hook",  # a port on a real vault host
        "https://127.0.0.1/secrets/hook",  # the stand-in without its port
        "https://localhost/secrets/hook",  # the same, by name
    ],
)
def test_a_reference_the_reader_cannot_parse_is_refused_at_add(
    call: Call, ingestion: LogsIngestionStandIn, vault: KeyVaultStandIn, ref: str
) -> None:
    """Was: accepted by add (refs.py), then SecretRefError in every directory refresh."""
    call("relay_status", method="GET")
    resp = call("relay_tenants", json.dumps(tenant_body("oddref", ingestion, ref)).encode(), method="POST")
    assert resp.status_code == 400, body_json(resp)
    assert body_json(resp)["error"]["code"] == "invalid_tenant"


def test_one_tenants_unparseable_reference_in_the_registry_breaks_no_other_tenant(
    call: Call,
    ingestion: LogsIngestionStandIn,
    vault: KeyVaultStandIn,
    relay_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Was: one row with a reference KeyVaultSecrets cannot parse (written by an older relay, or
    by hand) raised ValueError out of the directory's refresh: every other tenant's webhook was a
    500 and the default tenant's retry worker stopped."""
    monkeypatch.setenv("RETRY_WORKER_RUN_SECONDS", "4")  # the first retry step is 1 s
    vault.seed("fabrikam-hook", "fabrikam-secret-0123456789abcdef")
    svc = function_app.services()
    admin(svc).add(tenant_body("fabrikam", ingestion, vault.secret_uri("fabrikam-hook")), "red")
    service = TableServiceClient.from_connection_string(relay_env["RELAY_STORAGE_CONNECTION_STRING"])
    table = service.get_table_client(f"{relay_env['RELAY_TABLE_PREFIX']}tenants")
    row = table.get_entity(PARTITION, "fabrikam")
    bad = {
        **row,
        "RowKey": "oddref",
        "TablePrefix": relay_env["RELAY_TABLE_PREFIX"] + "toddref",
        "SecretRefs": json.dumps({"WEBHOOK_SHARED_SECRET": "https://127.0.0.1/secrets/hook"}),
    }
    table.create_entity(bad)
    assert svc.tenants is not None
    svc.tenants.directory.refresh(force=True)

    assert hook(call, "fabrikam", "fabrikam-secret-0123456789abcdef") in (200, 202)
    # Not built, so its caller cannot be checked: the unknown route's answer, byte for byte.
    broken = call("tenant_webhook", HIT.encode(), route_params={"tenant": "oddref"})
    unknown = call("tenant_webhook", HIT.encode(), route_params={"tenant": "nobody"})
    assert (broken.status_code, broken.get_body()) == (unknown.status_code, unknown.get_body())
    assert broken.status_code == 404
    ingestion.set_outage(503)
    assert call("wallarm_webhook", HIT.replace('"s"', '"d"').encode()).status_code == 202  # queued
    ingestion.set_outage(None)
    before = len(ingestion.accepted)
    time.sleep(1.5)  # the first retry step
    routes.run_retry_worker()  # the default's queue drains
    assert len(ingestion.accepted) == before + 1


# --- one tenant's slow Key Vault ----------------------------------------------------------------


def test_one_tenants_slow_key_vault_does_not_hold_up_another_tenants_webhooks(
    call: Call,
    ingestion: LogsIngestionStandIn,
    vaults: tuple[KeyVaultStandIn, KeyVaultStandIn],
    vault: KeyVaultStandIn,
) -> None:
    """Was: the directory refreshed under its lock, reading every tenant's secrets from Key Vault;
    a slow vault (up to 10 s a read, twice per tenant) held every other tenant's lookups, so B's
    webhooks waited on A's vault, past Wallarm's 15 s."""
    slow, fast = vaults
    slow.seed("a-hook", "a-secret-0123456789abcdef0123456789")
    fast.seed("b-hook", "b-secret-0123456789abcdef0123456789")
    svc = function_app.services()
    admin(svc).add(tenant_body("tenant-b", ingestion, fast.secret_uri("b-hook")), "red")
    assert hook(call, "tenant-b", "b-secret-0123456789abcdef0123456789") in (200, 202)
    assert svc.tenants is not None

    # A is added while its vault answers after 6 s: the next refresh reads A's secret.
    slow.inject_delay(6, times=10)
    admin(svc).add(tenant_body("tenant-a", ingestion, slow.secret_uri("a-hook")), "red")
    refresher = threading.Thread(target=svc.tenants.directory.refresh, kwargs={"force": True})
    refresher.start()
    time.sleep(0.3)  # the refresh is now waiting on A's vault
    started = time.monotonic()
    assert hook(call, "tenant-b", "b-secret-0123456789abcdef0123456789", HIT.replace('"s"', '"t"')) in (
        200,
        202,
    )
    waited = time.monotonic() - started
    refresher.join(timeout=60)
    slow.clear()
    assert waited < 3, f"tenant-b's webhook waited {waited:.1f} s on tenant-a's Key Vault"


# --- a tenant removed and added again under the same name ----------------------------------------


def test_a_removed_tenant_takes_no_webhook_here_and_its_leftovers_never_reach_a_new_destination(
    call: Call, ingestion: LogsIngestionStandIn, vault: KeyVaultStandIn
) -> None:
    """Was: after `remove`, this instance's directory served the tenant for up to 15 s more, so a
    webhook was accepted and queued into the removed tenant's tables; adding the name again (with
    another DCR) then delivered that first life's entry to the new destination, silently."""
    secret = "contoso-secret-0123456789abcdef0123"
    vault.seed("contoso-hook", secret)
    svc = function_app.services()
    admin(svc).add(tenant_body("contoso", ingestion, vault.secret_uri("contoso-hook")), "red")
    assert hook(call, "contoso", secret) in (200, 202)
    assert admin(svc).remove("contoso", "red") == {"tenant": "contoso", "removed": True}
    ingestion.set_outage(503)
    try:
        assert hook(call, "contoso", secret, HIT.replace('"s"', '"after"')) == 404
    finally:
        ingestion.set_outage(None)


def test_adding_a_name_whose_tables_still_hold_a_previous_lifes_entries_is_refused(
    call: Call, ingestion: LogsIngestionStandIn, vault: KeyVaultStandIn, relay_env: dict[str, str]
) -> None:
    """Entries left in a removed tenant's tables (a webhook another instance took in its last
    seconds, an export killed before its clean-up) must not be delivered to whatever destination
    the name is given next: the add says so, and changes nothing."""
    from shared.tenancy.tenant_ops import TenantTables

    svc = function_app.services()
    service = TableServiceClient.from_connection_string(relay_env["RELAY_STORAGE_CONNECTION_STRING"])
    tables = TenantTables(service, relay_env["RELAY_TABLE_PREFIX"], svc.relay.clock)
    tables.queue("contoso").enqueue(
        [{"EventType": "hit", "RawData": "{}"}], due_at=svc.relay.clock(), reason="t"
    )
    resp = call(
        "relay_tenants",
        json.dumps(tenant_body("contoso", ingestion, vault.secret_uri("contoso-hook"))).encode(),
        method="POST",
    )
    assert resp.status_code == 409, body_json(resp)
    error = body_json(resp)["error"]
    assert error["code"] == "tenant_tables_not_empty" and "1" in error["message"]
    assert body_json(call("relay_tenants", method="GET")) == {"tenants": []}


# --- admin bodies --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 30_000 + b"]" * 30_000,  # under the 64 KB cap, deeper than json can go
        b'{"settings":' * 6_000 + b"1" + b"}" * 6_000,
    ],
)
def test_a_deeply_nested_admin_body_is_a_400_not_a_crash(call: Call, body: bytes) -> None:
    """Was: RecursionError out of json.loads (not a ValueError), so the host answered 500."""
    resp = call("relay_tenants", body, method="POST")
    assert resp.status_code == 400
    assert body_json(resp)["error"]["code"] == "invalid_body"
    patched = call("relay_tenant", body, method="PATCH", route_params={"name": "contoso"})
    assert patched.status_code == 400
