"""Chapter marks for a joined file, in FFmpeg's FFMETADATA format.

Written beside each ``--group-by`` file (``audio/book.wav`` ->
``audio/book.ffmeta``), one ``[CHAPTER]`` per row, so the book can become an
M4B with chapter marks::

    ffmpeg -i book.wav -i book.ffmeta -map_metadata 1 -c:a aac book.m4b

Times are milliseconds (``TIMEBASE=1/1000``) computed from the frame offsets
the join used, rounded to the nearest millisecond. A chapter runs from the
first to the last sample of its row; the ``--join-gap-ms`` silence after a
row belongs to no chapter. With ``--loudness``, comment lines (``; loudness: ...``) after the header say
what normalising the file did. Special characters in titles (``=``, ``;``,
``#``, ``\\`` and newlines) are escaped with a backslash, as the format
requires.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchtts.storage import atomic_file

HEADER = ";FFMETADATA1"
EXTENSION = "ffmeta"
_SPECIAL = re.compile(r"([=;#\\\n])")


@dataclass(frozen=True, slots=True)
class Chapter:
    title: str
    start_ms: int
    end_ms: int


def frames_to_ms(frames: int, sample_rate: int) -> int:
    """Frames as whole milliseconds, rounded half up."""
    return (frames * 1000 + sample_rate // 2) // sample_rate


def chapters_from_spans(titles: Sequence[str], spans: Sequence[tuple[int, int]], sample_rate: int) -> list[Chapter]:
    """One chapter per (title, (first frame, end frame))."""
    return [
        Chapter(title, frames_to_ms(start, sample_rate), frames_to_ms(end, sample_rate))
        for title, (start, end) in zip(titles, spans, strict=True)
    ]


def escape(value: str) -> str:
    """A key or value with FFMETADATA's special characters backslash-escaped."""
    return _SPECIAL.sub(r"\\\1", value.replace("\r\n", "\n").replace("\r", "\n"))


def ffmetadata(chapters: Sequence[Chapter], *, title: str | None = None, notes: Sequence[str] = ()) -> str:
    """The FFMETADATA text: the header, ``notes`` as comments, a global ``title``, then every chapter."""
    lines = [HEADER, *(f"; {note}" for note in notes)]
    if title is not None:
        lines.append(f"title={escape(title)}")
    for chapter in chapters:
        lines += [
            "",
            "[CHAPTER]",
            "TIMEBASE=1/1000",
            f"START={chapter.start_ms}",
            f"END={chapter.end_ms}",
            f"title={escape(chapter.title)}",
        ]
    return "\n".join(lines) + "\n"


def write_ffmetadata(
    path: Path, chapters: Sequence[Chapter], *, title: str | None = None, notes: Sequence[str] = ()
) -> None:
    """Write the chapters file whole or not at all (temp file + rename)."""
    with atomic_file(path, newline="\n") as handle:
        handle.write(ffmetadata(chapters, title=title, notes=notes))


def loudness_notes(figures: Mapping[str, Any]) -> list[str]:
    """Comment lines (FFmpeg ignores them) saying what ``--loudness`` did to the file."""
    keys = ("target_lufs", "ceiling_dbtp", "before_lufs", "after_lufs", "gain_db", "true_peak_before_dbtp",
            "true_peak_after_dbtp", "limited_by_peak", "limited_samples_share", "max_gain_reduction_db")  # fmt: skip
    return ["loudness: " + " ".join(f"{key}={_note_value(figures.get(key))}" for key in keys)]


def _note_value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)


def parse_ffmetadata(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """(global tags, one dict per chapter) of an FFMETADATA text; for tests and tools."""
    if not text.startswith(HEADER):
        raise ValueError("not FFMETADATA: the first line must be ;FFMETADATA1")
    tags: dict[str, str] = {}
    chapters: list[dict[str, str]] = []
    current = tags
    logical: list[str] = []
    pending = ""
    for raw in text.split("\n")[1:]:
        line = pending + raw
        if _ends_escaped(raw):
            pending = line[:-1] + "\n"
            continue
        pending = ""
        logical.append(line)
    for line in logical:
        if not line or line.startswith((";", "#")):
            continue
        if line == "[CHAPTER]":
            current = {}
            chapters.append(current)
            continue
        key, value = _split_unescaped(line)
        current[key] = value
    return tags, chapters


def _ends_escaped(line: str) -> bool:
    backslashes = len(line) - len(line.rstrip("\\"))
    return backslashes % 2 == 1


def _split_unescaped(line: str) -> tuple[str, str]:
    out: list[str] = []
    key: str | None = None
    chars = iter(line)
    for char in chars:
        if char == "\\":
            out.append(next(chars, ""))
        elif char == "=" and key is None:
            key, out = "".join(out), []
        else:
            out.append(char)
    return (key if key is not None else "".join(out)), ("".join(out) if key is not None else "")
