"""Tenants managed end to end (issue 22): relayctl and raw HTTP against `python -m local.run`
(the local host, Azurite, the admin routes), and the composition with a fake Key Vault writer for
rotation and with queued entries for removal."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from azure.data.tables import TableServiceClient

from local.standins.server import free_port
from shared.ops.cli import main as relayctl
from shared.ops.services import build_services
from shared.ops.tenant_admin import TenantRefused
from shared.tenancy.tenant_ops import TableQueues, TenantTables

from .conftest import FakeClock, MakeServices, spawn_local_run

MASTER = "master-key-for-tests"
REF = "https://relayvault.vault.azure.net/secrets/contoso-hook"
OWN = [
    "--setting",
    "LOGS_INGESTION_ENDPOINT=https://contoso.westeurope-1.ingest.monitor.azure.com",
    "--setting",
    "LOGS_DCR_IMMUTABLE_ID=dcr-contoso",
]
BODY: dict[str, Any] = {
    "settings": {
        "LOGS_INGESTION_ENDPOINT": "https://contoso.westeurope-1.ingest.monitor.azure.com",
        "LOGS_DCR_IMMUTABLE_ID": "dcr-contoso",
    },
    "secret_refs": {"WEBHOOK_SHARED_SECRET": REF},
}


BANNER: list[str] = []


@pytest.fixture(scope="module")
def relay() -> Iterator[str]:
    port = free_port()
    keys = {"RELAY_LOCAL_FUNCTION_KEY": "fn-key-for-tests", "RELAY_LOCAL_MASTER_KEY": MASTER}
    proc, lines = spawn_local_run(["--port", str(port), "--no-timers"], keys, "Relay listening")
    BANNER[:] = lines
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def ctl(relay: str, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = relayctl(["--url", relay, "--key", MASTER, *argv])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


def http(relay: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"{relay}/api/{path}", data=data, method=method, headers={"x-functions-key": MASTER}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        text = err.read()
        return err.code, json.loads(text) if text else None


def test_add_list_show_update_disable_enable_remove_with_audit(
    relay: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, added, _ = ctl(
        relay, capsys, "tenant", "add", "contoso-eu", *OWN, "--secret-ref", f"WEBHOOK_SHARED_SECRET={REF}"
    )
    assert code == 0, added
    assert added["route"] == "/api/wallarm/contoso-eu" and added["secret_refs"] == {
        "WEBHOOK_SHARED_SECRET": REF
    }
    assert added["credential"] == {"kind": "managed_identity"} and added["updated_by"] == "admin-key"

    code, again, _ = ctl(
        relay, capsys, "tenant", "add", "contoso-eu", *OWN, "--secret-ref", f"WEBHOOK_SHARED_SECRET={REF}"
    )
    assert code == 1 and again["error"]["code"] == "tenant_exists"
    status, squashed = http(relay, "POST", "relay/tenants", {"name": "contosoeu", **BODY})
    assert status == 409 and "contoso-eu" in squashed["error"]["message"]

    code, listed, _ = ctl(relay, capsys, "tenant", "list")
    assert [t["name"] for t in listed["tenants"]] == ["contoso-eu"]

    code, updated, _ = ctl(
        relay, capsys, "tenant", "update", "contoso-eu", "--setting", "LOGS_STREAM_NAME=Custom-Contoso_CL"
    )
    assert code == 0 and updated["changed"] == ["settings.LOGS_STREAM_NAME"]
    code, bad, _ = ctl(
        relay, capsys, "tenant", "update", "contoso-eu", "--setting", "LOGS_STREAM_NAME=Contoso_CL"
    )
    assert code == 1 and bad["error"]["code"] == "invalid_tenant"
    assert any("must start with 'Custom-'" in p for p in bad["error"]["problems"])

    assert ctl(relay, capsys, "tenant", "disable", "contoso-eu", "--reason", "DCR move")[0] == 0
    assert ctl(relay, capsys, "tenant", "enable", "contoso-eu")[0] == 0

    # The reference names a vault this machine cannot reach: the rotation is refused, with the cause.
    code, rotated, _ = ctl(relay, capsys, "tenant", "rotate-secret", "contoso-eu")
    assert code == 1 and rotated["error"]["code"] == "secret_store_unavailable"
    assert "relayvault.vault.azure.net" in rotated["error"]["message"]

    code, shown, _ = ctl(relay, capsys, "tenant", "show", "contoso-eu")
    assert shown["settings"]["LOGS_STREAM_NAME"] == "Custom-Contoso_CL"
    audit = shown["audit"]
    assert [a["action"] for a in audit] == ["enable", "disable", "update", "add"]
    assert audit[1]["detail"] == {"reason": "DCR move"} and {a["by"] for a in audit} == {"admin-key"}
    assert audit[2]["detail"]["settings.LOGS_STREAM_NAME"] == {"old": None, "new": "Custom-Contoso_CL"}

    code, removed, _ = ctl(relay, capsys, "tenant", "remove", "contoso-eu")
    assert code == 0 and removed == {"tenant": "contoso-eu", "removed": True}
    code, gone, _ = ctl(relay, capsys, "tenant", "show", "contoso-eu")
    assert code == 1 and gone["error"]["code"] == "unknown_tenant"
    status, after = http(relay, "GET", "relay/tenants")
    assert status == 200 and after == {"tenants": []}


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("", "invalid_tenant_name"),
        ("a" * 200, "invalid_tenant_name"),
        ("contoso-ü", "invalid_tenant_name"),
        ("Contoso", "invalid_tenant_name"),
        ("a--b", "invalid_tenant_name"),
        ("../x", "invalid_tenant_name"),
        ("default", "reserved_tenant_name"),
        ("tenants", "reserved_tenant_name"),
        (42, "invalid_tenant_name"),
    ],
)
def test_bad_names_are_refused_at_add(relay: str, name: Any, code: str) -> None:
    status, body = http(relay, "POST", "relay/tenants", {"name": name, **BODY})
    assert status == 400 and body["error"]["code"] == code
    assert "e.g. contoso-eu" in body["error"]["message"]
    assert "a" * 41 not in body["error"]["message"]


@pytest.mark.parametrize("name", ["..%2Fx", "Contoso", "a--b", "x" * 200])
def test_bad_names_in_the_route_are_refused(relay: str, name: str) -> None:
    status, body = http(relay, "GET", f"relay/tenants/{name}")
    assert status == 400 and body["error"]["code"] == "invalid_tenant_name"


def test_an_unknown_op_or_tenant_is_404_with_a_relay_error(relay: str) -> None:
    assert http(relay, "POST", "relay/tenants/nobody/enable")[0] == 404
    status, body = http(relay, "POST", "relay/tenants/nobody/explode")
    assert status == 404 and body["error"]["code"] == "unknown_action"


@pytest.mark.parametrize(
    ("ref", "said"),
    [
        ("hunter2-a-plain-secret-value", "put the secret in Key Vault"),
        ("https://secrets.example.com/secrets/hook", "not a Key Vault"),
        ("http://relayvault.vault.azure.net/secrets/hook", "https://"),
    ],
)
def test_what_is_not_a_key_vault_reference_is_refused_by_the_relay(relay: str, ref: str, said: str) -> None:
    body = {**BODY, "name": "fabrikam", "secret_refs": {"WEBHOOK_SHARED_SECRET": ref}}
    status, answer = http(relay, "POST", "relay/tenants", body)
    assert status == 400 and answer["error"]["code"] == "invalid_tenant"
    assert any(said in p for p in answer["error"]["problems"])
    assert ref not in json.dumps(answer)
    status, as_setting = http(
        relay,
        "POST",
        "relay/tenants",
        {**BODY, "name": "fabrikam", "settings": {**BODY["settings"], "WEBHOOK_SHARED_SECRET": ref}},
    )
    assert status == 400 and ref not in json.dumps(as_setting)


def test_a_body_that_is_not_a_json_object_is_refused(relay: str) -> None:
    req = urllib.request.Request(
        f"{relay}/api/relay/tenants", data=b"[1", method="POST", headers={"x-functions-key": MASTER}
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 400 and json.loads(err.value.read())["error"]["code"] == "invalid_body"


# --- in the composition: rotation with a Key Vault writer, removal with queued entries ----------


class FakeVault:
    """A SecretWriter that keeps what it was given (the test's Key Vault)."""

    def __init__(self) -> None:
        self.versions: dict[str, list[str]] = {}

    def set(self, ref: str, value: str) -> str:
        base = "/".join(ref.split("/")[:5])
        self.versions.setdefault(base, []).append(value)
        return base


def test_rotate_writes_a_new_version_shows_it_once_and_audits_the_ref_only(
    clock: FakeClock, relay_env: dict[str, str]
) -> None:
    vault = FakeVault()
    svc = build_services(relay_env, clock=clock, sleep=clock.sleep, secret_writer=vault)
    tenants = svc.tenant_admin
    assert tenants is not None
    pinned = REF + "/0123456789abcdef0123456789abcdef"
    tenants.add({"name": "contoso", **BODY, "secret_refs": {"WEBHOOK_SHARED_SECRET": pinned}}, "alice")

    answer = tenants.rotate_secret("contoso", "bob")
    secret = answer["secret"]
    assert vault.versions[REF] == [secret] and len(secret) >= 43
    assert answer["secret_ref"] == REF and answer["header"] == "X-Wallarm-Relay-Secret"
    shown = tenants.show("contoso")
    assert shown["secret_refs"]["WEBHOOK_SHARED_SECRET"] == REF  # versionless now: the new version is used
    assert shown["audit"][0]["action"] == "rotate_secret" and shown["audit"][0]["by"] == "bob"
    assert secret not in json.dumps(shown)

    again = tenants.rotate_secret("contoso", "bob")
    assert again["secret"] != secret and vault.versions[REF] == [secret, again["secret"]]
    assert [a["action"] for a in tenants.show("contoso")["audit"]] == [
        "rotate_secret",
        "rotate_secret",
        "add",
    ]


def test_remove_with_queued_entries_refuses_unless_told_to_drain_or_export(
    make_services: MakeServices, clock: FakeClock, relay_env: dict[str, str]
) -> None:
    svc = make_services(clock)
    tenants = svc.tenant_admin
    assert tenants is not None
    for name in ("contoso", "fabrikam"):
        tenants.add({"name": name, **BODY}, "alice")
    service = TableServiceClient.from_connection_string(relay_env["RELAY_STORAGE_CONNECTION_STRING"])
    queue_of = TenantTables(service, relay_env["RELAY_TABLE_PREFIX"], clock)
    queue_of.queue("contoso").enqueue([{"EventType": "hit", "RawData": "{}"}], due_at=clock(), reason="test")
    queue_of.queue("contoso").park([{"EventType": "vuln_high", "RawData": "{}"}], reason="disabled")
    queue_of.queue("fabrikam").enqueue([{"EventType": "hit", "RawData": "{}"}], due_at=clock(), reason="test")
    assert TableQueues(queue_of).pending("contoso") == 2

    with pytest.raises(TenantRefused) as refused:
        tenants.remove("contoso", "bob")
    assert refused.value.status == 409 and refused.value.code == "tenant_has_queued_events"
    assert "then=drain" in refused.value.message and "then=export" in refused.value.message
    assert tenants.show("contoso")["removing"] is False

    exported = tenants.remove("contoso", "bob", then="export")
    assert exported["removed"] is True
    assert sorted(e["state"] for e in exported["exported"]) == ["parked", "queued"]
    assert [r["EventType"] for e in exported["exported"] for r in e["rows"]] == ["hit", "vuln_high"]
    assert TableQueues(queue_of).pending("contoso") == 0  # handed over, not left behind
    with pytest.raises(TenantRefused):
        tenants.show("contoso")
    assert [a["action"] for a in tenants.audit("contoso")["audit"]] == ["remove", "remove", "add"]

    drained = tenants.remove("fabrikam", "bob", then="drain")
    assert drained == {"tenant": "fabrikam", "removing": True, "pending_entries": 1, "removed": False}
    assert tenants.show("fabrikam")["removing"] is True
    assert TableQueues(queue_of).pending("fabrikam") == 1  # nothing dropped: the drain delivers it


def test_tenant_on_the_relay_commands_acts_on_that_tenant_even_when_its_services_cannot_be_built(
    relay: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _ = http(relay, "POST", "relay/tenants", {"name": "northwind", **BODY})
    assert status == 201
    code, disabled, _ = ctl(relay, capsys, "disable", "--tenant", "northwind", "--reason", "maintenance")
    assert code == 0 and disabled == {
        "tenant": "northwind",
        "enabled": False,
        "reason": "maintenance",
        "changed_by": "admin-key",
    }
    assert ctl(relay, capsys, "enable", "--tenant", "northwind")[0] == 0
    code, unknown, _ = ctl(relay, capsys, "disable", "--tenant", "nobody")
    assert code == 1 and unknown["error"]["code"] == "unknown_tenant"
    # Its secret's vault is out of reach here: its status says so, for it alone.
    code, status_answer, _ = ctl(relay, capsys, "status", "--tenant", "northwind")
    assert code == 1 and status_answer["error"]["code"] == "tenant_unavailable"
    assert "SecretUnavailable" in status_answer["error"]["message"]
    code, default_status, _ = ctl(relay, capsys, "status", "--tenant", "default")
    assert code == 0 and default_status["state"] == "enabled"
    assert ctl(relay, capsys, "tenant", "remove", "northwind")[0] == 0


def test_rotation_writes_a_new_version_to_the_local_key_vault_and_shows_it_once(
    relay: str, capsys: pytest.CaptureFixture[str]
) -> None:
    vault = next(line for line in BANNER if "Key Vault" in line).split(" at ", 1)[1].split()[0]
    ref = f"{vault}/secrets/fabrikam-hook"
    code, _, _ = ctl(
        relay, capsys, "tenant", "add", "fabrikam", *OWN, "--secret-ref", f"WEBHOOK_SHARED_SECRET={ref}"
    )
    assert code == 0
    code, first, _ = ctl(relay, capsys, "tenant", "rotate-secret", "fabrikam")
    assert code == 0 and first["secret_ref"] == ref and len(first["secret"]) >= 43
    code, second, _ = ctl(relay, capsys, "tenant", "rotate-secret", "fabrikam")
    assert code == 0 and second["secret"] != first["secret"]
    code, shown, _ = ctl(relay, capsys, "tenant", "show", "fabrikam")
    assert first["secret"] not in json.dumps(shown) and second["secret"] not in json.dumps(shown)
    assert [a["action"] for a in shown["audit"]][:2] == ["rotate_secret", "rotate_secret"]
    assert ctl(relay, capsys, "tenant", "remove", "fabrikam")[0] == 0
