"""Helpers the test layers share: the fake clock, and per-test tables for the Azurite tests.

The Azurite server itself comes from ``tests/conftest.py`` (fixtures ``azurite``,
``table_service``, ``unique_prefix``); these helpers only add what the store tests share.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

from azure.data.tables import TableClient, TableServiceClient

from shared.health.integration_switch import IntegrationSwitch
from shared.store.tables import StoreTables, open_store_tables, table_names

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    """A UTC wall clock the tests move by hand, safe to read from several threads; `sleep`
    advances it instead of waiting. One class for the store and the end-to-end tests."""

    def __init__(self, start: datetime = T0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    @property
    def now(self) -> datetime:
        return self()

    @now.setter
    def now(self, moment: datetime) -> None:
        self.set(moment)

    def advance(self, by: timedelta | float) -> datetime:
        """Moves on by a timedelta or by seconds."""
        delta = by if isinstance(by, timedelta) else timedelta(seconds=by)
        with self._lock:
            self._now += delta
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)


def open_tables(service: TableServiceClient, prefix: str) -> StoreTables:
    return open_store_tables(service, prefix)


def drop_tables(service: TableServiceClient, prefix: str) -> None:
    """Delete a test's tables so a long session does not grow Azurite's memory."""
    for name in table_names(prefix).values():
        service.delete_table(name)


def own_client(connection_string: str, table: TableClient) -> TableClient:
    """A separate client (own HTTP session) for the same table, as another worker would have."""
    return TableClient.from_connection_string(connection_string, table_name=table.table_name)


def race(work: Callable[[int], object], threads: int = 8, timeout: float = 120) -> list[BaseException]:
    """Runs `work(slot)` for each slot on its own thread, all released at once (as workers on
    several instances would race); returns what any of them raised."""
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def run(slot: int) -> None:
        try:
            start.wait()
            work(slot)
        except BaseException as error:  # reported to the caller
            errors.append(error)

    pool = [threading.Thread(target=run, args=(slot,)) for slot in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=timeout)
    return errors


class Resettable(Protocol):
    def reset(self) -> None: ...


R = TypeVar("R", bound=Resettable)


@contextlib.contextmanager
def reset_around(standin: R) -> Iterator[R]:
    """A session-wide stand-in, reset before and after one test (its faults and records are the test's)."""
    standin.reset()
    try:
        yield standin
    finally:
        standin.reset()


class AskedSwitch(IntegrationSwitch):
    """Stands for the switch the ledger writer asks after a failure; counts the asks (the rule
    itself runs against a real store in the e2e tests)."""

    def __init__(self, asked: list[int]) -> None:  # the switch's own parts are not used here
        self.asked = asked

    def check_auto_disable(self) -> bool:
        self.asked.append(1)
        return False
