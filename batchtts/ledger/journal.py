"""The journal: one JSON line per finished row, appended as rows finish, and its readers.

Rows finish in any order and a job may crash, so each finished row is appended
to the journal at once (flushed per row, fsync'd in batches). Reopening a
journal appends to it, and the latest entry for each row wins; a line cut
short by a crash (a torn tail) is removed when the journal is next opened and
ignored by readers. The runner gives each run a fresh journal and keeps the
earlier one only while it needs it (:mod:`batchtts.ledger.resume`); the results
manifest is written from it at the end (:mod:`batchtts.ledger.writers`).
"""

from __future__ import annotations

import heapq
import json
import logging
import os
import threading
import time
from array import array
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import orjson

from batchtts.ledger.entry import VARIANT_KEY, RowResult, json_default
from batchtts.ledger.nearsort import in_order
from batchtts.manifest.idtable import id_key

log = logging.getLogger(__name__)


class Journal:
    """Append-only JSON lines, one per finished row, e.g. ``DIR/.batchtts/journal.jsonl``.

    Each entry is written and flushed to the OS as it is appended, so it
    survives the process dying; it reaches the disk (fsync) every
    ``fsync_every`` entries or when ``fsync_seconds`` have passed at an append,
    and on :meth:`flush` and :meth:`close`, so a power loss costs at most that
    batch. A line cut short by a crash is removed when the journal is next
    opened, and readers ignore it. One writer per journal at a time.
    """

    def __init__(self, path: Path, *, fsync_every: int = 64, fsync_seconds: float = 1.0) -> None:
        self.path = Path(path)
        self.fsync_every = max(1, fsync_every)
        self.fsync_seconds = fsync_seconds
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(self.path)
        self._file: BinaryIO | None = open(self.path, "ab")  # noqa: SIM115 - closed by close()
        self._unsynced = 0
        self._synced_at = time.monotonic()
        self._lock = threading.Lock()

    def append(self, result: RowResult, *, durable: bool = True) -> None:
        """Append one row's result (see :meth:`append_entry` for ``durable``)."""
        self.append_entry(result.to_entry(), durable=durable)

    def append_entry(self, entry: Mapping[str, Any], *, durable: bool = True) -> None:
        """Append a ready-made entry (e.g. one copied from an earlier run's journal).

        ``durable=False`` is for entries that are cheap to lose (another file
        still holds them, or the next run recomputes them): written to the
        file's buffer only, reaching the OS with the next durable entry, a
        flush or the close, in order.
        """
        line = _encode_line(entry)
        with self._lock:
            if self._file is None:
                raise ValueError("append() on a closed journal")
            self._file.write(line)
            if not durable:
                return
            self._file.flush()
            self._unsynced += 1
            if self._unsynced >= self.fsync_every or time.monotonic() - self._synced_at >= self.fsync_seconds:
                self._fsync()

    def flush(self, fsync: bool = True) -> None:
        with self._lock:
            if self._file is None:
                return
            self._file.flush()
            if fsync:
                self._fsync()

    def _fsync(self) -> None:
        assert self._file is not None
        os.fsync(self._file.fileno())
        self._unsynced = 0
        self._synced_at = time.monotonic()

    def close(self) -> None:
        with self._lock:
            if self._file is None:
                return
            self._file.flush()
            self._fsync()
            self._file.close()
            self._file = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def iter_entries(self) -> Iterator[dict[str, Any]]:
        """Every complete entry in the order written (all runs), skipping unreadable lines."""
        self.flush(fsync=False)
        for _offset, entry in _read_entries(self.path):
            yield entry


#: Journal lines :func:`final_entries` keeps in order at a time (parsed, in its second pass):
#: a line written more than this many lines after it was due is sorted apart.
ORDER_WINDOW = 512

#: A journal line's place: (row, variant, 64-bit id hash, byte offset); unique per line.
_LineKey = tuple[int, int, int, int]


def final_entries(journal: Journal) -> Iterator[dict[str, Any]]:
    """The latest entry for each manifest row (and fan-out variant), ordered by ``row``.

    A row is identified by its ``(id, row)`` pair, not its id alone: a repeated
    id in a manifest is its own failed row and must keep its own result, while a
    row run again by a later run (resume) replaces its earlier entry. With a
    voice fan-out, each variant (:data:`VARIANT_KEY`, the voice's index in
    ``--voices``) of a row is its own result, in variant order.

    Memory does not grow with the journal when it is nearly in row order, as a
    run writes it (:mod:`batchtts.ledger.nearsort`): a first pass keeps only the lines
    that come more than :data:`ORDER_WINDOW` lines late (32 bytes each: row,
    variant, 64-bit id hash, file offset), a second pass streams the rest in
    order through a window of :data:`ORDER_WINDOW` entries and merges in the late
    ones, read back by their offsets. A journal in no order at all costs those
    32 bytes for most of its lines.
    """
    journal.flush(fsync=False)
    return final_entries_at(journal.path)


def final_entries_at(path: Path) -> Iterator[dict[str, Any]]:
    """:func:`final_entries` of the journal file at ``path``, read only (no writer is open on it)."""
    import numpy as np

    rows, variants, keys, offsets = array("q"), array("q"), array("q"), array("q")

    def note_late(key: _LineKey, _entry: object) -> None:
        rows.append(key[0])
        variants.append(key[1])
        keys.append(key[2])
        offsets.append(key[3])

    end = -1
    for key, _entry in in_order(_keyed_lines(path), ORDER_WINDOW, note_late):
        end = max(end, key[3])
    end = max(end, max(offsets, default=-1))  # the last line the first pass read: the second reads no further
    if end < 0:
        return
    late_order = np.lexsort([np.frombuffer(a, dtype=np.int64) for a in (offsets, keys, variants, rows)])

    def late_lines() -> Iterator[tuple[_LineKey, None]]:
        columns = (rows, variants, keys, offsets)
        for start in range(0, len(late_order), 65536):  # Python ints a block at a time
            block = late_order[start : start + 65536]
            picked = [np.frombuffer(a, dtype=np.int64)[block].tolist() for a in columns]
            for key in zip(*picked, strict=True):
                yield key, None

    in_order_lines = in_order(_keyed_lines(path, end), ORDER_WINDOW, lambda key, entry: None)
    with open(path, "rb") as handle:
        latest: tuple[_LineKey, dict[str, Any] | None] | None = None
        for line in heapq.merge(in_order_lines, late_lines()):
            if latest is not None and latest[0][:3] != line[0][:3]:
                yield _entry_of(latest, handle)
            latest = line  # the same row, variant and id later in the file: the later entry wins
        if latest is not None:
            yield _entry_of(latest, handle)


def _keyed_lines(path: Path, end: int | None = None) -> Iterator[tuple[_LineKey, dict[str, Any]]]:
    """(its place, entry) for each journal line, up to the line at offset ``end``."""
    for offset, entry in _read_entries(path):
        if end is not None and offset > end:
            return
        row = entry.get("row")
        variant = entry.get(VARIANT_KEY)
        yield (
            (
                row if type(row) is int and -(2**63) <= row < 2**63 else 2**63 - 1,
                variant if type(variant) is int and -(2**63) <= variant < 2**63 else -1,
                id_key(entry.get("id")),
                offset,
            ),
            entry,
        )


def _entry_of(line: tuple[_LineKey, dict[str, Any] | None], handle: BinaryIO) -> dict[str, Any]:
    """The line's entry: parsed already, or read back at its offset (a late line)."""
    key, entry = line
    if entry is not None:
        return entry
    handle.seek(key[3])
    return parse_line(handle.readline())


def read_journal_file(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(byte offset, entry) for each complete, readable line of a journal file, in file order."""
    return _read_entries(path)


def _encode_line(entry: Mapping[str, Any]) -> bytes:
    text = json.dumps(entry, ensure_ascii=False, separators=(",", ":"), default=json_default)
    return text.encode("utf-8", "surrogatepass") + b"\n"


def parse_line(line: bytes) -> Any:
    """One journal line's JSON; raises ValueError when it is not JSON.

    orjson parses a line 3 to 4 times faster than :mod:`json`, and journals are
    read whole (results, resume index); lines it refuses are read by :mod:`json`,
    which accepts what :func:`_encode_line` may write and orjson does not: lone
    surrogates (encoded with ``surrogatepass``), NaN and integers beyond 64 bits.
    """
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line.decode("utf-8", "surrogatepass"))


def _read_entries(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(byte offset, entry) for each complete line; a last line without its newline is torn: ignored."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    with handle:
        offset = 0
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                log.warning("%s: ignoring a torn last line (%d bytes)", path, len(line))
                return
            try:
                entry = parse_line(line)
            except ValueError:  # UnicodeDecodeError included
                entry = None
            if isinstance(entry, dict) and "id" in entry:
                yield offset, entry
            elif line.strip():
                log.warning("%s: ignoring unreadable line %d", path, number)
            offset += len(line)


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line that has no newline (a crash mid-write), so new lines start clean."""
    try:
        handle = open(path, "r+b")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    with handle:
        end = handle.seek(0, os.SEEK_END)
        if end == 0:
            return
        handle.seek(end - 1)
        if handle.read(1) == b"\n":
            return
        pos = end
        keep = 0
        while pos > 0:
            start = max(0, pos - 65536)
            handle.seek(start)
            block = handle.read(pos - start)
            newline = block.rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            pos = start
        log.warning("%s: removing a torn last line (%d bytes) left by an interrupted run", path, end - keep)
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())
