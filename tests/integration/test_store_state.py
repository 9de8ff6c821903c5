"""IntegrationStateRepo against a real Azurite: default, ETag-guarded writes, conflicts."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from store_fixtures import T0, FakeClock

from shared.store import DEFAULT_STATE, IntegrationStateRepo, StoreTables


@pytest.fixture
def repo(tables: StoreTables, clock: FakeClock) -> IntegrationStateRepo:
    return IntegrationStateRepo(tables.state, clock)


def test_default_is_enabled(repo: IntegrationStateRepo) -> None:
    state = repo.get()
    assert state == DEFAULT_STATE
    assert state.enabled and state.mode == "enabled" and state.etag is None


def test_set_and_get_round_trip(repo: IntegrationStateRepo, clock: FakeClock) -> None:
    written = repo.set(False, "auto_disabled", "61% failed in 12h", "policy", expected=repo.get())
    assert written is not None and written.etag
    read = repo.get()
    assert read == written
    assert (read.enabled, read.mode, read.reason, read.changed_by, read.changed_at) == (
        False,
        "auto_disabled",
        "61% failed in 12h",
        "policy",
        T0,
    )
    clock.advance(timedelta(hours=1))
    again = repo.set(True, "enabled", "operator", "alice", expected=read)
    assert again is not None and again.changed_at == T0 + timedelta(hours=1)


def test_stale_expected_state_loses(repo: IntegrationStateRepo) -> None:
    seen_by_operator = repo.get()
    seen_by_policy = repo.get()
    assert repo.set(False, "auto_disabled", "failures", "policy", expected=seen_by_policy) is not None
    # The operator's write was based on the default (never stored): it must not overwrite.
    assert repo.set(False, "disabled", "maintenance", "alice", expected=seen_by_operator) is None
    current = repo.get()
    assert current.mode == "auto_disabled"
    # A write based on an outdated ETag loses too.
    assert repo.set(True, "enabled", "ok", "alice", expected=current) is not None
    assert repo.set(False, "disabled", "x", "bob", expected=current) is None
    assert repo.get().enabled is True


def test_inconsistent_arguments_are_rejected(repo: IntegrationStateRepo) -> None:
    with pytest.raises(ValueError):
        repo.set(True, "disabled", "x", "y", expected=repo.get())
    with pytest.raises(ValueError):
        repo.set(False, "paused", "x", "y", expected=repo.get())


def test_a_cached_copy_past_half_its_age_is_refreshed_in_the_background(
    tables: StoreTables, clock: FakeClock
) -> None:
    """The hot path never waits for a state read in a steady stream, and the bound holds."""
    now = [100.0]
    mine = IntegrationStateRepo(tables.state, clock, monotonic=lambda: now[0])
    other = IntegrationStateRepo(tables.state, clock)
    assert mine.get(max_age=5).enabled  # read and cached at t=100
    other.set(False, "disabled", "maintenance", "alice", expected=other.get())
    now[0] = 102.0  # under half the age: the copy, no read
    assert mine.get(max_age=5).enabled
    now[0] = 103.0  # past half: still the copy for this call, a read starts beside it
    assert mine.get(max_age=5).enabled
    deadline = time.monotonic() + 10
    while mine.get(max_age=5).enabled and time.monotonic() < deadline:
        time.sleep(0.01)
    assert mine.get(max_age=5).mode == "disabled"  # the background read landed, still t=103


def test_a_copy_older_than_max_age_is_never_used(tables: StoreTables, clock: FakeClock) -> None:
    now = [100.0]
    mine = IntegrationStateRepo(tables.state, clock, monotonic=lambda: now[0])
    other = IntegrationStateRepo(tables.state, clock)
    assert mine.get(max_age=5).enabled
    other.set(False, "disabled", "maintenance", "alice", expected=other.get())
    now[0] = 105.01
    assert mine.get(max_age=5).mode == "disabled"  # read before answering
