"""Voice fan-out (``--voices a,b,c``): every row once per voice, and request keys for parts.

A dataset for several speakers wants the same sentences in every voice. Each
(row, voice) is its own request, its own file (``audio/<voice>/<name>.<ext>``,
so files never collide) and its own results row (``voice_id`` tells them
apart). A row's ``voice_id`` cell is overridden: the fan-out decides the voice.
"""

from __future__ import annotations

from dataclasses import replace

from batchtts.manifest.planner import PlannedRow


def parse_voices(value: str) -> tuple[str, ...]:
    """``"a, b,c"`` -> ``("a", "b", "c")``; repeats dropped; raises ValueError when empty."""
    voices: list[str] = []
    for name in value.split(","):
        name = name.strip()
        if name and name not in voices:
            voices.append(name)
    if not voices:
        raise ValueError("give at least one voice, e.g. --voices magnus,emily")
    return tuple(voices)


def fan_out(planned: PlannedRow, voices: tuple[str, ...]) -> list[tuple[int, str, PlannedRow]]:
    """(variant index, voice, the row with that voice) for each voice, in ``voices`` order.

    A bad row (no request) stays bad in every variant.
    """
    items = []
    for index, voice in enumerate(voices):
        request = replace(planned.request, voice_id=voice) if planned.request is not None else None
        items.append((index, voice, PlannedRow(planned.row, request, planned.error, planned.kind)))
    return items


def request_key(row_id: str, *, voice: str | None = None, part: int | None = None) -> str:
    """The text request ids are made from (see :func:`batchtts.api.ids.request_id_for`).

    The row id alone for a plain row; ``<id>@<voice>`` for a fan-out and
    ``#p<n>`` for the n-th part of a split text, so every request of a job
    gets its own id and stays greppable by row id.
    """
    key = row_id
    if voice is not None:
        key += f"@{voice}"
    if part is not None:
        key += f"#p{part}"
    return key
