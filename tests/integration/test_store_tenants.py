"""The tenant registry on Azurite: adds refuse a taken name or taken tables, updates are ETag-guarded
(one of two racing updaters wins, the other is told), and every change leaves an audit row."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from azure.data.tables import TableServiceClient
from store_fixtures import FakeClock

from shared.store.tenants import (
    TenantConflict,
    TenantExists,
    TenantNotFound,
    TenantRecord,
    TenantRegistry,
)

REF = "https://relayvault.vault.azure.net/secrets/contoso-hook"


@pytest.fixture
def registry(
    table_service: TableServiceClient, unique_prefix: str, clock: FakeClock
) -> Iterator[TenantRegistry]:
    yield TenantRegistry.open(table_service, unique_prefix, clock)
    for suffix in ("tenants", "tenantaudit"):
        table_service.delete_table(f"{unique_prefix}{suffix}")


def record(name: str, **settings: str) -> TenantRecord:
    return TenantRecord(
        name=name,
        table_prefix=f"relayt{name.replace('-', '')}",
        settings=settings or {"LOGS_DCR_IMMUTABLE_ID": "dcr-1"},
        secret_refs={"WEBHOOK_SHARED_SECRET": REF},
        credential={"kind": "managed_identity"},
    )


def test_add_get_list_and_the_add_audit_row(registry: TenantRegistry, clock: FakeClock) -> None:
    added = registry.add(record("contoso-eu"), "alice")
    assert added.etag and added.created_at == clock.now and added.updated_by == "alice"
    registry.add(record("fabrikam"), "alice")

    got = registry.get("contoso-eu")
    assert got is not None and got.settings == {"LOGS_DCR_IMMUTABLE_ID": "dcr-1"}
    assert got.secret_refs == {"WEBHOOK_SHARED_SECRET": REF} and got.etag == added.etag
    assert [r.name for r in registry.list()] == ["contoso-eu", "fabrikam"]  # claim rows not listed
    assert registry.get("nobody") is None

    (row,) = registry.audit("contoso-eu")
    assert (row.by, row.action, row.at) == ("alice", "add", clock.now)
    assert "secret_refs.WEBHOOK_SHARED_SECRET" in row.changed
    assert row.detail["secret_refs.WEBHOOK_SHARED_SECRET"] == {"old": None, "new": REF}


def test_add_refuses_the_same_name_and_a_name_on_the_same_tables(registry: TenantRegistry) -> None:
    registry.add(record("a-b"), "alice")
    with pytest.raises(TenantExists) as same:
        registry.add(record("a-b"), "bob")
    assert same.value.taken_by == "a-b"
    with pytest.raises(TenantExists) as squashed:
        registry.add(record("ab"), "bob")  # tables relaytab… are a-b's
    assert squashed.value.taken_by == "a-b"
    assert [r.name for r in registry.list()] == ["a-b"]
    assert [a.action for a in registry.audit("ab")] == []  # a refused add leaves no row
    assert [a.action for a in registry.audit("a-b")] == ["add"]


def test_two_racing_adds_of_colliding_names_one_wins(registry: TenantRegistry) -> None:
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def add(name: str) -> None:
        start.wait()
        try:
            registry.add(record(name), name)
            outcomes.append("won")
        except TenantExists:
            outcomes.append("refused")

    threads = [threading.Thread(target=add, args=(n,)) for n in ("x-y", "xy")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["refused", "won"]
    assert len(registry.list()) == 1


def test_update_is_guarded_two_updaters_one_wins_one_is_told(
    registry: TenantRegistry, clock: FakeClock
) -> None:
    registry.add(record("contoso"), "alice")
    read_by_a = registry.require("contoso")
    read_by_b = registry.require("contoso")
    start = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def update(who: str, read: TenantRecord, stream: str) -> None:
        start.wait()
        new = TenantRecord(**{**read.__dict__, "settings": {**read.settings, "LOGS_STREAM_NAME": stream}})
        try:
            registry.update(read, new, who)
            outcomes[who] = "won"
        except TenantConflict:
            outcomes[who] = "conflict"

    threads = [
        threading.Thread(target=update, args=("a", read_by_a, "Custom-A_CL")),
        threading.Thread(target=update, args=("b", read_by_b, "Custom-B_CL")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes.values()) == ["conflict", "won"]
    winner = next(who for who, outcome in outcomes.items() if outcome == "won")
    stored = registry.require("contoso")
    assert stored.settings["LOGS_STREAM_NAME"] == ("Custom-A_CL" if winner == "a" else "Custom-B_CL")
    assert stored.updated_by == winner
    # Only the winner's change is in the audit; the loser's row was withdrawn.
    assert [(a.action, a.by) for a in registry.audit("contoso")] == [("update", winner), ("add", "alice")]


def test_audit_is_newest_first_even_when_the_clock_stands_still(
    registry: TenantRegistry, clock: FakeClock
) -> None:
    current = registry.add(record("contoso"), "alice")
    for stream in ("Custom-1_CL", "Custom-2_CL", "Custom-3_CL"):
        changed = TenantRecord(**{**current.__dict__, "settings": {"LOGS_STREAM_NAME": stream}})
        current = registry.update(current, changed, "bob")
    registry.record("contoso", "carol", "disable", {"reason": "maintenance"})
    clock.advance(timedelta(seconds=1))
    registry.remove(registry.require("contoso"), "dave", note="export")

    audit = registry.audit("contoso", limit=10)
    assert [a.action for a in audit] == ["remove", "disable", "update", "update", "update", "add"]
    assert [a.detail.get("settings.LOGS_STREAM_NAME", {}).get("new") for a in audit[2:5]] == [
        "Custom-3_CL",
        "Custom-2_CL",
        "Custom-1_CL",
    ]
    assert audit[2].detail["settings.LOGS_STREAM_NAME"]["old"] == "Custom-2_CL"
    assert audit[1].detail == {"reason": "maintenance"} and audit[1].by == "carol"
    assert audit[0].detail["note"] == "export"
    assert registry.audit("contoso", limit=2) == audit[:2]


def test_update_or_remove_of_a_removed_tenant_is_not_found(registry: TenantRegistry) -> None:
    stale = registry.add(record("contoso"), "alice")
    registry.remove(stale, "bob")
    assert registry.get("contoso") is None
    with pytest.raises(TenantNotFound):
        registry.update(stale, stale, "carol")
    with pytest.raises(TenantNotFound):
        registry.remove(stale, "carol")
    registry.add(record("contoso"), "alice")  # the claim went with it: the name is free again


def test_remove_of_a_changed_tenant_is_a_conflict(registry: TenantRegistry) -> None:
    stale = registry.add(record("contoso"), "alice")
    registry.update(stale, TenantRecord(**{**stale.__dict__, "removing": True}), "bob")
    with pytest.raises(TenantConflict):
        registry.remove(stale, "carol")
    assert registry.require("contoso").removing
