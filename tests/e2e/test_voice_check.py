"""The voice check: the catalog is read once before the first request; rows with another voice fail unsent."""

from __future__ import annotations

import pytest

from tests.nightly_support import summary
from tests.runner_support import broken_catalog_server, run_job, write_csv

ROWS = [
    {"id": "known", "text": "A voice the catalog has.", "voice_id": "emily"},
    {"id": "unknown", "text": "A voice it lacks.", "voice_id": "nobody"},
    {"id": "default", "text": "The default voice.", "voice_id": ""},
]
REASON = "voice_id: unknown voice 'nobody' (not in the account's voice catalog)"


def test_rows_whose_voice_is_not_in_the_catalog_fail_with_no_request(tmp_path, local_server):
    server = local_server()
    job = run_job(write_csv(tmp_path / "m.csv", ROWS), tmp_path / "out", server.base_url, "-v")
    assert job.exit_code == 1, job.output
    results = job.by_id()
    assert results["unknown"]["status"] == "failed" and results["unknown"]["attempts"] == 0
    assert results["unknown"]["error"] == REASON and results["unknown"]["http_status"] is None
    assert results["known"]["status"] == results["default"]["status"] == "ok"
    requests = server.stats.snapshot()["requests"]
    assert requests == {"voices": 1, "live": 2}  # the catalog once, then only the rows it allows
    assert "voice 'nobody' is not in the account's voice catalog" in job.output
    report = summary(tmp_path / "out")
    assert (report["failed"], report["attempts"]) == (1, 2)


def test_voice_fan_out_and_reruns_check_each_voice(tmp_path, local_server):
    server = local_server()
    manifest = write_csv(tmp_path / "m.csv", [{"id": "a", "text": "Hello."}, {"id": "b", "text": "Bye."}])
    out = tmp_path / "out"
    job = run_job(manifest, out, server.base_url, "--voices", "emily,ghost")
    assert job.exit_code == 1, job.output
    by_voice = {(r["id"], r["voice_id"]): r for r in job.results()}
    assert {k: r["status"] for k, r in by_voice.items()} == {
        ("a", "emily"): "ok", ("a", "ghost"): "failed", ("b", "emily"): "ok", ("b", "ghost"): "failed",
    }  # fmt: skip
    assert server.stats.snapshot()["requests"]["live"] == 2
    again = run_job(manifest, out, server.base_url, "--voices", "emily,ghost")  # failures are checked again
    assert again.exit_code == 1 and server.stats.snapshot()["requests"] == {"voices": 2, "live": 2}


def test_no_voice_check_sends_every_row_and_the_api_decides(tmp_path, local_server):
    server = local_server()
    job = run_job(write_csv(tmp_path / "m.csv", ROWS), tmp_path / "out", server.base_url, "--no-voice-check")
    assert job.exit_code == 1
    unknown = job.by_id()["unknown"]
    assert unknown["http_status"] == 400 and unknown["attempts"] == 1
    assert server.stats.snapshot()["requests"] == {"live": 3}


# --- when the catalog cannot be read: a warning, and the job goes on unchecked -------------------


@pytest.mark.parametrize("kind", ["500", "not-json", "cut"])
def test_an_unreadable_catalog_warns_and_the_job_goes_on(tmp_path, kind):
    with broken_catalog_server(kind) as (server, said):
        job = run_job(write_csv(tmp_path / "m.csv", ROWS), tmp_path / "out", server.base_url)
    assert job.exit_code == 1, job.output  # 'unknown' is refused by the API itself now
    assert "cannot read the voice catalog" in job.output and said in job.output
    results = job.by_id()
    assert results["known"]["status"] == results["default"]["status"] == "ok"
    assert results["unknown"]["http_status"] == 400 and results["unknown"]["attempts"] == 1
