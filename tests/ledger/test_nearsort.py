"""in_order: nearly sorted input comes out sorted; only what is later than the window goes aside."""

from __future__ import annotations

import random

from batchtts.ledger.nearsort import in_order


def split(keys: list[int], window: int) -> tuple[list[int], list[int]]:
    late: list[int] = []
    ordered = [key for key, _value in in_order(((k, str(k)) for k in keys), window, lambda k, v: late.append(k))]
    return ordered, late


def test_items_a_few_places_late_come_out_in_order_with_nothing_aside() -> None:
    rng = random.Random(4)
    keys = list(range(5000))
    for start in range(0, 5000, 16):  # shuffled within blocks of 16, as workers finish rows
        block = keys[start : start + 16]
        rng.shuffle(block)
        keys[start : start + 16] = block
    ordered, late = split(keys, window=32)
    assert ordered == sorted(keys) and late == []


def test_stragglers_go_aside_in_input_order_and_the_rest_stays_sorted() -> None:
    keys = [*range(10, 1000), 3, 5, *range(1000, 1100), 1]
    ordered, late = split(keys, window=8)
    assert ordered == sorted(set(keys) - {1, 3, 5})
    assert late == [3, 5, 1]
    assert sorted(ordered + late) == sorted(keys)


def test_any_order_splits_into_a_sorted_stream_and_the_rest() -> None:
    rng = random.Random(7)
    keys = rng.sample(range(100_000), 3000)
    ordered, late = split(keys, window=50)
    assert ordered == sorted(ordered)
    assert sorted(ordered + late) == sorted(keys)


def test_the_split_is_the_same_on_a_second_pass() -> None:
    rng = random.Random(9)
    keys = [i + rng.randrange(40) for i in range(0, 20_000, 3)]
    keys = list(dict.fromkeys(keys))
    assert split(keys, window=10) == split(keys, window=10)


def test_values_are_never_compared() -> None:
    class Opaque:
        def __lt__(self, other: object) -> bool:
            raise AssertionError("compared")

    items = [(k, Opaque()) for k in (3, 1, 2, 5, 4)]
    assert [k for k, _ in in_order(items, 2, lambda k, v: None)] == [1, 2, 3, 4, 5]
