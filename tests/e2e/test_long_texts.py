"""Texts past the model card's recommended 250 characters: run says once how to split them."""

from __future__ import annotations

from tests.runner_support import run_job, write_csv

LONG = "The lighthouse had been dark for eleven years when Mara climbed its steps. " * 4  # 300 characters
ADVICE = "the model card recommends at most 250 per request: --max-chars 250 splits longer texts"


def test_run_suggests_max_chars_once_at_the_first_long_row(tmp_path, local_server):
    server = local_server()
    rows = [{"id": "short", "text": "Short."}, {"id": "long-1", "text": LONG}, {"id": "long-2", "text": LONG + "!"}]
    job = run_job(write_csv(tmp_path / "m.csv", rows), tmp_path / "out", server.base_url, "--sample-rate", "8000")
    assert job.exit_code == 0, job.output
    assert job.output.count(ADVICE) == 1
    assert f"row 'long-1' has {len(LONG)} characters" in job.output


def test_no_advice_with_max_chars_or_short_texts(tmp_path, local_server):
    server = local_server()
    long_rows = write_csv(tmp_path / "m.csv", [{"id": "long", "text": LONG}])
    split = run_job(long_rows, tmp_path / "out", server.base_url, "--sample-rate", "8000", "--max-chars", "400")
    assert split.exit_code == 0, split.output
    assert "model card" not in split.output
    short = run_job(write_csv(tmp_path / "s.csv", [{"id": "a", "text": "Hi."}]), tmp_path / "out2", server.base_url)
    assert short.exit_code == 0 and "model card" not in short.output
