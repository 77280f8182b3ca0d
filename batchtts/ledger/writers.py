"""The results manifest: journal entries written as Parquet, CSV or JSON lines, ordered by row.

Written from the journal at the end of a run (:func:`write_journal_results`),
whole or not at all (temp file + rename), in batches so memory does not grow
with the row count. The schema is fixed up front: the fixed columns of
:mod:`batchtts.ledger.entry`, optional ones, then the manifest's carried
columns, typed from the manifest or inferred from the journal. This module is
the only one that imports pyarrow for results.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from batchtts.errors import UsageError
from batchtts.ledger.entry import OPTIONAL_COLUMNS, QA_FLAG_COLUMNS, RESULT_COLUMNS, json_default
from batchtts.ledger.journal import Journal, final_entries
from batchtts.storage.files import atomic_file
from batchtts.storage.names import RESULTS_SUFFIXES

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

_INT_COLUMNS = frozenset({"row", "attempts", "http_status", "audio_bytes", "sample_rate", "parts"})
_LIST_COLUMNS = frozenset({"part_request_ids", "qa"})
_FLOAT_COLUMNS = frozenset({"ttfb_ms", "total_ms", "audio_seconds"}) | {
    "seconds_per_char", "leading_silence_s", "trailing_silence_s", "longest_silence_s", "peak_dbfs", "rms_dbfs",
    "clipped_share",
}  # fmt: skip
_BOOL_COLUMNS = frozenset({"reused", *QA_FLAG_COLUMNS})
#: List columns written in CSV as their items joined with ``;`` (not as JSON text).
_JOINED_IN_CSV = frozenset({"qa"})
#: A carried column named like a fixed column is written as ``input_<name>``.
CLASH_PREFIX = "input_"
#: Results manifest formats, by file extension.
RESULT_FORMATS: dict[str, str] = {suffix: suffix[1:] for suffix in RESULTS_SUFFIXES}
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
    fields = [pa.field(name, _fixed_type(name, for_csv=for_csv)) for name in RESULT_COLUMNS]
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


def infer_carried_types(entries: Iterable[Mapping[str, Any]], carried_columns: Sequence[str]) -> dict[str, pa.DataType]:
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
            if name in _JOINED_IN_CSV and pa.types.is_string(schema_field.type):
                values = [";".join(map(str, v)) if isinstance(v, list) else v for v in values]
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
    log.warning("results column %r: %d value(s) are not %s and were written as null", column, dropped, data_type)
    return pa.concat_arrays(pieces)


def _valid_utf8(text: str | None) -> str | None:
    return None if text is None else text.encode("utf-8", "backslashreplace").decode("utf-8")


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=json_default)


def with_pandas_metadata(schema: pa.Schema) -> pa.Schema:
    """``schema`` with the metadata pandas reads, so integer columns with gaps (``http_status`` of a row
    that got no answer) come back as pandas' nullable ``Int64``, not float64; Arrow, polars and
    DuckDB readers ignore it."""
    import pyarrow as pa

    # Only the integer columns: pandas converts the others by their Arrow type, as without metadata.
    integers = [field.name for field in schema if pa.types.is_integer(field.type)]
    document = {
        "index_columns": [],
        "column_indexes": [],
        "columns": [
            {"name": name, "field_name": name, "pandas_type": "int64", "numpy_type": "Int64", "metadata": None}
            for name in integers
        ],
        "creator": {"library": "batchtts"},
        "pandas_version": "2.0.0",
    }
    return schema.with_metadata({b"pandas": json.dumps(document).encode("utf-8")})


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

            self._writer = pq.ParquetWriter(handle, with_pandas_metadata(schema))
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
            text = json.dumps(_finite(record), ensure_ascii=False, allow_nan=False, default=json_default)
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
