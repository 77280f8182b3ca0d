"""The texts of the rows a report lists, read from the job's manifest when the results do not carry them.

Only the listed rows' texts are kept (a few hundred at most); the manifest is
streamed once, through the same reader as ``batchtts run``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

#: Characters of a row's text shown on the page.
TEXT_CHARS = 600


def manifest_texts(manifest: Path, rows: Iterable[int], *, text_column: str, id_column: str | None) -> dict[int, str]:
    """{row number: text} for ``rows``; raises :class:`batchtts.errors.ManifestError` when unreadable."""
    from batchtts.manifest.arrowpool import use_system_allocator
    from batchtts.manifest.readers import open_manifest

    use_system_allocator()
    wanted = set(rows)
    texts: dict[int, str] = {}
    if not wanted:
        return texts
    last = max(wanted)
    for row in open_manifest(manifest, text_column=text_column, id_column=id_column):
        if row.number in wanted and isinstance(row.text, str):
            texts[row.number] = row.text
        if row.number >= last:
            break
    return texts


def shorten(text: str, limit: int = TEXT_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
