"""Replay by id: an id that is not quarantined is refused, never a quiet "replayed": 0 (issue 20)."""

from __future__ import annotations

import json

import pytest
from wallarm_fixtures import load_fixture

from local.standins.logs_ingestion import LogsIngestionStandIn
from shared.intake.webhook import WebhookRequest
from shared.ops.admin import InvalidInput

from .conftest import FakeClock, MakeServices

UNKNOWN = "001764072000000-0000001a2b3c4d"


def test_a_known_and_an_unknown_id_replay_the_known_one_and_say_so(
    make_services: MakeServices, clock: FakeClock, ingestion: LogsIngestionStandIn
) -> None:
    svc = make_services(clock)
    ingestion.inject(400, code="InvalidPayload")
    body = json.dumps(json.loads(load_fixture("new_hits"))[:1]).encode()
    request = WebhookRequest(body=body, headers={"content-type": "application/json"}, source_ip="127.0.0.1")
    assert svc.webhook.handle(request).status == 202
    (quarantined,) = svc.admin.status()["quarantined"]

    with pytest.raises(InvalidInput) as refused:
        svc.admin.replay_quarantined([quarantined["id"], UNKNOWN])
    assert refused.value.code == "unknown_id"
    assert refused.value.message.startswith("1 of the 2 ids given are not quarantined entries")
    assert "1 replayed" in refused.value.message and UNKNOWN not in refused.value.message
    assert svc.admin.status()["queue"]["quarantined_entries"] == 0  # the known one did move

    assert svc.admin.replay_quarantined(None)["replayed"] == 0  # all of none: not an error
    with pytest.raises(InvalidInput):
        svc.admin.replay_quarantined([quarantined["id"]])  # replayed already: not quarantined now
