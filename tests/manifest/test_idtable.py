"""The planner's duplicate-id table: the same answers as a dict, through flushes, merges and Bloom growth."""

from __future__ import annotations

import random

import pytest

from batchtts.manifest.idtable import FirstRowTable


def small_table() -> FirstRowTable:
    """Tiny sizes, so a few thousand ids go through every path: front flushes, level merges, Bloom growth."""
    return FirstRowTable(front_size=7, level_size=50, bloom_bits=64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_first_or_add_answers_like_a_dict(seed: int) -> None:
    rng = random.Random(seed)
    table, reference = small_table(), {}
    seen = [rng.randrange(-(2**63), 2**63) for _ in range(1500)]
    for number in range(1, 12_000):
        key = rng.choice(seen) if rng.random() < 0.4 else rng.randrange(-(2**63), 2**63)
        expected = reference.setdefault(key, number)
        assert table.first_or_add(key, number) == (None if expected == number else expected)
    assert len(table) == len(reference)
    for key, first in reference.items():  # every id is still found, in whichever level it ended up
        assert table.first_or_add(key, 10**9) == first


def test_keys_that_share_bloom_bits_are_told_apart() -> None:
    table = small_table()
    keys = [(i << 40) | 5 for i in range(1, 400)]  # identical low bits: every one hits the Bloom filter
    for number, key in enumerate(keys, start=1):
        assert table.first_or_add(key, number) is None
    for number, key in enumerate(keys, start=1):
        assert table.first_or_add(key, 10**9) == number
    assert len(table) == len(keys)


def test_row_numbers_beyond_32_bits_are_kept() -> None:
    table = small_table()
    big = 2**40 + 3
    for offset in range(100):
        assert table.first_or_add(offset, big + offset) is None
    assert [table.first_or_add(offset, 1) for offset in range(100)] == [big + offset for offset in range(100)]


def test_memory_is_about_14_bytes_per_id() -> None:
    table = FirstRowTable()
    for number in range(1, 200_001):
        table.first_or_add(random.Random(number).randrange(-(2**63), 2**63), number)
    # 8-byte digests and 4-byte rows in the levels, and a Bloom filter of at least 16 bits per id.
    assert 12 * 200_000 < table.nbytes < 16 * 200_000 + 8 * 2**20 // 8
