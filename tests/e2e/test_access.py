"""A 403 stops the job at once, whichever it is: the account's usage limit, or a key of another workspace."""

from __future__ import annotations

from tests.nightly_support import summary
from tests.runner_support import TEST_KEY, run_job, write_csv

ROWS = [{"id": f"r{n:02d}", "text": f"Row number {n}."} for n in range(10)]


def _live_requests(server) -> int:
    return server.stats.snapshot()["requests"].get("live", 0)


def test_a_usage_limit_stops_the_job_and_leaves_the_rest_pending(tmp_path, local_server):
    server = local_server(quota_requests=3)
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    job = run_job(manifest, tmp_path / "out", server.base_url, "--concurrency", "1")
    assert job.exit_code == 3, job.output
    statuses = [r["status"] for r in job.results()]
    assert statuses == ["ok"] * 3 + ["failed"] + ["pending"] * 6
    refused = job.results()[3]
    assert refused["http_status"] == 403 and "usage limit is reached" in refused["error"]
    assert _live_requests(server) == 4  # nothing more was sent after the 403
    report = summary(tmp_path / "out")
    assert report["stop_reason"] == "quota" and report["exit_status"] == 3
    assert (
        "usage limit" in report["stop_message"] and "trial or workspace usage limit reached" in report["stop_message"]
    )
    assert "usage limit is reached" in job.output and "raise it (or wait until it resets)" in job.output
    assert all("not started" in r["error"] for r in job.results()[4:])

    again = run_job(manifest, tmp_path / "out", local_server().base_url, "--concurrency", "1")  # a fresh account
    assert again.exit_code == 0, again.output
    assert summary(tmp_path / "out")["skipped"] == 3
    assert all(r["status"] == "ok" for r in again.results())


def test_with_several_streams_nothing_starts_after_the_403(tmp_path, local_server):
    server = local_server(quota_characters=3 * len("Row number 0."), latency=0.02)
    job = run_job(write_csv(tmp_path / "m.csv", ROWS), tmp_path / "out", server.base_url, "--concurrency", "3")
    assert job.exit_code == 3, job.output
    counts = {s: [r["status"] for r in job.results()].count(s) for s in ("ok", "failed", "pending")}
    # A stream frees its slot before the 4th row can start; the 403 then cancels the streams still in flight.
    assert counts["ok"] >= 1 and counts["failed"] >= 1 and counts["pending"] >= 4 and sum(counts.values()) == 10
    assert _live_requests(server) <= 3 + 3  # the 3 served, and at most one round of streams already in flight
    assert summary(tmp_path / "out")["stop_reason"] == "quota"


def test_a_key_of_another_workspace_stops_the_job_as_a_refused_key(tmp_path, local_server):
    server = local_server(forbidden_keys=frozenset({TEST_KEY}))
    job = run_job(write_csv(tmp_path / "m.csv", ROWS), tmp_path / "out", server.base_url, "--concurrency", "2")
    assert job.exit_code == 3, job.output
    report = summary(tmp_path / "out")
    assert report["stop_reason"] == "auth"
    assert "another workspace or product" in report["stop_message"]
    assert "rejected the key" in job.output
    assert server.stats.snapshot()["starts_total"] == 0
    assert 1 <= _live_requests(server) <= 2
    assert [r["status"] for r in job.results()].count("pending") >= 8
    assert TEST_KEY not in job.output
    for path in job.out.rglob("*"):
        if path.is_file():
            assert TEST_KEY.encode() not in path.read_bytes()
