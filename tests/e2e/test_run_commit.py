"""The group commit inside real runs: a row is journaled ok only once its file has landed durably.

Files are made durable and renamed in groups (:mod:`batchtts.audio.commit`), after
the stream's slot is freed. These runs check the promise end to end: against
a disk that refuses the files, across every way of making a file (plain rows,
voice fan-out, split rows), and when the process is killed or stopped while
finished files wait for their group.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from batchtts.audio import commit as commit_module
from batchtts.audio import sink as sink_module
from batchtts.audio.sink import AudioSink
from batchtts.ledger import Journal, RowResult
from tests.nightly_support import REPO, finish, journal_state, settle, starts, summary, temp_files, wait_until
from tests.runner_support import TEST_KEY, run_job, write_csv

ROWS = [{"id": f"row-{n:02d}", "text": f"Line {n} ok."} for n in range(12)]


def test_a_disk_that_refuses_the_files_stops_new_rows_and_a_rerun_does_them(
    tmp_path: Path, local_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = local_server(latency=0.2)
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    out = tmp_path / "out"

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patch:
        patch.setattr(commit_module, "_load_syncfs", lambda: None)  # per-file fdatasync, which fails
        patch.setattr(commit_module, "_fdatasync", full)
        job = run_job(manifest, out, server.base_url, "--concurrency", "1")
    assert job.exit_code == 1, job.output
    # The first refused file stops new rows: every later one would be a paid request lost too.
    # Rows streamed while that first group was being made durable fail the same way.
    records = job.results()
    failed = [r for r in records if r["status"] == "failed"]
    assert [r["status"] for r in records] == ["failed"] * len(failed) + ["pending"] * (len(ROWS) - len(failed))
    assert 1 <= len(failed) < len(ROWS) and starts(server) == len(failed)
    for record in failed:
        assert record["attempts"] == 1  # not retried: the disk is full
        assert record["error"] == "cannot store the audio file: No space left on device"
        assert record["path"] is None
    report = summary(out)
    assert (report["stop_reason"], report["exit_status"]) == ("storage", 1)
    assert "free space, then rerun" in job.output
    assert temp_files(out) == [] and not any((out / "audio").iterdir())
    rerun = run_job(manifest, out, server.base_url)
    assert rerun.exit_code == 0, rerun.output
    assert {r["status"] for r in rerun.results()} == {"ok"}


def test_a_write_error_mid_stream_fails_the_row_without_retrying(
    tmp_path: Path, local_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = local_server()
    manifest = write_csv(tmp_path / "m.csv", ROWS[:2])

    def write(self: AudioSink, chunk: bytes) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(AudioSink, "write", write)
    job = run_job(manifest, tmp_path / "out", server.base_url)
    assert job.exit_code == 1, job.output
    # An I/O error is not known to repeat: the next row is still tried.
    assert [(r["status"], r["attempts"], r["error"]) for r in job.results()] == [
        ("failed", 1, "cannot store the audio file: Input/output error")
    ] * 2
    assert starts(server) == 2
    assert temp_files(tmp_path / "out") == []


def test_a_full_disk_mid_stream_stops_new_rows(tmp_path: Path, local_server, monkeypatch: pytest.MonkeyPatch) -> None:
    server = local_server()
    manifest = write_csv(tmp_path / "m.csv", ROWS[:5])

    def write(self: AudioSink, chunk: bytes) -> None:
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))

    monkeypatch.setattr(AudioSink, "write", write)
    job = run_job(manifest, tmp_path / "out", server.base_url, "--concurrency", "1")
    assert job.exit_code == 1, job.output
    assert [r["status"] for r in job.results()] == ["failed"] + ["pending"] * 4
    assert starts(server) == 1
    assert summary(tmp_path / "out")["stop_reason"] == "storage"


@pytest.mark.parametrize(
    "shape",
    [[], ["--voices", "magnus,emily"], ["--max-chars", "12"]],
    ids=["rows", "voice fan-out", "split rows"],
)
def test_rows_are_journaled_ok_only_once_their_files_landed_durably(
    tmp_path: Path, local_server, monkeypatch: pytest.MonkeyPatch, shape: list[str]
) -> None:
    server = local_server()
    rows = [{"id": f"r{n}", "text": f"Row number {n} is here, longer than twelve."} for n in range(10)]
    manifest = write_csv(tmp_path / "m.csv", rows)
    out = tmp_path / "out"
    published: set[Path] = set()  # renamed into place
    durable: set[Path] = set()  # and their folder fsynced since
    checked: list[str] = []
    real_publish, real_fsync_folder, real_append = AudioSink.publish, commit_module.fsync_folder, Journal.append

    synced: set[str] = set()  # temporary files whose data was made durable
    real_sync_data, real_fsync = commit_module.DataSync.sync_data, os.fsync

    def sync_data(self, sinks):
        failed = real_sync_data(self, sinks)
        synced.update(str(sink.temp_path) for sink in sinks if id(sink) not in failed)
        return failed

    def fsync(fd: int) -> None:  # AudioSink.commit (a joined file) fsyncs its file itself
        real_fsync(fd)
        with contextlib.suppress(OSError):
            synced.add(os.readlink(f"/proc/self/fd/{fd}"))

    def publish(self: AudioSink):
        assert str(self.temp_path) in synced  # the data is durable before the file takes its name
        result = real_publish(self)
        published.add(result.path)
        return result

    def fsync_folder(folder) -> None:
        real_fsync_folder(folder)
        durable.update(p for p in published if p.parent == Path(folder))

    def append(self: Journal, result: RowResult, **kwargs) -> None:
        if result.status == "ok" and result.path:
            path = out.resolve() / result.path
            assert path in durable, result.id  # renamed into place, folder fsynced, data before that
            checked.append(result.id)
        real_append(self, result, **kwargs)

    monkeypatch.setattr(commit_module.DataSync, "sync_data", sync_data)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(AudioSink, "publish", publish)
    monkeypatch.setattr(commit_module, "fsync_folder", fsync_folder)  # the group commit
    monkeypatch.setattr(sink_module, "fsync_folder", fsync_folder)  # a joined file (AudioSink.commit)
    monkeypatch.setattr(Journal, "append", append)
    job = run_job(manifest, out, server.base_url, "--concurrency", "4", *shape)
    assert job.exit_code == 0, job.output
    results = job.results()
    assert len(results) == len(rows) * (2 if shape and shape[0] == "--voices" else 1)
    assert {r["status"] for r in results} == {"ok"}
    assert len(checked) == len(results)
    assert temp_files(out) == []


def spawn_lingering(manifest: Path, out: Path, base_url: str, *args: str, logs: Path) -> subprocess.Popen[bytes]:
    """``batchtts run`` in its own process whose group commit never commits before the job ends."""
    code = (
        "import sys, batchtts.audio.commit as c; c.LINGER_SECONDS = 3600.0; c.MAX_GROUP = 10_000; "
        "from batchtts.cli import main; sys.argv[0] = 'batchtts'; main()"
    )
    argv = [sys.executable, "-c", code, "run", str(manifest), "--out", str(out), "--progress", "off",
            "--base-url", base_url, *args]  # fmt: skip
    env = {**os.environ, "SMALLEST_API_KEY": TEST_KEY, "BATCHTTS_BASE_URL": ""}
    return subprocess.Popen(argv, cwd=REPO, env=env, stdout=open(f"{logs}.out", "wb"), stderr=open(f"{logs}.err", "wb"))


#: Streams of ~0.2 s (as in test_shutdown): rows finish one after another.
SLOW = {"latency": 0.05, "realtime_factor": 4.0, "chunk_ms": 50.0}


def test_sigkill_while_finished_files_wait_for_their_group_journals_none_and_a_rerun_redoes_them(
    tmp_path: Path, local_server
) -> None:
    server = local_server(**SLOW)
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    out = tmp_path / "out"
    process = spawn_lingering(manifest, out, server.base_url, "--concurrency", "2", logs=tmp_path / "kill")
    wait_until(lambda: server.stats.snapshot()["streams_completed"] >= 3, what="finished streams")
    process.kill()
    assert finish(process) == -signal.SIGKILL
    # Three or more streams finished, and their files wait in the queue: none is under its name.
    assert journal_state(out) == {}
    assert not [p for p in (out / "audio").iterdir() if not p.name.endswith(".part")]
    assert len(temp_files(out)) >= 3
    settle(server)
    server.stats.reset()
    rerun = run_job(manifest, out, server.base_url, "--concurrency", "2")
    assert rerun.exit_code == 0, rerun.output
    assert starts(server) == len(ROWS)  # nothing was journaled, so everything is done again
    assert temp_files(out) == []
    assert "temporary file(s) left by an earlier run" in rerun.output


def test_sigterm_lands_every_file_that_finished_before_the_job_stops(tmp_path: Path, local_server) -> None:
    server = local_server(**SLOW)
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    out = tmp_path / "out"
    process = spawn_lingering(manifest, out, server.base_url, "--concurrency", "2", "--grace", "30",
                              logs=tmp_path / "term")  # fmt: skip
    wait_until(lambda: server.stats.snapshot()["streams_completed"] >= 3, what="finished streams")
    process.send_signal(signal.SIGTERM)
    assert finish(process) == 143
    report = summary(out)
    completed = server.stats.snapshot()["streams_completed"]
    assert report["ok"] == completed == starts(server)  # every finished stream became an ok row
    assert report["ok"] + report["pending"] == len(ROWS)
    ok = [row_id for row_id, entry in journal_state(out).items() if entry["status"] == "ok"]
    assert sorted((out / "audio").iterdir()) == sorted(out / "audio" / f"{row_id}.wav" for row_id in ok)
    assert temp_files(out) == []
