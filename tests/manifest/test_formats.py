"""Manifests as the field has them: TSV, other delimiters, headerless files, compressed files, Parquet folders."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchtts.errors import ManifestError
from batchtts.manifest.dialect import CsvDialect, parse_column_names, parse_delimiter, parse_quote
from batchtts.manifest.planner import RowPlanner
from batchtts.manifest.readers import Row, open_manifest
from batchtts.manifest.sources import COMPRESSIONS


def write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_compressed(path: Path, data: bytes) -> Path:
    """``data`` compressed with the codec the file's extension names, by pyarrow's own stream."""
    with pa.output_stream(str(path), compression=COMPRESSIONS[path.suffix]) as out:
        out.write(data)
    return path


def rows_of(path: Path, **options: object) -> list[Row]:
    return list(open_manifest(path, **options))  # type: ignore[arg-type]


# --- TSV (Common Voice) --------------------------------------------------------

# Common Voice's validated.tsv: quotes are ordinary text (their own loaders read it with QUOTE_NONE).
CV_SENTENCES = [
    'He said "hello" and left.',
    '"Quoted at the start," she wrote.',
    'An unbalanced " quote',
    'Doubled ""quotes"" stay doubled',
    "It's a single quote, and a comma.",
    "Grüße aus Köln — 東京",
]
CV_HEADER = "client_id\tpath\tsentence_id\tsentence\tsentence_domain\tup_votes\tdown_votes\tage\tgender\tlocale\n"


def common_voice_tsv(sentences: list[str] = CV_SENTENCES) -> bytes:
    lines = [
        f"c{i:03d}\tcommon_voice_en_{i}.mp3\t{i:064x}\t{text}\t\t2\t0\t\t\ten\n" for i, text in enumerate(sentences)
    ]
    return (CV_HEADER + "".join(lines)).encode("utf-8")


def test_tsv_common_voice_sentences_survive_byte_exact(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "validated.tsv", common_voice_tsv())
    manifest = open_manifest(path, text_column="sentence", id_column="sentence_id")
    assert manifest.format == "tsv" and manifest.describe() == "TSV"
    rows = list(manifest)
    assert [r.text for r in rows] == CV_SENTENCES
    assert [r.id for r in rows] == [f"{i:064x}" for i in range(len(CV_SENTENCES))]
    assert [r.number for r in rows] == list(range(1, len(CV_SENTENCES) + 1))
    assert rows[0].carried == {
        "client_id": "c000",
        "path": "common_voice_en_0.mp3",
        "sentence_domain": "",
        "up_votes": "2",  # every cell of a TSV is text, as in a CSV
        "down_votes": "0",
        "age": "",
        "gender": "",
        "locale": "en",
    }
    assert manifest.scan_row_count() == len(CV_SENTENCES)


def test_tsv_quote_option_makes_quotes_special_again(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "q.tsv", b'id\ttext\n1\t"a\ttab, quoted"\n')
    assert [r.text for r in rows_of(path, dialect=CsvDialect(quote='"'))] == ["a\ttab, quoted"]
    with pytest.raises(ManifestError, match="Expected 2 columns"):
        rows_of(path)  # unquoted, the tab splits the cell


def test_tsv_repeated_sentence_ids_are_duplicates_like_any_id(tmp_path: Path) -> None:
    """Several speakers read one sentence: the later rows are refused as duplicates, the first is kept."""
    data = CV_HEADER + "a\t1.mp3\tsid\tOne.\t\t\t\t\t\ten\nb\t2.mp3\tsid\tOne.\t\t\t\t\t\ten\n"
    path = write_bytes(tmp_path / "validated.tsv", data.encode())
    planner = RowPlanner({})
    planned = [planner.plan(r) for r in open_manifest(path, text_column="sentence", id_column="sentence_id")]
    assert [p.error for p in planned] == [None, "duplicate id 'sid' (first at row 1)"]


# --- delimiters -----------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [";", "|", "\t", " "])
def test_delimiter_option(tmp_path: Path, delimiter: str) -> None:
    text = f'id{delimiter}text{delimiter}note\n1{delimiter}"Hello, world"{delimiter}x\n2{delimiter}plain{delimiter}\n'
    path = write_bytes(tmp_path / "m.csv", text.encode())
    manifest = open_manifest(path, dialect=CsvDialect(delimiter=delimiter))
    assert manifest.columns == ["id", "text", "note"]
    assert [(r.id, r.text, r.carried) for r in manifest] == [
        ("1", "Hello, world", {"note": "x"}),  # CSV quoting still applies
        ("2", "plain", {"note": ""}),
    ]


@pytest.mark.parametrize(
    ("name", "data", "dialect", "hint"),
    [
        ("m.csv", b"id;text\n1;a\n", None, "try --delimiter ';'"),
        ("m.csv", b"id|text\n1|a\n", None, "try --delimiter '|'"),
        ("m.csv", b"id\ttext\n1\ta\n", None, "try --delimiter tab"),
        ("m.tsv", b"id,text\n1,a\n", None, "try --delimiter ','"),
        ("m.csv", b"id,text\n1,a\n", CsvDialect(delimiter=";"), "try --delimiter ','"),
    ],
)
def test_a_one_cell_header_holding_a_delimiter_suggests_the_option(
    tmp_path: Path, name: str, data: bytes, dialect: CsvDialect | None, hint: str
) -> None:
    path = write_bytes(tmp_path / name, data)
    with pytest.raises(ManifestError) as info:
        open_manifest(path, dialect=dialect)
    message = str(info.value)
    assert "no text column 'text'" in message and hint in message
    assert "--text-column" not in message  # the hint replaces the column advice


def test_a_one_cell_header_without_a_delimiter_gets_the_column_advice(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"columns found: 'sentence' \(choose one with --text-column\)"):
        open_manifest(write_bytes(tmp_path / "m.csv", b"sentence\nhi\n"))


# --- headerless files (LJSpeech) ---------------------------------------------------

LJSPEECH = (
    'LJ001-0001|Printing, in the only sense with which we are at present concerned, "differs"|'
    'Printing, in the only sense with which we are at present concerned, "differs"\n'
    "LJ001-0002|in being comparatively modern.|in being comparatively modern.\n"
    'LJ001-0003|For although the Chinese took impressions from wood blocks engraved in relief for "centuries|'
    'For although the Chinese took impressions from wood blocks engraved in relief for "centuries\n'
    "LJ002-0007|Mr. Smith's 1829 case|Mister Smith's eighteen twenty-nine case\n"
)
LJ_DIALECT = CsvDialect(delimiter="|", quote=False, header=False, columns=("id", "raw", "text"))


def test_ljspeech_metadata_without_header(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "metadata.csv", LJSPEECH.encode())
    manifest = open_manifest(path, dialect=LJ_DIALECT)
    assert manifest.columns == ["id", "raw", "text"]
    assert manifest.id_column == "id" and manifest.carried_columns == ["raw"]
    assert manifest.describe() == "CSV, delimiter '|', quotes not special, no header"
    rows = list(manifest)
    assert [r.number for r in rows] == [1, 2, 3, 4]  # the first line is data row 1
    assert [r.id for r in rows] == ["LJ001-0001", "LJ001-0002", "LJ001-0003", "LJ002-0007"]
    assert rows[0].text.endswith('concerned, "differs"')
    assert rows[2].text.endswith('relief for "centuries')  # an unbalanced quote, kept as it is
    assert rows[3].text == "Mister Smith's eighteen twenty-nine case"
    assert rows[3].carried == {"raw": "Mr. Smith's 1829 case"}
    assert manifest.scan_row_count() == 4


def test_no_header_without_columns_names_the_count(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "metadata.csv", LJSPEECH.encode())
    with pytest.raises(ManifestError, match=r"--no-header needs --columns to name the 3 columns of each row"):
        open_manifest(path, dialect=CsvDialect(delimiter="|", quote=False, header=False))


def test_columns_must_match_the_rows_fields(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "metadata.csv", LJSPEECH.encode())
    with pytest.raises(ManifestError, match=r"--columns names 2 columns \(id,text\) but the first row has 3 fields"):
        open_manifest(path, dialect=CsvDialect(delimiter="|", quote=False, header=False, columns=("id", "text")))


def test_columns_count_mismatch_from_a_missed_delimiter_suggests_it(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "m.csv", b"a|one\nb|two\n")
    with pytest.raises(ManifestError, match=r"first row has 1 field .*try --delimiter '\|'"):
        open_manifest(path, dialect=CsvDialect(header=False, columns=("id", "text")))


def test_no_header_with_a_bom_and_a_tsv(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "m.tsv", '\ufeffu1\tHé "x"\nu2\tdeux\n'.encode())
    rows = rows_of(path, dialect=CsvDialect(header=False, columns=("id", "text")))
    assert [(r.number, r.id, r.text) for r in rows] == [(1, "u1", 'Hé "x"'), (2, "u2", "deux")]


# --- option checks -------------------------------------------------------------


def test_dialect_values_are_checked() -> None:
    assert parse_delimiter("tab") == parse_delimiter("\\t") == parse_delimiter("\t") == "\t"
    assert parse_delimiter("|") == "|"
    assert parse_quote("none") is False and parse_quote("NONE") is False and parse_quote("'") == "'"
    assert parse_column_names(" id, raw ,text") == ("id", "raw", "text")
    assert parse_column_names(["id", "text"]) == ("id", "text")
    for bad in (";;", "", "¦", "\n"):
        with pytest.raises(ValueError, match="must be"):
            parse_delimiter(bad)
    with pytest.raises(ValueError, match="one character"):
        parse_quote("''")
    with pytest.raises(ValueError, match="no empty name"):
        parse_column_names("id,,text")
    with pytest.raises(ValueError, match="'id' is named twice"):
        parse_column_names("id,text,id")
    with pytest.raises(ValueError, match="--delimiter must be one character"):
        CsvDialect(delimiter="ab")
    with pytest.raises(ValueError, match="--columns names the columns of a file without a header row: add --no-header"):
        CsvDialect(columns=("id", "text"))
    assert CsvDialect(header=False, columns=("a", "b")).columns == ("a", "b")
    assert CsvDialect().is_default and not CsvDialect(quote=False).is_default


def test_delimiter_and_quote_cannot_be_the_same(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "m.csv", b"id'text\n")
    with pytest.raises(ManifestError, match="the delimiter and the quote character are both"):
        open_manifest(path, dialect=CsvDialect(delimiter='"'))
    with pytest.raises(ManifestError, match="the delimiter and the quote character are both"):
        open_manifest(path, dialect=CsvDialect(delimiter="'", quote="'"))


@pytest.mark.parametrize(
    ("dialect", "named"),
    [
        (CsvDialect(delimiter=";"), "--delimiter only applies"),
        (CsvDialect(quote=False), "--quote only applies"),
        (CsvDialect(header=False, columns=("id", "text")), "--no-header, --columns only apply"),
    ],
)
def test_csv_options_are_refused_for_parquet_and_jsonl(tmp_path: Path, dialect: CsvDialect, named: str) -> None:
    parquet = tmp_path / "m.parquet"
    pq.write_table(pa.table({"text": ["a"]}), parquet)
    jsonl = write_bytes(tmp_path / "m.jsonl", b'{"text": "a"}\n')
    for path, fmt in ((parquet, "PARQUET"), (jsonl, "JSONL"), (tmp_path, "PARQUET")):
        with pytest.raises(ManifestError, match=f"{named} to CSV and TSV manifests, not {fmt}"):
            open_manifest(path, dialect=dialect)


# --- compressed manifests ----------------------------------------------------------

CSV_DATA = 'id,text,speed\n007,"Hello, ""world""\nagain",1.25\n8,Grüße,\n'.encode()
JSONL_DATA = b'{"id": 1, "text": "un", "speed": 1.5}\n\n{"id": "b", "text": "deux", "meta": [1]}\n'


@pytest.mark.parametrize("suffix", list(COMPRESSIONS))
def test_compressed_csv_tsv_and_jsonl_read_like_the_plain_file(tmp_path: Path, suffix: str) -> None:
    cases = [
        ("m.csv", CSV_DATA, {}),
        ("validated.tsv", common_voice_tsv(), {"text_column": "sentence", "id_column": "sentence_id"}),
        ("m.jsonl", JSONL_DATA, {}),
    ]
    for name, data, options in cases:
        plain = open_manifest(write_bytes(tmp_path / name, data), **options)  # type: ignore[arg-type]
        packed = open_manifest(write_compressed(tmp_path / f"{name}{suffix}", data), **options)  # type: ignore[arg-type]
        assert packed.format == plain.format and packed.columns == plain.columns
        assert packed.compression == COMPRESSIONS[suffix]
        assert packed.describe() == f"{plain.describe()}, {COMPRESSIONS[suffix]}"
        assert list(packed) == list(plain)
        assert packed.count_rows() is None
        assert packed.scan_row_count() == plain.scan_row_count()
        list(packed)  # a second pass decompresses again


def test_compressed_headerless_file(tmp_path: Path) -> None:
    path = write_compressed(tmp_path / "metadata.csv.gz", LJSPEECH.encode())
    manifest = open_manifest(path, dialect=LJ_DIALECT)
    assert manifest.describe() == "CSV, gzip, delimiter '|', quotes not special, no header"
    assert [r.id for r in manifest] == ["LJ001-0001", "LJ001-0002", "LJ001-0003", "LJ002-0007"]


def test_compressed_csv_streams_with_flat_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("batchtts.manifest.sources.CSV_BLOCK_SIZE", 16 << 10)  # small blocks: a small file shows it
    n = 150_000
    path = tmp_path / "big.csv.gz"
    whole = 0
    with pa.output_stream(str(path), compression="gzip") as out:
        out.write(b"id,text,note\n")
        for start in range(0, n, 10_000):
            chunk = "".join(f'utt-{i:07d},"{os.urandom(30).hex()}, q",n{i}\n' for i in range(start, start + 10_000))
            whole += len(chunk)
            out.write(chunk.encode())
    manifest = open_manifest(path)
    base = pa.total_allocated_bytes()
    peak = 0
    last: Row | None = None
    for count, last in enumerate(manifest, start=1):
        if count % 500 == 0:
            peak = max(peak, pa.total_allocated_bytes() - base)
    assert last is not None and last.number == n and last.id == f"utt-{n - 1:07d}"
    assert peak < whole / 5, f"reader held {peak} bytes of a {whole}-byte (decompressed) manifest"


def test_corrupt_compressed_manifests(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"m\.csv\.gz: cannot read as CSV: .*(zlib|gzip|header)"):
        open_manifest(write_bytes(tmp_path / "m.csv.gz", b"id,text\n1,plain text, not gzip\n"))
    with pytest.raises(ManifestError, match=r"m\.jsonl\.zst: cannot read as JSONL"):
        open_manifest(write_bytes(tmp_path / "m.jsonl.zst", b'{"text": "not zstd"}\n'))
    # Cut short deep inside: the first block reads, the stream ends mid-way.
    data = b"id,text\n" + b"".join(b"%d,%s\n" % (i, os.urandom(16).hex().encode()) for i in range(200_000))
    packed = write_compressed(tmp_path / "cut.csv.gz", data)
    packed.write_bytes(packed.read_bytes()[: packed.stat().st_size // 2])
    manifest = open_manifest(packed)
    with pytest.raises(
        ManifestError, match=r"cut\.csv\.gz: cannot read the manifest after data row \d+: .*[Tt]runcated"
    ):
        list(manifest)


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("m.csv.xz", r"cannot read '\.xz'-compressed manifests; compress with gzip \(\.gz\)"),
        ("m.parquet.gz", "a Parquet file is compressed inside"),
        ("m.txt.gz", r"unknown manifest extension '\.txt\.gz'; use one of \.csv, \.tsv, .* \.gz, \.bz2"),
        ("m.gz", r"unknown manifest extension '\.gz'"),
        ("m.csv.bak", r"unknown manifest extension '\.bak'"),
        ("m.jsonl.zip", r"cannot read '\.zip'-compressed manifests"),
    ],
)
def test_unreadable_compressed_names(tmp_path: Path, name: str, pattern: str) -> None:
    with pytest.raises(ManifestError, match=pattern):
        open_manifest(write_bytes(tmp_path / name, b"text\nx\n"))


def test_missing_compressed_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such manifest file"):
        open_manifest(tmp_path / "absent.tsv.gz")
    with pytest.raises(ManifestError, match="no such manifest file or folder"):
        open_manifest(tmp_path / "absent")


# --- a folder of Parquet files (Hugging Face shards) ---------------------------


def shard(folder: Path, name: str, **columns: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    pq.write_table(pa.table(columns), path)  # type: ignore[arg-type]
    return path


def test_parquet_folder_reads_files_in_name_order_with_continuous_row_numbers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # Written out of order: the names decide.
    shard(data, "train-00002-of-00003.parquet", id=[5], text=["five"], speaker=["z"])
    shard(data, "train-00000-of-00003.parquet", id=[1, 2], text=["one", "two"], speaker=["x", "y"])
    shard(data, "train-00001-of-00003.parquet", id=[3, 4], text=["three", "four"], speaker=[None, "w"])
    shard(data, "_metadata.parquet", id=[99], text=["hidden"], speaker=["h"])  # left out, as pyarrow does
    shard(data, ".tmp.parquet", id=[98], text=["hidden"], speaker=["h"])
    (data / "README.md").write_text("not a shard")
    manifest = open_manifest(data)
    assert manifest.format == "parquet"
    assert [p.name for p in manifest.files] == [f"train-0000{i}-of-00003.parquet" for i in range(3)]
    assert manifest.describe() == "PARQUET, folder of 3 files"
    assert manifest.columns == ["id", "text", "speaker"] and manifest.id_column == "id"
    assert manifest.count_rows() == 5 == manifest.scan_row_count()  # from the files' metadata
    rows = list(manifest)
    assert [(r.number, r.id, r.text) for r in rows] == [
        (1, "1", "one"),
        (2, "2", "two"),
        (3, "3", "three"),
        (4, "4", "four"),
        (5, "5", "five"),
    ]
    assert [r.carried for r in rows][2:4] == [{"speaker": None}, {"speaker": "w"}]


def test_parquet_folder_duplicate_ids_across_files(tmp_path: Path) -> None:
    shard(tmp_path / "d", "a.parquet", id=["x", "y"], text=["1", "2"])
    shard(tmp_path / "d", "b.parquet", id=["z", "x"], text=["3", "4"])
    planner = RowPlanner({})
    errors = [planner.plan(r).error for r in open_manifest(tmp_path / "d")]
    assert errors == [None, None, None, "duplicate id 'x' (first at row 1)"]


def test_parquet_folder_of_one_file_and_a_null_typed_column(tmp_path: Path) -> None:
    shard(tmp_path / "one", "only.parquet", text=["a"])
    assert open_manifest(tmp_path / "one").describe() == "PARQUET, folder of 1 file"
    # A shard whose column is all null was written with the null type: it fits any type.
    shard(tmp_path / "n", "a.parquet", text=["a"], note=pa.array([None], pa.null()))
    shard(tmp_path / "n", "b.parquet", text=["b"], note=["kept"])
    shard(tmp_path / "n", "c.parquet", text=["c"], note=pa.array([None], pa.null()))
    assert [r.carried for r in open_manifest(tmp_path / "n")] == [{"note": None}, {"note": "kept"}, {"note": None}]


@pytest.mark.parametrize(
    ("second", "pattern"),
    [
        ({"id": [2]}, r"b\.parquet: its columns differ from a\.parquet's: no column 'text'"),
        ({"id": [2], "text": ["b"], "x": [1]}, r"b\.parquet: its columns differ from a\.parquet's: extra column 'x'"),
        ({"text": ["b"], "id": [2]}, r"b\.parquet: .*the same columns in another order \(text, id\)"),
        ({"id": ["2"], "text": ["b"]}, r"b\.parquet: column 'id' is string here but int64 in a\.parquet"),
    ],
)
def test_parquet_folder_files_must_agree(tmp_path: Path, second: dict[str, list[object]], pattern: str) -> None:
    shard(tmp_path / "d", "a.parquet", id=[1], text=["a"])
    shard(tmp_path / "d", "b.parquet", **second)
    with pytest.raises(ManifestError, match=pattern):
        open_manifest(tmp_path / "d")


def test_parquet_folder_with_a_file_that_is_not_parquet(tmp_path: Path) -> None:
    shard(tmp_path / "d", "a.parquet", text=["a"])
    write_bytes(tmp_path / "d" / "b.parquet", b"id,text\n1,a\n")
    with pytest.raises(ManifestError, match=r"d/b\.parquet: cannot read as PARQUET"):
        open_manifest(tmp_path / "d")


def test_parquet_folder_damaged_deep_inside_names_the_file(tmp_path: Path) -> None:
    data = tmp_path / "d"
    shard(data, "a.parquet", id=[f"a{i}" for i in range(1000)], text=["x"] * 1000)
    damaged = data / "b.parquet"
    table = pa.table({"id": [f"b{i}" for i in range(20_000)], "text": [os.urandom(20).hex() for _ in range(20_000)]})
    pq.write_table(table, damaged, row_group_size=5000, compression="snappy")
    offset = pq.ParquetFile(damaged).metadata.row_group(2).column(1).data_page_offset
    raw = bytearray(damaged.read_bytes())
    raw[offset : offset + 64] = b"\xab" * 64  # the third row group's page header
    damaged.write_bytes(bytes(raw))
    manifest = open_manifest(data)  # the footers are fine
    with pytest.raises(ManifestError, match=r"d/b\.parquet: cannot read the manifest after data row \d+"):
        list(manifest)


def test_empty_folder_and_shards_one_level_down(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match=r"a folder manifest is read as its \.parquet files, and it has none$"):
        open_manifest(tmp_path / "empty")
    shard(tmp_path / "ds" / "train", "0000.parquet", text=["a"])
    shard(tmp_path / "ds" / "test", "0000.parquet", text=["b"])
    with pytest.raises(ManifestError, match=r"it has none \(its subfolders test, train hold some: name one of them\)"):
        open_manifest(tmp_path / "ds")
    assert [r.text for r in open_manifest(tmp_path / "ds" / "train")] == ["a"]


def test_parquet_folder_streams_with_flat_memory(tmp_path: Path) -> None:
    n, files = 240_000, 24  # one file's batches at a time, whatever the number of files
    per = n // files
    whole = 0
    for f in range(files):
        table = pa.table(
            {
                "id": pa.array([f"utt-{i:07d}" for i in range(f * per, (f + 1) * per)]),
                "text": pa.array([os.urandom(40).hex() for _ in range(per)]),
            }
        )
        whole += table.nbytes
        pq.write_table(table, tmp_path / f"part-{f:05d}.parquet", row_group_size=5000)
    manifest = open_manifest(tmp_path)
    assert manifest.count_rows() == n
    base = pa.total_allocated_bytes()
    peak = 0
    last: Row | None = None
    for count, last in enumerate(manifest, start=1):
        if count % 500 == 0:
            peak = max(peak, pa.total_allocated_bytes() - base)
    assert last is not None and last.number == n and last.id == f"utt-{n - 1:07d}"
    assert peak < whole / 5, f"reader held {peak} bytes of a {whole}-byte manifest"


def test_jsonl_rows_carry_the_same_values_compressed(tmp_path: Path) -> None:
    records = [{"id": i, "text": f"t{i}", "meta": {"k": [i]}} for i in range(3)]
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    rows = rows_of(write_compressed(tmp_path / "m.ndjson.bz2", data))
    assert [(r.id, r.carried) for r in rows] == [(str(i), {"meta": {"k": [i]}}) for i in range(3)]
