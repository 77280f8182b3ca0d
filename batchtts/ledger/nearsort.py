"""Ordering a stream that is almost in order, holding only a window and the stragglers.

A journal is written nearly in manifest order: the producer records bad,
reused and pending rows in order, and workers finish rows a few places late.
Sorting all of it to write the results held an index of every line (32 bytes
each, ~65 MB at the peak for a million lines). :func:`in_order` instead
releases items in key order through a min-heap of ``window`` items
(replacement selection): an item at most ``window`` places late still comes
out in order; an item later than that (it sorts before what was already
released) is handed to ``late`` for the caller to sort apart, usually a
handful. Memory: the window, plus whatever the caller keeps of the late items.

The split depends only on the sequence of keys, so a second pass over the same
items makes the same split: the first pass can collect just the late keys,
and the second merges the in-order stream with them.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

K = TypeVar("K")
V = TypeVar("V")


def in_order(items: Iterable[tuple[K, V]], window: int, late: Callable[[K, V], Any]) -> Iterator[tuple[K, V]]:
    """``items`` (key, value) in key order, but for those given to ``late`` instead.

    Keys must be distinct and comparable (values are never compared).
    Everything yielded is in ascending key order; what is given to ``late`` is
    in input order.
    """
    heap: list[tuple[K, V]] = []
    size = max(1, window)
    released: Any = None
    have_released = False
    for item in items:
        if have_released and item[0] < released:
            late(*item)
            continue
        if len(heap) < size:
            heapq.heappush(heap, item)
            continue
        smallest = heapq.heappushpop(heap, item)
        released, have_released = smallest[0], True
        yield smallest
    while heap:
        yield heapq.heappop(heap)
