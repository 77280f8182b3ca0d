"""Streaming manifest readers: formats, column mapping, cells, errors and flat memory."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchtts.errors import ManifestError
from batchtts.manifest.readers import Manifest, Row, open_manifest


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


# --- CSV ---------------------------------------------------------------------

RFC4180 = (
    "id,text,note\r\n"
    '007,"Hello, world",plain\r\n'
    '8,"She said ""hi"".",quoted\r\n'
    '9,"line one\r\nline two\nline three","multi, line"\r\n'
    "10,Grüße aus Köln — 東京 🎉,utf8\r\n"
)


def test_csv_rfc4180_quoting_newlines_and_utf8(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "m.csv", RFC4180.encode("utf-8"))
    manifest = open_manifest(path)
    rows = list(manifest)
    assert [r.id for r in rows] == ["007", "8", "9", "10"]  # zeros kept: every CSV cell is a string
    assert rows[0].text == "Hello, world"
    assert rows[1].text == 'She said "hi".'
    assert rows[2].text == "line one\r\nline two\nline three"
    assert rows[2].carried == {"note": "multi, line"}
    assert rows[3].text == "Grüße aus Köln — 東京 🎉"
    assert [r.number for r in rows] == [1, 2, 3, 4]
    assert manifest.format == "csv"
    assert manifest.columns == ["id", "text", "note"]
    assert manifest.count_rows() is None


def test_csv_with_utf8_bom(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "bom.csv", "\ufeffid,text\n1,hé\n".encode("utf-8"))
    manifest = open_manifest(path)
    assert manifest.columns == ["id", "text"]
    assert [(r.id, r.text) for r in manifest] == [("1", "hé")]


def test_csv_override_columns_numbers_and_empty_cells(tmp_path: Path) -> None:
    path = write_bytes(
        tmp_path / "m.csv",
        b"text,speed,sample_rate,voice_id,pronunciation_dicts,session_id,extra\n"
        b'a,1.25,24000,emily,"d1, d2",s-1,x\n'
        b"b,,, ,,,\n",
    )
    manifest = open_manifest(path)
    assert manifest.override_columns == ["speed", "sample_rate", "voice_id", "pronunciation_dicts", "session_id"]
    assert manifest.carried_columns == ["extra"]
    assert manifest.id_column is None
    first, second = list(manifest)
    assert first.fields == {
        "speed": 1.25,
        "sample_rate": "24000",
        "voice_id": "emily",
        "pronunciation_dicts": ["d1", "d2"],
        "session_id": "s-1",
    }
    assert second.fields == {}  # empty (or blank) cells mean "use the default"
    assert second.carried == {"extra": ""}
    assert (first.id, second.id) == ("1", "2")  # no id column: row numbers


def test_csv_header_only_has_no_rows(tmp_path: Path) -> None:
    manifest = open_manifest(write_bytes(tmp_path / "h.csv", b"id,text\n"))
    assert list(manifest) == []


def test_csv_many_blocks_stream_in_order(tmp_path: Path) -> None:
    n = 30_000  # ~2.5 MB: several 1 MiB blocks
    lines = ["id,text"] + [f'r{i},"text {i}, with ""quotes""\nand a newline"' for i in range(n)]
    path = write_bytes(tmp_path / "many.csv", ("\n".join(lines) + "\n").encode())
    count = 0
    for count, row in enumerate(open_manifest(path), start=1):
        assert row.id == f"r{count - 1}"
        assert row.number == count
    assert count == n
    assert row.text == f'text {n - 1}, with "quotes"\nand a newline'


# --- Parquet -----------------------------------------------------------------


def test_parquet_types_lists_and_row_count(tmp_path: Path) -> None:
    table = pa.table(
        {
            "id": pa.array([7, 8, None], pa.int64()),
            "text": ["one", "two", "three"],
            "speed": pa.array([1.5, None, 0.75]),
            "sample_rate": pa.array([16000, None, 8000], pa.int32()),
            "pronunciation_dicts": pa.array([["a", "b"], [], None], pa.list_(pa.string())),
            "recorded": pa.array([dt.datetime(2024, 5, 1, 12, 0), None, None], pa.timestamp("us")),
            "score": [1, 2, 3],
        }
    )
    path = tmp_path / "m.parquet"
    pq.write_table(table, path)
    manifest = open_manifest(path)
    assert manifest.count_rows() == 3
    rows = list(manifest)
    assert [r.id for r in rows] == ["7", "8", ""]  # ints without ".0"; null -> "" (a bad row for the planner)
    assert rows[0].fields == {"speed": 1.5, "sample_rate": 16000, "pronunciation_dicts": ["a", "b"]}
    assert rows[1].fields == {}  # null and empty list mean default
    assert rows[2].fields == {"speed": 0.75, "sample_rate": 8000}
    assert rows[0].carried == {"recorded": "2024-05-01T12:00:00", "score": 1}
    json.dumps([r.carried for r in rows])  # carried values are JSON-able


def test_parquet_float_ids_written_with_nulls_stay_integral(tmp_path: Path) -> None:
    path = tmp_path / "f.parquet"
    pq.write_table(pa.table({"id": [3.0, 4.5, float("nan")], "text": ["a", "b", "c"]}), path)
    assert [r.id for r in open_manifest(path)] == ["3", "4.5", ""]


def test_parquet_streams_with_flat_memory(tmp_path: Path) -> None:
    n, group = 200_000, 10_000
    texts = pa.array([os.urandom(40).hex() for _ in range(n)])
    table = pa.table(
        {
            "id": pa.array([f"utt-{i:07d}" for i in range(n)]),
            "text": texts,
            "speed": pa.array([1.0] * n),
            "note": pa.array([f"note {i}" for i in range(n)]),
        }
    )
    whole = table.nbytes  # what loading the whole manifest would hold
    path = tmp_path / "big.parquet"
    pq.write_table(table, path, row_group_size=group)
    del table, texts

    manifest = open_manifest(path)
    assert manifest.count_rows() == n
    base = pa.total_allocated_bytes()
    peak = 0
    last: Row | None = None
    for count, last in enumerate(manifest, start=1):
        if count % 500 == 0:
            peak = max(peak, pa.total_allocated_bytes() - base)
    assert last is not None and last.number == n and last.id == f"utt-{n - 1:07d}"
    assert peak < whole / 5, f"reader held {peak} bytes of a {whole}-byte manifest"


# --- JSONL -------------------------------------------------------------------


def test_jsonl_rows_lists_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(
        json.dumps({"id": 1, "text": "un", "pronunciation_dicts": ["x"], "meta": {"k": [1, 2]}}) + "\n"
        "\n"
        + json.dumps({"id": "b", "text": "deux", "speed": "1.1", "language": None})
        + "\n"
        + json.dumps({"id": "c", "text": "trois", "model": "lightning_v3.1_pro"})
        + "\n",
        encoding="utf-8",
    )
    manifest = open_manifest(path)
    assert manifest.columns == ["id", "text", "pronunciation_dicts", "meta", "speed", "language", "model"]
    assert manifest.carried_columns == ["meta"]
    rows = list(manifest)
    assert [r.id for r in rows] == ["1", "b", "c"]
    assert [r.number for r in rows] == [1, 2, 3]  # the blank line is not a row
    assert rows[0].fields == {"pronunciation_dicts": ["x"]}
    assert rows[0].carried == {"meta": {"k": [1, 2]}}
    assert rows[1].fields == {"speed": 1.1}
    assert rows[1].carried == {"meta": None}
    assert rows[2].fields == {"model": "lightning_v3.1_pro"}


def test_ndjson_extension_and_keys_missing_in_some_rows(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.NDJSON", [{"text": "a"}, {"text": "b", "voice_id": "emily"}])
    rows = list(open_manifest(path))
    assert rows[0].fields == {} and rows[1].fields == {"voice_id": "emily"}


def test_jsonl_override_key_first_seen_after_the_schema_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("batchtts.manifest.sources.JSONL_SCHEMA_SAMPLE", 2)
    path = write_jsonl(tmp_path / "m.jsonl", [{"text": "a"}, {"text": "b"}, {"text": "c", "speed": 1.5, "late": 1}])
    manifest = open_manifest(path)
    assert manifest.columns == ["text"]
    third = list(manifest)[2]
    assert third.fields == {"speed": 1.5}  # request fields are always honoured
    assert third.carried == {}  # carried columns are those known at open


# --- column mapping ----------------------------------------------------------


def test_id_and_text_columns_can_be_named(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "m.csv", b"key,sentence,id\nk1,hello,other\n")
    manifest = open_manifest(path, text_column="sentence", id_column="key")
    row = next(iter(manifest))
    assert (row.id, row.text) == ("k1", "hello")
    assert row.carried == {"id": "other"}  # a column named id is just carried when another is the id
    assert manifest.carried_columns == ["id"]


def test_missing_text_column_names_it_and_lists_columns(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "m.csv", b"id,body\n1,x\n")
    with pytest.raises(ManifestError) as info:
        open_manifest(path)
    message = str(info.value)
    assert "'text'" in message and "'id', 'body'" in message and "--text-column" in message


def test_named_id_column_missing_is_an_error(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "m.jsonl", b'{"text": "x", "uid": 1}\n')
    with pytest.raises(ManifestError, match=r"no id column 'key'; columns found: 'text', 'uid'"):
        open_manifest(path, id_column="key")


def test_duplicate_column_names_are_an_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="'text' appears more than once"):
        open_manifest(write_bytes(tmp_path / "m.csv", b"text,text\na,b\n"))


# --- unreadable manifests ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "pattern"),
    [
        ("m.txt", b"text\nx\n", "unknown manifest extension '.txt'"),
        ("m", b"text\nx\n", "unknown manifest extension"),
        ("m.csv", b"", "Empty CSV"),
        ("m.csv", b"id,text\n1,\xff\xfe\n", "UTF8"),
        ("m.csv", b"id,text\n1,a\n2,b,c\n", "Expected 2 columns"),
        ("m.parquet", b"id,text\n1,a\n", "cannot read as PARQUET"),
        ("m.parquet", b"PAR1" + os.urandom(64) + b"PAR1", "cannot read as PARQUET"),
        ("m.jsonl", b"", "empty"),
        ("m.jsonl", b'{"text": "a"}\n{"text": \n', "line 2 is not valid JSON"),
        ("m.jsonl", b'["text", "a"]\n', "line 1 is a JSON list, not an object"),
        ("m.jsonl", b'{"text": "\xff"}\n', "line 1 is not valid JSON"),
    ],
)
def test_unreadable_manifests(tmp_path: Path, name: str, content: bytes, pattern: str) -> None:
    path = write_bytes(tmp_path / name, content)
    with pytest.raises(ManifestError, match=pattern):
        list(open_manifest(path))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such manifest file"):
        open_manifest(tmp_path / "absent.csv")


def test_csv_corrupt_deep_in_the_file_fails_while_streaming(tmp_path: Path) -> None:
    good = "".join(f"{i},text {i}\n" for i in range(150_000))  # ~2.6 MB, so the bad row is past the first block
    path = write_bytes(tmp_path / "m.csv", ("id,text\n" + good + "x,y,z\n").encode())
    manifest = open_manifest(path)  # the first block is fine
    seen = 0
    with pytest.raises(ManifestError, match=r"after data row \d+: .*Expected 2 columns"):
        for seen, _ in enumerate(manifest, start=1):
            pass
    assert seen > 0


def test_jsonl_corrupt_deep_in_the_file_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps({"text": str(i)}) + "\n" for i in range(5000)) + "{oops\n")
    manifest = open_manifest(path)
    with pytest.raises(ManifestError, match="line 5001 is not valid JSON"):
        list(manifest)


def test_manifest_can_be_iterated_twice(tmp_path: Path) -> None:
    manifest: Manifest = open_manifest(write_bytes(tmp_path / "m.csv", b"text\na\nb\n"))
    assert [r.text for r in manifest] == [r.text for r in manifest] == ["a", "b"]


def test_scan_row_count_counts_csv_with_newlines_and_jsonl(tmp_path):
    from batchtts.manifest.readers import open_manifest

    csv_path = tmp_path / "m.csv"
    csv_path.write_text('id,text\n1,"two\nlines"\n2,plain\n3,"a, b"\n', encoding="utf-8")
    jsonl_path = tmp_path / "m.jsonl"
    jsonl_path.write_text('{"id": 1, "text": "a"}\n\n{"id": 2, "text": "b"}\n', encoding="utf-8")
    assert open_manifest(csv_path).count_rows() is None
    assert open_manifest(csv_path).scan_row_count() == 3
    assert open_manifest(jsonl_path).scan_row_count() == 2
