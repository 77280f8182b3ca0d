"""The shipped audiobook job, end to end with real speech: -18 LUFS under -3 dBTP, so ACX's check passes.

espeak speaks with about 20 dB between its loudness and its true peak, so one
gain under the ceiling leaves the chapters at -21 to -23 LUFS (too quiet for
ACX); the limiter brings them to the target. Loudness and true peak are
measured in the test (pyloudnorm, scipy's 4x resampler), not by the code under test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from batchtts.cli import main
from tests.e2e.test_book_loudness import measured

pytest.importorskip("espeakng_loader")  # the speech extra, installed by the test extra

JOB = Path(__file__).resolve().parents[2] / "jobs" / "audiobook.toml"


def run_shipped_job(out: Path, base_url: str, *extra: str) -> dict:
    argv = ["run", "--job", str(JOB), "--out", str(out), "--base-url", base_url, "--progress", "off", *extra]
    result = CliRunner().invoke(main, argv, env={"SMALLEST_API_KEY": "test-key", "BATCHTTS_BASE_URL": ""})
    assert result.exit_code == 0, result.output
    return json.loads((out / "summary.json").read_text())


def check_audiobook(out: Path) -> dict:
    return json.loads(CliRunner().invoke(main, ["check-audiobook", str(out), "--json"]).output)


def test_the_shipped_audiobook_job_reaches_its_loudness_and_passes_check_audiobook(tmp_path, local_server):
    server = local_server(engine="espeak")
    out = tmp_path / "book"
    loudness = run_shipped_job(out, server.base_url)["loudness"]
    assert loudness["files"] == 3 and loudness["limited_by_peak"] == 0 and loudness["limiter_applied"] == 3
    for name, figures in loudness["by_file"].items():
        lufs, true_peak, _ = measured(out / name)
        assert abs(lufs - -18.0) <= 0.5, (name, lufs)
        assert true_peak <= -3.0, (name, true_peak)
        assert figures["after_lufs"] == pytest.approx(lufs, abs=0.05)
        assert figures["true_peak_after_dbtp"] == pytest.approx(true_peak, abs=0.05)
        assert 0 < figures["limited_samples_share"] < 1 and 0 < figures["max_gain_reduction_db"] <= 12
        assert "limited_samples_share=" in (out / name).with_suffix(".ffmeta").read_text()
    report = check_audiobook(out)
    assert report["ok"], report
    assert all(-23 <= chapter["rms_db"] <= -18 for chapter in report["chapters"])

    # Without the limiter, the same speech is held back by its peaks: quieter than asked, and ACX says so.
    plain = tmp_path / "plain"
    loudness = run_shipped_job(plain, server.base_url, "--no-limiter")["loudness"]
    assert loudness["limited_by_peak"] == 3 and loudness["limiter_applied"] == 0
    assert all(measured(plain / name)[0] < -20.0 for name in loudness["by_file"])
    assert not check_audiobook(plain)["ok"]
