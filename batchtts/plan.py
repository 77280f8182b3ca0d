"""Manifest rows -> validated requests, or the reason a row is bad.

Shared by ``batchtts run`` and ``batchtts validate`` so that validate reports
exactly the rows run would refuse. A bad row is data, not an exception: it gets
a reason and the job goes on.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from batchtts.manifest import Row
from batchtts.request import DEFAULT_VOICE, OVERRIDABLE_FIELDS, InvalidRequest, TtsRequest, coerce_field, parse_request

#: ``PlannedRow.kind`` for a repeated id (other kinds are the offending field's name).
DUPLICATE_ID = "duplicate id"


@dataclass(slots=True)
class PlannedRow:
    row: Row
    request: TtsRequest | None  # None when the row is bad
    error: str | None  # why the row is bad, e.g. "speed: 'fast' is not a number"
    kind: str | None = None  # what is wrong, for tallies: a field name ("text", "speed", "id") or DUPLICATE_ID

    @property
    def ok(self) -> bool:
        return self.request is not None


class RowPlanner:
    """Builds each row's request: API defaults < command-line defaults < the row's own cells.

    ``defaults`` holds only the request fields the user set on the command line.
    Raises :class:`InvalidRequest` at construction if those defaults are invalid
    themselves (otherwise every row would fail for the same reason).

    Ids are claimed by their first row, good or bad: a later row with the same
    id is bad ("duplicate id"), because ids name the output files and the
    results rows. Set ``track_duplicates=False`` when ids are row numbers (they
    cannot repeat), to skip the bookkeeping.
    """

    def __init__(self, defaults: Mapping[str, Any], *, track_duplicates: bool = True) -> None:
        unknown = sorted(set(defaults) - set(OVERRIDABLE_FIELDS))
        if unknown:
            raise ValueError(f"not request defaults: {', '.join(unknown)}")
        coerced = {name: coerce_field(name, value) for name, value in defaults.items()}
        self._defaults: dict[str, Any] = {"voice_id": DEFAULT_VOICE}
        self._defaults.update({name: value for name, value in coerced.items() if value is not None})
        parse_request({**self._defaults, "text": "defaults check"})
        self._first_rows: _FirstRowTable | None = _FirstRowTable() if track_duplicates else None
        self._repeated: set[int] = set()
        #: Rows whose id repeats an earlier row's id.
        self.duplicate_rows = 0

    @property
    def defaults(self) -> dict[str, Any]:
        """The effective command-line defaults (with the API's default voice when none was given)."""
        return dict(self._defaults)

    @property
    def repeated_ids(self) -> int:
        """How many distinct ids occurred more than once so far."""
        return len(self._repeated)

    def plan(self, row: Row) -> PlannedRow:
        if not row.id:
            return PlannedRow(row, None, "id: missing (empty id cell)", "id")
        if self._first_rows is not None:
            key = _id_digest(row.id)
            first = self._first_rows.first_or_add(key, row.number)
            if first is not None:
                self.duplicate_rows += 1
                self._repeated.add(key)
                return PlannedRow(row, None, f"duplicate id {row.id!r} (first at row {first})", DUPLICATE_ID)
        body = {**self._defaults, **row.fields, "text": "" if row.text is None else row.text}
        try:
            request = parse_request(body, voices=None)
        except InvalidRequest as exc:
            return PlannedRow(row, None, str(exc), exc.field)
        return PlannedRow(row, request, None)


def _id_digest(row_id: str) -> int:
    """A 64-bit digest of an id: collisions are ~1e-8 likely at a million ids."""
    digest = hashlib.blake2b(row_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1  # 0 marks an empty slot


class _FirstRowTable:
    """id digest -> first row number, in two flat arrays (open addressing, linear probing).

    About 16 bytes per slot and at least half the slots free: roughly 32 MiB for
    a million distinct ids, several times less than a Python dict of ints.
    """

    _MAX_LOAD = 0.6

    def __init__(self, capacity: int = 1024) -> None:
        self._keys = array("Q", bytes(8 * capacity))
        self._rows = array("Q", bytes(8 * capacity))
        self._mask = capacity - 1
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def first_or_add(self, key: int, row_number: int) -> int | None:
        """The row that first had ``key``; or None, after recording ``row_number`` as its first."""
        keys, mask = self._keys, self._mask
        slot = key & mask
        while True:
            found = keys[slot]
            if found == 0:
                break
            if found == key:
                return self._rows[slot]
            slot = (slot + 1) & mask
        keys[slot] = key
        self._rows[slot] = row_number
        self._size += 1
        if self._size > self._MAX_LOAD * len(keys):
            self._grow()
        return None

    def _grow(self) -> None:
        old_keys, old_rows = self._keys, self._rows
        capacity = 2 * len(old_keys)
        self._keys = keys = array("Q", bytes(8 * capacity))
        self._rows = rows = array("Q", bytes(8 * capacity))
        self._mask = mask = capacity - 1
        for key, row_number in zip(old_keys, old_rows):
            if key:
                slot = key & mask
                while keys[slot]:
                    slot = (slot + 1) & mask
                keys[slot] = key
                rows[slot] = row_number
