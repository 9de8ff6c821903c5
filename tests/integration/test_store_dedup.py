"""DedupKeys against a real Azurite: duplicate, in progress, stale takeover, expiry, races, purge."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from store_fixtures import FakeClock, own_client, race

from local.standins.azurite import Azurite
from shared.store import DedupKeys, StoreTables

TTL = timedelta(hours=24)
STALE = timedelta(minutes=2)


def key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def dedup(tables: StoreTables, clock: FakeClock) -> DedupKeys:
    return DedupKeys(tables.dedup, clock)


def test_new_then_in_progress_then_duplicate(dedup: DedupKeys, tables: StoreTables) -> None:
    body = key("body-1")
    assert dedup.begin(body, TTL, STALE) == "new"
    assert dedup.begin(body, TTL, STALE) == "in_progress"
    dedup.finish(body)
    assert dedup.begin(body, TTL, STALE) == "duplicate"
    stored = tables.dedup.get_entity(body[:2], body)
    assert stored["status"] == "done"


def test_stale_processing_is_taken_over(dedup: DedupKeys, clock: FakeClock) -> None:
    body = key("body-2")
    assert dedup.begin(body, TTL, STALE) == "new"
    clock.advance(STALE - timedelta(seconds=1))
    assert dedup.begin(body, TTL, STALE) == "in_progress"
    clock.advance(timedelta(seconds=1))
    assert dedup.begin(body, TTL, STALE) == "new"
    assert dedup.begin(body, TTL, STALE) == "in_progress"


def test_done_key_expires(dedup: DedupKeys, clock: FakeClock) -> None:
    body = key("body-3")
    dedup.begin(body, TTL, STALE)
    clock.advance(timedelta(minutes=1))
    dedup.finish(body)  # the TTL counts from finish
    clock.advance(TTL - timedelta(seconds=1))
    assert dedup.begin(body, TTL, STALE) == "duplicate"
    clock.advance(timedelta(seconds=1))
    assert dedup.begin(body, TTL, STALE) == "new"


def test_abandon_lets_the_resend_through(dedup: DedupKeys) -> None:
    body = key("body-4")
    assert dedup.begin(body, TTL, STALE) == "new"
    dedup.abandon(body)
    assert dedup.begin(body, TTL, STALE) == "new"
    dedup.abandon(key("never-seen"))  # no error


def test_concurrent_begin_has_one_winner(
    dedup: DedupKeys, tables: StoreTables, clock: FakeClock, azurite: Azurite
) -> None:
    body = key("body-5")
    results: list[str] = []

    def worker(slot: int) -> None:
        client = own_client(azurite.connection_string, tables.dedup)
        try:
            results.append(DedupKeys(client, clock).begin(body, TTL, STALE))
        finally:
            client.close()

    assert not race(worker)
    assert sorted(results) == ["in_progress"] * 7 + ["new"]


def test_purge_removes_expired_keys_only(dedup: DedupKeys, clock: FakeClock) -> None:
    old, fresh = key("old"), key("fresh")
    dedup.begin(old, timedelta(hours=1), STALE)
    dedup.finish(old)
    clock.advance(timedelta(hours=2))
    dedup.begin(fresh, TTL, STALE)
    assert dedup.purge() == 1
    assert dedup.begin(old, TTL, STALE) == "new"
    assert dedup.begin(fresh, TTL, STALE) == "in_progress"
    assert dedup.purge(clock() + TTL + timedelta(seconds=1)) == 2


def test_key_must_be_hex(dedup: DedupKeys) -> None:
    with pytest.raises(ValueError):
        dedup.begin("not-a-digest", TTL, STALE)
