"""The journal (one JSON line per finished row) and the results manifest built from it.

Rows finish in any order and a job may crash, so each finished row is appended
to the journal at once (flushed per row, fsync'd in batches); the results
manifest is written from the journal at the end, ordered by manifest row,
whole or not at all (temp file + rename). Reopening a journal appends to it,
and the latest entry for each row wins; the runner gives each run a fresh
journal and keeps the earlier one only while it needs it (:mod:`batchtts.ledger.resume`).
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import math
import os
import threading
import time
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePath
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

from batchtts.errors import UsageError
from batchtts.storage.names import atomic_file
from batchtts.ledger.nearsort import in_order

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

STATUS_OK = "ok"
STATUS_FAILED = "failed"
#: A row this run did not start or finish (a limit, a signal); the next run does it.
STATUS_PENDING = "pending"

#: The fixed columns of the results manifest, in order; carried columns follow.
RESULT_COLUMNS: tuple[str, ...] = (
    "id",
    "row",
    "status",
    "path",
    "request_id",
    "server_request_id",
    "attempts",
    "http_status",
    "error",
    "ttfb_ms",
    "total_ms",
    "audio_seconds",
    "audio_bytes",
    "sample_rate",
    "output_format",
    "voice_id",
    "started_at",
    "finished_at",
    "reused",
)
#: Columns only some jobs have, placed after the fixed ones: ``--max-chars`` adds
#: the number of parts of each row's text and each part's request id.
OPTIONAL_COLUMNS: tuple[str, ...] = ("parts", "part_request_ids")
#: Journal-only key: a voice fan-out's index, so each (row, voice) keeps its own results row.
VARIANT_KEY = "variant"
_INT_COLUMNS = frozenset({"row", "attempts", "http_status", "audio_bytes", "sample_rate", "parts"})
_LIST_COLUMNS = frozenset({"part_request_ids"})
_FLOAT_COLUMNS = frozenset({"ttfb_ms", "total_ms", "audio_seconds"})
_BOOL_COLUMNS = frozenset({"reused"})
#: A carried column named like a fixed column is written as ``input_<name>``.
CLASH_PREFIX = "input_"
#: Results manifest formats, by file extension.
RESULT_FORMATS: dict[str, str] = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl"}
#: Rows converted to Arrow at a time when writing results (bounds memory: each
#: batch of journal entries costs ~7 KB a row at its peak; 4096 made a 20,000-row
#: run peak 22 MB above a 2,000-row one, 1024 makes it 2 MB).
WRITE_BATCH_ROWS = 1024
#: Rows per Parquet row group: converted batches are kept (as Arrow) until there
#: are this many. The writer holds every row group's metadata until the file
#: closes, over 1 KB per column: row groups of 1024 rows (one per batch) cost
#: 22 MB more for a million rows than for 2,000; 4096 cost 2 MB. Bigger groups
#: cost more in the writer's buffers (16384: 6 MB, 32768: 21 MB), measured.
PARQUET_ROW_GROUP_ROWS = 4096


def utc_now_iso() -> str:
    """Now as ISO 8601 UTC with milliseconds and a ``Z``: ``2025-01-31T12:00:00.123Z``."""
    return to_iso_utc(datetime.now(UTC))


def to_iso_utc(moment: datetime) -> str:
    """``moment`` (aware; naive means UTC) in the results' timestamp format (see :func:`utc_now_iso`)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class RowResult:
    """What happened to one manifest row; one field per results column (None where unknown)."""

    id: str
    row: int  # 1-based data row number in the manifest
    status: str  # STATUS_OK or STATUS_FAILED
    path: str | None = None  # audio file, relative to the output folder, with "/" separators
    request_id: str | None = None
    server_request_id: str | None = None
    attempts: int | None = None
    http_status: int | None = None
    error: str | None = None
    ttfb_ms: float | None = None
    total_ms: float | None = None
    audio_seconds: float | None = None
    audio_bytes: int | None = None
    sample_rate: int | None = None
    output_format: str | None = None
    voice_id: str | None = None
    started_at: str | None = None  # utc_now_iso() format
    finished_at: str | None = None
    reused: bool | None = None  # True: an earlier run's result, kept without a request
    carried: dict[str, Any] = field(default_factory=dict)
    #: Optional columns (:data:`OPTIONAL_COLUMNS`) and :data:`VARIANT_KEY`, when the job has them,
    #: and journal-only keys: the resume fingerprint and file stamp (:mod:`batchtts.ledger.resume`).
    extra: dict[str, Any] = field(default_factory=dict)

    def to_entry(self) -> dict[str, Any]:
        """The journal entry: every fixed column by name, extras, carried values under ``"carried"``."""
        entry = {name: getattr(self, name) for name in RESULT_COLUMNS}
        if isinstance(self.path, PurePath):
            entry["path"] = self.path.as_posix()
        entry.update(self.extra)
        entry["carried"] = self.carried
        return entry


# --- journal -------------------------------------------------------------------------


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
    import numpy as np

    journal.flush(fsync=False)
    rows, variants, keys, offsets = array("q"), array("q"), array("q"), array("q")

    def note_late(key: _LineKey, _entry: object) -> None:
        rows.append(key[0])
        variants.append(key[1])
        keys.append(key[2])
        offsets.append(key[3])

    end = -1
    for key, _entry in in_order(_keyed_lines(journal.path), ORDER_WINDOW, note_late):
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

    in_order_lines = in_order(_keyed_lines(journal.path, end), ORDER_WINDOW, lambda key, entry: None)
    with open(journal.path, "rb") as handle:
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
            row if type(row) is int and -(2**63) <= row < 2**63 else 2**63 - 1,
            variant if type(variant) is int and -(2**63) <= variant < 2**63 else -1,
            _id_key(entry.get("id")),
            offset,
        ), entry


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


def id_key(row_id: Any) -> int:
    """A signed 64-bit digest of a row id, as the journal readers key rows."""
    return _id_key(row_id)


def _id_key(row_id: Any) -> int:
    data = str(row_id).encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little", signed=True)


def _encode_line(entry: Mapping[str, Any]) -> bytes:
    text = json.dumps(entry, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    return text.encode("utf-8", "surrogatepass") + b"\n"


def _json_default(value: Any) -> Any:
    """JSON for what the manifest reader may still hand over: dates, decimals, bytes, numpy scalars."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "backslashreplace")
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, PurePath):
        return value.as_posix()
    return str(value)


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


# --- results manifest ----------------------------------------------------------------


def results_format(path: Path) -> str:
    """``parquet``, ``csv`` or ``jsonl`` from the extension; :class:`UsageError` otherwise."""
    fmt = RESULT_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UsageError(f"results file {str(path)!r}: the name must end in .parquet, .csv or .jsonl")
    return fmt


def output_names(carried_columns: Sequence[str], extra_columns: Sequence[str] = ()) -> list[tuple[str, str]]:
    """(carried column, its name in the results): clashes with a fixed or extra column get ``input_``."""
    fixed = set(RESULT_COLUMNS) | set(extra_columns)
    taken = fixed | set(carried_columns)
    names: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name in carried_columns:
        if name in seen:
            continue
        seen.add(name)
        out = name
        if name in fixed:
            out = CLASH_PREFIX + name
            while out in taken:
                out = CLASH_PREFIX + out
            taken.add(out)
        names.append((name, out))
    return names


def results_schema(
    carried_columns: Sequence[str] = (),
    carried_types: Mapping[str, pa.DataType] | None = None,
    *,
    for_csv: bool = False,
    extra_columns: Sequence[str] = (),
) -> pa.Schema:
    """The results manifest's Arrow schema: fixed columns, extra ones, then carried ones (string unless typed).

    ``extra_columns`` are some of :data:`OPTIONAL_COLUMNS`. Use it to read a
    CSV or JSONL results file back with the right types
    (``pyarrow.csv.ConvertOptions(column_types=schema)``), since those formats
    cannot say that an all-empty column is, say, int64. (In CSV a list column
    is JSON text.)
    """
    import pyarrow as pa

    unknown = [name for name in extra_columns if name not in OPTIONAL_COLUMNS]
    if unknown:
        raise ValueError(f"not optional results columns: {', '.join(unknown)}")
    fields = [pa.field(name, _fixed_type(name)) for name in RESULT_COLUMNS]
    fields += [pa.field(name, _fixed_type(name, for_csv=for_csv)) for name in extra_columns]
    types = carried_types or {}
    for source, out in output_names(carried_columns, extra_columns):
        fields.append(pa.field(out, _carried_type(types.get(source), for_csv=for_csv)))
    return pa.schema(fields)


def _fixed_type(name: str, *, for_csv: bool = False) -> pa.DataType:
    import pyarrow as pa

    if name in _LIST_COLUMNS:
        return pa.string() if for_csv else pa.list_(pa.string())
    if name in _INT_COLUMNS:
        return pa.int64()
    if name in _FLOAT_COLUMNS:
        return pa.float64()
    if name in _BOOL_COLUMNS:
        return pa.bool_()
    return pa.string()


def _carried_type(data_type: pa.DataType | None, *, for_csv: bool) -> pa.DataType:
    """The stored type of a carried column; values the journal holds as text stay text."""
    import pyarrow as pa

    if data_type is None:
        return pa.string()
    if pa.types.is_dictionary(data_type):
        data_type = data_type.value_type
    if (
        pa.types.is_null(data_type)
        or pa.types.is_binary(data_type)
        or pa.types.is_large_binary(data_type)
        or pa.types.is_fixed_size_binary(data_type)
        or (for_csv and pa.types.is_nested(data_type))
    ):
        return pa.string()
    return data_type


def infer_carried_types(
    entries: Iterable[Mapping[str, Any]], carried_columns: Sequence[str]
) -> dict[str, pa.DataType]:
    """A type per carried column from the JSON values in ``entries``: bool, int64, float64 or string.

    Mixed ints and floats give float64; anything else mixed, lists, objects
    and all-null columns give string (lists and objects as JSON text).
    """
    import pyarrow as pa

    kinds: dict[str, set[str]] = {name: set() for name in carried_columns}
    for entry in entries:
        carried = entry.get("carried") or {}
        for name, seen in kinds.items():
            if "str" in seen:
                continue
            value = carried.get(name)
            if value is None:
                continue
            if isinstance(value, bool):
                seen.add("bool")
            elif isinstance(value, int):
                seen.add("int" if -(2**63) <= value < 2**63 else "str")
            elif isinstance(value, float):
                seen.add("float")
            else:
                seen.add("str")
    types: dict[str, pa.DataType] = {}
    for name, seen in kinds.items():
        if seen == {"bool"}:
            types[name] = pa.bool_()
        elif seen == {"int"}:
            types[name] = pa.int64()
        elif seen and seen <= {"int", "float"}:
            types[name] = pa.float64()
        else:
            types[name] = pa.string()
    return types


def write_results(
    entries: Iterable[Mapping[str, Any]],
    path: Path,
    *,
    carried_columns: Sequence[str],
    carried_types: Mapping[str, pa.DataType] | None = None,
    extra_columns: Sequence[str] = (),
) -> int:
    """Write journal entries as the results manifest at ``path``; return the rows written.

    Format by extension (:func:`results_format`). Entries are converted
    :data:`WRITE_BATCH_ROWS` at a time, so memory does not grow with the row
    count. The schema is fixed up front (:func:`results_schema`); carried
    columns without a type in ``carried_types`` are strings (non-string values
    as JSON text). A value that does not fit its column's type is written as
    null, with a warning. The file appears whole or not at all.
    """
    path = Path(path)
    fmt = results_format(path)
    schema = results_schema(carried_columns, carried_types, for_csv=fmt == "csv", extra_columns=extra_columns)
    sources: list[tuple[bool, str]] = [(False, name) for name in (*RESULT_COLUMNS, *extra_columns)]
    sources += [(True, source) for source, _out in output_names(carried_columns, extra_columns)]
    with atomic_file(path, "wb") as handle:
        writer = _ResultsWriter(fmt, handle, schema)
        written = 0
        complete = False
        try:
            for batch in _batches(entries, WRITE_BATCH_ROWS):
                writer.write(_to_table(batch, schema, sources))
                written += len(batch)
            complete = True
        finally:
            writer.close(complete=complete)  # before its file closes, even when the temp file is to be dropped
    return written


def write_journal_results(
    journal: Journal,
    path: Path,
    *,
    carried_columns: Sequence[str],
    carried_types: Mapping[str, pa.DataType] | None = None,
    extra_columns: Sequence[str] = (),
) -> int:
    """:func:`write_results` of :func:`final_entries`, inferring carried types the caller did not give.

    Inference (:func:`infer_carried_types`) is one extra sequential pass over the journal.
    """
    types = dict(carried_types or {})
    missing = [name for name in carried_columns if name not in types]
    if missing:
        types.update(infer_carried_types(journal.iter_entries(), missing))
    return write_results(
        final_entries(journal), path, carried_columns=carried_columns, carried_types=types, extra_columns=extra_columns
    )


def _batches(entries: Iterable[Mapping[str, Any]], size: int) -> Iterator[list[Mapping[str, Any]]]:
    batch: list[Mapping[str, Any]] = []
    for entry in entries:
        batch.append(entry)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _to_table(batch: list[Mapping[str, Any]], schema: pa.Schema, sources: list[tuple[bool, str]]) -> pa.Table:
    import pyarrow as pa

    arrays = []
    for schema_field, (carried, name) in zip(schema, sources, strict=True):
        if carried:
            values = [(entry.get("carried") or {}).get(name) for entry in batch]
        else:
            values = [entry.get(name) for entry in batch]
        arrays.append(_to_array(values, schema_field.type, schema_field.name))
    return pa.Table.from_arrays(arrays, schema=schema)


def _to_array(values: list[Any], data_type: pa.DataType, column: str) -> pa.Array:
    """``values`` as an array of exactly ``data_type``; what cannot be converted becomes null."""
    import pyarrow as pa

    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        texts = [_as_text(v) for v in values]
        try:
            return pa.array(texts, type=data_type)
        except UnicodeEncodeError:  # a lone surrogate (JSON allows "\ud800"; UTF-8 does not)
            return pa.array([_valid_utf8(t) for t in texts], type=data_type)
    conversion_errors = (
        pa.ArrowInvalid,
        pa.ArrowTypeError,
        pa.ArrowNotImplementedError,
        TypeError,
        ValueError,
        OverflowError,
    )
    try:
        return pa.array(values, type=data_type)
    except conversion_errors:
        pass
    try:
        return pa.array(values).cast(data_type)  # e.g. ISO text -> timestamp, 3.0 -> 3
    except conversion_errors:
        pass
    pieces = []
    dropped = 0
    for value in values:
        try:
            piece = pa.array([value], type=data_type)
        except conversion_errors:
            try:
                piece = pa.array([value]).cast(data_type)
            except conversion_errors:
                piece = pa.nulls(1, type=data_type)
                dropped += 1
        pieces.append(piece)
    log.warning(
        "results column %r: %d value(s) are not %s and were written as null", column, dropped, data_type
    )
    return pa.concat_arrays(pieces)


def _valid_utf8(text: str | None) -> str | None:
    return None if text is None else text.encode("utf-8", "backslashreplace").decode("utf-8")


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=_json_default)


class _ResultsWriter:
    """One streaming writer per format: pyarrow's for Parquet and CSV, JSON lines by hand."""

    def __init__(self, fmt: str, handle: BinaryIO, schema: pa.Schema) -> None:
        self.fmt = fmt
        self.handle = handle
        self._writer: Any = None
        self._row_group: list[pa.Table] = []  # Parquet: converted batches not written yet
        self._row_group_rows = 0
        if fmt == "parquet":
            import pyarrow.parquet as pq

            self._writer = pq.ParquetWriter(handle, schema)
        elif fmt == "csv":
            import pyarrow.csv as pacsv

            self._writer = pacsv.CSVWriter(handle, schema)

    def write(self, table: pa.Table) -> None:
        if self.fmt == "parquet":
            self._row_group.append(table)
            self._row_group_rows += table.num_rows
            if self._row_group_rows >= PARQUET_ROW_GROUP_ROWS:
                self._write_row_group()
            return
        if self._writer is not None:
            self._writer.write_table(table)
            return
        lines = []
        for record in table.to_pylist():
            text = json.dumps(_finite(record), ensure_ascii=False, allow_nan=False, default=_json_default)
            lines.append(text.encode("utf-8", "surrogatepass") + b"\n")
        self.handle.write(b"".join(lines))

    def _write_row_group(self) -> None:
        import pyarrow as pa

        if self._row_group:
            table = pa.concat_tables(self._row_group)  # no copy: the batches become chunks
            self._row_group, self._row_group_rows = [], 0
            self._writer.write_table(table, row_group_size=table.num_rows)

    def close(self, *, complete: bool = True) -> None:
        """Finish the file; ``complete=False`` (it is being dropped) closes without writing what is buffered."""
        if self._writer is not None:
            if complete:
                self._write_row_group()
            self._writer.close()


def _finite(value: Any) -> Any:
    """NaN and infinities as null: JSON has no spelling for them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
