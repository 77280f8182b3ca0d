"""The results keep what the answers say: X-Request-Id, X-Session-Id, and x-content-expiry with --expire-content."""

from __future__ import annotations

import re

from tests.runner_support import recording_server, run_job, write_csv

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ROWS = [{"id": "a", "text": "First line."}, {"id": "b", "text": "Second line."}]


def test_server_ids_are_kept_for_every_row(tmp_path, local_server):
    server = local_server()
    job = run_job(write_csv(tmp_path / "m.csv", ROWS), tmp_path / "out", server.base_url)
    assert job.exit_code == 0, job.output
    results = job.results()
    assert all(r["server_request_id"] and UUID.fullmatch(r["server_session_id"]) for r in results)
    assert len({r["server_session_id"] for r in results}) == 2
    assert all(r["content_expiry"] is None for r in results)  # not asked: not sent, not answered


def test_a_failed_rows_server_session_id_is_kept(tmp_path, local_server):
    server = local_server(faults={"500": 1.0})
    job = run_job(write_csv(tmp_path / "m.csv", ROWS[:1]), tmp_path / "out", server.base_url, "--max-attempts", "1")
    [record] = job.results()
    assert record["status"] == "failed" and record["http_status"] == 500
    assert UUID.fullmatch(record["server_session_id"]) and record["server_request_id"]


def test_expire_content_sends_the_header_and_keeps_the_verdict(tmp_path):
    with recording_server() as (server, recorder):
        asked = run_job(write_csv(tmp_path / "m.csv", ROWS), tmp_path / "out", server.base_url, "--expire-content")
        plain = run_job(tmp_path / "m.csv", tmp_path / "out2", server.base_url)
        live = [r for r in recorder.received if r.path == "/waves/v1/tts/live"]
    assert asked.exit_code == plain.exit_code == 0
    assert [r.headers.get("x-expire-content") for r in live] == ["true", "true", None, None]
    assert [r["content_expiry"] for r in asked.results()] == ["applied", "applied"]
    assert [r["content_expiry"] for r in plain.results()] == [None, None]


def test_a_verdict_other_than_applied_is_recorded_as_said(tmp_path, local_server):
    server = local_server(content_expiry="not-entitled")
    job = run_job(write_csv(tmp_path / "m.csv", ROWS), tmp_path / "out", server.base_url, "--expire-content",
                  "--max-chars", "8")  # fmt: skip
    assert job.exit_code == 0, job.output
    assert {r["content_expiry"] for r in job.results()} == {"not-entitled"}  # split rows: every part agreed
