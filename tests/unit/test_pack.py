"""ingestion.pack: the requests the SDK's upload() would send, cut and serialised once."""

from __future__ import annotations

from typing import Any

from azure.monitor.ingestion._helpers import _create_gzip_requests, _split_chunks
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.delivery.ingestion import MAX_CHUNK_BYTES, pack

# Long values are short random text repeated, so chunk boundaries come up without huge inputs.
VALUES = st.text(max_size=30) | st.builds(
    lambda text, times: text * times,
    st.text(alphabet='ab\u00e9\u4e2d\U0001f600"\\\n\u2028', min_size=1, max_size=8),
    st.integers(100, 6_000),
)
ROWS = st.lists(
    st.dictionaries(st.sampled_from(["TimeGenerated", "EventType", "Summary", "RawData", "Url"]), VALUES),
    max_size=40,
)


def sdk_requests(rows: list[Any], max_bytes: int) -> list[tuple[list[Any], bytes]]:
    """The SDK's own chunking at `max_bytes`, each chunk gzipped by the SDK itself."""
    out: list[tuple[list[Any], bytes]] = []
    for chunk in _split_chunks(rows, max_bytes):
        [(body, same)] = list(_create_gzip_requests(chunk))
        out.append((same, body))
    return out


@settings(max_examples=80, deadline=None)
@given(ROWS)
def test_same_requests_byte_for_byte_as_the_sdk(rows: list[dict[str, str]]) -> None:
    assert [(p.rows, p.body) for p in pack(rows, max_bytes=50_000)] == sdk_requests(rows, 50_000)


def test_the_sdk_limit_is_the_default_and_an_oversized_row_goes_alone() -> None:
    rows: list[Any] = [{"RawData": "y"}, {"RawData": "x" * (MAX_CHUNK_BYTES + 10)}, {"RawData": "z"}]
    assert [len(p.rows) for p in pack(rows)] == [1, 1, 1]
    assert [(p.rows, p.body) for p in pack(rows)] == [(c, b) for b, c in _create_gzip_requests(rows)]


def test_nothing_to_pack() -> None:
    assert pack([]) == []
