"""`batchtts validate` over TSV, other delimiters, headerless, compressed and folder manifests:
the same report for every format, and one clear sentence (exit 2, no traceback) for options that cannot work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from batchtts.cli import main
from batchtts.cli.options import dialect_from, manifest_options
from batchtts.manifest.dialect import CsvDialect


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["validate", *map(str, args)])


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def gzip_file(path: Path, data: str) -> Path:
    with pa.output_stream(str(path), compression="gzip") as out:
        out.write(data.encode())
    return path


CV = (
    "client_id\tpath\tsentence_id\tsentence\tlocale\n"
    'c1\t1.mp3\ts1\tHe said "hi" twice.\ten\n'
    "c2\t2.mp3\ts2\t\ten\n"
    'c3\t3.mp3\ts1\t"Again," he said.\ten\n'
)


def test_common_voice_tsv_reports_like_a_csv(tmp_path: Path) -> None:
    path = gzip_file(tmp_path / "validated.tsv.gz", CV)
    result = invoke(path, "--text-column", "sentence", "--id-column", "sentence_id")
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert f"manifest: {path} (TSV, gzip)" in out
    assert "columns: client_id, path, sentence_id, sentence, locale" in out
    assert "text: 'sentence' · id: 'sentence_id' · overrides: (none) · carried: client_id, path, locale" in out
    assert "row 2, id 's2': text: must not be empty" in out
    assert "row 3, id 's1': duplicate id 's1' (first at row 1)" in out
    assert out.rstrip().endswith("3 rows: 1 valid, 2 bad")


def test_ljspeech_metadata_with_the_headerless_options(tmp_path: Path) -> None:
    path = write(tmp_path / "metadata.csv", 'LJ1|Raw "one|Text "one\nLJ2|Raw two|Text two\n')
    result = invoke(path, "--delimiter", "|", "--quote", "none", "--no-header", "--columns", "id,raw,text")
    assert result.exit_code == 0, result.output
    assert "(CSV, delimiter '|', quotes not special, no header)" in result.stdout
    assert "text: 'text' · id: 'id' · overrides: (none) · carried: raw" in result.stdout
    assert result.stdout.rstrip().endswith("2 rows, all valid")


def test_semicolon_file_with_delimiter_and_tab_spelled_out(tmp_path: Path) -> None:
    semi = write(tmp_path / "m.csv", "id;text\n1;Bonjour, monde\n")
    result = invoke(semi, "--delimiter", ";")
    assert result.exit_code == 0 and "(CSV, delimiter ';')" in result.stdout
    tabs = write(tmp_path / "t.csv", "id\ttext\n1\tHallo\n")
    result = invoke(tabs, "--delimiter", "tab")
    assert result.exit_code == 0 and "(CSV, delimiter tab)" in result.stdout


def test_parquet_folder_reports_its_files_and_row_numbers_run_on(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["one", "two"]}), data / "train-00000-of-00002.parquet")
    pq.write_table(pa.table({"id": ["c", "a"], "text": ["", "four"]}), data / "train-00001-of-00002.parquet")
    result = invoke(data)
    assert result.exit_code == 1, result.output
    assert f"manifest: {data} (PARQUET, folder of 2 files)" in result.stdout
    assert "row 3, id 'c': text: must not be empty" in result.stdout
    assert "row 4, id 'a': duplicate id 'a' (first at row 1)" in result.stdout
    assert result.stdout.rstrip().endswith("4 rows: 2 valid, 2 bad")


def make(tmp_path: Path, name: str, content: str | None) -> Path:
    """A file with ``content``; ``None``: a one-row Parquet file; ``folder/``: an empty folder;
    ``schemas/``: a folder of two Parquet files that disagree on a column's type."""
    path = tmp_path / name.rstrip("/")
    if name == "folder/":
        path.mkdir()
    elif name == "schemas/":
        path.mkdir()
        pq.write_table(pa.table({"id": [1], "text": ["a"]}), path / "a.parquet")
        pq.write_table(pa.table({"id": ["2"], "text": ["b"]}), path / "b.parquet")
    elif content is None:
        pq.write_table(pa.table({"text": ["a"]}), path)
    else:
        write(path, content)
    return path


@pytest.mark.parametrize(
    ("files", "args", "message"),
    [
        ({"m.csv": "id;text\n1;a\n"}, [], "no text column 'text'; columns found: 'id;text' (the header is one column"),
        ({"m.csv": "id;text\n1;a\n"}, [], "try --delimiter ';'"),
        ({"m.csv": "a,b\n"}, ["--columns", "id,text"], "--columns names the columns of a file without a header row"),
        ({"m.csv": "a,b,c\n"}, ["--no-header"], "--no-header needs --columns to name the 3 columns of each row"),
        ({"m.csv": "a,b,c\n"}, ["--no-header", "--columns", "id,text"], "but the first row has 3 fields"),
        ({"m.csv": "a,b\n"}, ["--no-header", "--columns", "id,,text"], "no empty name"),
        ({"m.csv": "a,b\n"}, ["--no-header", "--columns", "id,id"], "'id' is named twice"),
        ({"m.csv": "id,text\n"}, ["--delimiter", ";;"], "must be one character, got ';;'"),
        ({"m.csv": "id,text\n"}, ["--delimiter", "¦"], "must be an ASCII character"),
        ({"m.csv": "id,text\n"}, ["--quote", "none!"], "must be one character"),
        ({"m.csv": "id,text\n"}, ["--delimiter", '"'], "the delimiter and the quote character are both '\"'"),
        ({"m.jsonl": '{"text": "a"}\n'}, ["--delimiter", ";"], "--delimiter only applies to CSV and TSV manifests"),
        ({"m.parquet": None}, ["--no-header", "--columns", "a"], "--no-header, --columns only apply to CSV and TSV"),
        ({"m.csv.xz": "text\na\n"}, [], "cannot read '.xz'-compressed manifests"),
        ({"m.csv.gz": "text\nnot gzip\n"}, [], "cannot read as CSV"),
        ({"folder/": None}, [], "a folder manifest is read as its .parquet files, and it has none"),
        ({"schemas/": None}, [], "column 'id' is string here but int64 in a.parquet"),
    ],
)
def test_options_and_files_that_cannot_work_exit_2_with_one_sentence(
    tmp_path: Path, files: dict[str, str | None], args: list[str], message: str
) -> None:
    ((name, content),) = files.items()
    path = make(tmp_path, name, content)
    result = invoke(path, *args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "rows, all valid" not in result.output


def test_dialect_from_pops_the_options_into_a_dialect() -> None:
    seen: dict[str, Any] = {}

    @click.command()
    @manifest_options
    def cmd(**params: Any) -> None:
        seen["dialect"] = dialect_from(params)
        seen["left"] = sorted(params)

    runner = CliRunner()
    result = runner.invoke(cmd, ["--delimiter", "\\t", "--quote", "none", "--no-header", "--columns", "id, text"])
    assert result.exit_code == 0, result.output
    assert seen["dialect"] == CsvDialect(delimiter="\t", quote=False, header=False, columns=("id", "text"))
    assert seen["left"] == ["id_column", "text_column"]
    assert runner.invoke(cmd, []).exit_code == 0 and seen["dialect"] == CsvDialect()
    bad = runner.invoke(cmd, ["--columns", "id,text"])
    assert bad.exit_code == 2 and "add --no-header" in bad.output


def test_job_file_keys_for_a_headerless_file_are_checked(tmp_path: Path) -> None:
    write(tmp_path / "metadata.csv", "LJ1|Raw|Text\n")
    job = write(
        tmp_path / "lj.toml",
        'manifest = "metadata.csv"\nout = "out"\ndelimiter = "|"\nno-header = true\ncolumns = ["id", 3, "text"]\n',
    )
    result = CliRunner().invoke(main, ["run", "--job", str(job), "--local"])
    assert result.exit_code == 2, result.output
    assert "columns: column names must be text, got 3" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()
