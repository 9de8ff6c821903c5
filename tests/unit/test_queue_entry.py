"""The retry queue's entry codec, without Azurite: keys, compression, packing, entity round trips."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableEntity

from shared.schema import Row
from shared.store.queue_entry import (
    CHUNK_BYTES,
    PARKED,
    PENDING,
    QUARANTINE,
    QueueEntry,
    compress_rows,
    decompress_rows,
    entity_with,
    failure,
    from_entity,
    groups_for,
    moved,
    pack_rows,
    payload_of,
    pending_row_key,
    row_key_for,
    to_entity,
    to_ms,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def entry(**changes: object) -> QueueEntry:
    fields: dict[str, object] = {
        "id": "001764504000000-000000abcdef12",
        "partition": PENDING,
        "row_key": "k",
        "etag": "",
        "attempt": 2,
        "claims": 1,
        "row_count": 0,
        "created_at": NOW,
        "first_failed_at": None,
        "due_at": NOW,
        "last_status": None,
        "last_error": "",
        "last_request_id": "",
        "reason": "api_5xx",
    }
    fields.update(changes)
    return QueueEntry(**fields)  # type: ignore[arg-type]


def noisy(count: int, size: int) -> list[Row]:
    return [{"RawData": base64.b64encode(os.urandom(size)).decode(), "n": str(n)} for n in range(count)]


def test_to_ms_is_exact_and_needs_an_aware_time() -> None:
    assert to_ms(datetime(1970, 1, 1, 0, 0, 1, 1000, tzinfo=UTC)) == 1001
    with pytest.raises(ValueError, match="timezone-aware"):
        to_ms(datetime(2026, 1, 1))


def test_pending_row_keys_sort_by_due_time_then_id() -> None:
    early = pending_row_key(NOW, "b")
    later = pending_row_key(NOW + timedelta(milliseconds=1), "a")
    assert early < later
    assert pending_row_key(NOW, "a") < early
    assert early == f"{to_ms(NOW):015d}_b"


def test_row_key_is_the_id_outside_pending() -> None:
    assert row_key_for(PARKED, NOW, "x") == "x"
    assert row_key_for(QUARANTINE, NOW, "x") == "x"
    assert row_key_for(PENDING, NOW, "x") == pending_row_key(NOW, "x")


def test_compression_round_trips_and_is_deterministic() -> None:
    rows: list[Row] = [{"a": "é", "n": "1"}, {"b": ""}]
    assert compress_rows(rows) == compress_rows(rows)
    assert decompress_rows(compress_rows(rows)) == rows


def test_decompress_rejects_a_non_array() -> None:
    import gzip

    with pytest.raises(ValueError, match="not a JSON array"):
        decompress_rows(gzip.compress(b"{}"))


def test_pack_rows_keeps_order_and_fits_the_limit() -> None:
    rows = noisy(40, 2000)
    groups = pack_rows(rows, limit=20_000)
    assert len(groups) > 1
    assert [row for group, _ in groups for row in group] == rows
    for group, payload in groups:
        assert len(payload) <= 20_000
        assert decompress_rows(payload) == group


def test_pack_rows_refuses_one_row_over_the_limit() -> None:
    with pytest.raises(ValueError, match="over the 100-byte entry limit"):
        pack_rows(noisy(1, 1000), limit=100)


def test_groups_for_needs_a_payload_or_rows() -> None:
    with pytest.raises(ValueError, match="without its payload"):
        groups_for(entry(), None)
    assert groups_for(entry(), []) == [([], compress_rows([]))]
    payload = compress_rows([{"a": "1"}])
    assert groups_for(entry(rows=[{"a": "1"}], payload=payload), None) == [([{"a": "1"}], payload)]


def test_an_entity_round_trips_through_the_codec_with_chunks() -> None:
    rows = noisy(3, CHUNK_BYTES)  # several chunks
    original = entry(first_failed_at=NOW, last_status=503, last_error="boom", last_request_id="r")
    entity = entity_with(original, rows=rows, payload=b"", id="e1", row_key="rk")
    assert entity["chunks"] > 1
    assert entity["rows"] == 3
    back = from_entity(entity, "etag-1")
    assert back.rows == rows
    assert back.payload == payload_of(entity)
    assert (back.id, back.row_key, back.etag, back.last_status) == ("e1", "rk", "etag-1", 503)
    assert back.first_failed_at == NOW
    assert back.claims == original.claims


def test_unset_optional_fields_are_not_written() -> None:
    entity = to_entity(entry())
    assert "first_failed_at" not in entity
    assert "last_status" not in entity
    assert entity["chunks"] == 0
    back = from_entity(entity, with_payload=False)
    assert back.first_failed_at is None
    assert back.last_status is None


def test_doubt_round_trips_and_a_failed_attempt_with_a_clear_answer_clears_it() -> None:
    doubtful = entry(doubt_since=NOW)
    assert "doubt_since" not in to_entity(entry())
    assert from_entity(to_entity(doubtful), with_payload=False).doubt_since == NOW
    answered = entity_with(
        doubtful,
        rows=[],
        payload=b"",
        **failure(doubtful, NOW, status=503, error="ServiceUnavailable", request_id="r"),
    )
    assert "doubt_since" not in answered
    timed_out = failure(doubtful, NOW, status=None, error="response_error", request_id="", doubt_since=NOW)
    assert entity_with(doubtful, rows=[], payload=b"", **timed_out)["doubt_since"] == NOW


def test_a_missing_chunk_is_an_error() -> None:
    entity = entity_with(entry(), rows=[{"a": "1"}], payload=b"", id="e1", row_key="rk")
    del entity["p0"]
    with pytest.raises(ValueError, match="misses payload chunk 0"):
        from_entity(entity)


def test_from_entity_takes_the_etag_from_stored_metadata() -> None:
    stored = TableEntity(to_entity(entry()))
    stored._metadata = {"etag": "W/stored", "timestamp": NOW}  # what the SDK sets on a read
    assert from_entity(stored, with_payload=False).etag == "W/stored"


def test_moved_changes_only_the_key_and_due_time() -> None:
    entity = to_entity(entry())
    entity["gone"] = None
    copy = moved(entity, PENDING, "new-key", NOW + timedelta(hours=1))
    assert copy["RowKey"] == "new-key"
    assert copy["due_at"] == NOW + timedelta(hours=1)
    assert "gone" not in copy
    assert {k: v for k, v in copy.items() if k not in ("RowKey", "due_at")} == {
        k: v for k, v in entity.items() if k not in ("RowKey", "due_at", "gone")
    }
