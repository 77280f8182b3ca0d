"""`batchtts validate` through click's CliRunner: reports, tallies and exit statuses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from batchtts.cli import main
from batchtts.cli.options import manifest_options, request_default_options, request_defaults_from


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["validate", *map(str, args)])


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_clean_csv_exits_0(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", 'id,text,voice_id\n1,"Hi, there",emily\n2,"Line\nbreak",\n3,Grüß dich,\n')
    result = invoke(path)
    assert result.exit_code == 0, result.output
    assert "columns: id, text, voice_id" in result.stdout
    assert "overrides: voice_id" in result.stdout
    assert result.stdout.rstrip().endswith("3 rows, all valid")
    assert "bad rows" not in result.stdout


def test_bad_rows_are_listed_tallied_and_exit_1(tmp_path: Path) -> None:
    path = write(
        tmp_path / "m.csv",
        "id,text,speed,model\na,ok,,\nb,,,\na,again,,\nc,fine,fast,\n,no id,,\nd,x,,gpt\na,third,,\n",
    )
    result = invoke(path)
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "row 2, id 'b': text: must not be empty" in out
    assert "row 3, id 'a': duplicate id 'a' (first at row 1)" in out
    assert "row 4, id 'c': speed: 'fast' is not a number" in out
    assert "row 5, id '': id: missing" in out
    assert "row 6, id 'd': model: 'gpt' is not one of" in out
    assert "row 7, id 'a': duplicate id 'a' (first at row 1)" in out
    tally = out.split("bad rows by reason:")[1]
    assert "duplicate id  2" in tally and "text          1" in tally and "speed         1" in tally
    assert "repeated ids: 1 id(s) repeated in 2 later row(s)" in out
    assert out.rstrip().endswith("7 rows: 1 valid, 6 bad")


def test_listing_is_capped_but_the_tally_counts_all(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "text\n" + "\n".join('""' for _ in range(80)) + "\n")
    result = invoke(path, "--max-listed", "5")
    assert result.exit_code == 1
    assert result.stdout.count(": text: must not be empty") == 5
    assert "... and 75 more" in result.stdout
    assert "text  80" in result.stdout
    assert "80 rows: 0 valid, 80 bad" in result.stdout
    everything = invoke(path, "--max-listed", "0")
    assert everything.stdout.count(": text: must not be empty") == 80


def test_request_defaults_are_validated_like_run(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "text,sample_rate\na,\nb,8000\n")
    assert invoke(path, "--sample-rate", "16000", "--speed", "1.5", "--pronunciation-dict", "d1").exit_code == 0
    bad_default = invoke(path, "--speed", "3")
    assert bad_default.exit_code == 2 and "--speed" in bad_default.output
    bad_session = invoke(path, "--session-id", "not valid!")
    assert bad_session.exit_code == 2 and "--session-id" in bad_session.output
    assert invoke(path, "--language", "xx").exit_code == 2


def test_parquet_and_jsonl(tmp_path: Path) -> None:
    parquet = tmp_path / "m.parquet"
    pq.write_table(
        pa.table(
            {
                "utt": [1, 2, 2],
                "sentence": ["one", "two", "dup"],
                "pronunciation_dicts": pa.array([["a"], None, ["b", "c"]], pa.list_(pa.string())),
            }
        ),
        parquet,
    )
    result = invoke(parquet, "--text-column", "sentence", "--id-column", "utt")
    assert result.exit_code == 1
    assert "row 3, id '2': duplicate id '2' (first at row 2)" in result.stdout

    jsonl = write(tmp_path / "m.jsonl", "\n".join(json.dumps(r) for r in [{"text": "a", "speed": 1}, {"text": "b"}]))
    result = invoke(jsonl)
    assert result.exit_code == 0 and "2 rows, all valid" in result.stdout and "id: row number" in result.stdout


@pytest.mark.parametrize(
    ("name", "content", "args", "expected"),
    [
        ("m.csv", "id,body\n1,x\n", [], ["no text column 'text'", "columns found: 'id', 'body'"]),
        ("m.csv", "id,text\n1,x\n", ["--id-column", "key"], ["no id column 'key'", "columns found: 'id', 'text'"]),
        ("m.csv", "", [], ["Empty CSV"]),
        ("m.parquet", "not parquet", [], ["cannot read as PARQUET"]),
        ("m.txt", "text\nx\n", [], ["unknown manifest extension '.txt'"]),
        ("m.jsonl", '{"text": "a"}\nnot json\n', [], ["line 2 is not valid JSON"]),
    ],
)
def test_unreadable_manifest_exits_2_on_stderr(
    tmp_path: Path, name: str, content: str, args: list[str], expected: list[str]
) -> None:
    path = write(tmp_path / name, content)
    result = invoke(path, *args)
    assert result.exit_code == 2
    for text in expected:
        assert text in result.stderr
    assert "all valid" not in result.stdout


def test_corruption_found_while_streaming_exits_2(tmp_path: Path) -> None:
    lines = [json.dumps({"id": f"r{i}", "text": "" if i == 3 else "hi"}) for i in range(1500)]
    path = write(tmp_path / "m.jsonl", "\n".join(lines) + "\n{broken\n")  # past the 1000-line schema sample
    result = invoke(path)
    assert result.exit_code == 2
    assert "row 4, id 'r3': text: must not be empty" in result.stdout  # reported before the break
    assert "line 1501 is not valid JSON" in result.stderr
    assert "all valid" not in result.stdout


def test_missing_manifest_exits_2(tmp_path: Path) -> None:
    result = invoke(tmp_path / "nope.parquet")
    assert result.exit_code == 2 and "no such manifest file" in result.stderr


def test_shared_options_build_the_defaults_mapping() -> None:
    seen: dict[str, Any] = {}

    @click.command()
    @manifest_options
    @request_default_options
    def cmd(**params: Any) -> None:
        seen.update(params)

    result = CliRunner().invoke(
        cmd,
        ["--voice-id", "emily", "--sample-rate", "8000", "--pronunciation-dict", "a", "--pronunciation-dict", "b"],
    )
    assert result.exit_code == 0, result.output
    assert seen["text_column"] == "text" and seen["id_column"] is None
    assert request_defaults_from(seen) == {"voice_id": "emily", "sample_rate": 8000, "pronunciation_dicts": ["a", "b"]}
    assert request_defaults_from({"voice_id": None, "pronunciation_dict": ()}) == {}


def test_rows_longer_than_the_recommended_length_are_counted(tmp_path: Path) -> None:
    long_text = "A sentence of some length. " * 10  # 270 characters
    rows = [
        {"id": "short", "text": "Short."},
        {"id": "long1", "text": long_text},
        {"id": "long2", "text": "x" * 251},
        {"id": "edge", "text": "y" * 250},  # at the recommendation: fine
        {"id": "bad", "text": long_text, "speed": 9},  # bad rows are reported as bad, not counted again
    ]
    path = write(tmp_path / "m.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    result = invoke(path)
    assert result.exit_code == 1
    assert (
        "long texts: 2 valid row(s) longer than 250 characters, the model card's recommended maximum per request; "
        "batchtts run --max-chars 250 splits them" in result.stdout
    )
    clean = invoke(write(tmp_path / "c.csv", "id,text\na,Short.\n"))
    assert clean.exit_code == 0 and "long texts" not in clean.stdout
