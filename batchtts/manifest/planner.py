"""Manifest rows -> validated requests, or the reason a row is bad.

Shared by ``batchtts run`` and ``batchtts validate`` so that validate reports
exactly the rows run would refuse. A bad row is data, not an exception: it gets
a reason and the job goes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from batchtts.api.request import (
    DEFAULT_VOICE,
    OVERRIDABLE_FIELDS,
    InvalidRequest,
    TtsRequest,
    coerce_field,
    parse_request,
)
from batchtts.manifest.idtable import FirstRowTable, id_key
from batchtts.manifest.readers import Row

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
    results rows. Ids are remembered as 64-bit digests in a compact table
    (:mod:`batchtts.manifest.idtable`, ~14 MiB per million ids). Set
    ``track_duplicates=False`` when ids are row numbers (they cannot repeat),
    to skip the bookkeeping.
    """

    def __init__(self, defaults: Mapping[str, Any], *, track_duplicates: bool = True) -> None:
        unknown = sorted(set(defaults) - set(OVERRIDABLE_FIELDS))
        if unknown:
            raise ValueError(f"not request defaults: {', '.join(unknown)}")
        coerced = {name: coerce_field(name, value) for name, value in defaults.items()}
        self._defaults: dict[str, Any] = {"voice_id": DEFAULT_VOICE}
        self._defaults.update({name: value for name, value in coerced.items() if value is not None})
        parse_request({**self._defaults, "text": "defaults check"})
        self._first_rows: FirstRowTable | None = FirstRowTable() if track_duplicates else None
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
            key = id_key(row.id)
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
