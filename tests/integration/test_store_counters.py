"""HourlyCounters against a real Azurite: sharded sums, races, the hourly claim marker, purge."""

from __future__ import annotations

from datetime import timedelta

import pytest
from store_fixtures import T0, FakeClock, own_client, race

from local.standins.azurite import Azurite
from shared.store import HourlyCounters, StoreTables
from shared.store.counters import sanitize_counter_name

STALE = timedelta(minutes=10)


@pytest.fixture
def counters(tables: StoreTables, clock: FakeClock) -> HourlyCounters:
    return HourlyCounters(tables.counters, clock)


def test_sanitize_counter_name() -> None:
    assert sanitize_counter_name("type_new_hits") == "type_new_hits"
    assert sanitize_counter_name("type:vuln-high") == "type_vuln_high"
    assert sanitize_counter_name("4xx") == "n4xx"
    with pytest.raises(ValueError):
        sanitize_counter_name("")


def test_add_and_read_sum_shards_per_hour(counters: HourlyCounters, clock: FakeClock) -> None:
    for _ in range(10):
        counters.add({"received": 2, "delivered": 1, "type:new-hits": 1, "rejected": 0})
    counters.add({"received": 5}, at=T0 + timedelta(hours=1))
    assert counters.read(T0) == {"received": 20, "delivered": 10, "type_new_hits": 10}
    assert counters.read(T0 + timedelta(minutes=59)) == counters.read(T0)
    assert counters.read(T0 + timedelta(hours=1)) == {"received": 5}
    assert counters.read(T0 - timedelta(hours=1)) == {}


def test_concurrent_adds_lose_no_increment(
    counters: HourlyCounters, tables: StoreTables, clock: FakeClock, azurite: Azurite
) -> None:

    def worker(slot: int) -> None:
        client = own_client(azurite.connection_string, tables.counters)
        mine = HourlyCounters(client, clock)
        try:
            for _ in range(50):
                mine.add({"received": 1, "queued": 2})
        finally:
            client.close()

    assert not race(worker)
    assert counters.read(T0) == {"received": 400, "queued": 800}


def test_claim_hour_once_then_sent(counters: HourlyCounters, clock: FakeClock) -> None:
    hour = T0 - timedelta(hours=1)
    assert counters.claim_hour(hour, "run-a", STALE) is True
    assert counters.claim_hour(hour, "run-a", STALE) is True  # same owner retrying
    assert counters.claim_hour(hour, "run-b", STALE) is False  # live claim by someone else
    counters.mark_sent(hour)
    clock.advance(timedelta(hours=1))
    assert counters.claim_hour(hour, "run-c", STALE) is False
    assert counters.read(hour) == {}  # the marker is not a counter


def test_stale_claim_is_taken_over_by_one(counters: HourlyCounters, clock: FakeClock) -> None:
    hour = T0 - timedelta(hours=1)
    assert counters.claim_hour(hour, "crashed", STALE) is True
    clock.advance(STALE)
    assert counters.claim_hour(hour, "run-b", STALE) is True
    assert counters.claim_hour(hour, "run-c", STALE) is False


def test_release_lets_the_next_run_claim(counters: HourlyCounters) -> None:
    hour = T0 - timedelta(hours=1)
    assert counters.claim_hour(hour, "run-a", STALE) is True
    counters.release_hour(hour, "run-b")  # not the owner: no effect
    assert counters.claim_hour(hour, "run-c", STALE) is False
    counters.release_hour(hour, "run-a")
    assert counters.claim_hour(hour, "run-c", STALE) is True


def test_concurrent_claimers_only_one_wins(
    counters: HourlyCounters, tables: StoreTables, clock: FakeClock, azurite: Azurite
) -> None:
    hour = T0 - timedelta(hours=1)
    results: list[bool] = []

    def worker(slot: int) -> None:
        client = own_client(azurite.connection_string, tables.counters)
        try:
            results.append(HourlyCounters(client, clock).claim_hour(hour, f"run-{slot}", STALE))
        finally:
            client.close()

    assert not race(worker, threads=6)
    assert sorted(results) == [False] * 5 + [True]


def test_purge_old_hours(counters: HourlyCounters, clock: FakeClock) -> None:
    old = T0 - timedelta(days=3)
    counters.add({"received": 1}, at=old)
    counters.claim_hour(old, "run", STALE)
    counters.add({"received": 1})
    assert counters.purge(timedelta(days=2)) == 2
    assert counters.read(old) == {}
    assert counters.read(T0) == {"received": 1}


def test_many_event_types_fold_into_type_other_and_lose_no_count(counters: HourlyCounters) -> None:
    # Wallarm sending hundreds of types must not push an entity past Azure's 255 properties.
    from shared.store.counters import MAX_TYPE_COUNTERS

    one = HourlyCounters(counters._table, counters._clock, shards=1)  # one entity: the worst case
    for batch in range(4):
        one.add({f"type_t{batch}_{i}": 1 for i in range(100)} | {"received": 1})
    totals = one.read(T0)
    typed = {k: v for k, v in totals.items() if k.startswith("type_") and k != "type_other"}
    assert len(typed) == MAX_TYPE_COUNTERS
    assert sum(typed.values()) + totals["type_other"] == 400
    assert totals["received"] == 4


def test_late_add_for_an_old_hour_adds_to_what_is_stored(counters: HourlyCounters, clock: FakeClock) -> None:
    # This process's own entity holds running totals; a late add for an hour it has let go of
    # must add to the stored counts, never overwrite them with a fresh (smaller) total.
    counters.add({"received": 3})
    clock.advance(timedelta(hours=3))
    counters.add({"received": 1})
    counters.add({"received": 2}, at=T0)
    assert counters.read(T0) == {"received": 5}
    assert counters.read(clock()) == {"received": 1}


def test_interleaved_instances_lose_no_increment(
    counters: HourlyCounters, tables: StoreTables, azurite: Azurite
) -> None:
    # Two instances, each writing its own entity, interleaved: no add is lost.
    client = own_client(azurite.connection_string, tables.counters)
    other = HourlyCounters(client, counters._clock)
    try:
        for _ in range(5):
            counters.add({"received": 1, "delivered": 1})
            other.add({"received": 2})
    finally:
        client.close()
    assert counters.read(T0) == {"received": 15, "delivered": 5}
