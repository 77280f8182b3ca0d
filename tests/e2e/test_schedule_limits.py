"""Limits a scheduler sets (--deadline, --max-characters, --limit), and the folder lock."""

from __future__ import annotations

import json
import os
from datetime import datetime

from batchtts.job.lock import job_lock
from tests.nightly_support import starts, summary, temp_files
from tests.runner_support import run_job, write_csv

ROWS = [{"id": f"r{n}", "text": f"Row number {n}."} for n in range(1, 7)]  # 13 characters each


def test_a_deadline_already_passed_starts_nothing_and_exits_4(tmp_path, local_server):
    server = local_server()
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    job = run_job(manifest, tmp_path / "out", server.base_url, "--deadline", "0s")
    assert job.exit_code == 4, job.output
    assert starts(server) == 0
    results = job.results()
    assert [r["id"] for r in results] == [r["id"] for r in ROWS]  # the whole manifest, all pending
    assert {r["status"] for r in results} == {"pending"}
    assert all("not started: the deadline" in r["error"] for r in results)
    report = summary(tmp_path / "out")
    assert (report["exit_status"], report["stop_reason"], report["pending"]) == (4, "deadline", 6)
    assert "stopped: the deadline (--deadline 0s) passed" in job.output  # why, then what to do
    assert "next: rerun the same command to do the pending rows" in job.output
    # Tomorrow's run, without the deadline, does them all.
    again = run_job(manifest, tmp_path / "out", server.base_url)
    assert again.exit_code == 0 and starts(server) == 6


def test_a_clock_time_deadline_in_the_past_starts_nothing(tmp_path, local_server):
    server = local_server()
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    job = run_job(manifest, tmp_path / "out", server.base_url, "--deadline", "2020-01-01T06:00")
    assert job.exit_code == 4, job.output
    assert starts(server) == 0
    assert summary(tmp_path / "out")["stop_message"] == "the deadline (--deadline 2020-01-01T06:00) passed"


def test_a_time_of_day_deadline_lets_the_run_go_on(tmp_path, local_server):
    # The next 23:59 or 00:00 is at least a minute away (whichever comes first is
    # less than a minute away only in that one minute; use the other then).
    server = local_server()
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    clock = "23:59" if datetime.now().strftime("%H:%M") != "23:58" else "00:30"
    job = run_job(manifest, tmp_path / "out", server.base_url, "--deadline", clock)
    assert job.exit_code == 0, job.output
    assert starts(server) == 6


def test_rows_in_flight_at_the_deadline_finish(tmp_path, local_server):
    server = local_server(latency=0.4)
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    job = run_job(manifest, tmp_path / "out", server.base_url, "--deadline", "0.6s", "--concurrency", "1")
    assert job.exit_code == 4, job.output
    report = summary(tmp_path / "out")
    assert 1 <= report["ok"] < 6  # the first row starts at once; 6 rows need 2.4 s
    assert report["ok"] == starts(server)  # every row started finished: none was cut
    assert report["ok"] + report["pending"] == 6
    assert temp_files(tmp_path / "out") == []


def test_a_character_budget_stops_before_the_row_that_would_exceed_it(tmp_path, local_server):
    server = local_server()
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    job = run_job(manifest, tmp_path / "out", server.base_url, "--max-characters", "30", "--concurrency", "2")
    assert job.exit_code == 4, job.output
    assert starts(server) == 2  # 13 + 13 fit in 30; a third row would make 39
    statuses = [r["status"] for r in job.results()]
    assert statuses == ["ok", "ok", "pending", "pending", "pending", "pending"]
    report = summary(tmp_path / "out")
    assert report["stop_reason"] == "budget" and report["characters_sent"] == 26
    assert "--max-characters 30" in report["stop_message"]


def test_limit_counts_only_rows_that_send_a_request(tmp_path, local_server):
    server = local_server()
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    out = tmp_path / "out"
    first = run_job(manifest, out, server.base_url, "--limit", "2")
    assert first.exit_code == 4 and starts(server) == 2
    assert [r["status"] for r in first.results()] == ["ok", "ok"] + ["pending"] * 4
    second = run_job(manifest, out, server.base_url, "--limit", "2")  # r1, r2 stand and do not count
    assert second.exit_code == 4 and starts(server) == 4
    assert [r["status"] for r in second.results()] == ["ok"] * 4 + ["pending"] * 2
    third = run_job(manifest, out, server.base_url, "--limit", "2")  # exactly what was left: no stop
    assert third.exit_code == 0 and starts(server) == 6
    assert summary(out)["stop_reason"] is None


def test_a_second_run_on_a_locked_folder_exits_2_naming_the_holder(tmp_path, local_server):
    server = local_server()
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    out = tmp_path / "out"
    with job_lock(out / ".batchtts", out_dir=out):
        job = run_job(manifest, out, server.base_url)
    assert job.exit_code == 2
    assert f"{out} is in use by another batchtts run (pid {os.getpid()} on " in job.output
    assert starts(server) == 0
    assert not (out / "results.parquet").exists()  # it touched nothing


def test_a_stale_lock_left_by_a_killed_run_is_taken_over(tmp_path, local_server):
    server = local_server()
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    out = tmp_path / "out"
    (out / ".batchtts").mkdir(parents=True)
    lock = out / ".batchtts" / "lock"
    lock.write_text(json.dumps({"pid": 999999, "host": "elsewhere", "started_at": "2025-01-01T00:00:00.000Z"}))
    job = run_job(manifest, out, server.base_url)
    assert job.exit_code == 0, job.output
    assert lock.exists() and lock.read_text() == ""  # released, record cleared, file kept


def test_a_limit_run_lists_every_row_in_order_catches_late_duplicates_and_a_rerun_does_the_rest(
    tmp_path, local_server, monkeypatch
):
    """The whole manifest in the results, in manifest order, though only the first rows ran.

    Tiny id-table and ordering-window sizes, so these 90 rows go through what a
    million rows would: the id table's sorted levels and Bloom filter, and
    results lines that come too late for the window (rows that finish after the
    rows behind them were recorded pending).
    """
    from batchtts.ledger import journal as journal_module
    from batchtts.manifest import planner as plan
    from batchtts.manifest.idtable import FirstRowTable

    monkeypatch.setattr(plan, "FirstRowTable", lambda: FirstRowTable(front_size=4, level_size=16, bloom_bits=64))
    monkeypatch.setattr(journal_module, "ORDER_WINDOW", 2)
    rows = [{"id": f"r{n}", "text": "Word " * (1 + n % 5) + f"number {n}."} for n in range(1, 91)]
    duplicates = {
        20: "r3",
        70: "r50",
        88: "r3",
    }  # row -> the id it repeats: one before the limit's rows end, two far after
    for number, repeated in duplicates.items():
        rows[number - 1]["id"] = repeated
    server = local_server(latency=0.02, realtime_factor=200)  # rows of different lengths finish out of order
    manifest = write_csv(tmp_path / "m.csv", rows)
    out = tmp_path / "out"

    first = run_job(manifest, out, server.base_url, "--limit", "25", "--concurrency", "6")
    assert first.exit_code == 4, first.output
    assert starts(server) == 25
    listed = first.results()
    assert [(r["row"], r["id"]) for r in listed] == [(n, row["id"]) for n, row in enumerate(rows, start=1)]
    expected = ["ok"] * 26 + ["pending"] * 64  # 25 rows started; row 20 is refused and counts against no limit
    for number, repeated in duplicates.items():
        expected[number - 1] = "failed"
        first_row = next(n for n, row in enumerate(rows, start=1) if row["id"] == repeated)
        assert listed[number - 1]["error"] == f"duplicate id {repeated!r} (first at row {first_row})"
    assert [r["status"] for r in listed] == expected
    assert summary(out)["pending"] == 62

    second = run_job(manifest, out, server.base_url, "--concurrency", "6")
    assert second.exit_code == 1, second.output  # the duplicates are failed rows
    assert starts(server) == 87  # the 62 pending rows, nothing for the 25 done
    listed = second.results()
    assert [(r["row"], r["id"]) for r in listed] == [(n, row["id"]) for n, row in enumerate(rows, start=1)]
    assert [r["status"] for r in listed] == ["failed" if number in duplicates else "ok" for number in range(1, 91)]
    assert [r["reused"] for r in listed if r["status"] == "ok"] == [True] * 25 + [False] * 62
