"""The tenant directory: built once per row version, stale-but-serving on registry errors, one
tenant's broken build confined to that tenant (shared/tenancy/directory.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from shared.tenancy.directory import TenantDirectory, TenantUnavailable


@dataclass(frozen=True)
class Entry:
    name: str
    version: str = "1"
    removing: bool = False


class Registry:
    def __init__(self, *entries: Entry) -> None:
        self.entries = list(entries)
        self.reads = 0
        self.down = False

    def list(self) -> list[Entry]:
        self.reads += 1
        if self.down:
            raise OSError("table storage down")
        return list(self.entries)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def directory(
    registry: Registry, clock: Clock, broken: set[str] | None = None
) -> TenantDirectory[Entry, str]:
    builds: list[str] = []

    def build(entry: Entry) -> str:
        if entry.name in (broken or set()):
            raise ValueError("its secret is out of reach")
        builds.append(entry.name)
        return f"{entry.name}@{entry.version}"

    made = TenantDirectory(registry.list, build, refresh_every=15, monotonic=clock)
    made.builds = builds  # type: ignore[attr-defined]
    return made


def test_lookups_between_refreshes_read_the_registry_once_for_known_and_unknown_names() -> None:
    registry, clock = Registry(Entry("acme")), Clock()
    tenants = directory(registry, clock)
    assert tenants.get("acme") == "acme@1"
    assert tenants.get("nobody") is None
    assert tenants.get("../../etc") is None
    assert tenants.get("x" * 100_000) is None
    assert registry.reads == 1
    clock.now = 16
    tenants.get("nobody")
    assert registry.reads == 2


def test_a_changed_row_is_rebuilt_and_an_unchanged_one_is_not() -> None:
    registry, clock = Registry(Entry("acme"), Entry("beta")), Clock()
    tenants = directory(registry, clock)
    tenants.names()
    registry.entries = [Entry("acme", "2"), Entry("beta")]
    clock.now = 20
    assert tenants.get("acme") == "acme@2"
    assert tenants.builds == ["acme", "beta", "acme"]  # type: ignore[attr-defined]


def test_a_removing_tenant_takes_no_webhooks_but_still_drains() -> None:
    registry, clock = Registry(Entry("acme", removing=True), Entry("beta")), Clock()
    tenants = directory(registry, clock)
    assert tenants.get("acme") is None
    assert [name for name, _ in tenants.all()] == ["acme", "beta"]
    assert tenants.removing() == ["acme"]


def test_a_removed_tenant_is_forgotten_after_the_next_refresh() -> None:
    registry, clock = Registry(Entry("acme")), Clock()
    removed: list[str] = []
    tenants = TenantDirectory(
        registry.list, lambda e: e.name, refresh_every=15, monotonic=clock, on_removed=removed.append
    )
    assert tenants.get("acme") == "acme"
    registry.entries = []
    clock.now = 15
    assert tenants.get("acme") is None
    assert removed == ["acme"]


def test_a_registry_outage_serves_the_last_list_and_retries_only_after_the_refresh_interval() -> None:
    registry, clock = Registry(Entry("acme")), Clock()
    tenants = directory(registry, clock)
    tenants.get("acme")
    registry.down = True
    clock.now = 16
    assert tenants.get("acme") == "acme@1"
    assert tenants.get("acme") == "acme@1"
    assert registry.reads == 2  # one failed read, not one per request


def test_without_any_list_a_registry_outage_is_raised() -> None:
    registry = Registry(Entry("acme"))
    registry.down = True
    with pytest.raises(OSError):
        directory(registry, Clock()).get("acme")


def test_one_tenants_broken_build_is_that_tenants_503_only() -> None:
    registry, clock = Registry(Entry("acme"), Entry("beta")), Clock()
    tenants = directory(registry, clock, broken={"acme"})
    assert tenants.get("beta") == "beta@1"
    with pytest.raises(TenantUnavailable):
        tenants.get("acme")


def test_a_rebuild_that_fails_keeps_the_previous_services_and_is_tried_again() -> None:
    registry, clock = Registry(Entry("acme")), Clock()
    broken: set[str] = set()
    tenants = directory(registry, clock, broken=broken)
    assert tenants.get("acme") == "acme@1"
    registry.entries = [Entry("acme", "2")]
    broken.add("acme")
    clock.now = 20
    assert tenants.get("acme") == "acme@1"
    broken.clear()
    clock.now = 40
    assert tenants.get("acme") == "acme@2"
