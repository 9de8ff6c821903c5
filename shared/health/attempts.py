"""What requests to the Logs Ingestion API did: the facts the ledger, the auto-disable rule and
the probe work from. Delivery reports in these terms; health reads them and never imports delivery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from shared.schema import Row


@dataclass(frozen=True)
class Attempt:
    """One HTTP request to the API: what the ledger records."""

    ok: bool
    rows: int
    status: int | None = None
    error: str = ""
    request_id: str = ""
    elapsed: float = 0.0


@dataclass(frozen=True)
class ChunkFailure:
    rows: list[Row]
    status: int | None
    error: str
    request_id: str
    retry_after: float | None
    poison: bool
    message: str


@dataclass
class DeliveryReport:
    accepted: list[Row] = field(default_factory=list)
    failures: list[ChunkFailure] = field(default_factory=list)
    not_attempted: list[Row] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    # A landed check ran before this resend: ``confirmed`` are the rows it found in the table,
    # not sent again (they are in ``accepted`` too).
    checked: bool = False
    confirmed: list[Row] = field(default_factory=list)

    @property
    def all_accepted(self) -> bool:
        return not self.failures and not self.not_attempted


class Sender(Protocol):
    """What the switch's announcements and the probe need of the API client (delivery's `Deliverer`)."""

    def deliver(self, rows: Sequence[Row], deadline: float | None = None) -> DeliveryReport: ...

    def probe(self, rows: Sequence[Row] = ()) -> Attempt: ...
