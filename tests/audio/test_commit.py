"""GroupCommit: finished files land in groups, durable first, and are reported only once they have."""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

import anyio
import pytest

from batchtts.audio import commit as commit_module
from batchtts.audio.commit import DataSync, GroupCommit, commit_group
from batchtts.audio.sink import AudioSink, SinkResult

RATE = 16000
#: Long enough that a test would time out (fail_after) if a group waited for it.
FOREVER = 3600.0


def finished(folder: Path, name: str, data: bytes = b"\1\0\2\0") -> AudioSink:
    sink = AudioSink(folder / f"{name}.pcm", output_format="pcm", sample_rate=RATE, file_format="raw")
    sink.write(data)
    sink.finish()
    return sink


def parts(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_finish_leaves_the_file_unnamed_until_publish(tmp_path: Path) -> None:
    sink = finished(tmp_path, "a")
    assert not (tmp_path / "a.pcm").exists() and len(parts(tmp_path)) == 1
    with pytest.raises(RuntimeError):
        sink.write(b"\0\0")  # no writes after finish
    result = sink.publish()
    assert result.path.read_bytes() == b"\1\0\2\0" and parts(tmp_path) == []


def test_publish_needs_finish(tmp_path: Path) -> None:
    sink = AudioSink(tmp_path / "a.pcm", output_format="pcm", sample_rate=RATE, file_format="raw")
    with pytest.raises(RuntimeError):
        sink.publish()
    sink.abort()


def test_queued_files_land_together_and_only_then_are_reported(tmp_path: Path) -> None:
    reported: list[tuple[str, SinkResult | None, OSError | None]] = []

    async def main() -> None:
        group = GroupCommit(linger=FOREVER)

        def done(name: str):
            def record(result: SinkResult | None, error: OSError | None) -> None:
                assert result is not None and result.path.exists()  # in place before it is reported
                reported.append((name, result, error))

            return record

        for name in ("a", "b", "c"):
            group.submit(finished(tmp_path, name), done(name))
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(group.run)
                await anyio.sleep(0.05)
                assert reported == [] and not (tmp_path / "a.pcm").exists()  # lingering: nothing landed yet
                group.close()  # the end of the job: what is queued is committed at once
        assert (group.groups, group.files) == (1, 3)  # one thread hop, one sync for the three

    anyio.run(main)
    assert [name for name, _, _ in reported] == ["a", "b", "c"]
    assert all(error is None for _, _, error in reported)
    assert parts(tmp_path) == []


def test_a_file_queued_while_the_committer_idles_lands_after_the_linger(tmp_path: Path) -> None:
    # The common case of a slow job: the committer is idle (nothing queued) when a row
    # finishes. Its file must land after the linger, not wait for 63 more or the job's end.
    landed: list[str] = []

    async def main() -> None:
        group = GroupCommit(linger=0.01)
        arrived = anyio.Event()

        def done(result: SinkResult | None, error: OSError | None) -> None:
            assert result is not None and error is None
            landed.append(result.path.name)
            arrived.set()

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(group.run)
                await anyio.sleep(0.05)  # run() is idle now
                group.submit(finished(tmp_path, "a"), done)
                await arrived.wait()  # before close(): the linger, not the end, committed it
                assert group.groups == 1
                group.close()

    anyio.run(main)
    assert landed == ["a.pcm"]


def test_a_full_group_goes_without_waiting(tmp_path: Path) -> None:
    async def main() -> int:
        group = GroupCommit(max_group=2, linger=FOREVER)
        landed: list[str] = []
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(group.run)
            for name in ("a", "b"):
                group.submit(finished(tmp_path, name), lambda result, error, name=name: landed.append(name))
            with anyio.fail_after(20):
                while len(landed) < 2:
                    await anyio.sleep(0.01)
            group.close()
        return group.groups

    assert anyio.run(main) == 1
    assert (tmp_path / "a.pcm").exists() and (tmp_path / "b.pcm").exists()


def test_a_caller_awaiting_its_file_does_not_wait_for_the_linger(tmp_path: Path) -> None:
    async def main() -> SinkResult:
        group = GroupCommit(linger=FOREVER)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(group.run)
            with anyio.fail_after(20):
                result = await group.commit(finished(tmp_path, "part"))
            group.close()
        return result

    result = anyio.run(main)
    assert result.path == tmp_path / "part.pcm" and result.path.read_bytes() == b"\1\0\2\0"


def test_a_cancelled_waiter_drops_its_queued_file(tmp_path: Path) -> None:
    async def main() -> None:
        group = GroupCommit(linger=FOREVER)  # no run(): the file stays queued
        with anyio.move_on_after(0.05):
            await group.commit(finished(tmp_path, "part"))
        group.drain()

    anyio.run(main)
    assert list(tmp_path.iterdir()) == []


def test_drain_commits_what_a_cancelled_run_left(tmp_path: Path) -> None:
    reported: list[str] = []

    async def main() -> GroupCommit:
        group = GroupCommit(linger=FOREVER)
        group.submit(finished(tmp_path, "a"), lambda result, error: reported.append("a" if result else "-"))
        with anyio.move_on_after(0.05):
            await group.run()  # cancelled while lingering
        return group

    group = anyio.run(main)
    assert reported == [] and not (tmp_path / "a.pcm").exists()
    group.drain()
    assert reported == ["a"] and (tmp_path / "a.pcm").exists()
    with pytest.raises(RuntimeError):
        group.submit(finished(tmp_path, "late"), lambda result, error: None)  # closed


def fail_fdatasync_for(monkeypatch: pytest.MonkeyPatch, victims: set[int], code: int = errno.ENOSPC) -> None:
    real = commit_module._fdatasync

    def fdatasync(fd: int) -> None:
        if fd in victims:
            raise OSError(code, os.strerror(code))
        real(fd)

    monkeypatch.setattr(commit_module, "_fdatasync", fdatasync)


@pytest.mark.parametrize("use_syncfs", [False, True])
def test_a_file_whose_data_cannot_be_synced_fails_alone_and_never_lands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_syncfs: bool
) -> None:
    sinks = [finished(tmp_path, name) for name in ("a", "b", "c")]
    fail_fdatasync_for(monkeypatch, {sinks[1].fileno()})
    sync = DataSync(use_syncfs=use_syncfs)
    if use_syncfs:  # syncfs reports an error somewhere on the file system: each file is then synced alone

        def failing_syncfs(fd: int) -> int:
            ctypes.set_errno(errno.EIO)
            return -1

        sync._syncfs = failing_syncfs
    outcomes = [commit_module._Queued(sink) for sink in sinks]
    commit_group(sinks, sync, outcomes)
    sync.close()
    assert [o.result is not None for o in outcomes] == [True, False, True]
    assert isinstance(outcomes[1].error, OSError) and outcomes[1].error.errno == errno.ENOSPC
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pcm", "c.pcm"]  # b: no file, no temp


def test_a_file_that_cannot_be_renamed_fails_alone(tmp_path: Path) -> None:
    sinks = [finished(tmp_path, name) for name in ("a", "b")]
    (tmp_path / "b.pcm").mkdir()  # a folder in the way: the rename fails
    outcomes = [commit_module._Queued(sink) for sink in sinks]
    commit_group(sinks, DataSync(), outcomes)
    assert outcomes[0].result is not None and outcomes[0].error is None
    assert outcomes[1].result is None and isinstance(outcomes[1].error, OSError)
    assert parts(tmp_path) == []


def test_files_are_not_reported_landed_when_their_folder_cannot_be_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    sinks = [finished(tmp_path / "x", "a"), finished(tmp_path / "y", "b")]
    synced: list[str] = []

    def fsync_folder(folder: str) -> None:
        synced.append(folder)
        if folder.endswith("y"):
            raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(commit_module, "fsync_folder", fsync_folder)
    outcomes = [commit_module._Queued(sink) for sink in sinks]
    commit_group(sinks, DataSync(), outcomes)
    assert sorted(synced) == [str(tmp_path / "x"), str(tmp_path / "y")]  # each folder once
    assert outcomes[0].result is not None
    assert outcomes[1].result is None and outcomes[1].error is not None


def test_each_folder_is_synced_once_per_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    monkeypatch.setattr(commit_module, "fsync_folder", synced.append)
    sinks = [finished(tmp_path, f"r{n}") for n in range(5)]
    commit_group(sinks, DataSync())
    assert synced == [str(tmp_path)]
