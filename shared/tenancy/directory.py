"""Each tenant's services, built from its registry row on first need and rebuilt when the row changes.

The registry is read whole, at most once per ``refresh_every`` (one Table query), so a webhook's
lookup is a dictionary read whether or not the tenant exists: the answer's timing does not tell an
unknown tenant from a known one. A failed read keeps the last list (a Table Storage blip does not
turn every tenant into a 404); a tenant whose services cannot be built (a Key Vault secret out of
reach, settings that no longer validate) keeps its previous services, or is reported unavailable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)


class TenantEntry(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str:
        """Changes whenever the tenant's row changes (its ETag): its services are then rebuilt."""
        ...

    @property
    def removing(self) -> bool:
        """Being removed: takes no new webhooks, while its queue still drains."""
        ...


E = TypeVar("E", bound=TenantEntry)
S = TypeVar("S")


class TenantUnavailable(Exception):
    """A known tenant whose services could not be built (the cause is logged, without values)."""

    def __init__(self, name: str, cause: str) -> None:
        super().__init__(f"tenant services unavailable: {cause}")
        self.name = name
        self.cause = cause


@dataclass
class _Built(Generic[S]):
    version: str
    services: S | None
    removing: bool
    problem: str = ""


class TenantDirectory(Generic[E, S]):
    def __init__(
        self,
        list_entries: Callable[[], Sequence[E]],
        build: Callable[[E], S],
        *,
        refresh_every: float = 15.0,
        monotonic: Callable[[], float] = time.monotonic,
        on_removed: Callable[[str], None] | None = None,
        build_errors: tuple[type[Exception], ...] = (ValueError,),
        list_errors: tuple[type[Exception], ...] = (OSError,),
        background: bool = False,
    ) -> None:
        """``build_errors``: what a tenant's build may raise and only that tenant pays for (its
        settings, its secret, its tables); ``list_errors``: what a registry read may raise;
        ``background``: a due refresh runs in its own thread, so no lookup pays for it (a
        refresh reads every tenant's secrets: one slow Key Vault must not hold up a webhook)."""
        self._list = list_entries
        self._build = build
        self._refresh_every = refresh_every
        self._monotonic = monotonic
        self._on_removed = on_removed
        self._build_errors = build_errors
        self._list_errors = list_errors
        self._background = background
        self._lock = threading.Lock()  # guards _built's swap
        self._refreshing = threading.Lock()  # one refresh at a time; lookups never wait on it
        self._built: dict[str, _Built[S]] = {}
        self._loaded_at: float | None = None

    def refresh(self, *, force: bool = False) -> None:
        """Read the registry and (re)build what changed; raises only if no list was ever read.

        Once a list is loaded, a lookup never waits on a refresh (it reads the registry and every
        tenant's secrets, so one tenant's slow Key Vault would hold up every other tenant's
        webhooks): while one runs, lookups get the last list. ``force`` waits for its own."""
        loaded = self._loaded_at is not None
        if not force and loaded and not self._due():
            return
        if not loaded or force:
            with self._refreshing:
                if force or self._loaded_at is None:
                    self._refresh_now()
            return
        if not self._refreshing.acquire(blocking=False):
            return  # another thread is refreshing: serve the last list meanwhile
        if self._background:
            threading.Thread(target=self._refresh_then_release, name="tenant-directory", daemon=True).start()
            return
        self._refresh_then_release()

    def _due(self) -> bool:
        loaded_at = self._loaded_at
        return loaded_at is None or self._monotonic() - loaded_at >= self._refresh_every

    def _refresh_then_release(self) -> None:
        try:
            if self._due():  # not refreshed by another thread meanwhile
                self._refresh_now()
        except Exception as err:  # a thread's end: said in the log, the last list is served
            log.error("Tenant directory refresh failed, serving the last list: %s", type(err).__name__)
            if not self._background:
                raise
        finally:
            self._refreshing.release()

    def _refresh_now(self) -> None:
        """One refresh (the caller holds ``_refreshing``): list and build outside ``_lock``, then
        swap the whole map in, so a lookup sees the old list or the new one, never a mix."""
        now = self._monotonic()
        try:
            entries = list(self._list())
        except self._list_errors as err:  # keep serving the last list
            if self._loaded_at is None:
                raise
            log.warning("Tenant registry unreadable, serving the last list: %s", type(err).__name__)
            self._loaded_at = now  # retried after refresh_every, not on every request
            return
        built = {entry.name: self._rebuilt(entry) for entry in entries}
        with self._lock:
            gone = [name for name in self._built if name not in built]
            self._built = built
            self._loaded_at = now
        for name in gone:
            if self._on_removed is not None:
                self._on_removed(name)

    def _rebuilt(self, entry: E) -> _Built[S]:
        old = self._built.get(entry.name)
        if old is not None and old.version == entry.version and old.services is not None:
            return _Built(entry.version, old.services, entry.removing)
        try:
            return _Built(entry.version, self._build(entry), entry.removing)
        except self._build_errors as err:  # one tenant's broken secret or settings: that tenant only
            cause = type(err).__name__
            kept = "keeping the previous" if old else "unavailable"
            log.error("Tenant services not built (%s); %s", cause, kept)
            if old is not None and old.services is not None:
                # Retried at the next refresh: the version is not taken as built.
                return _Built("", old.services, entry.removing, cause)
            return _Built("", None, entry.removing, cause)

    def get(self, name: str) -> S | None:
        """A serving tenant's services; None for an unknown or removing one. Raises TenantUnavailable
        for a known tenant whose services could not be built."""
        self.refresh()
        built = self._built.get(name)
        if built is None or built.removing:
            return None
        if built.services is None:
            raise TenantUnavailable(name, built.problem)
        return built.services

    def names(self) -> list[str]:
        self.refresh()
        return sorted(self._built)

    def all(self) -> list[tuple[str, S]]:
        """Every tenant whose services exist, removing ones too (their queues still drain)."""
        self.refresh()
        return [(name, b.services) for name, b in sorted(self._built.items()) if b.services is not None]

    def removing(self) -> list[str]:
        self.refresh()
        return sorted(name for name, b in self._built.items() if b.removing)
