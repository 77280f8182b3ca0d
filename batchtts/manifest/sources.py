"""Where a manifest's rows come from: its format and compression by name, and one streamed reader
per format (pyarrow's CSV reader for CSV/TSV, Parquet files or a folder of them, JSON lines).

Each reader yields bounded batches or records, so memory stays flat in the number of rows;
:mod:`batchtts.manifest.readers` turns them into rows.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from batchtts.errors import ManifestError, UsageError

if TYPE_CHECKING:
    import pyarrow as pa

from batchtts.manifest.dialect import DELIMITED_DEFAULTS, LIKELY_DELIMITERS, CsvDialect, CsvSettings
from batchtts.storage.objects import object_exists, object_url, open_object

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


def format_of(path: Path) -> tuple[str, str | None]:
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


def open_input(path: Path, compression: str | None) -> Any:
    """The file as a pyarrow input stream, decompressed as it is read when ``compression`` is a codec."""
    import pyarrow as pa

    if object_url(path) is not None:  # s3://, gs://, az://: streamed in blocks, never downloaded whole
        return pa.input_stream(open_object(path), compression=compression)
    return pa.input_stream(str(path), compression=compression)


def check_object(path: Path) -> None:
    """A manifest in an object store is there and readable: else a ManifestError saying why."""
    url = object_url(path)
    try:
        found = object_exists(path)
    except UsageError:
        raise
    except Exception as exc:  # no bucket, no access, no credentials, an unreachable endpoint
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ManifestError(f"{url}: cannot read the manifest: {reason[:300]}") from None
    if not found:
        raise ManifestError(f"{url}: no such manifest object")


def delimiter_hint(columns: list[str], csv: CsvSettings | None) -> str | None:
    """When a CSV's header was read as one cell holding another likely delimiter, say which option to use."""
    if csv is None or len(columns) != 1:
        return None
    for candidate in LIKELY_DELIMITERS:
        if candidate != csv.delimiter and candidate in columns[0]:
            shown = "tab" if candidate == "\t" else repr(candidate)
            return f"the header is one column holding {shown}: is the file {shown}-separated? try --delimiter {shown}"
    return None


# --- CSV and TSV -------------------------------------------------------------


def csv_settings(path: Path, fmt: str, dialect: CsvDialect) -> CsvSettings:
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
    return CsvSettings(delimiter, quote, dialect.header, dialect.columns)


def csv_options(csv: CsvSettings, columns: list[str] | None = None, *, probe: bool = False) -> dict[str, Any]:
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


def csv_columns(path: Path, compression: str | None, csv: CsvSettings) -> list[str]:
    import pyarrow.csv as pacsv

    with open_input(path, compression) as source, pacsv.open_csv(source, **csv_options(csv, probe=True)) as probe:
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
            hint = delimiter_hint([str(cell)], csv) if cell is not None else None
            raise ManifestError(
                f"{path}: --columns names {len(csv.column_names)} columns ({','.join(csv.column_names)}) but the"
                f" first row has {fields} field{'s' if fields != 1 else ''}" + (f" ({hint})" if hint else "")
            )
        columns = list(csv.column_names)
    check_unique(path, columns)
    # Open the string-typed reader once and decode its first block, so that a
    # file broken at its start (bad UTF-8, ragged rows) fails here, before any work.
    with (
        open_input(path, compression) as source,
        pacsv.open_csv(source, **csv_options(csv, columns)) as reader,
        contextlib.suppress(StopIteration),
    ):
        reader.read_next_batch()
    return columns


def csv_batches(path: Path, compression: str | None, csv: CsvSettings, columns: list[str]) -> Iterator[pa.RecordBatch]:
    import pyarrow.csv as pacsv

    with open_input(path, compression) as source, pacsv.open_csv(source, **csv_options(csv, columns)) as reader:
        yield from reader


# --- Parquet -----------------------------------------------------------------


def parquet_shards(folder: Path) -> tuple[Path, ...]:
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


def parquet_file(path: Path) -> Any:
    import pyarrow.parquet as pq

    # Buffered column reads without pre-buffering: a large row group is read page
    # by page instead of all at once.
    source = open_object(path) if object_url(path) is not None else path
    return pq.ParquetFile(source, buffer_size=1 << 20, pre_buffer=False)


def parquet_columns(files: tuple[Path, ...]) -> tuple[list[str], int]:
    """The columns (which every file must share) and the row count, from each file's footer."""
    first: tuple[Path, pa.Schema] | None = None
    types: dict[str, tuple[pa.DataType, Path]] = {}  # column -> its type and the file that set it
    rows = 0
    for file in files:
        try:
            pf = parquet_file(file)
            try:
                schema, rows = pf.schema_arrow, rows + pf.metadata.num_rows
            finally:
                pf.close()
        except read_errors() as exc:
            raise ManifestError(f"{file}: cannot read as PARQUET: {arrow_message(exc)}") from exc
        if first is None:
            first = (file, schema)
            types = {field.name: (field.type, file) for field in schema}
        else:
            check_same_columns(first, file, schema, types)
    assert first is not None
    return list(first[1].names), rows


def check_same_columns(
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


def parquet_batches(path: Path) -> Iterator[pa.RecordBatch]:
    pf = parquet_file(path)
    try:
        yield from pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, use_threads=False)
    finally:
        pf.close()


# --- Arrow batches -> records ------------------------------------------------


def batch_records(batch: pa.RecordBatch) -> Iterator[dict[str, Any]]:
    """Rows of one record batch as dicts, converted column by column (fast) but yielded lazily."""
    names = batch.schema.names
    columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
    for values in zip(*columns, strict=True):
        yield dict(zip(names, values, strict=True))


# --- JSONL -------------------------------------------------------------------


@contextlib.contextmanager
def binary_lines(path: Path, compression: str | None) -> Iterator[BinaryIO]:
    """The file opened for reading lines; a compressed one decompressed as it is read (pyarrow's stream)."""
    if compression is None and object_url(path) is None:
        with path.open("rb") as handle:
            yield handle
        return
    with open_input(path, compression) as stream:
        yield io.BufferedReader(stream, JSONL_BUFFER)


def jsonl_records(path: Path, compression: str | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for every non-blank line; a line that is not a JSON object is fatal."""
    with binary_lines(path, compression) as handle:
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


def jsonl_columns(path: Path, compression: str | None) -> list[str]:
    columns: dict[str, None] = {}
    seen = 0
    for _, record in jsonl_records(path, compression):
        columns.update(dict.fromkeys(record))
        seen += 1
        if seen >= JSONL_SCHEMA_SAMPLE:
            break
    if seen == 0:
        raise ManifestError(f"{path}: the manifest is empty (no JSON lines)")
    return list(columns)


# --- cells -------------------------------------------------------------------


def read_errors() -> tuple[type[BaseException], ...]:
    """What a reader raises for a file it cannot read (Arrow's errors included)."""
    import pyarrow as pa

    return (OSError, ValueError, NotImplementedError, pa.ArrowException)


def arrow_message(exc: BaseException, limit: int = 300) -> str:
    """A reader's error, shortened (Arrow quotes whole rows) and with a hint where Arrow's is unclear."""
    message = str(exc).strip() or type(exc).__name__
    if len(message) > limit:
        message = message[:limit] + "…"
    if "straddl" in message:
        message += f" (a row is longer than the CSV reader's {CSV_BLOCK_SIZE >> 20} MiB block)"
    return message


def check_unique(path: Path, columns: list[str]) -> None:
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            raise ManifestError(f"{path}: column {name!r} appears more than once; rename one of them")
        seen.add(name)
