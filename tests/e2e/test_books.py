"""Audiobooks and datasets end to end: long texts, chapters, voice fan-out, layouts, reruns.

Every test runs the real runner against the real local server on loopback;
audio is checked sample for sample against what the synthetic engine sends.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pytest

from batchtts.api.request import is_valid_id
from batchtts.audio.join import gap_frames
from batchtts.job.shaping.chapters import parse_ffmetadata
from batchtts.job.shaping.textsplit import split_text
from batchtts.ledger.writers import results_schema
from batchtts.units import Rate
from tests.runner_support import (
    FAST_BACKOFF,
    expected_samples,
    leftover_temp_files,
    read_int16,
    run_job,
    write_csv,
)
from tests.schedule.test_throttle import max_in_window

RATE = 8000
LONG = (
    "It was a dark and stormy night. The wind howled, and Dr. Smith waited by the door. "
    "Nobody came until 3 a.m. that morning. Then, at last, a knock: slow, heavy, and patient. "
    '"Who is there?" he asked. Silence answered him.'
)


def joined(texts: list[str], gap_ms: int, *, rate: int = RATE, voice: str = "magnus") -> np.ndarray:
    """What the joined file must hold: each text's samples, ``gap_ms`` of zeros between them."""
    gap = np.zeros(gap_frames(gap_ms, rate), dtype=np.int16)
    pieces: list[np.ndarray] = []
    for index, text in enumerate(texts):
        if index:
            pieces.append(gap)
        pieces.append(expected_samples(text=text, sample_rate=rate, voice_id=voice))
    return np.concatenate(pieces)


def stored_parts(out: Path) -> list[Path]:
    return sorted((out / ".batchtts" / "parts").rglob("*.wav")) if (out / ".batchtts" / "parts").exists() else []


def starts(server) -> int:
    return server.stats.snapshot()["starts_total"]


# --- long texts -------------------------------------------------------------------------------


@pytest.mark.parametrize("gap_ms", [0, 120])
def test_a_long_text_is_split_synthesized_in_parts_and_joined_exactly(tmp_path, local_server, gap_ms):
    server = local_server(latency=0.02)
    manifest = write_csv(tmp_path / "m.csv", [{"id": "long", "text": LONG}, {"id": "short", "text": "Hi there."}])
    job = run_job(
        manifest,
        tmp_path / "out",
        server.base_url,
        "--max-chars",
        "60",
        "--join-gap-ms",
        str(gap_ms),
        "--sample-rate",
        str(RATE),
        "--concurrency",
        "3",
    )
    assert job.exit_code == 0, job.output
    texts = split_text(LONG, 60)
    assert len(texts) >= 5
    results = job.by_id()
    long = results["long"]
    assert long["status"] == "ok" and long["path"] == "audio/long.wav"
    assert long["parts"] == len(texts)
    assert len(long["part_request_ids"]) == len(texts) == len(set(long["part_request_ids"]))
    assert all(is_valid_id(rid) and rid.startswith(f"long_p{i}.") for i, rid in enumerate(long["part_request_ids"], 1))
    assert long["attempts"] == len(texts)
    data, rate = read_int16(job.out / long["path"])
    want = joined(texts, gap_ms)
    assert rate == RATE and np.array_equal(data, want)
    assert long["audio_seconds"] == pytest.approx(len(want) / RATE)
    # A text that fits is one request, written straight to its file.
    short = results["short"]
    assert short["parts"] == 1 and short["part_request_ids"] == [short["request_id"]]
    assert np.array_equal(read_int16(job.out / short["path"])[0], joined(["Hi there."], 0))
    # Every part went through the same limits: one request each, never more than 3 streams at once.
    stats = server.stats.snapshot()
    assert stats["starts_total"] == len(texts) + 1
    assert stats["max_concurrent_streams"] <= 3
    assert stored_parts(job.out) == []  # parts are dropped once their file is written
    assert leftover_temp_files(job.out) == []


def test_parts_are_paced_and_retried_like_any_request(tmp_path, local_server):
    server = local_server(rate=Rate(20, 1.0), faults={"503": 0.3}, seed=2)
    manifest = write_csv(tmp_path / "m.csv", [{"id": "long", "text": LONG}])
    job = run_job(
        manifest,
        tmp_path / "out",
        server.base_url,
        "--max-chars",
        "40",
        "--rate",
        "20/s",
        "--no-adaptive",
        "--concurrency",
        "6",
        "--max-attempts",
        "12",
        "--sample-rate",
        str(RATE),
        *FAST_BACKOFF,
    )
    assert job.exit_code == 0, job.output
    stats = server.stats.snapshot()
    texts = split_text(LONG, 40)
    [record] = job.results()
    assert stats["rate_limited"] == 0
    assert max_in_window(stats["start_times"], 1.0) <= 20
    assert stats["faults"]["503"] > 0
    assert record["attempts"] == len(texts) + stats["faults"]["503"]
    assert np.array_equal(read_int16(job.out / record["path"])[0], joined(texts, 0))


def test_keep_parts_keeps_them_and_results_in_csv_hold_the_part_ids_as_json(tmp_path, local_server):
    server = local_server()
    manifest = write_csv(tmp_path / "m.csv", [{"id": "long", "text": LONG}])
    results_csv = tmp_path / "r.csv"
    job = run_job(
        manifest,
        tmp_path / "out",
        server.base_url,
        "--max-chars",
        "80",
        "--keep-parts",
        "--sample-rate",
        str(RATE),
        "--results",
        str(results_csv),
    )
    assert job.exit_code == 0, job.output
    texts = split_text(LONG, 80)
    assert len(stored_parts(job.out)) == len(texts)
    schema = results_schema(extra_columns=("parts", "part_request_ids"), for_csv=True)
    [record] = pacsv.read_csv(results_csv, convert_options=pacsv.ConvertOptions(column_types=schema)).to_pylist()
    assert record["parts"] == len(texts)
    assert len(json.loads(record["part_request_ids"])) == len(texts)


def test_a_failed_part_fails_its_row_and_a_rerun_sends_only_the_failed_parts(tmp_path, local_server):
    flaky = local_server(faults={"500": 0.5}, seed=3)
    manifest = write_csv(tmp_path / "m.csv", [{"id": "long", "text": LONG}])
    out = tmp_path / "out"
    args = ["--max-chars", "40", "--sample-rate", str(RATE), "--concurrency", "1"]
    first = run_job(manifest, out, flaky.base_url, *args, "--max-attempts", "1")
    texts = split_text(LONG, 40)
    [record] = first.results()
    assert first.exit_code == 1
    assert record["status"] == "failed" and record["path"] is None
    assert record["error"].startswith("part ") and "HTTP 500" in record["error"]
    assert not (out / "audio" / "long.wav").exists()
    done = len(stored_parts(out))
    assert 0 < done < len(texts)  # a half-done row: some parts kept for the rerun
    assert len(record["part_request_ids"]) == len(texts)

    clean = local_server()
    second = run_job(manifest, out, clean.base_url, *args)
    assert second.exit_code == 0, second.output
    assert starts(clean) == len(texts) - done
    [record] = second.results()
    assert record["attempts"] == len(texts) - done
    assert np.array_equal(read_int16(out / record["path"])[0], joined(texts, 0))
    assert stored_parts(out) == []


def test_compressed_formats_cannot_be_joined(tmp_path, local_server):
    server = local_server()
    manifest = write_csv(tmp_path / "m.csv", [{"id": "a", "text": LONG}])
    for option in (["--max-chars", "50"], ["--group-by", "id"]):
        job = run_job(manifest, tmp_path / "out", server.base_url, *option, "--output-format", "mp3")
        assert job.exit_code == 2
        assert "cannot be joined" in job.output
    assert starts(server) == 0
    # A row that asks for mp3 in its own cell fails alone; the others go on.
    rows = [{"id": "a", "text": "Short.", "output_format": "mp3"}, {"id": "b", "text": "Short.", "output_format": ""}]
    job = run_job(write_csv(tmp_path / "n.csv", rows), tmp_path / "out2", server.base_url, "--max-chars", "50")
    results = job.by_id()
    assert job.exit_code == 1
    assert "cannot be joined" in results["a"]["error"] and results["a"]["attempts"] == 0
    assert results["b"]["status"] == "ok"


# --- chapters from rows -------------------------------------------------------------------------

BOOK = [
    {"id": "c1-p10", "chapter": "Chapter 1", "para": "10", "heading": "Ten", "text": "The tenth paragraph."},
    {"id": "c2-p1", "chapter": "Chapter 2", "para": "1", "heading": "", "text": "Chapter two opens."},
    {"id": "c1-p2", "chapter": "Chapter 1", "para": "2", "heading": "Two", "text": "The second paragraph."},
    {"id": "c1-p1", "chapter": "Chapter 1", "para": "1", "heading": "One", "text": "It begins. Slowly, at first."},
]


def test_group_by_joins_each_group_in_numeric_order_with_chapter_marks(tmp_path, local_server):
    server = local_server()
    manifest = write_csv(tmp_path / "book.csv", BOOK)
    job = run_job(
        manifest,
        tmp_path / "out",
        server.base_url,
        "--group-by",
        "chapter",
        "--order-by",
        "para",
        "--title-column",
        "heading",
        "--join-gap-ms",
        "500",
        "--sample-rate",
        str(RATE),
    )
    assert job.exit_code == 0, job.output
    results = job.results()
    assert [r["id"] for r in results] == ["c1-p10", "c2-p1", "c1-p2", "c1-p1"]  # manifest order
    chapter1 = results[0]["path"]
    assert chapter1.startswith("audio/Chapter_1~") and chapter1.endswith(".wav")
    assert {r["path"] for r in results if r["chapter"] == "Chapter 1"} == {chapter1}
    assert results[1]["path"].startswith("audio/Chapter_2~")
    assert all(r["status"] == "ok" and r["attempts"] == 1 for r in results)
    # Numeric order: 1, 2, 10 (not 1, 10, 2).
    ordered = ["It begins. Slowly, at first.", "The second paragraph.", "The tenth paragraph."]
    data, _rate = read_int16(job.out / chapter1)
    assert np.array_equal(data, joined(ordered, 500))
    # Chapter marks: every row's start and end, from the same frame arithmetic.
    chapters_file = (job.out / chapter1).with_suffix(".ffmeta")
    tags, chapters = parse_ffmetadata(chapters_file.read_text(encoding="utf-8"))
    assert tags == {"title": "Chapter 1"}
    assert [c["title"] for c in chapters] == ["One", "Two", "Ten"]
    assert all(c["TIMEBASE"] == "1/1000" for c in chapters)
    position, gap = 0, gap_frames(500, RATE)
    by_id = {r["id"]: r for r in results}
    for chapter, text, row_id in zip(chapters, ordered, ["c1-p1", "c1-p2", "c1-p10"]):
        length = len(expected_samples(text=text, sample_rate=RATE))
        assert int(chapter["START"]) == round(position * 1000 / RATE)
        assert int(chapter["END"]) == round((position + length) * 1000 / RATE)
        assert by_id[row_id]["audio_seconds"] == pytest.approx(length / RATE)
        position += length + gap
    # The empty title cell falls back to the row id.
    _, chapters2 = parse_ffmetadata((job.out / results[1]["path"]).with_suffix(".ffmeta").read_text(encoding="utf-8"))
    assert [c["title"] for c in chapters2] == ["c2-p1"]


def test_text_order_when_the_order_column_is_not_numeric_and_manifest_order_without_one(tmp_path, local_server):
    server = local_server()
    rows = [{"id": "x", "part": "b", "book": "B", "text": "Bee."},
            {"id": "y", "part": "a10", "book": "B", "text": "Ay ten."},
            {"id": "z", "part": "a2", "book": "B", "text": "Ay two."}]  # fmt: skip
    manifest = write_csv(tmp_path / "m.csv", rows)
    job = run_job(
        manifest,
        tmp_path / "out",
        server.base_url,
        "--group-by",
        "book",
        "--order-by",
        "part",
        "--sample-rate",
        str(RATE),
    )
    assert job.exit_code == 0, job.output
    data, _ = read_int16(job.out / "audio" / "B~{}.wav".format(hashlib.sha256(b"B").hexdigest()[:16]))
    assert np.array_equal(data, joined(["Ay ten.", "Ay two.", "Bee."], 0))
    job = run_job(manifest, tmp_path / "out2", server.base_url, "--group-by", "book", "--sample-rate", str(RATE))
    data, _ = read_int16(job.out / job.results()[0]["path"])
    assert np.array_equal(data, joined(["Bee.", "Ay ten.", "Ay two."], 0))


def test_a_failed_row_fails_its_group_and_a_rerun_redoes_only_what_failed(tmp_path, local_server):
    """Resume of a half-done book: the rerun sends only the requests that failed."""
    rows = [{"id": f"p{i}", "chapter": "one" if i < 4 else "two",
             "text": f"Paragraph {i} starts. It goes on, {i}. Then it ends {i}."} for i in range(1, 7)]  # fmt: skip
    rows.append({"id": "bad", "chapter": "two", "text": "  "})  # a bad row breaks chapter two
    manifest = write_csv(tmp_path / "m.csv", rows)
    out = tmp_path / "out"
    flaky = local_server(faults={"503": 0.4}, seed=5)
    args = ["--group-by", "chapter", "--max-chars", "25", "--sample-rate", str(RATE), "--concurrency", "2"]
    first = run_job(manifest, out, flaky.base_url, *args, "--max-attempts", "1")
    assert first.exit_code == 1
    results = first.by_id()
    assert all(r["status"] == "failed" and r["path"] is None for r in results.values())
    group_failures = [r for r in results.values() if "not written" in r["error"]]
    assert group_failures  # rows whose own requests all succeeded, failed by their group
    assert all("'bad'" in r["error"] for r in group_failures if r["chapter"] == "two")
    assert all(r["error"].startswith(("part ", "HTTP", "text:", "group ")) for r in results.values())
    assert not list((out / "audio").glob("*")) if (out / "audio").exists() else True  # no file with holes
    texts = [t for r in rows[:6] for t in split_text(r["text"], 25)]
    kept = len(stored_parts(out))
    assert 0 < kept < len(texts)

    # Fix the bad row; rerun against a healthy server.
    rows[-1]["text"] = "Now it has words."
    write_csv(tmp_path / "m.csv", rows)
    clean = local_server()
    second = run_job(manifest, out, clean.base_url, *args)
    assert second.exit_code == 0, second.output
    assert starts(clean) == len(texts) - kept + 1
    results = second.by_id()
    one = [t for r in rows[:3] for t in split_text(r["text"], 25)]
    two = [t for r in rows[3:] for t in split_text(r["text"], 25)]
    one_path, two_path = results["p1"]["path"], results["p4"]["path"]
    assert one_path == "audio/one.wav" and two_path == "audio/two.wav"
    assert np.array_equal(read_int16(out / one_path)[0], joined(one, 0))
    assert np.array_equal(read_int16(out / two_path)[0], joined(two, 0))
    assert stored_parts(out) == []


def test_group_options_are_checked_before_any_request(tmp_path, local_server):
    server = local_server()
    manifest = write_csv(tmp_path / "m.csv", BOOK)
    for args, message in (
        (["--group-by", "nope"], "no column 'nope'"),
        (["--group-by", "chapter", "--order-by", "nope"], "no column 'nope'"),
        (["--order-by", "para"], "--order-by needs --group-by"),
        (["--group-by", "chapter", "--metadata", "audiofolder"], "--metadata"),
    ):
        job = run_job(manifest, tmp_path / "out", server.base_url, *args)
        assert job.exit_code == 2, (args, job.output)
        assert message in job.output
    assert starts(server) == 0


@pytest.mark.skipif(
    not (shutil.which("ffmpeg") or __import__("importlib").util.find_spec("imageio_ffmpeg")),
    reason="needs ffmpeg (or the imageio-ffmpeg package)",
)
def test_ffmpeg_makes_an_m4b_with_the_chapter_marks(tmp_path, local_server):
    server = local_server()
    job = run_job(
        write_csv(tmp_path / "book.csv", BOOK),
        tmp_path / "out",
        server.base_url,
        "--group-by",
        "chapter",
        "--order-by",
        "para",
        "--title-column",
        "heading",
        "--sample-rate",
        "16000",
    )
    wav = job.out / job.results()[0]["path"]
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        import imageio_ffmpeg

        ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    m4b = tmp_path / "book.m4b"
    subprocess.run([ffmpeg, "-v", "error", "-i", str(wav), "-i", str(wav.with_suffix(".ffmeta")),
                    "-map_metadata", "1", "-c:a", "aac", str(m4b)], check=True, timeout=60)  # fmt: skip
    probe = subprocess.run([ffmpeg, "-hide_banner", "-i", str(m4b)], capture_output=True, text=True, timeout=60)
    assert "Chapter #0:2" in probe.stderr and "title           : Ten" in probe.stderr


# --- voice fan-out --------------------------------------------------------------------------------


def test_voices_fan_out_one_file_and_one_results_row_per_row_and_voice(tmp_path, local_server):
    server = local_server()
    rows = [{"id": "a", "text": "Hello.", "voice_id": "lucia"}, {"id": "b", "text": "World.", "voice_id": ""},
            {"id": "c", "text": " ", "voice_id": ""}]  # fmt: skip
    manifest = write_csv(tmp_path / "m.csv", rows)
    job = run_job(manifest, tmp_path / "out", server.base_url, "--voices", "emily,magnus", "--sample-rate", str(RATE))
    assert job.exit_code == 1  # row c is bad, in both voices
    results = job.results()
    assert [(r["id"], r["voice_id"], r["status"]) for r in results] == [
        ("a", "emily", "ok"), ("a", "magnus", "ok"), ("b", "emily", "ok"), ("b", "magnus", "ok"),
        ("c", "emily", "failed"), ("c", "magnus", "failed"),
    ]  # fmt: skip
    assert len({r["request_id"] for r in results[:4]}) == 4
    for record in results[:4]:
        assert record["path"] == f"audio/{record['voice_id']}/{record['id']}.wav"
        text = {"a": "Hello.", "b": "World."}[record["id"]]
        assert np.array_equal(read_int16(job.out / record["path"])[0], joined([text], 0, voice=record["voice_id"]))
    assert starts(server) == 4
    assert "4 ok, 2 failed" in job.output


def test_voices_with_long_texts_and_groups(tmp_path, local_server):
    server = local_server()
    manifest = write_csv(tmp_path / "m.csv", BOOK)
    job = run_job(
        manifest,
        tmp_path / "out",
        server.base_url,
        "--voices",
        "emily,arjun",
        "--group-by",
        "chapter",
        "--order-by",
        "para",
        "--max-chars",
        "15",
        "--sample-rate",
        str(RATE),
    )
    assert job.exit_code == 0, job.output
    results = job.results()
    assert len(results) == 8
    ordered = [t for text in ("It begins. Slowly, at first.", "The second paragraph.", "The tenth paragraph.")
               for t in split_text(text, 15)]  # fmt: skip
    for voice in ("emily", "arjun"):
        [path] = {r["path"] for r in results if r["voice_id"] == voice and r["chapter"] == "Chapter 1"}
        assert path.startswith(f"audio/{voice}/Chapter_1~")
        assert np.array_equal(read_int16(job.out / path)[0], joined(ordered, 0, voice=voice))
    assert len({r["path"] for r in results}) == 4


def test_voices_conflicts_with_voice_id(tmp_path, local_server):
    job = run_job(
        write_csv(tmp_path / "m.csv", BOOK),
        tmp_path / "out",
        local_server().base_url,
        "--voices",
        "emily",
        "--voice-id",
        "magnus",
    )
    assert job.exit_code == 2 and "--voices" in job.output


# --- layouts -----------------------------------------------------------------------------------------

DATA = [
    {"id": "utt-1", "text": "First clip.", "speaker": "s1", "file_name": "x"},
    {"id": "utt-2", "text": "Second | clip,\nwith a line break.", "speaker": "s2", "file_name": "y"},
    {"id": "utt-3", "text": "", "speaker": "s3", "file_name": "z"},  # bad: not listed
]


@pytest.mark.parametrize("kind", ["audiofolder", "audiofolder-jsonl"])
def test_audiofolder_metadata_lists_exactly_the_ok_files(tmp_path, local_server, kind):
    server = local_server()
    job = run_job(
        write_csv(tmp_path / "m.csv", DATA),
        tmp_path / "out",
        server.base_url,
        "--metadata",
        kind,
        "--voices",
        "emily,lucia",
        "--sample-rate",
        "16000",
        "--speed",
        "1.25",
        "--shard-dirs",
        "1",
    )
    assert job.exit_code == 1
    if kind == "audiofolder":
        with (job.out / "metadata.csv").open(newline="", encoding="utf-8") as handle:
            records = list(csv.DictReader(handle))
    else:
        records = [json.loads(line) for line in (job.out / "metadata.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r["voice_id"]) for r in records] == [
        ("utt-1", "emily"),
        ("utt-1", "lucia"),
        ("utt-2", "emily"),
        ("utt-2", "lucia"),
    ]
    ok_paths = sorted(r["path"] for r in job.results() if r["status"] == "ok")
    assert sorted(r["file_name"] for r in records) == ok_paths
    assert all((job.out / r["file_name"]).is_file() for r in records)
    first = records[0]
    assert list(first)[:3] == ["file_name", "id", "text"]
    assert first["text"] == "First clip."
    assert records[2]["text"] == DATA[1]["text"]  # the text as sent, newline and all
    assert str(first["sample_rate"]) == "16000" and float(first["speed"]) == 1.25
    assert first["model"] == "lightning_v3.1" and first["output_format"] == "pcm"
    assert first["speaker"] == "s1" and first["input_file_name"] == "x"  # carried; a clash gets input_
    digest = hashlib.sha256(b"utt-1").hexdigest()
    assert first["file_name"] == f"audio/emily/{digest[:2]}/utt-1.wav"


def test_ljspeech_layout(tmp_path, local_server):
    server = local_server()
    job = run_job(
        write_csv(tmp_path / "m.csv", DATA),
        tmp_path / "out",
        server.base_url,
        "--metadata",
        "ljspeech",
        "--sample-rate",
        "24000",
        "--max-chars",
        "20",
    )
    assert job.exit_code == 1
    lines = (job.out / "metadata.csv").read_text(encoding="utf-8").splitlines()
    assert lines == [
        "utt-1|First clip.|First clip.",
        "utt-2|Second clip, with a line break.|Second clip, with a line break.",
    ]
    assert sorted(p.name for p in (job.out / "wavs").iterdir()) == ["utt-1.wav", "utt-2.wav"]
    assert not (job.out / "audio").exists()
    results = job.by_id()
    assert results["utt-2"]["path"] == "wavs/utt-2.wav" and results["utt-2"]["parts"] == 2
    for args in (["--voices", "emily,lucia"], ["--shard-dirs", "1"], ["--file-format", "flac"]):
        refused = run_job(
            write_csv(tmp_path / "m.csv", DATA), tmp_path / "o2", server.base_url, "--metadata", "ljspeech", *args
        )
        assert refused.exit_code == 2, args


def test_shard_dirs_spread_plain_rows_over_hashed_folders(tmp_path, local_server):
    server = local_server()
    rows = [{"id": f"row-{i}", "text": f"Row {i}."} for i in range(20)]
    job = run_job(write_csv(tmp_path / "m.csv", rows), tmp_path / "out", server.base_url, "--shard-dirs", "2")
    assert job.exit_code == 0, job.output
    for record in job.results():
        digest = hashlib.sha256(record["id"].encode()).hexdigest()
        assert record["path"] == f"audio/{digest[:2]}/{digest[2:4]}/{record['id']}.wav"
        assert (job.out / record["path"]).is_file()
    assert len({r["path"].split("/")[1] for r in job.results()}) > 10
