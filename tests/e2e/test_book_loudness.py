"""Loudness for books end to end: chapters joined by the real runner from the real local server, normalised once.

Every file is measured in the test with pyloudnorm (integrated loudness) and
scipy's 4x polyphase resampler (true peak), not with the code under test.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile
from click.testing import CliRunner
from scipy.signal import resample_poly

from batchtts.cli import main
from batchtts.job.shaping.chapters import parse_ffmetadata
from tests.runner_support import leftover_temp_files, run_job, write_csv

RATE = 24000
PARAGRAPHS = [
    ("ch01", 1, "It was a dark and stormy night; the rain fell in torrents."),
    ("ch01", 2, "Except at occasional intervals, when it was checked by a violent gust of wind."),
    ("ch01", 3, "Which swept up the streets, rattling along the housetops."),
    ("ch02", 1, "The lamps struggled against the darkness, and the night went on."),
    ("ch02", 2, "Nobody came to the door until three in the morning."),
]


def book(tmp_path: Path) -> Path:
    rows = [{"id": f"{c}-{n}", "chapter": c, "para": n, "text": t} for c, n, t in PARAGRAPHS]
    return write_csv(tmp_path / "book.csv", rows)


def measured(path: Path) -> tuple[float, float, np.ndarray]:
    """(integrated loudness LUFS, true peak dBTP, samples) of a file, measured independently."""
    samples, rate = soundfile.read(path, dtype="float64")
    loudness = pyloudnorm.Meter(rate).integrated_loudness(samples)
    true_peak = 20 * math.log10(float(np.max(np.abs(resample_poly(samples, 4, 1)))))
    return loudness, true_peak, samples


def chapter_args(*extra: str) -> list[str]:
    return ["--group-by", "chapter", "--order-by", "para", "--sample-rate", str(RATE), "--concurrency", "2", *extra]


@pytest.mark.parametrize("file_format", ["wav", "flac"])
def test_chapters_meet_the_loudness_target_under_the_peak_ceiling(tmp_path, local_server, file_format):
    server = local_server()
    out = tmp_path / "out"
    target = -26.0
    job = run_job(book(tmp_path), out, server.base_url, *chapter_args("--loudness", str(target), "--file-format",
                                                                      file_format))  # fmt: skip
    assert job.exit_code == 0, job.output
    summary = json.loads((out / "summary.json").read_text())
    by_file = summary["loudness"]["by_file"]
    assert set(by_file) == {f"audio/ch01.{file_format}", f"audio/ch02.{file_format}"}
    for name, figures in by_file.items():
        loudness, true_peak, _ = measured(out / name)
        assert abs(loudness - target) <= 0.5, (name, loudness)
        assert true_peak <= -3.0 + 0.01
        assert figures["after_lufs"] == pytest.approx(loudness, abs=0.05)
        assert figures["before_lufs"] != pytest.approx(loudness, abs=0.5)  # a gain was applied
        assert figures["gain_db"] == pytest.approx(target - figures["before_lufs"], abs=0.02)
        assert figures["limited_by_peak"] is False and figures["reused"] is False
        # The chapters file says the same, in comment lines FFmpeg ignores.
        text = (out / name).with_suffix(".ffmeta").read_text()
        assert f"after_lufs={figures['after_lufs']:g}" in text
        tags, chapters = parse_ffmetadata(text)
        assert tags == {"title": Path(name).stem} and len(chapters) in (2, 3)
    assert summary["loudness"]["files"] == 2 and summary["loudness"]["normalised"] == 2
    assert "batchtts: loudness: 2 files normalised, 0 kept, " in job.output
    assert not leftover_temp_files(out)


def test_a_rerun_that_reuses_the_chapters_does_not_normalise_them_again(tmp_path, local_server):
    server = local_server()
    out = tmp_path / "out"
    manifest = book(tmp_path)
    args = chapter_args("--loudness", "-24", "--room-tone", "0.75,2")
    assert run_job(manifest, out, server.base_url, *args).exit_code == 0
    files = sorted((out / "audio").glob("*.wav"))
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    starts = server.stats.snapshot()["starts_total"]
    again = run_job(manifest, out, server.base_url, *args)
    assert again.exit_code == 0, again.output
    assert server.stats.snapshot()["starts_total"] == starts  # nothing sent
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before  # not touched
    for path in files:
        assert abs(measured(path)[0] - -24.0) <= 0.5
    loudness = json.loads((out / "summary.json").read_text())["loudness"]
    assert loudness["files"] == 2 and loudness["normalised"] == 0
    assert all(figures["reused"] for figures in loudness["by_file"].values())
    assert "batchtts: loudness: 0 files normalised, 2 kept" in again.output
    # A changed target redoes the chapters (from fresh audio: the parts were never normalised).
    louder = run_job(manifest, out, server.base_url, *chapter_args("--loudness", "-22", "--room-tone", "0.75,2"))
    assert louder.exit_code == 0, louder.output
    for path in files:
        loudness_now, _peak, samples = measured(path)
        assert abs(loudness_now - -22.0) <= 0.5
        head, tail = int(0.75 * RATE), 2 * RATE
        assert not samples[:head].any() and not samples[-tail:].any()


def test_a_target_the_peaks_do_not_allow_is_left_quieter_and_said(tmp_path, local_server):
    server = local_server()
    out = tmp_path / "out"
    job = run_job(book(tmp_path), out, server.base_url, *chapter_args("--loudness", "-6", "--peak", "-3"))
    assert job.exit_code == 0, job.output
    assert "the gain was reduced to keep the true peak at -3.0 dBTP" in job.output
    for name, figures in json.loads((out / "summary.json").read_text())["loudness"]["by_file"].items():
        loudness, true_peak, _ = measured(out / name)
        assert figures["limited_by_peak"] is True
        assert true_peak == pytest.approx(-3.0, abs=0.05)
        assert loudness < -6.5 and figures["after_lufs"] == pytest.approx(loudness, abs=0.05)


def test_with_max_chars_every_row_file_is_normalised_even_a_short_one(tmp_path, local_server):
    server = local_server()
    rows = [{"id": "long", "text": " ".join(t for _c, _n, t in PARAGRAPHS)}, {"id": "short", "text": PARAGRAPHS[0][2]}]
    manifest = write_csv(tmp_path / "m.csv", rows)
    out = tmp_path / "out"
    job = run_job(manifest, out, server.base_url, "--max-chars", "80", "--loudness", "-25", "--sample-rate", str(RATE))
    assert job.exit_code == 0, job.output
    for name in ("long", "short"):
        assert abs(measured(out / "audio" / f"{name}.wav")[0] - -25.0) <= 0.5
    assert json.loads((out / "summary.json").read_text())["loudness"]["files"] == 2


def test_loudness_refuses_what_it_cannot_do_before_any_request(tmp_path, local_server):
    server = local_server()
    manifest = book(tmp_path)
    for args, message in (
        (["--loudness", "-18"], "--loudness is set on joined files"),
        (["--room-tone", "1,2"], "--room-tone is set on joined files"),
        ([*chapter_args("--loudness", "-18"), "--output-format", "mp3"], "cannot be joined"),
        ([*chapter_args("--loudness", "-18"), "--output-format", "ulaw"], "cannot be joined"),
        (chapter_args("--room-tone", "1"), "HEAD,TAIL"),
        (chapter_args("--loudness", "3"), "--loudness"),
    ):
        job = run_job(manifest, tmp_path / "out", server.base_url, *args)
        assert job.exit_code == 2, (args, job.output)
        assert message in job.output and "Traceback" not in job.output
    assert server.stats.snapshot()["starts_total"] == 0


def test_a_book_made_with_loudness_and_room_tone_passes_check_audiobook(tmp_path, local_server):
    server = local_server()
    out = tmp_path / "out"
    args = ["--group-by", "chapter", "--order-by", "para", "--sample-rate", "44100", "--file-format", "flac",
            "--loudness", "-20", "--room-tone", "0.6,2"]  # fmt: skip
    assert run_job(book(tmp_path), out, server.base_url, *args).exit_code == 0
    result = CliRunner().invoke(main, ["check-audiobook", str(out), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert [c["path"] for c in document["chapters"]] == ["audio/ch01.flac", "audio/ch02.flac"]
    for chapter in document["chapters"]:
        assert chapter["peak_dbfs"] <= -3.0 and 0.5 <= chapter["head_seconds"] <= 1.0
        assert 1.0 <= chapter["tail_seconds"] <= 5.0 and chapter["noise_floor_db"] <= -60
        assert -23 <= chapter["rms_db"] <= -18 and chapter["failures"] == []
    # The same book without room tone fails, for that reason.
    bare = tmp_path / "bare"
    assert run_job(book(tmp_path), bare, server.base_url, *args[:-2]).exit_code == 0
    failed = json.loads(CliRunner().invoke(main, ["check-audiobook", str(bare), "--json"]).output)
    assert not failed["ok"]
    assert all(any("room tone at" in f for f in c["failures"]) for c in failed["chapters"])


def test_without_the_book_extra_loudness_is_one_line_naming_the_install(tmp_path):
    import subprocess
    import sys

    # pyloudnorm made unimportable in a fresh interpreter, as on an install without the extra.
    code = "import sys; sys.modules['pyloudnorm'] = None; from batchtts.cli import main; main()"
    argv = [sys.executable, "-c", code, "run", str(book(tmp_path)), "--out", str(tmp_path / "out")]
    argv += [*chapter_args("--loudness", "-18"), "--local", "--progress", "off"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "pip install 'batchtts[book]'" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "audio").exists()


def test_kept_parts_are_never_normalised_so_another_target_starts_from_the_api_audio(tmp_path, local_server):
    server = local_server()
    out = tmp_path / "out"
    manifest = book(tmp_path)
    assert run_job(manifest, out, server.base_url, *chapter_args("--loudness", "-24", "--keep-parts")).exit_code == 0
    first = json.loads((out / "summary.json").read_text())["loudness"]["by_file"]
    starts = server.stats.snapshot()["starts_total"]
    job = run_job(manifest, out, server.base_url, *chapter_args("--loudness", "-21", "--keep-parts"))
    assert job.exit_code == 0, job.output
    assert server.stats.snapshot()["starts_total"] == starts  # made from the kept parts, nothing sent
    second = json.loads((out / "summary.json").read_text())["loudness"]["by_file"]
    for name, figures in second.items():
        # Measured before the gain: the API's audio, as in the first run, not the first run's -24 LUFS.
        assert figures["before_lufs"] == first[name]["before_lufs"] and figures["reused"] is False
        assert abs(measured(out / name)[0] - -21.0) <= 0.5
