"""The journal survives crashes; the results manifest has a stable schema in every format."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq
import pytest

from batchtts.errors import UsageError
from batchtts.ledger import journal as journal_module
from batchtts.ledger import writers as writers_module
from batchtts.ledger.entry import RESULT_COLUMNS, VARIANT_KEY, RowResult, to_iso_utc, utc_now_iso
from batchtts.ledger.journal import Journal, final_entries
from batchtts.ledger.writers import (
    infer_carried_types,
    output_names,
    results_schema,
    write_journal_results,
    write_results,
)

FORMATS = ("parquet", "csv", "jsonl")


def ok_row(number: int, row_id: str | None = None, **carried: Any) -> RowResult:
    return RowResult(
        id=row_id or f"r{number}",
        row=number,
        status="ok",
        path=f"audio/r{number}.wav",
        request_id=f"req-{number}",
        server_request_id=None,
        attempts=1,
        http_status=200,
        ttfb_ms=12.5,
        total_ms=80.25,
        audio_seconds=1.5,
        audio_bytes=48000,
        sample_rate=16000,
        output_format="pcm",
        voice_id="magnus",
        started_at="2025-01-31T12:00:00.000Z",
        finished_at="2025-01-31T12:00:00.080Z",
        carried=carried,
    )


def failed_row(
    number: int, row_id: str | None = None, error: str = "text: must not be empty", **carried: Any
) -> RowResult:
    return RowResult(id=row_id or f"r{number}", row=number, status="failed", error=error, attempts=0, carried=carried)


def _csv_list(column: str, text: str | None) -> list[str] | None:
    if text is None:
        return None
    if column == "qa":
        return text.split(";") if text else []
    return json.loads(text)


def read_back(path: Path, schema: pa.Schema) -> pa.Table:
    """Read a results file the way a user would, telling CSV/JSONL the schema they cannot carry."""
    if path.suffix == ".parquet":
        return pq.read_table(path)
    if path.suffix == ".csv":
        # CSV has no lists: a list column is text (qa: its flags joined with ";", others: JSON).
        as_text = pa.schema([pa.field(f.name, pa.string()) if pa.types.is_list(f.type) else f for f in schema])
        options = pacsv.ConvertOptions(column_types=as_text, strings_can_be_null=True)
        table = pacsv.read_csv(path, convert_options=options)
        for index, field in enumerate(schema):
            if pa.types.is_list(field.type):
                texts = table.column(index).to_pylist()
                values = [_csv_list(field.name, text) for text in texts]
                table = table.set_column(index, field, pa.array(values, type=field.type))
        return table
    return pajson.read_json(path, parse_options=pajson.ParseOptions(explicit_schema=schema))


# --- columns and timestamps ----------------------------------------------------------


def test_columns_are_the_issue_columns_in_order_then_the_resume_marker() -> None:
    assert RESULT_COLUMNS == (
        "id", "row", "status", "path", "request_id", "server_request_id", "server_session_id", "attempts",
        "http_status", "error", "ttfb_ms", "total_ms", "audio_seconds", "audio_bytes", "sample_rate",
        "output_format", "voice_id", "started_at", "finished_at", "reused", "content_expiry",
        "seconds_per_char", "leading_silence_s", "trailing_silence_s", "longest_silence_s", "peak_dbfs",
        "rms_dbfs", "clipped_share", "qa", "silent", "truncated", "overlong", "clipped", "long_silence",
    )  # fmt: skip
    assert [f.name for f in dataclasses.fields(RowResult)] == [*RESULT_COLUMNS, "carried", "extra"]


def test_timestamps_are_utc_iso_with_milliseconds_and_z() -> None:
    stamp = utc_now_iso()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)
    assert datetime.fromisoformat(stamp).utcoffset().total_seconds() == 0
    from datetime import timedelta, timezone

    later = datetime(2025, 1, 31, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert to_iso_utc(later) == "2025-01-31T12:00:00.123Z"
    assert to_iso_utc(datetime(2025, 1, 31, 12, 0)) == "2025-01-31T12:00:00.000Z"


def test_schema_types() -> None:
    schema = results_schema(["speaker"])
    types = {f.name: f.type for f in schema}
    assert types["row"] == types["attempts"] == types["http_status"] == types["audio_bytes"] == pa.int64()
    assert types["sample_rate"] == pa.int64()
    assert types["ttfb_ms"] == types["total_ms"] == types["audio_seconds"] == pa.float64()
    assert types["id"] == types["started_at"] == types["finished_at"] == types["error"] == pa.string()
    assert schema.names[-1] == "speaker"


def test_carried_names_that_clash_get_a_prefix() -> None:
    assert output_names(["status", "speaker", "input_status", "path", "speaker"]) == [
        ("status", "input_input_status"),
        ("speaker", "speaker"),
        ("input_status", "input_status"),
        ("path", "input_path"),
    ]


# --- journal -------------------------------------------------------------------------


def test_journal_round_trip_and_each_row_is_flushed_at_once(tmp_path: Path) -> None:
    path = tmp_path / ".batchtts" / "journal.jsonl"
    journal = Journal(path)
    journal.append(ok_row(1, speaker="anna", tags=["a", "b"]))
    journal.append(failed_row(2, row_id="ünï ✓"))
    # Another process sees both rows before any close or flush.
    lines = path.read_bytes().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["r1", "ünï ✓"]
    entries = list(journal.iter_entries())
    journal.close()
    assert entries[0] == {
        **{k: v for k, v in dataclasses.asdict(ok_row(1)).items() if k not in ("carried", "extra")},
        "carried": {"speaker": "anna", "tags": ["a", "b"]},
    }
    assert entries[1]["status"] == "failed" and entries[1]["error"] == "text: must not be empty"
    with Journal(path) as reopened:  # reopening appends, loses nothing
        assert list(reopened.iter_entries()) == entries


def test_fsync_in_batches_and_on_close(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(journal_module.os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd))[1])
    journal = Journal(tmp_path / "j.jsonl", fsync_every=3, fsync_seconds=3600)
    for number in range(1, 8):
        journal.append(ok_row(number))
    assert len(calls) == 2  # after rows 3 and 6
    journal.close()
    assert len(calls) == 3
    timed = Journal(tmp_path / "k.jsonl", fsync_every=1000, fsync_seconds=0)
    timed.append(ok_row(1))
    timed.append(ok_row(2))
    assert len(calls) == 5  # every append once the interval has passed
    timed.close()


def test_torn_last_line_is_ignored_then_removed(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal(path) as journal:
        journal.append(ok_row(1))
        journal.append(ok_row(2))
    whole = path.read_bytes()
    with open(path, "ab") as handle:  # a crash in the middle of writing row 3
        handle.write(b'{"id":"r3","row":3,"status":"o')
    with open(path, "rb") as handle:
        assert [e["id"] for _, e in journal_module._read_entries(path)] == ["r1", "r2"]
        assert handle.read().endswith(b'"o')
    with Journal(path) as journal:  # the next run starts clean
        assert path.read_bytes() == whole
        journal.append(ok_row(3))
        assert [e["id"] for e in journal.iter_entries()] == ["r1", "r2", "r3"]


def test_a_torn_journal_with_no_complete_line(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b'{"id":"r1","ro')
    with Journal(path) as journal:
        assert list(journal.iter_entries()) == []
        journal.append(ok_row(1))
    with Journal(path) as journal:
        assert [e["id"] for e in journal.iter_entries()] == ["r1"]


def test_unreadable_lines_in_the_middle_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal(path) as journal:
        journal.append(ok_row(1))
    with open(path, "ab") as handle:
        handle.write(b"not json\n\n[1, 2]\n\xff\xfe\n")
    with Journal(path) as journal:
        journal.append(ok_row(2))
        assert [e["id"] for e in journal.iter_entries()] == ["r1", "r2"]
        assert [e["id"] for e in final_entries(journal)] == ["r1", "r2"]


def test_lone_surrogates_survive_the_journal_and_the_results(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.jsonl") as journal:
        journal.append(failed_row(1, row_id="bad\ud800id", note="x\udcffy"))
        assert [e["id"] for e in final_entries(journal)] == ["bad\ud800id"]
        for fmt in FORMATS:
            assert write_journal_results(journal, tmp_path / f"r.{fmt}", carried_columns=["note"]) == 1
    assert pq.read_table(tmp_path / "r.parquet").column("id").to_pylist() == ["bad\\ud800id"]


@pytest.mark.parametrize(
    "entry",
    [{"a": 1.5, "b": [1, None, True], "c": "é"}, {"a": float("inf")}, {"a": 2**70}, {"a": "x\ud800y"}, {"a": -(2**63)}],
)
def test_journal_lines_parse_as_json_reads_them(entry: dict[str, Any]) -> None:
    """orjson first, json for what orjson refuses (infinities, big ints, lone surrogates): the same values."""
    line = journal_module._encode_line(entry)
    assert journal_module.parse_line(line) == json.loads(line.decode("utf-8", "surrogatepass")) == entry


# --- final entries ---------------------------------------------------------------------


def test_last_entry_per_row_wins_in_row_order(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal(path) as journal:  # first run: rows finish out of order
        for number in (3, 1, 4, 2):
            journal.append(failed_row(number, error=f"first run {number}"))
        journal.append(failed_row(5, row_id="r1", error="duplicate id 'r1' (first at row 1)"))
    with Journal(path) as journal:  # second run retries rows 1 and 4
        journal.append(ok_row(4))
        journal.append(ok_row(1))
        entries = list(final_entries(journal))
    assert [(e["row"], e["id"], e["status"]) for e in entries] == [
        (1, "r1", "ok"),
        (2, "r2", "failed"),
        (3, "r3", "failed"),
        (4, "r4", "ok"),
        (5, "r1", "failed"),  # a repeated id keeps its own row
    ]
    assert entries[1]["error"] == "first run 2"


@pytest.mark.parametrize("window", [1, 4, 512])
def test_stragglers_and_rewrites_land_in_row_order_with_the_latest_winning(tmp_path, monkeypatch, window) -> None:
    """A run's journal: rows a few places late, some far late, pending rows written then finished."""
    import random

    monkeypatch.setattr(journal_module, "ORDER_WINDOW", window)
    rng = random.Random(window)
    numbers = list(range(1, 401))
    for start in range(0, 400, 8):  # workers finish rows a few places out of order
        block = numbers[start : start + 8]
        rng.shuffle(block)
        numbers[start : start + 8] = block
    stragglers = [numbers.pop(rng.randrange(len(numbers))) for _ in range(20)]  # finish after everything
    expected: dict[tuple[int, int | None], str] = {}
    with Journal(tmp_path / "j.jsonl") as journal:
        for number in numbers:
            journal.append(failed_row(number, error=f"first {number}"))
            expected[(number, None)] = f"first {number}"
        for number in stragglers:
            journal.append(failed_row(number, error=f"late {number}"))
            expected[(number, None)] = f"late {number}"
        for number in (5, 250, *stragglers[:3]):  # written again: the later entry wins, wherever each one sits
            journal.append(failed_row(number, error=f"again {number}"))
            expected[(number, None)] = f"again {number}"
        for variant in (1, 0):  # a fan-out's variants of row 7, in variant order
            result = failed_row(7, error=f"variant {variant}")
            result.extra[VARIANT_KEY] = variant
            journal.append(result)
            expected[(7, variant)] = f"variant {variant}"
        entries = list(final_entries(journal))
    assert [(e["row"], e.get("variant"), e["error"]) for e in entries] == [
        (row, variant, error)
        for (row, variant), error in sorted(
            expected.items(), key=lambda i: (i[0][0], -1 if i[0][1] is None else i[0][1])
        )
    ]


def test_final_entries_of_an_empty_journal(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.jsonl") as journal:
        assert list(final_entries(journal)) == []


# --- results manifest -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_results_read_back_with_the_right_types(tmp_path: Path, fmt: str) -> None:
    entries = [
        ok_row(1, speaker="anna", age=31).to_entry(),
        failed_row(2, speaker=None, age=None).to_entry(),
    ]
    path = tmp_path / f"results.{fmt}"
    types = {"age": pa.int64()}
    assert write_results(entries, path, carried_columns=["speaker", "age"], carried_types=types) == 2
    schema = results_schema(["speaker", "age"], types)
    table = read_back(path, schema)
    assert table.schema.equals(schema)
    rows = table.to_pylist()
    assert rows[0] == {
        **{k: v for k, v in entries[0].items() if k != "carried"},
        "speaker": "anna",
        "age": 31,
    }
    assert rows[1]["status"] == "failed" and rows[1]["path"] is None and rows[1]["http_status"] is None
    assert rows[1]["error"] == "text: must not be empty" and rows[1]["age"] is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_all_null_columns_keep_their_type(tmp_path: Path, fmt: str) -> None:
    entries = [failed_row(n, note=None).to_entry() for n in (1, 2, 3)]
    path = tmp_path / f"results.{fmt}"
    write_results(entries, path, carried_columns=["note"])
    schema = results_schema(["note"])
    table = read_back(path, schema)
    assert table.schema.equals(schema)
    assert table.column("http_status").null_count == 3
    if fmt == "parquet":  # the file itself says so, no schema needed to read it
        assert pq.read_schema(path).field("ttfb_ms").type == pa.float64()
        assert pq.read_schema(path).field("note").type == pa.string()


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_empty_job_writes_the_columns(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"results.{fmt}"
    assert write_results([], path, carried_columns=["speaker"]) == 0
    assert path.exists()
    if fmt == "parquet":
        assert pq.read_table(path).schema.equals(results_schema(["speaker"]))
    elif fmt == "csv":
        assert path.read_text().strip().split(",")[:2] == ['"id"', '"row"']


@pytest.mark.parametrize("fmt", FORMATS)
def test_carried_columns_follow_the_fixed_ones(tmp_path: Path, fmt: str) -> None:
    entries = [
        ok_row(1, status="draft", when="2024-05-01T10:00:00+00:00", tags=["x", "y"], score=0.5).to_entry(),
        ok_row(2, status=None, when=None, tags=[], score=2).to_entry(),
    ]
    types = {
        "when": pa.timestamp("us", tz="UTC"),
        "tags": pa.list_(pa.string()),
        "score": pa.float64(),
        "status": pa.dictionary(pa.int32(), pa.string()),
    }
    path = tmp_path / f"results.{fmt}"
    write_results(entries, path, carried_columns=["status", "when", "tags", "score"], carried_types=types)
    schema = results_schema(["status", "when", "tags", "score"], types, for_csv=fmt == "csv")
    table = read_back(path, schema)
    assert table.column_names == [*RESULT_COLUMNS, "input_status", "when", "tags", "score"]
    assert table.column("status").to_pylist() == ["ok", "ok"]
    assert table.column("input_status").to_pylist() == ["draft", None]
    assert table.column("when").to_pylist()[0] == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert table.column("score").to_pylist() == [0.5, 2.0]
    tags = table.column("tags").to_pylist()
    assert tags == (['["x", "y"]', "[]"] if fmt == "csv" else [["x", "y"], []])  # CSV: JSON text


def test_untyped_carried_values_are_text(tmp_path: Path) -> None:
    entries = [
        ok_row(1, extra=7).to_entry(),
        ok_row(2, extra={"a": 1}).to_entry(),
        ok_row(3, extra="x").to_entry(),
    ]
    write_results(entries, tmp_path / "r.parquet", carried_columns=["extra"])
    assert pq.read_table(tmp_path / "r.parquet").column("extra").to_pylist() == ["7", '{"a": 1}', "x"]


def test_values_that_do_not_fit_their_type_become_null(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    entries = [ok_row(1, n=5).to_entry(), ok_row(2, n="five").to_entry(), ok_row(3, n=6.0).to_entry()]
    write_results(entries, tmp_path / "r.parquet", carried_columns=["n"], carried_types={"n": pa.int64()})
    assert pq.read_table(tmp_path / "r.parquet").column("n").to_pylist() == [5, None, 6]
    assert "written as null" in caplog.text


def test_jsonl_writes_nan_as_null(tmp_path: Path) -> None:
    entry = ok_row(1, x=float("nan")).to_entry()
    write_results([entry], tmp_path / "r.jsonl", carried_columns=["x"], carried_types={"x": pa.float64()})
    assert json.loads((tmp_path / "r.jsonl").read_text())["x"] is None


def test_infer_carried_types() -> None:
    entries = [
        {
            "carried": {
                "b": True,
                "i": 1,
                "f": 1,
                "s": "x",
                "mixed": 1,
                "n": None,
                "nested": [1],
                "big": 2**70,
            }
        },
        {"carried": {"b": False, "i": None, "f": 2.5, "s": None, "mixed": "y", "nested": {"a": 1}, "big": 1}},
        {"carried": {}},
    ]
    types = infer_carried_types(entries, ["b", "i", "f", "s", "mixed", "n", "nested", "big", "absent"])
    assert types == {
        "b": pa.bool_(), "i": pa.int64(), "f": pa.float64(), "s": pa.string(), "mixed": pa.string(),
        "n": pa.string(), "nested": pa.string(), "big": pa.string(), "absent": pa.string(),
    }  # fmt: skip


@pytest.mark.parametrize("fmt", FORMATS)
def test_write_journal_results_end_to_end(tmp_path: Path, fmt: str) -> None:
    with Journal(tmp_path / ".batchtts" / "journal.jsonl") as journal:
        journal.append(ok_row(2, speaker="b", age=40))
        journal.append(failed_row(1, speaker="a", age=None))
        journal.append(ok_row(1, speaker="a", age=30))
        path = tmp_path / f"results.{fmt}"
        assert write_journal_results(journal, path, carried_columns=["speaker", "age"]) == 2
    table = read_back(path, results_schema(["speaker", "age"], {"age": pa.int64()}))
    assert table.column("id").to_pylist() == ["r1", "r2"]
    assert table.column("status").to_pylist() == ["ok", "ok"]
    assert table.column("age").to_pylist() == [30, 40]
    if fmt == "parquet":
        assert pq.read_schema(path).field("age").type == pa.int64()


def test_results_are_written_in_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writers_module, "WRITE_BATCH_ROWS", 7)
    consumed: list[int] = []

    def entries():
        for number in range(1, 51):
            consumed.append(number)
            yield ok_row(number).to_entry()

    assert write_results(entries(), tmp_path / "r.parquet", carried_columns=[]) == 50
    meta = pq.ParquetFile(tmp_path / "r.parquet").metadata
    assert meta.num_rows == 50 and meta.num_row_groups == 1  # batches of 7, one row group
    assert pq.read_table(tmp_path / "r.parquet").column("row").to_pylist() == list(range(1, 51))


def test_parquet_row_groups_gather_several_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writers_module, "WRITE_BATCH_ROWS", 7)
    monkeypatch.setattr(writers_module, "PARQUET_ROW_GROUP_ROWS", 20)
    entries = (ok_row(number).to_entry() for number in range(1, 51))
    assert write_results(entries, tmp_path / "r.parquet", carried_columns=[]) == 50
    meta = pq.ParquetFile(tmp_path / "r.parquet").metadata
    # 21 rows (3 batches) per row group, then what is left: not one row group per batch of 7
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [21, 21, 8]
    assert pq.read_table(tmp_path / "r.parquet").column("row").to_pylist() == list(range(1, 51))


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "results.parquet"
    write_results([ok_row(1).to_entry()], path, carried_columns=[])
    before = path.read_bytes()

    def broken():
        yield ok_row(1).to_entry()
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        write_results(broken(), path, carried_columns=[])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.parquet"]


def test_unknown_results_extension(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"\.parquet, \.csv or \.jsonl"):
        write_results([], tmp_path / "results.xlsx", carried_columns=[])
    assert list(tmp_path.iterdir()) == []


def test_pandas_reads_integer_columns_with_gaps_as_nullable_int64(tmp_path):
    import pandas as pd

    from batchtts.ledger.writers import write_results

    rows = [
        RowResult(id="a", row=1, status="ok", attempts=1, http_status=200, audio_bytes=10, sample_rate=24000),
        RowResult(id="b", row=2, status="failed", attempts=0, error="bad row"),  # no answer: no http_status
    ]
    path = tmp_path / "r.parquet"
    write_results([r.to_entry() for r in rows], path, carried_columns=[])
    frame = pd.read_parquet(path)
    assert str(frame["http_status"].dtype) == "Int64" and str(frame["attempts"].dtype) == "Int64"
    assert frame["http_status"].tolist()[0] == 200 and frame["http_status"].isna().tolist() == [False, True]
    assert str(frame["ttfb_ms"].dtype) == "float64"  # floats stay floats
