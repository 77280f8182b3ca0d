"""``--group-by`` groups: the rows of one chapter, their order, and where each row lies in the joined file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from batchtts.job.shaping.cells import as_number, cell_text
from batchtts.job.shaping.work import RowWork

#: (group name, fan-out variant): a group per voice with ``--voices``.
GroupKey = tuple[str, int | None]


@dataclass(slots=True)
class Group:
    """The rows of one group, held until every row of the job is done."""

    name: str
    voice: str | None
    variant: int | None
    rows: list[RowWork] = field(default_factory=list)
    #: (row id, reason) of the first row that failed: the group gets no file.
    broken: tuple[str, str] | None = None
    done: bool = False

    def break_on(self, row_id: str, reason: str) -> None:
        self.broken = self.broken or (row_id, reason)


def order_is_numeric(groups: list[Group]) -> bool:
    """Numeric order when every --order-by value is a number (so 2 comes before 10)."""
    return all(as_number(work.order_value) is not None for group in groups for work in group.rows)


def order_key(work: RowWork, numeric: bool) -> tuple[Any, ...]:
    """--order-by value (as a number when the column is numeric), then manifest order."""
    number = work.item.row.number
    if work.order_value is None:
        return (0, number)
    if numeric:
        return (as_number(work.order_value), number)
    return (cell_text(work.order_value), number)


def row_spans(rows: list[RowWork], part_spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Each row's (first, end) frame in the group's file, from its parts' spans."""
    spans = []
    position = 0
    for work in rows:
        count = len(work.fingerprints)
        first, last = part_spans[position], part_spans[position + count - 1]
        spans.append((first[0], last[1]))
        position += count
    return spans
