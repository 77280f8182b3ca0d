"""`batchtts run` end to end against the real local server on loopback."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile

from batchtts.api.request import is_valid_id
from tests.runner_support import (
    TEST_KEY,
    expected_samples,
    leftover_temp_files,
    read_int16,
    run_job,
    write_csv,
    write_jsonl,
)

ROWS = [
    {"id": "a", "text": "Hello, world."},
    {"id": "b", "text": 'She said, "hi, there" and left.'},
    {"id": "c", "text": "Line one.\nLine two, same cell."},
    {"id": "d", "text": "नमस्ते दुनिया।"},
]


def assert_exact(out: Path, record: dict, **body: object) -> None:
    """The row's file holds exactly the samples the server meant to send."""
    data, rate = read_int16(out / record["path"])
    want = expected_samples(**body)
    assert rate == body.get("sample_rate", 44100)
    assert np.array_equal(data, want)
    assert record["audio_bytes"] == want.size * 2
    assert record["audio_seconds"] == pytest.approx(want.size / rate)


def test_csv_with_quotes_and_newlines_gives_one_exact_file_per_row(tmp_path, local_server):
    server = local_server()
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    job = run_job(manifest, tmp_path / "out", server.base_url)
    assert job.exit_code == 0, job.output
    results = job.by_id()
    assert sorted(results) == ["a", "b", "c", "d"]
    for row in ROWS:
        record = results[row["id"]]
        assert record["status"] == "ok"
        assert record["error"] is None
        assert record["attempts"] == 1
        assert record["http_status"] == 200
        assert record["ttfb_ms"] > 0 and record["total_ms"] >= record["ttfb_ms"]
        assert is_valid_id(record["request_id"])
        assert record["server_request_id"]
        assert record["started_at"].endswith(("Z", "+00:00"))
        assert_exact(job.out, record, text=row["text"])
    assert leftover_temp_files(job.out) == []
    assert "4 rows: 4 ok, 0 failed" in job.output


def test_parquet_and_jsonl_manifests_and_carried_columns(tmp_path, local_server):
    server = local_server()
    rows = [{"id": 7, "text": "Parquet row.", "speaker": "x"}, {"id": 8, "text": "Another.", "speaker": "y"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "m.parquet")
    write_jsonl(tmp_path / "m.jsonl", rows)
    for name in ("m.parquet", "m.jsonl"):
        job = run_job(tmp_path / name, tmp_path / f"out-{name}", server.base_url, "--sample-rate", "16000")
        assert job.exit_code == 0, job.output
        results = job.by_id()
        assert sorted(results) == ["7", "8"]
        assert results["7"]["speaker"] == "x"
        assert_exact(job.out, results["8"], text="Another.", sample_rate=16000)


def test_row_columns_override_command_line_defaults(tmp_path, local_server):
    server = local_server()
    manifest = write_csv(
        tmp_path / "m.csv",
        [
            {"id": "default", "text": "Uses the defaults.", "voice_id": "", "sample_rate": "", "speed": ""},
            {"id": "override", "text": "Overrides them.", "voice_id": "emily", "sample_rate": "8000", "speed": "1.5"},
        ],
    )
    job = run_job(manifest, tmp_path / "out", server.base_url, "--voice-id", "lucia", "--sample-rate", "24000")
    assert job.exit_code == 0, job.output
    results = job.by_id()
    assert results["default"]["voice_id"] == "lucia"
    assert_exact(job.out, results["default"], text="Uses the defaults.", voice_id="lucia", sample_rate=24000)
    assert results["override"]["voice_id"] == "emily"
    assert_exact(job.out, results["override"], text="Overrides them.", voice_id="emily", sample_rate=8000, speed=1.5)


@pytest.mark.parametrize(
    "styles",
    [
        ["crlf"],
        ["cr"],
        ["comments", "ids"],
        ["nospace"],
        ["multiline"],
        ["split"],
        ["odd"],
        ["cr", "comments", "ids", "nospace", "multiline", "split", "odd"],
    ],
)
def test_every_sse_framing_the_standard_allows_gives_the_same_audio(tmp_path, local_server, styles):
    server = local_server(sse_style=frozenset(styles))
    manifest = write_csv(tmp_path / "m.csv", ROWS[:2])
    job = run_job(manifest, tmp_path / "out", server.base_url, "--sample-rate", "8000")
    assert job.exit_code == 0, job.output
    for row in ROWS[:2]:
        assert_exact(job.out, job.by_id()[row["id"]], text=row["text"], sample_rate=8000)


@pytest.mark.parametrize(
    "fault", ["500", "502", "503", "429", "drop", "nodone", "error-event", "bad-frame", "error-frame"]
)
def test_each_fault_fails_its_attempt_and_leaves_nothing_on_disk(tmp_path, local_server, fault):
    server = local_server(faults={fault: 1.0}, seed=1)
    manifest = write_csv(tmp_path / "m.csv", ROWS[:2])
    # One attempt of each kind: 429s have their own budget (--max-rate-limited), so it is set to 1 too.
    job = run_job(manifest, tmp_path / "out", server.base_url, "--max-attempts", "1", "--max-rate-limited", "1")
    assert job.exit_code == 1, job.output
    for record in job.results():
        assert record["status"] == "failed"
        assert record["path"] is None
        assert record["error"]
        assert record["attempts"] == 1
    assert not any((job.out / "audio").rglob("*")) if (job.out / "audio").exists() else True
    assert leftover_temp_files(job.out) == []


def test_bad_rows_are_recorded_and_never_sent(tmp_path, local_server):
    server = local_server()
    manifest = write_csv(
        tmp_path / "m.csv",
        [
            {"id": "good", "text": "Fine.", "speed": "", "model": "", "session_id": ""},
            {"id": "blank", "text": "   ", "speed": "", "model": "", "session_id": ""},
            {"id": "fast", "text": "Too fast.", "speed": "9", "model": "", "session_id": ""},
            {"id": "nan", "text": "Not a number.", "speed": "quick", "model": "", "session_id": ""},
            {"id": "enum", "text": "Bad model.", "speed": "", "model": "lightning_v9", "session_id": ""},
            {"id": "session", "text": "Bad session.", "speed": "", "model": "", "session_id": "has space"},
            {"id": "good", "text": "Repeated id.", "speed": "", "model": "", "session_id": ""},
        ],
    )
    job = run_job(manifest, tmp_path / "out", server.base_url)
    assert job.exit_code == 1, job.output
    results = job.results()
    assert len(results) == 7
    by_row = {r["row"]: r for r in results}
    assert by_row[1]["status"] == "ok"
    reasons = {r["row"]: r["error"] for r in results if r["status"] == "failed"}
    assert set(reasons) == {2, 3, 4, 5, 6, 7}
    assert "text" in reasons[2]
    assert "speed" in reasons[3] and "speed" in reasons[4]
    assert "model" in reasons[5]
    assert "session_id" in reasons[6]
    assert "duplicate" in reasons[7]
    assert all(by_row[n]["attempts"] == 0 for n in reasons)
    assert server.stats.snapshot()["starts_total"] == 1


def test_an_api_400_fails_the_row_with_the_api_message_once(tmp_path, local_server):
    server = local_server()
    manifest = write_csv(tmp_path / "m.csv", [{"id": "x", "text": "Unknown voice.", "voice_id": "nobody"}])
    job = run_job(manifest, tmp_path / "out", server.base_url, "--no-voice-check")  # the server refuses it
    assert job.exit_code == 1
    [record] = job.results()
    assert record["http_status"] == 400
    assert record["attempts"] == 1
    assert "voice_id" in record["error"]


@pytest.mark.parametrize(
    "hostile", ["../escape", "/etc/passwd", "..", ".", "a/../../b", "C:\\x", "ünï/cødé", "x" * 5000]
)
def test_ids_never_write_outside_the_output_folder(tmp_path, local_server, hostile):
    server = local_server()
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"id": hostile, "text": "Hi."}, {"id": "plain", "text": "Hi."}])
    out = tmp_path / "deep" / "out"
    job = run_job(manifest, out, server.base_url)
    assert job.exit_code == 0, job.output
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix == ".wav"]
    assert len(files) == 2
    assert all(out.resolve() in p.resolve().parents for p in files)
    assert job.by_id()[hostile]["path"] != job.by_id()["plain"]["path"]


@pytest.mark.parametrize(
    "output_format,file_format,suffix,subtype",
    [
        ("pcm", "wav", ".wav", "PCM_16"),
        ("pcm", "flac", ".flac", "PCM_16"),
        ("wav", "wav", ".wav", "PCM_16"),
        ("mp3", "wav", ".mp3", None),
        ("ulaw", "wav", ".wav", "ULAW"),
        ("alaw", "wav", ".wav", "ALAW"),
    ],
)
def test_every_output_format_becomes_a_file_that_plays(
    tmp_path, local_server, output_format, file_format, suffix, subtype
):
    server = local_server()
    manifest = write_csv(tmp_path / "m.csv", [{"id": "x", "text": "Playable audio, please."}])
    job = run_job(
        manifest,
        tmp_path / "out",
        server.base_url,
        "--output-format",
        output_format,
        "--file-format",
        file_format,
        "--sample-rate",
        "24000",
    )
    assert job.exit_code == 0, job.output
    [record] = job.results()
    path = job.out / record["path"]
    assert path.suffix == suffix
    info = soundfile.info(path)
    assert info.samplerate == 24000
    if subtype:
        assert info.subtype == subtype
    want = expected_samples(text="Playable audio, please.", sample_rate=24000)
    assert abs(info.frames - want.size) <= (2000 if output_format == "mp3" else 0)


def test_raw_file_format_keeps_the_pcm_bytes(tmp_path, local_server):
    server = local_server()
    manifest = write_csv(tmp_path / "m.csv", [{"id": "x", "text": "Raw."}])
    job = run_job(manifest, tmp_path / "out", server.base_url, "--file-format", "raw", "--sample-rate", "8000")
    [record] = job.results()
    assert (job.out / record["path"]).read_bytes() == expected_samples(text="Raw.", sample_rate=8000).astype(
        "<i2"
    ).tobytes()


def test_results_in_csv_and_jsonl(tmp_path, local_server):
    server = local_server()
    manifest = write_csv(tmp_path / "m.csv", ROWS[:2])
    run_job(manifest, tmp_path / "out", server.base_url, "--results", str(tmp_path / "r.jsonl"))
    lines = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [r["status"] for r in lines] == ["ok", "ok"]
    run_job(manifest, tmp_path / "out2", server.base_url, "--results", str(tmp_path / "r.csv"))
    with (tmp_path / "r.csv").open(newline="") as handle:
        records = list(csv.DictReader(handle))
    assert [r["status"] for r in records] == ["ok", "ok"]
    assert list(records[0])[:3] == ["id", "row", "status"]


def test_missing_text_column_stops_before_any_request(tmp_path, local_server):
    server = local_server()
    manifest = write_csv(tmp_path / "m.csv", [{"id": "a", "words": "no text column"}])
    job = run_job(manifest, tmp_path / "out", server.base_url)
    assert job.exit_code == 2
    assert "text" in job.output and "words" in job.output
    assert server.stats.snapshot()["starts_total"] == 0


def test_unreadable_manifest_exits_2(tmp_path, local_server):
    server = local_server()
    bad = tmp_path / "m.parquet"
    bad.write_bytes(b"not parquet at all")
    job = run_job(bad, tmp_path / "out", server.base_url)
    assert job.exit_code == 2


def test_no_key_exits_2_and_says_how_to_provide_one(tmp_path, local_server):
    server = local_server()
    manifest = write_csv(tmp_path / "m.csv", ROWS[:1])
    job = run_job(manifest, tmp_path / "out", server.base_url, key=None)
    assert job.exit_code == 2
    assert "SMALLEST_API_KEY" in job.output and "--api-key-file" in job.output
    assert server.stats.snapshot()["starts_total"] == 0


def test_a_rejected_key_stops_the_job_and_never_appears(tmp_path, local_server):
    server = local_server(api_key="the-right-key")
    rows = [{"id": str(i), "text": f"Row {i}."} for i in range(40)]
    manifest = write_csv(tmp_path / "m.csv", rows)
    job = run_job(manifest, tmp_path / "out", server.base_url, "-vv", "--concurrency", "2")
    assert job.exit_code == 3, job.output
    assert "rejected the key" in job.output
    assert server.stats.snapshot()["starts_total"] == 0
    stats = server.stats.snapshot()
    assert stats["requests"]["voices"] == 1  # the voice check's one request, refused too: a warning, no stop
    assert 1 <= stats["responses"].get("401", 0) - stats["requests"]["voices"] <= 2
    for path in job.out.rglob("*"):
        if path.is_file():
            assert TEST_KEY.encode() not in path.read_bytes()
    assert TEST_KEY not in job.output


def test_api_key_file_is_read_and_its_key_accepted(tmp_path, local_server):
    server = local_server(api_key=TEST_KEY)
    key_file = tmp_path / "key.txt"
    key_file.write_text(TEST_KEY + "\n")
    manifest = write_csv(tmp_path / "m.csv", ROWS[:1])
    job = run_job(manifest, tmp_path / "out", server.base_url, "--api-key-file", str(key_file), key=None)
    assert job.exit_code == 0, job.output


def test_local_flag_runs_without_a_key(tmp_path):
    manifest = write_csv(tmp_path / "m.csv", ROWS[:2])
    job = run_job(manifest, tmp_path / "out", None, "--local", "--engine", "synthetic", key=None)
    assert job.exit_code == 0, job.output
    assert "local server" in job.output
    assert all(r["status"] == "ok" for r in job.results())


def test_a_missing_manifest_is_reported_before_any_server_starts_or_key_is_read(tmp_path):
    local = run_job(tmp_path / "nope.csv", tmp_path / "out", None, "--local", "--engine", "synthetic", key=None)
    assert local.exit_code == 2
    assert "no such manifest file" in local.output
    assert "local server" not in local.output  # it was never started
    no_key = run_job(tmp_path / "nope.csv", tmp_path / "out", "http://127.0.0.1:9", key=None)
    assert no_key.exit_code == 2
    assert "no such manifest file" in no_key.output and "API key" not in no_key.output


def test_concurrency_caps_streams_in_flight(tmp_path, local_server):
    server = local_server(latency=0.05)
    rows = [{"id": str(i), "text": f"Row number {i}."} for i in range(12)]
    job = run_job(write_csv(tmp_path / "m.csv", rows), tmp_path / "out", server.base_url, "--concurrency", "3")
    assert job.exit_code == 0
    assert server.stats.snapshot()["max_concurrent_streams"] <= 3


def test_a_relative_output_folder_works(tmp_path, local_server, monkeypatch):
    server = local_server()
    monkeypatch.chdir(tmp_path)
    write_csv(tmp_path / "m.csv", ROWS[:1])
    job = run_job(Path("m.csv"), Path("out"), server.base_url)
    assert job.exit_code == 0, job.output
    [record] = job.results()
    assert record["path"] == "audio/a.wav"
    assert (tmp_path / "out" / "audio" / "a.wav").is_file()


def test_results_text_carries_each_rows_text_so_a_failure_reads_without_the_manifest(tmp_path, local_server):
    server = local_server()
    rows = [{"id": "a", "sentence": "Fine words."}, {"id": "b", "sentence": "No voice.", "voice_id": "nobody"}]
    manifest = write_csv(tmp_path / "m.csv", rows)
    args = ("--text-column", "sentence", "--results-text", "--results", str(tmp_path / "r.csv"))
    job = run_job(manifest, tmp_path / "out", server.base_url, *args)
    assert job.exit_code == 1, job.output
    with (tmp_path / "r.csv").open(newline="", encoding="utf-8") as handle:
        records = {r["id"]: r for r in csv.DictReader(handle)}
    assert records["a"]["sentence"] == "Fine words." and records["b"]["sentence"] == "No voice."
    assert records["b"]["status"] == "failed"
    plain = run_job(manifest, tmp_path / "out2", server.base_url, "--text-column", "sentence")
    assert "sentence" not in plain.results()[0]  # off by default: the manifest has the text already
