"""The landed check's pure parts: the row hash (KQL's hash_sha256), the query, the time range
and the matching of copies; and the query stand-in's evaluation of that query."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from local.standins.log_query import run_query
from shared.delivery.landed_check import MARGIN, mark_found, query_for, raw_hash, timespan_for

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def test_raw_hash_is_kql_hash_sha256_of_the_string() -> None:
    # The example of the KQL reference: hash_sha256("World").
    world = "78ae647dc5544d227130a0682a51e30bc7777fbb6d8a8f17007463a3ecd1d524"
    assert raw_hash({"RawData": "World"}) == world
    assert raw_hash({"RawData": None}) is None  # type: ignore[dict-item]
    assert raw_hash({}) is None


def test_the_query_names_only_hex_hashes() -> None:
    query = query_for(["ab" * 32, "cd" * 32])
    assert query.startswith("WallarmSentinel_CL | extend RawHash = hash_sha256(RawData)")
    assert f'in ("{"ab" * 32}", "{"cd" * 32}")' in query
    assert query.endswith("summarize Copies = count() by RawHash")


def test_copies_are_matched_one_for_one() -> None:
    assert mark_found(["a", "a", "b", None], Counter({"a": 1, "b": 3})) == [True, False, True, False]
    assert mark_found([], Counter({"a": 1})) == []


def test_timespan_is_the_rows_own_range_with_a_margin() -> None:
    rows = [{"TimeGenerated": "2026-12-05T11:50:00Z"}, {"TimeGenerated": "2026-12-05T11:40:00.5+00:00"}]
    start, end = timespan_for(rows, NOW)
    assert start == datetime(2026, 12, 5, 11, 40, 0, 500000, tzinfo=UTC) - MARGIN
    assert end == datetime(2026, 12, 5, 11, 50, tzinfo=UTC) + MARGIN


def test_timespan_reaches_now_for_rows_azure_retimes_or_without_a_readable_time() -> None:
    old = [{"TimeGenerated": "2026-11-01T00:00:00Z"}]
    assert timespan_for(old, NOW) == (datetime(2026, 11, 1, tzinfo=UTC) - MARGIN, NOW + MARGIN)
    for bad in ("", "yesterday", None, 17):
        start, end = timespan_for([{"TimeGenerated": bad}], NOW)  # type: ignore[dict-item]
        assert end == NOW + MARGIN and start <= NOW - timedelta(days=2)


raw_texts = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=300)


@given(st.lists(raw_texts, min_size=1, max_size=8), st.data())
def test_the_stand_in_finds_exactly_the_rows_it_holds(raws: list[str], data: st.DataObject) -> None:
    """Any Unicode RawData (quotes, pipes, newlines, emoji) hashes the same on both sides."""
    rows = [{"TimeGenerated": "2026-12-05T11:59:00Z", "RawData": json.dumps({"s": r})} for r in raws]
    held = data.draw(st.lists(st.sampled_from(rows), max_size=10))
    hashes = [raw_hash(row) for row in rows]
    _columns, result = run_query(query_for(sorted({h for h in hashes if h})), held)
    copies = Counter(dict(result))
    expected = Counter(raw_hash(row) for row in held)
    assert copies == expected
    found = mark_found(hashes, copies)
    assert sum(found) == sum(min(hashes.count(h), n) for h, n in expected.items())


def test_timespan_covers_the_receive_time_of_a_row_azure_retimed_from_the_future() -> None:
    """Red team: a hit whose request_time is three days ahead lands with its receive time
    (FACTS.md: more than a day in the future is replaced). Before, only the row's own future
    range was searched: the landed row was never found and was written twice."""
    ahead = [{"TimeGenerated": "2026-12-08T12:00:00Z"}, {"TimeGenerated": "2026-12-05T11:58:00Z"}]
    start, end = timespan_for(ahead, NOW)
    received = NOW - timedelta(minutes=6)  # the doubtful upload, before the check
    assert start <= received < end and start <= NOW - timedelta(days=2)
    assert end >= datetime(2026, 12, 8, 12, tzinfo=UTC)  # and its own time, had Azure kept it
    on_time = [{"TimeGenerated": "2026-12-05T11:58:00Z"}]  # nothing ahead: the narrow range stays
    assert timespan_for(on_time, NOW) == (
        datetime(2026, 12, 5, 11, 58, tzinfo=UTC) - MARGIN,
        NOW + MARGIN - timedelta(minutes=2),
    )


_TIMES = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat()),
    st.sampled_from(["9999-12-31T23:59:59.999999Z", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00"]),
    st.text(max_size=40),
)


@given(st.lists(_TIMES, min_size=1, max_size=5))
def test_timespan_of_any_row_times_is_a_range_inside_the_calendar(times: list[str]) -> None:
    """A hit's request_time is the attacker's: 253402300799999 ms maps to 9999-12-31, and the
    margin once stepped past the calendar (OverflowError: the entry stuck in doubt for good)."""
    start, end = timespan_for([{"TimeGenerated": t} for t in times], NOW)
    assert start < end and start.tzinfo is not None and end.tzinfo is not None
