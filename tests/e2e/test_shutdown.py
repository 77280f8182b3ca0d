"""A real ``batchtts run`` process killed, terminated or interrupted mid-job, then run again.

The local server runs in the test process with some latency and real-time
pacing, so rows are in flight when the signal lands; it counts every request,
which is how these tests see that nothing finished is paid for twice.
"""

from __future__ import annotations

import random
import signal
import time

import pyarrow.parquet as pq
import pytest

from tests.nightly_support import (
    assert_file_exact,
    finish,
    journal_state,
    settle,
    spawn_run,
    starts,
    summary,
    temp_files,
    wait_until,
)
from tests.runner_support import run_job, write_csv

ROWS = [{"id": f"row-{n:02d}", "text": f"Line {n} ok."} for n in range(24)]
#: Streams of ~0.2 s: each text is ~0.7 s of audio, sent 4x faster than real time after 50 ms.
SLOW = {"latency": 0.05, "realtime_factor": 4.0, "chunk_ms": 50.0}


def completed(server) -> int:
    return int(server.stats.snapshot()["streams_completed"])


@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_at_random_moments_then_rerun_loses_nothing_and_pays_once(tmp_path, local_server, seed):
    rng = random.Random(seed)
    server = local_server(**SLOW)
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    out = tmp_path / "out"
    ok_before: set[str] = set()
    for round_number in range(3):
        server.stats.reset()
        process = spawn_run(manifest, out, server.base_url, "--concurrency", "3", logs=tmp_path / f"kill{round_number}")
        # Kill after a random number of streams completed in this round, plus a random moment.
        target = rng.randint(0, 6)

        def reached(process=process, target=target) -> bool:
            return completed(server) >= target or process.poll() is not None

        wait_until(reached, what="streams")
        time.sleep(rng.uniform(0.0, 0.25))
        process.kill()
        assert finish(process) in (-signal.SIGKILL, 0)
        # Rows ok before this round were never requested again: at most the others were.
        assert starts(server) <= len(ROWS) - len(ok_before)
        ok_now = {row_id for row_id, entry in journal_state(out).items() if entry["status"] == "ok"}
        assert ok_before <= ok_now  # nothing finished was lost
        ok_before = ok_now
        settle(server)  # the killed run's last requests are counted before the next reset

    server.stats.reset()
    job = run_job(manifest, out, server.base_url, "--concurrency", "3")
    assert job.exit_code == 0, job.output
    assert starts(server) == len(ROWS) - len(ok_before)  # exactly the rows not journaled ok
    results = job.by_id()
    assert sorted(results) == [row["id"] for row in ROWS]
    for row in ROWS:
        record = results[row["id"]]
        assert record["status"] == "ok"
        assert record["reused"] is (row["id"] in ok_before)
        assert_file_exact(out, record, row["text"])
    assert temp_files(out) == []
    assert sorted(p.name for p in (out / "audio").iterdir()) == sorted(f"{row['id']}.wav" for row in ROWS)


def test_sigterm_cancels_after_the_grace_period_writes_everything_and_exits_143(tmp_path, local_server):
    # Long streams (about 3 s each), so rows are surely in flight when SIGTERM lands.
    server = local_server(latency=0.05, realtime_factor=1.0, chunk_ms=50.0)
    rows = [{"id": f"long-{n}", "text": "A row long enough to be streaming for a while."} for n in range(6)]
    manifest = write_csv(tmp_path / "m.csv", rows)
    out, results_elsewhere = tmp_path / "out", tmp_path / "reports" / "results.csv"
    results_elsewhere.parent.mkdir()
    process = spawn_run(manifest, out, server.base_url, "--concurrency", "2", "--grace", "0.2",
                        "--results", str(results_elsewhere), logs=tmp_path / "term")  # fmt: skip
    wait_until(lambda: server.stats.snapshot()["active_streams"] >= 2, what="streams in flight")
    # Meanwhile, the folder is locked: a second run refuses, naming the first one's pid.
    second = run_job(manifest, out, server.base_url)
    assert second.exit_code == 2
    assert f"pid {process.pid}" in second.output and "in use" in second.output
    process.send_signal(signal.SIGTERM)
    assert finish(process) == 143
    report = summary(out)
    assert report["exit_status"] == 143 and report["stop_reason"] == "interrupted"
    assert report["stop_message"] == "received SIGTERM"
    assert report["pending"] == len(rows) and report["ok"] == 0 and report["complete"] is True
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(results_elsewhere).to_pylist()
    assert [r["id"] for r in table] == [r["id"] for r in rows]  # the whole manifest
    assert {r["status"] for r in table} == {"pending"}
    assert sum(str(r["error"]).startswith("cancelled") for r in table) == 2  # the two in flight
    assert temp_files(out, results_elsewhere.parent) == []
    assert not (out / "audio").exists() or not any((out / "audio").iterdir())
    # The next run (against a quicker server) does them all: the lock was released.
    quick = local_server()
    done = run_job(manifest, out, quick.base_url, "--results", str(results_elsewhere))
    assert done.exit_code == 0, done.output
    assert starts(quick) == len(rows)


def test_sigint_lets_rows_in_flight_finish_within_the_grace_period(tmp_path, local_server):
    server = local_server(latency=0.3, realtime_factor=0.0)
    manifest = write_csv(tmp_path / "m.csv", ROWS[:8])
    out = tmp_path / "out"
    process = spawn_run(manifest, out, server.base_url, "--concurrency", "2", "--grace", "30", logs=tmp_path / "int")
    wait_until(lambda: server.stats.snapshot()["active_streams"] >= 1, what="a stream in flight")
    process.send_signal(signal.SIGINT)
    assert finish(process) == 130
    report = summary(out)
    assert report["exit_status"] == 130 and report["stop_message"] == "received SIGINT"
    assert report["ok"] >= 1  # what was in flight finished (30 s of grace is plenty for 0.3 s)
    assert report["ok"] == starts(server)  # and nothing else started
    assert report["ok"] + report["pending"] == 8
    assert temp_files(out) == []
    assert "received SIGINT" in (tmp_path / "int.err").read_text()


def test_after_sigint_rows_waiting_for_a_stream_do_not_start(tmp_path, local_server):
    """--concurrency auto has 64 workers; on a 1-stream account 63 of them wait. They wait for a turn,
    not with a row in hand: after the signal, only the rows under way (one, or two in slow start) finish."""
    server = local_server(concurrency=1, latency=0.3, realtime_factor=0.0)
    manifest = write_csv(tmp_path / "m.csv", ROWS[:8])
    out = tmp_path / "out"
    process = spawn_run(manifest, out, server.base_url, "--grace", "30", logs=tmp_path / "auto")
    wait_until(lambda: server.stats.snapshot()["active_streams"] >= 1, what="a stream in flight")
    process.send_signal(signal.SIGINT)
    assert finish(process) == 130
    report = summary(out)
    assert 1 <= report["ok"] <= 2
    assert report["ok"] == server.stats.snapshot()["starts_total"]  # nothing else was admitted
    assert report["ok"] + report["pending"] == 8
    assert temp_files(out) == []


def test_a_second_signal_cancels_rows_in_flight_at_once(tmp_path, local_server):
    server = local_server(latency=0.05, realtime_factor=1.0, chunk_ms=50.0)  # ~3 s streams
    rows = [{"id": f"long-{n}", "text": "A row long enough to be streaming for a while."} for n in range(4)]
    manifest = write_csv(tmp_path / "m.csv", rows)
    out = tmp_path / "out"
    process = spawn_run(manifest, out, server.base_url, "--concurrency", "2", "--grace", "60", logs=tmp_path / "twice")
    wait_until(lambda: server.stats.snapshot()["active_streams"] >= 2, what="streams in flight")
    process.send_signal(signal.SIGTERM)
    wait_until(lambda: "no new rows start" in (tmp_path / "twice.err").read_text(), what="the first signal seen")
    process.send_signal(signal.SIGTERM)  # do not wait the 60 s of grace
    assert finish(process) == 143
    results = {r["id"]: r for r in pq.read_table(out / "results.parquet").to_pylist()}
    # The streams (3 s) would have finished within the grace (60 s): the second signal cut them.
    assert sum(r["status"] == "pending" and r["error"].startswith("cancelled") for r in results.values()) == 2
    assert temp_files(out) == []
    assert summary(out)["exit_status"] == 143


def test_stale_temporary_files_are_removed_at_the_next_start(tmp_path, local_server):
    """What a SIGKILL leaves behind: a partial audio file, a results and a summary temp file."""
    server = local_server()
    manifest = write_csv(tmp_path / "m.csv", ROWS[:2])
    out, reports = tmp_path / "out", tmp_path / "reports"
    (out / "audio").mkdir(parents=True)
    reports.mkdir()
    stale = [out / "audio" / ".row-00.wav.abcd1234.part", reports / ".results.csv.efgh5678.part",
             out / ".summary.json.ijkl9012.part", out / ".batchtts" / ".journal.prev.jsonl.mnop3456.part"]  # fmt: skip
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    job = run_job(manifest, out, server.base_url, "--results", str(reports / "results.csv"))
    assert job.exit_code == 0, job.output
    assert temp_files(out, reports) == []
    assert "removed 4 temporary file(s) left by an earlier run" in job.output
