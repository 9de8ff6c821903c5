"""Greedy batching by size: the one rule both the Logs Ingestion chunks and Table transactions follow."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def by_size(
    items: Iterable[T], size_of: Callable[[T], int], max_size: int, max_count: int | None = None
) -> Iterator[list[T]]:
    """Consecutive batches, in order: a batch closes when the next item would take it over
    ``max_size`` (or past ``max_count`` items); an item larger than ``max_size`` goes alone."""
    batch: list[T] = []
    size = 0
    for item in items:
        n = size_of(item)
        if batch and (size + n > max_size or (max_count is not None and len(batch) >= max_count)):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += n
    if batch:
        yield batch
