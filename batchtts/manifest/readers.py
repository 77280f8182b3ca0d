"""Streaming manifest readers: CSV, Parquet and JSONL rows in, :class:`Row` objects out.

A manifest may hold millions of rows, so no reader ever loads a whole file:
CSV and Parquet are read as pyarrow record batches of bounded size (each becomes
``Row`` objects lazily), JSONL line by line. Memory stays flat in the
number of rows.

Column mapping: the text column (``text`` unless named), the id column (``id``
when present unless named; else the row number), columns named like a request
field (:data:`batchtts.api.request.OVERRIDABLE_FIELDS`) override the command-line
defaults for their row, and every other column is carried through untouched.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import decimal
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchtts.api.request import OVERRIDABLE_FIELDS, coerce_field
from batchtts.errors import ManifestError

if TYPE_CHECKING:
    import pyarrow as pa

FORMATS_BY_SUFFIX: dict[str, str] = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}

#: CSV block size. The reader reads up to ~32 blocks ahead, so this bounds its
#: memory (~32 MiB whatever the file's size); it is also the longest single row
#: the reader accepts.
CSV_BLOCK_SIZE = 1 << 20
#: Rows per Parquet record batch.
PARQUET_BATCH_ROWS = 8192
#: JSONL has no header: its columns are the keys of the first this-many records.
JSONL_SCHEMA_SAMPLE = 1000


@dataclass(slots=True)
class Row:
    """One manifest row, mapped onto the request schema but not yet validated."""

    number: int  # 1-based data row number (header and blank JSONL lines not counted)
    id: str  # from the id column ("" when the cell is empty), else str(number)
    text: Any  # the raw text cell
    fields: dict[str, Any]  # request-field overrides present in this row, coerced; empty cells dropped
    carried: dict[str, Any]  # every other column, as JSON-able python values


class Manifest:
    """An opened manifest: its columns are known, its rows are read on iteration.

    Iterating twice reads the file twice; nothing is cached.
    """

    def __init__(
        self,
        path: Path,
        format: str,
        columns: list[str],
        *,
        text_column: str,
        id_column: str | None,
        num_rows: int | None = None,
    ) -> None:
        self.path = path
        self.format = format
        self.columns = columns
        self.text_column = text_column
        #: The column ids come from, or None when ids are row numbers.
        self.id_column = id_column
        self.override_columns: list[str] = [c for c in columns if c in OVERRIDABLE_FIELDS and c != text_column]
        self.carried_columns: list[str] = [
            c for c in columns if c not in (text_column, id_column) and c not in OVERRIDABLE_FIELDS
        ]
        self._num_rows = num_rows

    def __repr__(self) -> str:
        return f"Manifest({str(self.path)!r}, format={self.format!r}, columns={self.columns!r})"

    def count_rows(self) -> int | None:
        """The number of data rows when the format records it (Parquet), else None."""
        return self._num_rows

    def scan_row_count(self) -> int:
        """Count the data rows by a quick pass (one column of a CSV, lines of a JSONL).

        For the progress display's total and ETA; runs in a thread beside the
        job, so a broken row is not this pass's business: it stops counting.
        """
        if self._num_rows is not None:
            return self._num_rows
        if self.format == "jsonl":
            with self.path.open("rb") as handle:
                return sum(1 for line in handle if line.strip())
        import pyarrow.csv as pacsv

        options = _csv_options(self.columns)
        options["convert_options"].include_columns = [self.columns[0]]
        count = 0
        with pacsv.open_csv(self.path, **options) as reader:
            for batch in reader:
                count += batch.num_rows
        return count

    def __iter__(self) -> Iterator[Row]:
        records = self._records()
        number = 0
        while True:
            try:
                record = next(records)
            except StopIteration:
                return
            except ManifestError:
                raise
            except _read_errors() as exc:
                raise ManifestError(
                    f"{self.path}: cannot read the manifest after data row {number}: {_arrow_message(exc)}"
                ) from exc
            number += 1
            yield self._row(number, record)

    # --- reading -----------------------------------------------------------

    def _records(self) -> Iterator[dict[str, Any]]:
        """Records (column name -> python value), read a bounded batch at a time."""
        if self.format == "jsonl":
            for _, record in _jsonl_records(self.path):
                yield record
            return
        reader = _csv_reader(self.path, self.columns) if self.format == "csv" else _parquet_batches(self.path)
        for batch in reader:
            yield from _batch_records(batch)

    def _row(self, number: int, record: dict[str, Any]) -> Row:
        fields: dict[str, Any] = {}
        for name in self.override_columns:
            value = coerce_field(name, record.get(name))
            if value is not None:
                fields[name] = value
        if self.format == "jsonl":
            # JSONL rows may carry request-field keys not seen in the schema sample.
            for name in OVERRIDABLE_FIELDS:
                if name not in fields and name != self.text_column and name in record:
                    value = coerce_field(name, record[name])
                    if value is not None:
                        fields[name] = value
        row_id = _id_text(record.get(self.id_column)) if self.id_column is not None else str(number)
        carried = {name: _jsonable(record.get(name)) for name in self.carried_columns}
        return Row(number=number, id=row_id, text=record.get(self.text_column), fields=fields, carried=carried)


def open_manifest(path: str | Path, *, text_column: str = "text", id_column: str | None = None) -> Manifest:
    """Open a manifest by its extension, reading only its schema and first block.

    ``id_column=None`` means "use column ``id`` when present, else the row
    number". Raises :class:`ManifestError` (saying what to do) for a missing
    file, an unknown extension, unreadable content, or a missing text column
    (or id column, when one was named).
    """
    path = Path(path)
    fmt = FORMATS_BY_SUFFIX.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(FORMATS_BY_SUFFIX)
        raise ManifestError(f"{path}: unknown manifest extension {path.suffix or '(none)'!r}; use one of {known}")
    if not path.exists():
        raise ManifestError(f"{path}: no such manifest file")
    if not path.is_file():
        raise ManifestError(f"{path}: not a file")

    try:
        if fmt == "csv":
            columns, num_rows = _csv_columns(path), None
        elif fmt == "parquet":
            columns, num_rows = _parquet_columns(path)
        else:
            columns, num_rows = _jsonl_columns(path), None
    except ManifestError:
        raise
    except _read_errors() as exc:
        raise ManifestError(f"{path}: cannot read as {fmt.upper()}: {_arrow_message(exc)}") from exc

    _check_unique(path, columns)
    found = ", ".join(repr(c) for c in columns) or "(none)"
    if text_column not in columns:
        raise ManifestError(
            f"{path}: no text column {text_column!r}; columns found: {found} (choose one with --text-column)"
        )
    if id_column is not None and id_column not in columns:
        raise ManifestError(
            f"{path}: no id column {id_column!r}; columns found: {found} "
            "(choose one with --id-column, or leave it out to number the rows)"
        )
    if id_column is None and "id" in columns:
        id_column = "id"
    return Manifest(path, fmt, columns, text_column=text_column, id_column=id_column, num_rows=num_rows)


# --- CSV ---------------------------------------------------------------------


def _csv_options(columns: list[str] | None = None) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    options: dict[str, Any] = {
        "read_options": pacsv.ReadOptions(block_size=CSV_BLOCK_SIZE, encoding="utf8"),
        "parse_options": pacsv.ParseOptions(newlines_in_values=True),
    }
    if columns is not None:
        # Every column as a string: ids like "007" keep their zeros and a block
        # whose cells look different from the first block's never fails to convert.
        options["convert_options"] = pacsv.ConvertOptions(
            column_types={name: pa.string() for name in columns}, strings_can_be_null=False
        )
    return options


def _csv_columns(path: Path) -> list[str]:
    import pyarrow.csv as pacsv

    with pacsv.open_csv(path, **_csv_options()) as probe:
        columns = list(probe.schema.names)
    _check_unique(path, columns)
    # Open the string-typed reader once and decode its first block, so that a
    # file broken at its start (bad UTF-8, ragged rows) fails here, before any work.
    with pacsv.open_csv(path, **_csv_options(columns)) as reader, contextlib.suppress(StopIteration):
        reader.read_next_batch()
    return columns


def _csv_reader(path: Path, columns: list[str]) -> Iterator[pa.RecordBatch]:
    import pyarrow.csv as pacsv

    with pacsv.open_csv(path, **_csv_options(columns)) as reader:
        yield from reader


# --- Parquet -----------------------------------------------------------------


def _parquet_file(path: Path) -> Any:
    import pyarrow.parquet as pq

    # Buffered column reads without pre-buffering: a large row group is read page
    # by page instead of all at once.
    return pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False)


def _parquet_columns(path: Path) -> tuple[list[str], int]:
    pf = _parquet_file(path)
    try:
        return list(pf.schema_arrow.names), pf.metadata.num_rows
    finally:
        pf.close()


def _parquet_batches(path: Path) -> Iterator[pa.RecordBatch]:
    pf = _parquet_file(path)
    try:
        yield from pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, use_threads=False)
    finally:
        pf.close()


# --- Arrow batches -> records ------------------------------------------------


def _batch_records(batch: pa.RecordBatch) -> Iterator[dict[str, Any]]:
    """Rows of one record batch as dicts, converted column by column (fast) but yielded lazily."""
    names = batch.schema.names
    columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
    for values in zip(*columns, strict=True):
        yield dict(zip(names, values, strict=True))


# --- JSONL -------------------------------------------------------------------


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for every non-blank line; a line that is not a JSON object is fatal."""
    with path.open("rb") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ManifestError(f"{path}: line {line_number} is not valid JSON: {exc}") from exc
            if not isinstance(record, dict):
                raise ManifestError(
                    f"{path}: line {line_number} is a JSON {type(record).__name__}, not an object"
                    ' (each line must look like {"id": "...", "text": "..."})'
                )
            yield line_number, record


def _jsonl_columns(path: Path) -> list[str]:
    columns: dict[str, None] = {}
    seen = 0
    for _, record in _jsonl_records(path):
        columns.update(dict.fromkeys(record))
        seen += 1
        if seen >= JSONL_SCHEMA_SAMPLE:
            break
    if seen == 0:
        raise ManifestError(f"{path}: the manifest is empty (no JSON lines)")
    return list(columns)


# --- cells -------------------------------------------------------------------


def _id_text(value: Any) -> str:
    """An id cell as text: ints (even when stored as 3.0) without ".0"; empty cells as ""."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value if value.strip() else ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value.is_integer():
            return str(int(value))
    if isinstance(value, decimal.Decimal) and value == value.to_integral_value():
        return str(int(value))
    return str(value)


def _jsonable(value: Any) -> Any:
    """A carried cell as a JSON-able value (Parquet may hold dates, decimals, bytes)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii")
    return str(value)


def _check_unique(path: Path, columns: list[str]) -> None:
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            raise ManifestError(f"{path}: column {name!r} appears more than once; rename one of them")
        seen.add(name)


def _read_errors() -> tuple[type[BaseException], ...]:
    """What a reader raises for a file it cannot read (Arrow's errors included)."""
    import pyarrow as pa

    return (OSError, ValueError, NotImplementedError, pa.ArrowException)


def _arrow_message(exc: BaseException, limit: int = 300) -> str:
    """A reader's error, shortened (Arrow quotes whole rows) and with a hint where Arrow's is unclear."""
    message = str(exc).strip() or type(exc).__name__
    if len(message) > limit:
        message = message[:limit] + "…"
    if "straddl" in message:
        message += f" (a row is longer than the CSV reader's {CSV_BLOCK_SIZE >> 20} MiB block)"
    return message
