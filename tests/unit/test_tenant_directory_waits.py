"""Red team (issue 22): a lookup never waits on a directory refresh once a list is loaded. A
refresh reads the registry and every tenant's Key Vault secrets; it used to run under the lock
every lookup takes, so one tenant's slow vault held up every other tenant's webhooks."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from shared.tenancy.directory import TenantDirectory


@dataclass(frozen=True)
class Entry:
    name: str
    version: str = "1"
    removing: bool = False


class SlowRegistry:
    def __init__(self) -> None:
        self.entries = [Entry("acme"), Entry("beta")]
        self.gate = threading.Event()
        self.gate.set()
        self.reads = 0

    def list(self) -> list[Entry]:
        self.reads += 1
        self.gate.wait(10)
        return list(self.entries)


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_due_refresh_runs_beside_the_lookup_that_found_it_due() -> None:
    registry, clock = SlowRegistry(), Clock()
    tenants = TenantDirectory(
        registry.list, lambda e: f"{e.name}@{e.version}", monotonic=clock, background=True
    )
    assert tenants.get("beta") == "beta@1"
    registry.gate.clear()  # the next read hangs (a slow Key Vault inside it)
    registry.entries = [Entry("acme"), Entry("beta", "2")]
    clock.now = 100
    started = time.monotonic()
    assert tenants.get("beta") == "beta@1"  # the last list, at once
    assert tenants.get("acme") == "acme@1"
    assert time.monotonic() - started < 1
    registry.gate.set()
    for _ in range(100):
        if tenants.get("beta") == "beta@2":
            break
        time.sleep(0.02)
    assert tenants.get("beta") == "beta@2" and registry.reads == 2


def test_a_lookup_does_not_wait_on_another_threads_refresh() -> None:
    registry, clock = SlowRegistry(), Clock()
    tenants = TenantDirectory(registry.list, lambda e: e.name, monotonic=clock)
    tenants.names()
    registry.gate.clear()
    forced = threading.Thread(target=tenants.refresh, kwargs={"force": True})
    forced.start()
    time.sleep(0.1)
    clock.now = 100  # due as well: it is being refreshed already
    started = time.monotonic()
    assert tenants.get("acme") == "acme"
    assert time.monotonic() - started < 1
    registry.gate.set()
    forced.join(5)
    assert registry.reads == 2
