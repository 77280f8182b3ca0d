"""The rows of a job folder, streamed: from its results manifest (Parquet, CSV, JSON lines) or its journals.

Every source gives the same plain dicts, a block at a time, holding only the
columns a report uses; the QA columns (added by the audio checks) are read
when present, so a job made before them reports the same way without them.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from batchtts.ledger.entry import QA_MEASURES
from batchtts.ledger.journal import final_entries_at
from batchtts.report.folder import JobFolder, ShardPart
from batchtts.storage.names import JOURNAL_NAME, STATE_DIR

#: Columns of the results a report reads (the others are never loaded).
BASE_COLUMNS = (
    "id",
    "row",
    "status",
    "path",
    "attempts",
    "http_status",
    "error",
    "ttfb_ms",
    "total_ms",
    "audio_seconds",
    "voice_id",
    "started_at",
    "finished_at",
    "reused",
)
#: Per-row audio checks, when the job made them; ``qa`` is a list of flags (``;``-joined text in CSV).
QA_COLUMNS = (*QA_MEASURES, "qa")
#: A per-row count of 429 answers, when the journal has it.
RATE_LIMITED_KEY = "rate_limited"
_INTS = frozenset({"row", "attempts", "http_status", RATE_LIMITED_KEY})
_FLOATS = frozenset({"ttfb_ms", "total_ms", "audio_seconds", *QA_COLUMNS[:-1]})
BATCH_ROWS = 4096


def iter_rows(folder: JobFolder, text_columns: tuple[str, ...] = ("text",)) -> Iterator[dict[str, Any]]:
    """Each result row once, as a dict of the report's columns (and ``text`` when the results carry it)."""
    if folder.results is not None:
        yield from _with_rate_limits(folder.results, folder.out_dir / STATE_DIR / JOURNAL_NAME, text_columns)
        return
    if folder.from_parts:
        for part in folder.parts:
            for row in _part_rows(part, text_columns):
                part.counts["rows"] += 1
                part.counts[row["status"] or "unknown"] += 1
                yield row
        return
    for journal in folder.journals:
        for entry in final_entries_at(journal):
            yield _clean(_from_entry(entry, text_columns))


def _part_rows(part: ShardPart, text_columns: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    """A shard part's rows: its results part when it finished, else its journal so far."""
    if part.results is not None:
        yield from _with_rate_limits(part.results, part.journal, text_columns)
    elif part.journal is not None:
        for entry in final_entries_at(part.journal):
            yield _clean(_from_entry(entry, text_columns))


def _with_rate_limits(results: Path, journal: Path | None, text_columns: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    limited = rate_limited_rows(journal) if journal is not None else {}
    for row in _results_rows(results, text_columns):
        if limited and row["rate_limited"] is None:
            row["rate_limited"] = limited.get((row["row"], row["voice_id"]))
        yield row


def rate_limited_rows(journal: Path) -> dict[tuple[int | None, str | None], int]:
    """{(row, voice): 429 answers} from a finished job's journal: the results manifest has no such column.

    Only the lines that name the key are parsed, and only those rows are kept.
    """
    counts: dict[tuple[int | None, str | None], int] = {}
    try:
        handle = open(journal, "rb")  # noqa: SIM115 - closed below
    except OSError:
        return counts
    with handle:
        for line in handle:
            if b'"rate_limited"' not in line or not line.endswith(b"\n"):
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            count = entry.get(RATE_LIMITED_KEY) if isinstance(entry, dict) else None
            if isinstance(count, int) and count > 0:
                counts[(entry.get("row"), entry.get("voice_id"))] = count
    return counts


def _from_entry(entry: dict[str, Any], text_columns: tuple[str, ...]) -> dict[str, Any]:
    row = {name: entry.get(name) for name in (*BASE_COLUMNS, *QA_COLUMNS, RATE_LIMITED_KEY)}
    found = entry.get("carried")
    carried: dict[str, Any] = found if isinstance(found, dict) else {}
    for name in QA_COLUMNS:  # a journal older or newer than this reader may keep them among the carried values
        if row[name] is None and name in carried:
            row[name] = carried[name]
    row["text"] = next((carried[name] for name in text_columns if isinstance(carried.get(name), str)), None)
    return row


def _results_rows(path: Path, text_columns: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        yield from _jsonl_rows(path, text_columns)
        return
    template = dict.fromkeys((*BASE_COLUMNS, *QA_COLUMNS, RATE_LIMITED_KEY, "text"))
    for names, columns, typed in _arrow_batches(path, suffix, text_columns):
        text = next((name for name in text_columns if name in names), None)
        keys = ["text" if name == text else name for name in columns]
        tidy = _tidy if typed else _clean
        for values in zip(*columns.values(), strict=True):
            row = template.copy()
            row.update(zip(keys, values, strict=True))
            yield tidy(row)


def _arrow_batches(
    path: Path, suffix: str, text_columns: tuple[str, ...]
) -> Iterator[tuple[list[str], dict[str, list[Any]], bool]]:
    """(all column names, {wanted column: values}, typed) a block at a time; only wanted columns are decoded.

    ``typed``: the values already have the report's types (a Parquet file as the runner writes it), so
    rows need no conversion, only tidying (:func:`_tidy`); CSV cells are text (:func:`_clean`).
    """
    from batchtts.manifest.arrowpool import use_system_allocator

    use_system_allocator()  # memory freed between blocks goes back to the system (see arrowpool)
    wanted = (*BASE_COLUMNS, *QA_COLUMNS, RATE_LIMITED_KEY, *text_columns)
    if suffix == ".csv":
        import pyarrow as pa
        import pyarrow.csv as pacsv

        with open(path, "rb") as handle:
            header = handle.readline().decode("utf-8-sig", "replace")
        names = next(csv.reader([header]), [])
        picked = [name for name in names if name in wanted]
        options = pacsv.ConvertOptions(
            include_columns=picked, column_types={name: pa.string() for name in picked}, strings_can_be_null=True
        )
        reader = pacsv.open_csv(path, convert_options=options, read_options=pacsv.ReadOptions(block_size=1 << 20))
        for batch in reader:
            yield names, {name: batch.column(name).to_pylist() for name in picked}, False
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    schema = parquet.schema_arrow
    names = schema.names
    picked = [name for name in names if name in wanted]
    typed = all(
        (pa.types.is_integer(schema.field(n).type) if n in _INTS else pa.types.is_floating(schema.field(n).type))
        or pa.types.is_null(schema.field(n).type)
        for n in picked
        if n in _INTS or n in _FLOATS
    ) and all(pa.types.is_list(schema.field(n).type) for n in picked if n == "qa")
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=picked, use_threads=False):
        yield names, {name: batch.column(name).to_pylist() for name in picked}, typed


def _jsonl_rows(path: Path, text_columns: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                row = {name: record.get(name) for name in (*BASE_COLUMNS, *QA_COLUMNS, RATE_LIMITED_KEY)}
                row["text"] = next((record[n] for n in text_columns if isinstance(record.get(n), str)), None)
                yield _clean(row)


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """Typed values whatever the source: numbers from CSV text, ``qa`` as a list of flags."""
    for name in _INTS:
        row[name] = _number(row.get(name), int)
    for name in _FLOATS:
        row[name] = _number(row.get(name), float)
    qa = row.get("qa")
    if isinstance(qa, str):
        text = qa.strip()
        if text.startswith("["):
            try:
                qa = json.loads(text)
            except ValueError:
                qa = [text]
        else:
            qa = [flag.strip() for flag in text.split(";") if flag.strip()]
    row["qa"] = [str(flag) for flag in qa] if isinstance(qa, (list, tuple)) else []
    reused = row.get("reused")
    row["reused"] = reused is True or (isinstance(reused, str) and reused.lower() == "true")
    for name in ("id", "status", "path", "error", "voice_id", "started_at", "finished_at", "text"):
        value = row.get(name)
        row[name] = None if value is None or value == "" else str(value)
    return row


def _tidy(row: dict[str, Any]) -> dict[str, Any]:
    """A row whose values are typed already: ``qa`` a list, ``reused`` a bool, no empty strings."""
    if row["qa"] is None:
        row["qa"] = []
    row["reused"] = row["reused"] is True
    for name in ("path", "error", "voice_id", "text"):
        if row[name] == "":
            row[name] = None
    return row


def _number(value: Any, kind: type) -> Any:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = kind(float(value)) if kind is int else kind(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return None if number != number else number  # NaN: no value
