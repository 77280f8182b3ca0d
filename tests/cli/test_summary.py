"""The end-of-job summary says what this run did, in words that are true, and -q keeps to one line."""

from __future__ import annotations

from datetime import datetime, timedelta

from batchtts.cli.summary import print_summary, summary_lines
from batchtts.ledger import FailedRow, JobSummary
from batchtts.outcomes import ExitStatus, Stop, StopReason
from batchtts.schedule.startgate import StartGate
from batchtts.units import parse_deadline
from tests.runner_support import run_job, write_csv

ROWS = [{"id": f"r{n}", "text": f"Sentence number {n}."} for n in range(4)]


def test_a_rerun_that_sends_nothing_says_there_was_nothing_to_do(tmp_path, local_server):
    server = local_server()
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    first = run_job(manifest, tmp_path / "out", server.base_url)
    assert "4 rows: 4 ok, 0 failed in " in first.output and "(4 rows made, " in first.output
    again = run_job(manifest, tmp_path / "out", server.base_url)
    assert again.exit_code == 0
    assert "nothing to do: every row was kept from an earlier run" in again.output
    assert "rows/s" not in again.output and "audio made" not in again.output


def test_one_row_is_a_row_and_one_failure_is_a_row(tmp_path, local_server):
    server = local_server()
    rows = [{"id": "bad", "text": "Unknown voice.", "voice_id": "nobody"}]
    job = run_job(write_csv(tmp_path / "m.csv", rows), tmp_path / "out", server.base_url)
    assert "batchtts: 1 row: 0 ok, 1 failed" in job.output and "1 rows" not in job.output


def test_quiet_prints_one_outcome_line_for_failures_and_for_a_limit(tmp_path, local_server):
    server = local_server()
    rows = [*ROWS, {"id": "bad", "text": "Unknown voice.", "voice_id": "nobody"}]
    manifest = write_csv(tmp_path / "m.csv", rows)
    failed = run_job(manifest, tmp_path / "out", server.base_url, "-q")
    lines = [line for line in failed.output.splitlines() if line.strip()]
    assert failed.exit_code == 1
    assert lines == ["batchtts: 5 rows: 4 ok, 1 failed; exit 1 (some rows failed)"]
    limited = run_job(manifest, tmp_path / "out2", server.base_url, "-q", "--limit", "2")
    lines = [line for line in limited.output.splitlines() if line.strip()]
    assert limited.exit_code == 4
    assert len(lines) == 1 and lines[0].startswith("batchtts: 5 rows: 2 ok") and "exit 4" in lines[0]


def test_limit_0_is_not_told_to_rerun_the_same_command(tmp_path, local_server):
    server = local_server()
    job = run_job(write_csv(tmp_path / "m.csv", ROWS), tmp_path / "out", server.base_url, "--limit", "0")
    assert job.exit_code == 4
    assert "next: --limit 0 starts no row" in job.output and "rerun the same command" not in job.output


def test_a_budget_too_small_for_the_next_row_says_raise_it_else_rerun(tmp_path, local_server):
    server = local_server()
    manifest = write_csv(tmp_path / "m.csv", ROWS)  # 18 characters a row
    small = run_job(manifest, tmp_path / "out", server.base_url, "--max-characters", "5")
    assert "next: raise --max-characters to at least 18" in small.output
    some = run_job(manifest, tmp_path / "out2", server.base_url, "--max-characters", "40")
    assert some.exit_code == 4 and "next: rerun the same command to do the pending rows" in some.output


def test_deadline_advice_depends_on_its_kind():
    def refusal(text: str):
        gate = StartGate(deadline=parse_deadline(text, now=datetime.now().astimezone()))
        return gate.admit(10)

    past = (datetime.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert refusal(past).next_step.startswith("move --deadline later")
    span = StartGate(deadline=parse_deadline("5s"), clock=iter([0.0, 6.0]).__next__).admit(10)
    assert span is not None and span.next_step is None  # a span: rerunning the same command is right


def test_partial_results_and_the_voice_of_a_failed_fan_out_row_are_said(tmp_path, capsys):
    summary = JobSummary(rows=21, ok=12, pending=9, attempts=12, exit_code=ExitStatus.SIGINT)
    summary.failure_examples.append(FailedRow("r3", "HTTP 500", "emily"))
    summary.failed = 1
    summary.stop = Stop.because(StopReason.INTERRUPTED, "received SIGINT")
    print_summary(summary, tmp_path)
    err = capsys.readouterr().err
    assert "partial results: the run stopped before the end of the manifest" in err
    assert "failed 'r3' (voice emily): HTTP 500" in err


def test_the_audiobook_summary_counts_its_chapter_files(tmp_path, local_server):
    server = local_server()
    rows = [{"id": f"p{n}", "text": f"Paragraph {n}.", "chapter": f"c{n % 2}"} for n in range(4)]
    job = run_job(write_csv(tmp_path / "m.csv", rows), tmp_path / "out", server.base_url, "--group-by", "chapter")
    assert job.exit_code == 0, job.output
    assert "batchtts: 2 chapter files written" in job.output
    complete = JobSummary(rows=1, ok=1, complete=True, group_files=1)
    assert "batchtts: 1 chapter file written" in summary_lines(complete, tmp_path)


def test_plain_progress_prints_on_a_clock_while_one_long_row_streams(tmp_path, local_server):
    # One row whose stream lasts well over the interval: lines must come before it finishes.
    server = local_server(realtime_factor=1.0)
    rows = [{"id": "long", "text": "A long sentence that takes a while to say out loud. " * 3}]
    manifest = write_csv(tmp_path / "m.csv", rows)
    args = ("--progress", "plain", "--progress-interval", "0.2")
    job = run_job(manifest, tmp_path / "out", server.base_url, *args)
    assert job.exit_code == 0, job.output
    alive = [line for line in job.output.splitlines() if line.startswith("batchtts: 0/1 rows")]
    assert alive, job.output
    assert any("streaming 1/" in line and "of audio" in line for line in alive)


def test_the_eta_counts_only_the_rows_a_limit_lets_start():
    from batchtts.job.progress import ProgressReporter

    progress = ProgressReporter(200)
    progress.row_cap = 30
    for _ in range(10):
        progress.row_finished("ok")
    assert progress.remaining() == 20  # not 190
    progress.started -= 10.0  # 10 rows in 10 s: 1 row/s
    assert round(progress.eta_seconds() or 0) == 20


def test_the_live_display_labels_its_eta_and_shows_the_streams_of_this_moment():
    import io

    from rich.console import Console

    from batchtts.cli.progress import LiveProgress
    from batchtts.job.progress import InFlight

    screen = io.StringIO()
    streams = [2]
    progress = LiveProgress(4, console=Console(file=screen, force_terminal=True, width=200))
    progress.watch(lambda: InFlight(streams[0], 4, 5.0, 12.0))
    progress.start()
    progress.row_finished("ok")
    streams[0] = 0  # every stream ended: the display must not keep the old count
    progress.stop()
    final = screen.getvalue().rsplit("\r", 1)[-1]  # the last refresh of the bar's line
    assert "ETA " in final and "streaming 0/4" in final and "1/4" in final


def test_log_lines_go_to_the_stderr_of_the_moment(monkeypatch):
    # The live display swaps sys.stderr for a proxy that prints above the bar: a log line
    # (the SIGINT notice) written to the stderr captured at start-up would land on the bar's line.
    import io
    import logging
    import sys

    from batchtts.cli.logs import configure

    configure("text")
    proxy = io.StringIO()
    monkeypatch.setattr(sys, "stderr", proxy)
    logging.getLogger("batchtts").warning("SIGINT: no new rows start")
    assert proxy.getvalue() == "batchtts: SIGINT: no new rows start\n"
