"""A work item: one result the job owes, a row or, with ``--voices``, one (row, voice)."""

from __future__ import annotations

from dataclasses import dataclass

from batchtts.api.request import TtsRequest
from batchtts.manifest.planner import PlannedRow
from batchtts.manifest.readers import Row

#: (manifest row number, fan-out variant): what tells items apart in the journal.
ItemKey = tuple[int, int | None]


@dataclass(frozen=True, slots=True)
class WorkItem:
    """A planned row as one result of the job: its request (for its voice), or why it cannot be made."""

    planned: PlannedRow
    #: Its place in ``--voices`` (None without a fan-out).
    variant: int | None = None
    #: Its ``--voices`` voice (None without a fan-out).
    voice: str | None = None
    #: Why it cannot be made (a bad cell, a format that cannot be joined); None when it can.
    problem: str | None = None

    @property
    def row(self) -> Row:
        return self.planned.row

    @property
    def request(self) -> TtsRequest:
        """The request of an item without a problem (an item with one has none)."""
        request = self.planned.request
        if request is None:
            raise ValueError(f"row {self.row.id!r} has no request: {self.problem}")
        return request

    @property
    def key(self) -> ItemKey:
        return (self.row.number, self.variant)
