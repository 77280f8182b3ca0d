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
import contextlib
import datetime as dt
import decimal
import io
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, NamedTuple

from batchtts.api.request import OVERRIDABLE_FIELDS, coerce_field
from batchtts.errors import ManifestError

if TYPE_CHECKING:
    import pyarrow as pa

FORMATS_BY_SUFFIX: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
#: A compressed manifest's last suffix -> pyarrow's codec (the suffixes ``pyarrow.Codec.detect``
#: knows). ``lines.csv.gz`` is a gzip-compressed CSV. Parquet is compressed inside, so never here.
COMPRESSIONS: dict[str, str] = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}
#: Compressions pyarrow cannot stream: named in the error, so that it says what to do.
UNSTREAMED_COMPRESSIONS = (".xz", ".lzma", ".zip", ".7z", ".br", ".sz")
#: The formats pyarrow's CSV reader reads, and each one's (delimiter, quote character) by default.
#: TSV quotes nothing: Common Voice's ``validated.tsv`` holds bare ``"`` inside sentences.
DELIMITED_DEFAULTS: dict[str, tuple[str, str | Literal[False]]] = {"csv": (",", '"'), "tsv": ("\t", False)}
#: Delimiters the "no text column" error suggests when a header is one cell holding one of them.
LIKELY_DELIMITERS = (",", ";", "|", "\t")

#: CSV block size. The reader reads up to ~32 blocks ahead, so this bounds its
#: memory (~32 MiB whatever the file's size); it is also the longest single row
#: the reader accepts.
CSV_BLOCK_SIZE = 1 << 20
#: Rows per Parquet record batch.
PARQUET_BATCH_ROWS = 8192
#: JSONL has no header: its columns are the keys of the first this-many records.
JSONL_SCHEMA_SAMPLE = 1000
#: Read buffer over a compressed JSONL stream.
JSONL_BUFFER = 1 << 16


@dataclass(slots=True)
class Row:
    """One manifest row, mapped onto the request schema but not yet validated."""

    number: int  # 1-based data row number (header and blank lines not counted), across a folder's files
    id: str  # from the id column ("" when the cell is empty), else str(number)
    text: Any  # the raw text cell
    fields: dict[str, Any]  # request-field overrides present in this row, coerced; empty cells dropped
    carried: dict[str, Any]  # every other column, as JSON-able python values


@dataclass(frozen=True, slots=True)
class CsvDialect:
    """How a delimited-text manifest (``.csv``, ``.tsv``, compressed or not) splits into rows and cells.

    ``None`` means the extension's default (:data:`DELIMITED_DEFAULTS`): ``,``
    and ``"`` for ``.csv``; a tab and no quoting for ``.tsv``. ``quote=False``
    makes quote characters ordinary text (Common Voice's TSVs, LJSpeech's
    ``metadata.csv``). ``header=False``: the first line is a data row, and
    ``columns`` names the columns (required then, and only then). Raises
    ``ValueError`` for a value no manifest could be read with.
    """

    delimiter: str | None = None
    quote: str | Literal[False] | None = None
    header: bool = True
    columns: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.delimiter is not None:
            _check_char(self.delimiter, "--delimiter")
        if self.quote is not None and self.quote is not False:
            _check_char(self.quote, "--quote")
        if self.columns is not None:
            object.__setattr__(self, "columns", parse_column_names(self.columns))
            if self.header:
                raise ValueError(
                    "--columns names the columns of a file without a header row: add --no-header "
                    "(to read other columns of a file with a header, use --text-column and --id-column)"
                )

    @property
    def is_default(self) -> bool:
        return self == _DEFAULT_DIALECT


_DEFAULT_DIALECT = CsvDialect()


def parse_delimiter(text: str) -> str:
    """A ``--delimiter`` value: one ASCII character; ``tab`` or ``\\t`` for a tab. ValueError otherwise."""
    value = "\t" if text.lower() in ("tab", "\\t") else text
    _check_char(value)
    return value


def parse_quote(text: str) -> str | Literal[False]:
    """A ``--quote`` value: one ASCII character, or ``none`` (False: quotes are ordinary text)."""
    if text.lower() == "none":
        return False
    try:
        _check_char(text)
    except ValueError as exc:
        raise ValueError(f"{exc} (or 'none': quotes are ordinary text)") from None
    return text


def parse_column_names(value: str | Iterable[str]) -> tuple[str, ...]:
    """``id,raw,text`` (or a list of names) -> the names; ValueError for an empty or repeated name."""
    given = value.split(",") if isinstance(value, str) else list(value)
    for name in given:
        if not isinstance(name, str):
            raise ValueError(f"column names must be text, got {name!r}")
    names = tuple(name.strip() for name in given)
    if not names or not all(names):
        raise ValueError(f"column names must be NAME,NAME,... with no empty name, got {','.join(names)!r}")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"column {name!r} is named twice")
        seen.add(name)
    return names


def _check_char(value: str, option: str = "") -> None:
    """One ASCII character, not a line break; the ValueError names ``option`` when given."""
    name = f"{option} " if option else ""
    if len(value) != 1:
        raise ValueError(f"{name}must be one character, got {value!r}")
    if not value.isascii() or value in "\r\n":
        raise ValueError(f"{name}must be an ASCII character other than a line break, got {value!r}")


class _CsvSettings(NamedTuple):
    """A dialect resolved for one file: what pyarrow's CSV reader is told."""

    delimiter: str
    quote: str | Literal[False]
    header: bool
    column_names: tuple[str, ...] | None  # the names given for a file without a header


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
        csv: _CsvSettings | None = None,
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
            with _binary_lines(self.path, self.compression) as handle:
                return sum(1 for line in handle if line.strip())
        import pyarrow.csv as pacsv

        options = _csv_options(self._csv, self.columns)
        options["convert_options"].include_columns = [self.columns[0]]
        count = 0
        with _input(self.path, self.compression) as source, pacsv.open_csv(source, **options) as reader:
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
            except _read_errors() as exc:
                raise ManifestError(
                    f"{reading[0]}: cannot read the manifest after data row {number}: {_arrow_message(exc)}"
                ) from exc
            number += 1
            yield self._row(number, record)

    # --- reading -----------------------------------------------------------

    def _records(self, reading: list[Path]) -> Iterator[dict[str, Any]]:
        """Records (column name -> python value), read a bounded batch at a time."""
        if self.format == "jsonl":
            for _, record in _jsonl_records(self.path, self.compression):
                yield record
            return
        if self._csv is not None:
            for batch in _csv_batches(self.path, self.compression, self._csv, self.columns):
                yield from _batch_records(batch)
            return
        for file in self.files:
            reading[0] = file
            for batch in _parquet_batches(file):
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
    dialect = dialect or _DEFAULT_DIALECT
    if path.is_dir():
        fmt, compression, files = "parquet", None, _parquet_shards(path)
    else:
        fmt, compression = _format_of(path)
        if not path.exists():
            raise ManifestError(f"{path}: no such manifest file")
        if not path.is_file():
            raise ManifestError(f"{path}: not a file")
        files = (path,)

    csv: _CsvSettings | None = None
    if fmt in DELIMITED_DEFAULTS:
        csv = _csv_settings(path, fmt, dialect)
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
            columns, num_rows = _csv_columns(path, compression, csv), None
        elif fmt == "parquet":
            columns, num_rows = _parquet_columns(files)
        else:
            columns, num_rows = _jsonl_columns(path, compression), None
    except ManifestError:
        raise
    except _read_errors() as exc:
        raise ManifestError(f"{path}: cannot read as {fmt.upper()}: {_arrow_message(exc)}") from exc

    _check_unique(path, columns)
    found = ", ".join(repr(c) for c in columns) or "(none)"
    if text_column not in columns:
        hint = _delimiter_hint(columns, csv)
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


def _format_of(path: Path) -> tuple[str, str | None]:
    """(format, pyarrow codec or None) from a file name: ``m.csv`` -> csv; ``m.tsv.gz`` -> tsv, gzip."""
    suffix = path.suffix.lower()
    compression = COMPRESSIONS.get(suffix)
    inner = Path(path.stem).suffix.lower() if compression else suffix
    fmt = FORMATS_BY_SUFFIX.get(inner)
    if fmt is None and suffix in UNSTREAMED_COMPRESSIONS and Path(path.stem).suffix.lower() in FORMATS_BY_SUFFIX:
        raise ManifestError(
            f"{path}: cannot read {suffix!r}-compressed manifests; compress with gzip (.gz), bzip2 (.bz2), "
            "zstd (.zst) or lz4 (.lz4), or decompress it"
        )
    if fmt is None:
        if not suffix and not path.exists():
            raise ManifestError(f"{path}: no such manifest file or folder")
        shown = inner + suffix if compression else suffix
        raise ManifestError(
            f"{path}: unknown manifest extension {shown or '(none)'!r}; use one of {', '.join(FORMATS_BY_SUFFIX)}"
            f" (compressed or not: {', '.join(COMPRESSIONS)}), or a folder of .parquet files"
        )
    if fmt == "parquet" and compression:
        raise ManifestError(f"{path}: a Parquet file is compressed inside; decompress it to a .parquet file")
    if compression is not None:
        import pyarrow as pa

        if not pa.Codec.is_available(compression):
            raise ManifestError(f"{path}: this pyarrow build cannot decompress {compression}; decompress the file")
    return fmt, compression


def _input(path: Path, compression: str | None) -> Any:
    """The file as a pyarrow input stream, decompressed as it is read when ``compression`` is a codec."""
    import pyarrow as pa

    return pa.input_stream(str(path), compression=compression)


def _delimiter_hint(columns: list[str], csv: _CsvSettings | None) -> str | None:
    """When a CSV's header was read as one cell holding another likely delimiter, say which option to use."""
    if csv is None or len(columns) != 1:
        return None
    for candidate in LIKELY_DELIMITERS:
        if candidate != csv.delimiter and candidate in columns[0]:
            shown = "tab" if candidate == "\t" else repr(candidate)
            return f"the header is one column holding {shown}: is the file {shown}-separated? try --delimiter {shown}"
    return None


# --- CSV and TSV -------------------------------------------------------------


def _csv_settings(path: Path, fmt: str, dialect: CsvDialect) -> _CsvSettings:
    delimiter, quote = DELIMITED_DEFAULTS[fmt]
    if dialect.delimiter is not None:
        delimiter = dialect.delimiter
    if dialect.quote is not None:
        quote = dialect.quote
    if quote == delimiter:
        raise ManifestError(
            f"{path}: the delimiter and the quote character are both {delimiter!r}; "
            "choose another one with --delimiter or --quote (--quote none: quotes are ordinary text)"
        )
    return _CsvSettings(delimiter, quote, dialect.header, dialect.columns)


def _csv_options(csv: _CsvSettings, columns: list[str] | None = None, *, probe: bool = False) -> dict[str, Any]:
    """pyarrow's CSV options for ``csv``; with ``columns``, every column read as a string.

    ``probe``: a file without a header gets the names pyarrow makes up (f0, f1, ...), to count its fields.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    read = pacsv.ReadOptions(block_size=CSV_BLOCK_SIZE, encoding="utf8")
    if not csv.header:
        if probe or csv.column_names is None:
            read.autogenerate_column_names = True
        else:
            read.column_names = list(csv.column_names)
    options: dict[str, Any] = {
        "read_options": read,
        # Without quoting a cell cannot hold a line break, and the reader is faster told so.
        "parse_options": pacsv.ParseOptions(
            delimiter=csv.delimiter, quote_char=csv.quote, newlines_in_values=csv.quote is not False
        ),
    }
    if columns is not None:
        # Every column as a string: ids like "007" keep their zeros and a block
        # whose cells look different from the first block's never fails to convert.
        options["convert_options"] = pacsv.ConvertOptions(
            column_types={name: pa.string() for name in columns}, strings_can_be_null=False
        )
    return options


def _csv_columns(path: Path, compression: str | None, csv: _CsvSettings) -> list[str]:
    import pyarrow.csv as pacsv

    with _input(path, compression) as source, pacsv.open_csv(source, **_csv_options(csv, probe=True)) as probe:
        columns = list(probe.schema.names)
        first = next(iter(probe), None) if not csv.header else None  # the first row, for a hint
    if not csv.header:
        fields = len(columns)
        if csv.column_names is None:
            example = ",".join(["id", "text", *(f"c{i}" for i in range(3, fields + 1))][:fields])
            raise ManifestError(
                f"{path}: --no-header needs --columns to name the {fields} column{'s' if fields != 1 else ''}"
                f" of each row, e.g. --columns {example}"
            )
        if len(csv.column_names) != fields:
            cell = first.column(0)[0].as_py() if first is not None and first.num_rows and fields == 1 else None
            hint = _delimiter_hint([str(cell)], csv) if cell is not None else None
            raise ManifestError(
                f"{path}: --columns names {len(csv.column_names)} columns ({','.join(csv.column_names)}) but the"
                f" first row has {fields} field{'s' if fields != 1 else ''}" + (f" ({hint})" if hint else "")
            )
        columns = list(csv.column_names)
    _check_unique(path, columns)
    # Open the string-typed reader once and decode its first block, so that a
    # file broken at its start (bad UTF-8, ragged rows) fails here, before any work.
    with (
        _input(path, compression) as source,
        pacsv.open_csv(source, **_csv_options(csv, columns)) as reader,
        contextlib.suppress(StopIteration),
    ):
        reader.read_next_batch()
    return columns


def _csv_batches(
    path: Path, compression: str | None, csv: _CsvSettings, columns: list[str]
) -> Iterator[pa.RecordBatch]:
    import pyarrow.csv as pacsv

    with _input(path, compression) as source, pacsv.open_csv(source, **_csv_options(csv, columns)) as reader:
        yield from reader


# --- Parquet -----------------------------------------------------------------


def _parquet_shards(folder: Path) -> tuple[Path, ...]:
    """A folder's Parquet files in name order (hidden and ``_``-prefixed files left out, as pyarrow does)."""

    def shards(where: Path) -> list[Path]:
        return sorted(
            (
                p
                for p in where.iterdir()
                if p.suffix.lower() == ".parquet" and not p.name.startswith((".", "_")) and p.is_file()
            ),
            key=lambda p: p.name,
        )

    try:
        files = shards(folder)
        if not files:
            below = [sub.name for sub in sorted(folder.iterdir()) if sub.is_dir() and shards(sub)]
    except OSError as exc:
        raise ManifestError(f"{folder}: cannot list the folder: {exc.strerror or exc}") from exc
    if not files:
        where = f" (its subfolder{'s' if len(below) > 1 else ''} {', '.join(below)} hold{'' if len(below) > 1 else 's'}"
        raise ManifestError(
            f"{folder}: a folder manifest is read as its .parquet files, and it has none"
            + (where + " some: name one of them)" if below else "")
        )
    return tuple(files)


def _parquet_file(path: Path) -> Any:
    import pyarrow.parquet as pq

    # Buffered column reads without pre-buffering: a large row group is read page
    # by page instead of all at once.
    return pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False)


def _parquet_columns(files: tuple[Path, ...]) -> tuple[list[str], int]:
    """The columns (which every file must share) and the row count, from each file's footer."""
    first: tuple[Path, pa.Schema] | None = None
    types: dict[str, tuple[pa.DataType, Path]] = {}  # column -> its type and the file that set it
    rows = 0
    for file in files:
        try:
            pf = _parquet_file(file)
            try:
                schema, rows = pf.schema_arrow, rows + pf.metadata.num_rows
            finally:
                pf.close()
        except _read_errors() as exc:
            raise ManifestError(f"{file}: cannot read as PARQUET: {_arrow_message(exc)}") from exc
        if first is None:
            first = (file, schema)
            types = {field.name: (field.type, file) for field in schema}
        else:
            _check_same_columns(first, file, schema, types)
    assert first is not None
    return list(first[1].names), rows


def _check_same_columns(
    first: tuple[Path, pa.Schema], file: Path, schema: pa.Schema, types: dict[str, tuple[Any, Path]]
) -> None:
    """A folder's file has the first file's columns, in its order, of its types (an all-null column fits any)."""
    import pyarrow as pa

    first_file, first_schema = first
    names, expected = list(schema.names), list(first_schema.names)
    rule = "every file of a folder manifest must have the same columns"
    if names != expected:
        missing = [n for n in expected if n not in names]
        extra = [n for n in names if n not in expected]
        detail = (
            "; ".join(
                [
                    *([f"no column {', '.join(map(repr, missing))}"] if missing else []),
                    *([f"extra column {', '.join(map(repr, extra))}"] if extra else []),
                ]
            )
            or f"the same columns in another order ({', '.join(names)})"
        )
        raise ManifestError(f"{file}: its columns differ from {first_file.name}'s: {detail}; {rule}")
    for field in schema:
        known, where = types[field.name]
        if field.type == known or pa.types.is_null(field.type):
            continue
        if pa.types.is_null(known):
            types[field.name] = (field.type, file)
            continue
        raise ManifestError(
            f"{file}: column {field.name!r} is {field.type} here but {known} in {where.name}; {rule} and types"
        )


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


@contextlib.contextmanager
def _binary_lines(path: Path, compression: str | None) -> Iterator[BinaryIO]:
    """The file opened for reading lines; a compressed one decompressed as it is read (pyarrow's stream)."""
    if compression is None:
        with path.open("rb") as handle:
            yield handle
        return
    with _input(path, compression) as stream:
        yield io.BufferedReader(stream, JSONL_BUFFER)


def _jsonl_records(path: Path, compression: str | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for every non-blank line; a line that is not a JSON object is fatal."""
    with _binary_lines(path, compression) as handle:
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


def _jsonl_columns(path: Path, compression: str | None) -> list[str]:
    columns: dict[str, None] = {}
    seen = 0
    for _, record in _jsonl_records(path, compression):
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
