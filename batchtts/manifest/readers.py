"""Streaming manifest readers: CSV, TSV, Parquet and JSONL rows in, :class:`Row` objects out.

A manifest may hold millions of rows, so no reader ever loads a whole file:
CSV, TSV and Parquet are read as pyarrow record batches of bounded size (each
becomes ``Row`` objects lazily), JSONL line by line. Memory stays flat in the
number of rows.

The manifest is a file chosen by its extension (:data:`FORMATS_BY_SUFFIX`),
optionally compressed (:data:`COMPRESSIONS`, e.g. ``validated.tsv.gz``:
decompressed as it is read, by pyarrow's compressed input stream), or a folder
of Parquet files read as one manifest (a Hugging Face dataset's shards: files
in name order, rows in file order, row numbers running on across files).
How delimited text is split into cells (delimiter, quoting, header) is a
:class:`CsvDialect`.

Column mapping: the text column (``text`` unless named), the id column (``id``
when present unless named; else the row number), columns named like a request
field (:data:`batchtts.api.request.OVERRIDABLE_FIELDS`) override the command-line
defaults for their row, and every other column is carried through untouched.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchtts.api.request import OVERRIDABLE_FIELDS, coerce_field
from batchtts.errors import ManifestError
from batchtts.manifest.dialect import DEFAULT_DIALECT, DELIMITED_DEFAULTS, CsvDialect, CsvSettings
from batchtts.manifest.sources import (
    arrow_message,
    batch_records,
    binary_lines,
    check_object,
    check_unique,
    csv_batches,
    csv_columns,
    csv_options,
    csv_settings,
    delimiter_hint,
    format_of,
    jsonl_columns,
    jsonl_records,
    open_input,
    parquet_batches,
    parquet_columns,
    parquet_shards,
    read_errors,
)
from batchtts.storage.objects import object_url

if TYPE_CHECKING:
    pass


@dataclass(slots=True)
class Row:
    """One manifest row, mapped onto the request schema but not yet validated."""

    number: int  # 1-based data row number (header and blank lines not counted), across a folder's files
    id: str  # from the id column ("" when the cell is empty), else str(number)
    text: Any  # the raw text cell
    fields: dict[str, Any]  # request-field overrides present in this row, coerced; empty cells dropped
    carried: dict[str, Any]  # every other column, as JSON-able python values


class Manifest:
    """An opened manifest: its columns are known, its rows are read on iteration.

    Iterating twice reads the file(s) twice; nothing is cached.
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
        files: tuple[Path, ...] | None = None,
        compression: str | None = None,
        csv: CsvSettings | None = None,
    ) -> None:
        self.path = path
        #: ``csv``, ``tsv``, ``parquet`` or ``jsonl``.
        self.format = format
        self.columns = columns
        self.text_column = text_column
        #: The column ids come from, or None when ids are row numbers.
        self.id_column = id_column
        #: The files read, in order: the manifest itself, or a folder's Parquet files in name order.
        self.files: tuple[Path, ...] = files or (path,)
        #: pyarrow's codec name for a compressed manifest (``gzip``, ``zstd``, ...), else None.
        self.compression = compression
        self.override_columns: list[str] = [c for c in columns if c in OVERRIDABLE_FIELDS and c != text_column]
        self.carried_columns: list[str] = [
            c for c in columns if c not in (text_column, id_column) and c not in OVERRIDABLE_FIELDS
        ]
        self._num_rows = num_rows
        self._csv = csv

    def __repr__(self) -> str:
        return f"Manifest({str(self.path)!r}, format={self.format!r}, columns={self.columns!r})"

    def describe(self) -> str:
        """How the manifest is read, for people: ``CSV``, ``TSV, gzip``, ``PARQUET, folder of 3 files``,
        ``CSV, delimiter '|', quotes not special, no header``."""
        parts = [self.format.upper()]
        if self.compression:
            parts.append(self.compression)
        if self.path.is_dir():
            parts.append(f"folder of {len(self.files)} file{'s' if len(self.files) != 1 else ''}")
        if self._csv is not None:
            delimiter, quote = DELIMITED_DEFAULTS[self.format]
            if self._csv.delimiter != delimiter:
                parts.append(f"delimiter {'tab' if self._csv.delimiter == chr(9) else repr(self._csv.delimiter)}")
            if self._csv.quote != quote:
                parts.append("quotes not special" if self._csv.quote is False else f"quote {self._csv.quote!r}")
            if not self._csv.header:
                parts.append("no header")
        return ", ".join(parts)

    def count_rows(self) -> int | None:
        """The number of data rows when the format records it (Parquet: the files' metadata), else None."""
        return self._num_rows

    def scan_row_count(self) -> int:
        """Count the data rows by a quick pass (one column of a CSV, lines of a JSONL).

        For the progress display's total and ETA; runs in a thread beside the
        job, so a broken row is not this pass's business: it stops counting.
        A compressed manifest is decompressed again for the count.
        """
        if self._num_rows is not None:
            return self._num_rows
        if self._csv is None:  # JSONL
            with binary_lines(self.path, self.compression) as handle:
                return sum(1 for line in handle if line.strip())
        import pyarrow.csv as pacsv

        options = csv_options(self._csv, self.columns)
        options["convert_options"].include_columns = [self.columns[0]]
        count = 0
        with open_input(self.path, self.compression) as source, pacsv.open_csv(source, **options) as reader:
            for batch in reader:
                count += batch.num_rows
        return count

    def __iter__(self) -> Iterator[Row]:
        reading = [self.path]  # the file being read, for the error message (a folder's current file)
        records = self._records(reading)
        number = 0
        while True:
            try:
                record = next(records)
            except StopIteration:
                return
            except ManifestError:
                raise
            except read_errors() as exc:
                raise ManifestError(
                    f"{reading[0]}: cannot read the manifest after data row {number}: {arrow_message(exc)}"
                ) from exc
            number += 1
            yield self._row(number, record)

    # --- reading -----------------------------------------------------------

    def _records(self, reading: list[Path]) -> Iterator[dict[str, Any]]:
        """Records (column name -> python value), read a bounded batch at a time."""
        if self.format == "jsonl":
            for _, record in jsonl_records(self.path, self.compression):
                yield record
            return
        if self._csv is not None:
            for batch in csv_batches(self.path, self.compression, self._csv, self.columns):
                yield from batch_records(batch)
            return
        for file in self.files:
            reading[0] = file
            for batch in parquet_batches(file):
                yield from batch_records(batch)

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


def open_manifest(
    path: str | Path,
    *,
    text_column: str = "text",
    id_column: str | None = None,
    dialect: CsvDialect | None = None,
) -> Manifest:
    """Open a manifest (a file, by its extension, or a folder of Parquet files), reading only its schema
    and first block.

    ``id_column=None`` means "use column ``id`` when present, else the row
    number". ``dialect`` says how a CSV or TSV splits into cells (for other
    formats it must be left at its defaults). Raises :class:`ManifestError`
    (saying what to do) for a missing file, an unknown extension, unreadable
    content, options that do not fit the file, or a missing text column (or id
    column, when one was named).
    """
    path = Path(path)
    dialect = dialect or DEFAULT_DIALECT
    if object_url(path) is not None:
        fmt, compression = format_of(path)
        files: tuple[Path, ...] = (path,)
        check_object(path)
    elif path.is_dir():
        fmt, compression, files = "parquet", None, parquet_shards(path)
    else:
        fmt, compression = format_of(path)
        if not path.exists():
            raise ManifestError(f"{path}: no such manifest file")
        if not path.is_file():
            raise ManifestError(f"{path}: not a file")
        files = (path,)

    csv: CsvSettings | None = None
    if fmt in DELIMITED_DEFAULTS:
        csv = csv_settings(path, fmt, dialect)
    elif not dialect.is_default:
        given = [
            option
            for option, unset in (
                ("--delimiter", dialect.delimiter is None),
                ("--quote", dialect.quote is None),
                ("--no-header", dialect.header),
                ("--columns", dialect.columns is None),
            )
            if not unset
        ]
        raise ManifestError(
            f"{path}: {', '.join(given)} only appl{'ies' if len(given) == 1 else 'y'} to CSV and TSV manifests,"
            f" not {fmt.upper()}"
        )

    try:
        if csv is not None:
            columns, num_rows = csv_columns(path, compression, csv), None
        elif fmt == "parquet":
            columns, num_rows = parquet_columns(files)
        else:
            columns, num_rows = jsonl_columns(path, compression), None
    except ManifestError:
        raise
    except read_errors() as exc:
        raise ManifestError(f"{path}: cannot read as {fmt.upper()}: {arrow_message(exc)}") from exc

    check_unique(path, columns)
    found = ", ".join(repr(c) for c in columns) or "(none)"
    if text_column not in columns:
        hint = delimiter_hint(columns, csv)
        raise ManifestError(
            f"{path}: no text column {text_column!r}; columns found: {found} "
            f"({hint or 'choose one with --text-column'})"
        )
    if id_column is not None and id_column not in columns:
        raise ManifestError(
            f"{path}: no id column {id_column!r}; columns found: {found} "
            "(choose one with --id-column, or leave it out to number the rows)"
        )
    if id_column is None and "id" in columns:
        id_column = "id"
    return Manifest(
        path,
        fmt,
        columns,
        text_column=text_column,
        id_column=id_column,
        num_rows=num_rows,
        files=files,
        compression=compression,
        csv=csv,
    )


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
