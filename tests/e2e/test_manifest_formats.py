"""`batchtts run` end to end on manifests as corpora ship them: a gzipped Common Voice TSV, LJSpeech's
headerless metadata.csv from a job file, a Hugging Face folder of Parquet shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner

from batchtts.cli import main
from tests.runner_support import TEST_KEY, expected_samples, read_int16, run_job


def assert_speaks(out: Path, record: dict, text: str) -> None:
    """The row's file holds exactly the audio of ``text``: the text reached the request byte for byte."""
    data, _rate = read_int16(out / record["path"])
    assert np.array_equal(data, expected_samples(text=text))


def test_common_voice_tsv_gz_with_quotes_inside_sentences(tmp_path, local_server):
    server = local_server()
    sentences = {"s1": 'He said "hello" and left.', "s2": '"Quoted," she wrote.', "s3": 'An unbalanced " quote.'}
    lines = ["client_id\tpath\tsentence_id\tsentence\tup_votes\tlocale"]
    lines += [f"c{i}\tcv_{i}.mp3\t{sid}\t{text}\t2\ten" for i, (sid, text) in enumerate(sentences.items())]
    lines.append('c9\tcv_9.mp3\ts1\tHe said "hello" and left.\t1\ten')  # another speaker, same sentence
    manifest = tmp_path / "validated.tsv.gz"
    with pa.output_stream(str(manifest), compression="gzip") as out:
        out.write(("\n".join(lines) + "\n").encode())

    job = run_job(
        manifest, tmp_path / "out", server.base_url, "--text-column", "sentence", "--id-column", "sentence_id"
    )
    assert job.exit_code == 1, job.output  # the repeated sentence is a failed row, as any repeated id
    results = job.results()
    assert [(r["row"], r["id"], r["status"]) for r in results] == [
        (1, "s1", "ok"),
        (2, "s2", "ok"),
        (3, "s3", "ok"),
        (4, "s1", "failed"),
    ]
    assert results[3]["error"] == "duplicate id 's1' (first at row 1)"
    assert results[3]["attempts"] == 0  # refused before any request
    for record in results[:3]:
        assert_speaks(job.out, record, sentences[record["id"]])
    assert results[1]["input_path"] == "cv_1.mp3"  # Common Voice's own `path` column, carried beside ours
    assert results[1]["locale"] == "en"


def test_ljspeech_headerless_metadata_from_a_job_file(tmp_path, local_server):
    server = local_server()
    corpus = tmp_path / "LJSpeech-1.1"
    corpus.mkdir()
    (corpus / "metadata.csv").write_text(
        'LJ001-0001|Printing, in the "only" sense|Printing, in the "only" sense\n'
        "LJ002-0007|Mr. Smith's 1829 case|Mister Smith's eighteen twenty-nine case\n",
        encoding="utf-8",
    )
    job_file = tmp_path / "lj.toml"
    job_file.write_text(
        f"""
manifest = "LJSpeech-1.1/metadata.csv"
out = "out"
delimiter = "|"
quote = "none"
no-header = true
columns = ["id", "raw", "text"]
[api]
base-url = "{server.base_url}"
[log]
progress = "off"
""",
        encoding="utf-8",
    )
    env = {"SMALLEST_API_KEY": TEST_KEY, "BATCHTTS_BASE_URL": ""}
    result = CliRunner().invoke(main, ["run", "--job", str(job_file)], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    results = {r["id"]: r for r in pq.read_table(tmp_path / "out" / "results.parquet").to_pylist()}
    assert sorted(results) == ["LJ001-0001", "LJ002-0007"]
    assert results["LJ002-0007"]["raw"] == "Mr. Smith's 1829 case"
    assert results["LJ001-0001"]["row"] == 1  # no header: the first line is row 1
    assert_speaks(tmp_path / "out", results["LJ001-0001"], 'Printing, in the "only" sense')
    assert_speaks(tmp_path / "out", results["LJ002-0007"], "Mister Smith's eighteen twenty-nine case")


def test_hugging_face_folder_of_parquet_shards(tmp_path, local_server):
    server = local_server()
    data = tmp_path / "dataset" / "data"
    data.mkdir(parents=True)
    shards = [
        {"id": ["u0", "u1"], "text": ["First shard, one.", "First shard, two."], "speaker": [1, 2]},
        {"id": ["u2"], "text": ["Second shard."], "speaker": [3]},
        {"id": ["u3", "u4"], "text": ["Third shard, one.", "Third shard, two."], "speaker": [4, 5]},
    ]
    for index in (2, 0, 1):  # written out of order: the names decide
        pq.write_table(pa.table(shards[index]), data / f"train-{index:05d}-of-00003.parquet")

    job = run_job(data, tmp_path / "out", server.base_url)
    assert job.exit_code == 0, job.output
    results = sorted(job.results(), key=lambda r: r["row"])
    assert [(r["row"], r["id"], r["speaker"]) for r in results] == [(i + 1, f"u{i}", i + 1) for i in range(5)]
    texts = [text for s in shards for text in s["text"]]
    for record, text in zip(results, texts):
        assert record["status"] == "ok"
        assert_speaks(job.out, record, text)

    bad = run_job(data, tmp_path / "out2", server.base_url, "--delimiter", ";")
    assert bad.exit_code == 2 and "--delimiter only applies to CSV and TSV manifests" in bad.output
    assert not (tmp_path / "out2" / "results.parquet").exists()
