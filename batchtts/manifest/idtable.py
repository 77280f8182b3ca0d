"""Which row first had each id: the planner's duplicate-id table, compact enough for millions of rows.

Every row id of a manifest is remembered (as a 64-bit digest, with the row
that first had it), so this table is the one thing ``batchtts validate`` and a
``--limit`` run over a long manifest hold per row. An open-addressing hash
table of two 64-bit arrays cost 32 MiB per million ids, 48 MiB while it
doubled; this one costs about 14 MiB per million, and it grows by small steps:

- recent ids sit in a small dict (``front_size`` entries);
- when it is full they become a *level*: two sorted numpy arrays (digests as
  int64, first rows as uint32 while they fit), and small levels are merged
  into bigger ones up to ``level_size`` entries, so no step copies more than
  one level (~1.5 MiB) at once;
- a Bloom filter (two bits per id, at least 16 bits per id, so ~1% false
  hits) answers "never seen" for almost every new id without searching the
  levels; only its hits (true duplicates, and those ~1%) binary-search them.

Digests (:func:`id_key`), not ids, are compared: two different ids with the
same 64-bit digest would be taken for a duplicate. At a million ids that is a
~3e-8 chance per manifest (n² / 2⁶⁵).
"""

from __future__ import annotations

import hashlib
from typing import Any


def id_key(row_id: Any) -> int:
    """The signed 64-bit digest of a row id (as text) that rows are keyed by.

    The planner's duplicate-id table (:class:`FirstRowTable`) and the journal
    readers (:mod:`batchtts.ledger.journal`, :mod:`batchtts.ledger.resume`) all
    use this one. Two different ids with the same digest would be taken for a
    duplicate: at a million ids that is a ~3e-8 chance per manifest (n² / 2⁶⁵),
    well below any other reason a row may fail.
    """
    data = str(row_id).encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little", signed=True)


_MAX_BLOOM_BITS = 1 << 32  # the two bit positions come from the digest's low and high 32 bits
_UINT32_MAX = 0xFFFFFFFF


class FirstRowTable:
    """id digest (signed 64-bit int) -> the first row that had it."""

    def __init__(self, *, front_size: int = 16384, level_size: int = 1 << 17, bloom_bits: int = 1 << 20) -> None:
        if bloom_bits & (bloom_bits - 1) or not 8 <= bloom_bits <= _MAX_BLOOM_BITS:
            raise ValueError("bloom_bits must be a power of two from 8 to 2**32")
        self._front: dict[int, int] = {}
        self._front_size = max(1, front_size)
        self._level_size = max(self._front_size, level_size)
        #: Sorted (digests, first rows) pairs, oldest first; a digest is in at most one level or the front.
        self._levels: list[tuple[Any, Any]] = []
        self._bloom = bytearray(bloom_bits // 8)
        self._mask = bloom_bits - 1
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        """Bytes held in the levels and the Bloom filter (the front dict is not counted)."""
        return len(self._bloom) + sum(keys.nbytes + rows.nbytes for keys, rows in self._levels)

    def first_or_add(self, key: int, row_number: int) -> int | None:
        """The row that first had ``key``; or None, after recording ``row_number`` as its first."""
        bloom, mask = self._bloom, self._mask
        low, high = key & mask, (key >> 32) & mask
        low_bit, high_bit = 1 << (low & 7), 1 << (high & 7)
        if bloom[low >> 3] & low_bit and bloom[high >> 3] & high_bit:
            first = self._find(key)
            if first is not None:
                return first
        else:
            bloom[low >> 3] |= low_bit
            bloom[high >> 3] |= high_bit
        self._front[key] = row_number
        self._size += 1
        if len(self._front) >= self._front_size:
            self._flush_front()
        if self._size * 16 > len(bloom) * 8 and len(bloom) * 8 < _MAX_BLOOM_BITS:
            self._grow_bloom()
        return None

    def _find(self, key: int) -> int | None:
        first = self._front.get(key)
        if first is not None:
            return first
        for keys, rows in self._levels:
            slot = int(keys.searchsorted(key))
            if slot < len(keys) and int(keys[slot]) == key:
                return int(rows[slot])
        return None

    def _flush_front(self) -> None:
        """The front dict becomes a sorted level; then equal-sized small levels merge (a binary counter)."""
        import numpy as np

        count = len(self._front)
        keys = np.fromiter(self._front.keys(), dtype=np.int64, count=count)
        rows = np.fromiter(self._front.values(), dtype=np.int64, count=count)
        self._front.clear()
        order = np.argsort(keys)
        self._levels.append((keys[order], _narrow(rows[order])))
        levels = self._levels
        while len(levels) >= 2:
            (old_keys, old_rows), (new_keys, new_rows) = levels[-2], levels[-1]
            if len(old_keys) > len(new_keys) or len(old_keys) + len(new_keys) > self._level_size:
                break
            at = old_keys.searchsorted(new_keys)  # no digest is in both: a plain insertion merge
            keys = np.insert(old_keys, at, new_keys)
            rows = _narrow(np.insert(old_rows.astype(np.int64), at, new_rows))
            levels[-2:] = [(keys, rows)]

    def _grow_bloom(self) -> None:
        """Twice the bits, every digest set again: at least 16 bits per id keeps false hits near 1%."""
        import numpy as np

        bits = len(self._bloom) * 8 * 2
        self._bloom = bytearray(bits // 8)
        self._mask = mask = bits - 1
        view = np.frombuffer(self._bloom, dtype=np.uint8)
        blocks = [keys for keys, _rows in self._levels]
        if self._front:
            blocks.append(np.fromiter(self._front.keys(), dtype=np.int64, count=len(self._front)))
        for keys in blocks:
            for position in (keys & mask, (keys >> 32) & mask):
                np.bitwise_or.at(view, position >> 3, (1 << (position & 7)).astype(np.uint8))


def _narrow(rows: Any) -> Any:
    """Row numbers as uint32 when they all fit (manifests rarely have 4 billion rows), else int64."""
    import numpy as np

    if len(rows) and int(rows.max()) > _UINT32_MAX:
        return rows.astype(np.int64, copy=False)
    return rows.astype(np.uint32)
