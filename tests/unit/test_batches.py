"""shared.batches.by_size: the greedy batching rule of ingestion chunks and table transactions."""

from __future__ import annotations

from shared.batches import by_size


def test_a_batch_closes_before_the_item_that_would_overflow_it() -> None:
    assert list(by_size([3, 3, 3, 5, 1], lambda n: n, 6)) == [[3, 3], [3], [5, 1]]


def test_an_item_over_the_limit_goes_alone() -> None:
    assert list(by_size([1, 9, 1], lambda n: n, 5)) == [[1], [9], [1]]


def test_max_count_closes_a_batch_too() -> None:
    assert list(by_size(range(5), lambda _: 0, 100, max_count=2)) == [[0, 1], [2, 3], [4]]


def test_nothing_in_nothing_out() -> None:
    assert list(by_size([], len, 10)) == []
