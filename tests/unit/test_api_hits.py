"""An API hit becomes the same row a webhook hit does, marked backfilled. Pure."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from shared.completeness.api_hits import BACKFILL_KEY, dedup_key, hit_key, notification_from_api_hit
from shared.intake.events import WallarmEvent
from shared.intake.mapping import map_event
from shared.intake.parse import to_event

API_HIT = {
    "id": ["hits_production_1111_202311_v_1", "Vr0ix9J6f5Wgk3dS"],
    "attackid": ["attacks_production_1111_202311_v_1", "a1"],
    "request_id": "9c2f0c5d2b",
    "time": 1700000000,
    "type": "sqli",
    "ip": "198.51.100.7",
    "domain": "shop.example.com",
    "path": "/login",
    "point": ["post", "user"],
    "value": "' or 1=1 --",
    "poolid": 3,
    "statuscode": 403,
    "size": 512,
    "block_status": "blocked",
    "state": None,
    "experimental": False,
}
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def event_of(hit: dict[str, object]) -> WallarmEvent:
    envelope = notification_from_api_hit(
        hit, client_name="", cloud="EU", reconciled_at="2026-11-25T12:00:00Z"
    )
    event = to_event(envelope)
    assert isinstance(event, WallarmEvent)
    return event


def test_api_hit_maps_to_the_webhook_columns() -> None:
    row = map_event(event_of(API_HIT), NOW)
    assert row["EventType"] == "new_hits"
    assert row["Severity"] == "medium"  # blocked, as for a webhook hit
    assert row["RequestId"] == "9c2f0c5d2b"
    assert row["RemoteAddr"] == "198.51.100.7"
    assert row["Url"] == "shop.example.com/login"
    assert row["TimeGenerated"] == "2023-11-14T22:13:20Z"  # the hit's own time, not now


def test_raw_data_keeps_the_api_fields_and_says_what_is_missing() -> None:
    raw = json.loads(map_event(event_of(API_HIT), NOW)["RawData"])
    hit = raw["details"]["hit"]
    assert {k: hit[k] for k in API_HIT} == API_HIT  # nothing of the API's answer is dropped
    assert hit["payloads"] == ["' or 1=1 --"] and hit["applications"] == [3]
    mark = raw[BACKFILL_KEY]
    assert mark["source"] == "wallarm_api"
    assert mark["missing_fields"] == [
        "method",
        "parameter",
        "create_time",
        "headers",
        "remote_port",
        "response_time",
    ]


def test_ipv6_goes_to_remote_addr6() -> None:
    row = map_event(event_of({**API_HIT, "ip": "2001:db8::1"}), NOW)
    assert row["RemoteAddr"] == "2001:db8::1"


def test_hit_key_is_the_id_pair_not_the_request_id() -> None:
    assert hit_key(["hits_x", "doc1"]) == "hits_x/doc1"
    assert hit_key(["hits_x", "doc1"]) != hit_key(["hits_x", "doc2"])  # same request, two hits
    for bad in (None, "hits_x", ["hits_x"], ["hits_x", ""], [1, 2]):
        assert hit_key(bad) is None
    key = dedup_key("hits_x/doc1")
    assert len(key) == 64 and int(key, 16) >= 0
