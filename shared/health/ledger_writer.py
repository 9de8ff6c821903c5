"""The one writer of tallies: telemetry per attempt, the ledger and the hourly counters in one
Table write, then the auto-disable rule when a request to the API failed: the failure path goes on
from here (ledger -> `IntegrationSwitch.check_auto_disable` -> disable and announce; the retry
worker's recovery probe later lifts it), as the imports show.

Nothing is left for after an answer: an instance can be recycled or scaled in right after it
(Flex Consumption does so without notice), and a count deferred past the answer would then be
lost, leaving the 60 % ratio worse than the truth (issue 19). A webhook counts what it plans to
do (`write_ahead`) while it delivers, so its answer waits for no extra round trip; its `write`
then stores only what went otherwise (nothing, when all went as planned). The counter write is
group-committed (``HourlyCounters``), so a burst of webhooks shares its round trips.
"""

from __future__ import annotations

import logging

from shared.health.integration_switch import IntegrationSwitch
from shared.health.request_tally import RequestTally
from shared.store.ledger import AttemptLedger
from shared.store.tables import StoreUnavailable
from shared.telemetry import Telemetry

log = logging.getLogger(__name__)


class LedgerWriter:
    def __init__(
        self,
        ledger: AttemptLedger,
        telemetry: Telemetry,
        *,
        switch: IntegrationSwitch | None = None,
    ) -> None:
        self.ledger = ledger
        self.telemetry = telemetry
        self.switch = switch  # None: the rule is not asked (tools that only record)

    def write_ahead(self, tally: RequestTally) -> None:
        """Store what `tally` counted ahead (`RequestTally.count_ahead`). If the write fails, the
        counters keep the increments in memory and a later write carries them."""
        try:
            self.ledger.count_ahead(tally.ahead_attempts, tally.ahead, at=tally.at)
        except StoreUnavailable as err:
            log.warning("Hourly counters not updated ahead: %s", err)

    def write(self, tally: RequestTally) -> None:
        """A ledger outage never fails a delivery that happened: the rows are in Azure; only the
        failure ratio and the hour's counts miss this request."""
        for a in tally.attempts:
            self.telemetry.attempt(a.ok, a.status, a.error, a.elapsed, tally.source)
        if (tally.ahead or tally.ahead_attempts) and tally.settled_ahead:
            return  # went as counted ahead
        try:
            self.ledger.record_all(tally.records(), tally.delta(), at=tally.at, ahead=tally.ahead_attempts)
            if tally.failed and self.switch is not None:
                self.switch.check_auto_disable()
        except StoreUnavailable as err:
            log.warning("Ledger and hourly counters not updated: %s", err)
