"""Manifest cells as the shaping options read them: a group's name, an order value, a title."""

from __future__ import annotations

import math
from typing import Any

from batchtts.manifest.readers import Row


def cell(row: Row, column: str, *, id_column: str | None, text_column: str) -> Any:
    """The value of ``column`` in ``row``, whichever part of the row holds it."""
    if column == id_column:
        return row.id
    if column == text_column:
        return row.text
    if column in row.fields:
        return row.fields[column]
    return row.carried.get(column)


def is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def cell_text(value: Any) -> str:
    """A cell as a name: ``3.0`` reads ``3``."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def as_number(value: Any) -> float | None:
    """A cell as a finite number, or None (so ``--order-by`` can sort 2 before 10)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None
