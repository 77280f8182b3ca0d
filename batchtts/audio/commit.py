"""Finished audio files made durable and renamed into place in groups, off the event loop.

A row's file may appear under its name only once its data is on disk (so a
power cut never leaves a torn file under a final name), and the row may be
journaled ``ok`` only once the file is there. Doing that per file cost the
runner a thread hop and an fsync per row, inside the row's stream slot: the
fsync makes the calling process do the page cache's writeback itself, and the
next request waited for all of it.

A :class:`GroupCommit` instead queues finished files (:meth:`AudioSink.finish`
has run: the bytes are with the OS, the file is still a temporary one). One
background task takes what is queued (after a short wait for more, or at once
when someone is waiting on a file) and makes the whole group durable in one
thread hop (:func:`commit_group`): the data first (one ``syncfs`` per file
system where Linux has it, which lets the kernel's flusher threads do the
writeback; else ``fdatasync`` per file), then each file is renamed into place,
then each folder that received a file is fsynced once, so the renames are
durable too. Only then does the group's callback run (the runner journals the
rows). A file whose group failed is removed and its row fails.

If the process dies in between, a temporary file is left (removed at the next
start, its row not journaled, so it is done again), or a renamed file whose row
was not journaled yet (done again and replaced). Never a journaled row without
its whole file.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio

from batchtts.audio.sink import AudioSink, SinkResult
from batchtts.storage.files import FileSystemHandles, fsync_folder, syncfs

# Bound here, so tests (an fdatasync that fails one file) and benchmarks/no_fsync.py
# (a syncfs that does nothing) can replace them in this module.
from batchtts.storage.files import fdatasync as _fdatasync
from batchtts.storage.files import load_syncfs as _load_syncfs

log = logging.getLogger("batchtts")

#: Most files per group (and per thread hop).
MAX_GROUP = 64
#: How long the first queued file waits for others before its group is committed,
#: unless someone awaits a file (:meth:`GroupCommit.commit`). A row's journal line
#: comes this much later; its stream slot was freed already.
LINGER_SECONDS = 0.05

Done = Callable[[SinkResult | None, OSError | None], None]


@dataclass(slots=True, eq=False)
class _Queued:
    sink: AudioSink
    done: Done | None = None  # called on the event loop once the group is committed
    event: anyio.Event | None = None  # set instead, for a caller awaiting the file
    result: SinkResult | None = None
    error: OSError | None = None
    settled: bool = False


class GroupCommit:
    """Queues finished files; one background task commits them in groups (see the module's doc).

    Use: ``run()`` in a task group for the job's length; :meth:`submit` (rows:
    the callback records them) or ``await`` :meth:`commit` (parts, fan-out: the
    caller needs the file); :meth:`close` when nothing more comes (``run`` then
    commits what is queued and returns); :meth:`drain` synchronously at the very
    end, for anything a cancelled ``run`` left.
    """

    def __init__(self, *, max_group: int | None = None, linger: float | None = None, durable: bool = True) -> None:
        self.max_group = max(1, MAX_GROUP if max_group is None else max_group)
        self.linger = LINGER_SECONDS if linger is None else linger
        self._queue: list[_Queued] = []
        self._first_at = 0.0  # when the oldest queued file was queued
        self._awaited = 0  # queued files someone awaits: commit them without lingering
        self._closed = False
        self._wake: anyio.Event | None = None
        #: ``durable=False``: a scratch folder whose files are uploaded elsewhere (``--out s3://``):
        #: renamed whole, but neither synced nor their folders, since nothing trusts them after a crash.
        self._sync = DataSync(durable=durable)
        #: Groups committed and files in them, for tests and the debug log.
        self.groups = 0
        self.files = 0

    def submit(self, sink: AudioSink, done: Done) -> None:
        """Queue a finished file; ``done(result, error)`` runs once it is committed (or failed)."""
        self._put(_Queued(sink, done=done))

    async def commit(self, sink: AudioSink) -> SinkResult:
        """Queue a finished file and wait for it; raises the OSError that failed it.

        Cancelled while the file is still queued, the file is dropped; cancelled
        while its group is being committed, it lands under its name unrecorded.
        """
        item = _Queued(sink, event=anyio.Event())
        self._awaited += 1
        self._put(item)
        try:
            await item.event.wait()  # type: ignore[union-attr]
        except BaseException:
            if not item.settled and item in self._queue:
                self._queue.remove(item)
                self._awaited -= 1
                sink.abort()
            raise
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item.result

    def _put(self, item: _Queued) -> None:
        if self._closed:
            raise RuntimeError("the group commit is closed")
        first = not self._queue
        if first:
            self._first_at = time.monotonic()
        self._queue.append(item)
        # The first file starts the linger clock (run() sleeps without a timeout while
        # nothing is queued); a full group or an awaited file ends the linger at once.
        if first or len(self._queue) >= self.max_group or item.event is not None:
            self._poke()

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def close(self) -> None:
        """Nothing more will be queued: ``run`` commits what is and returns."""
        self._closed = True
        self._poke()

    async def run(self) -> None:
        """Commit queued files in groups until closed and empty."""
        while True:
            if not self._queue:
                if self._closed:
                    return
                await self._sleep(None)
                continue
            if not self._closed and not self._awaited and len(self._queue) < self.max_group:
                wait = self._first_at + self.linger - time.monotonic()
                if wait > 0:
                    await self._sleep(wait)
                    continue
            group = self._take()
            try:
                await anyio.to_thread.run_sync(commit_group, [item.sink for item in group], self._sync, group)
            finally:
                self._settle(group)  # also when cancelled: the thread finished its work regardless

    async def _sleep(self, seconds: float | None) -> None:
        self._wake = anyio.Event()
        if seconds is None:
            await self._wake.wait()
        else:
            with anyio.move_on_after(seconds):
                await self._wake.wait()
        self._wake = None

    def _take(self) -> list[_Queued]:
        group, self._queue = self._queue[: self.max_group], self._queue[self.max_group :]
        self._awaited -= sum(1 for item in group if item.event is not None)
        return group  # any rest has waited long enough: the next group goes at once

    def drain(self) -> None:
        """Commit whatever is still queued, here and now (blocking): the job's end, however it ended."""
        self._closed = True
        try:
            while self._queue:
                group = self._take()
                try:
                    commit_group([item.sink for item in group], self._sync, group)
                finally:
                    self._settle(group)
        finally:
            self._sync.close()

    def _settle(self, group: list[_Queued]) -> None:
        """Hand each file's outcome over: callbacks run, waiters wake (on the event loop)."""
        self.groups += 1
        self.files += len(group)
        for item in group:
            if item.settled:
                continue
            item.settled = True
            if item.result is None and item.error is None:
                item.error = OSError(errno.EIO, "the file was not committed")
                item.sink.abort()
            if item.event is not None:
                item.event.set()
            elif item.done is not None:
                item.done(item.result, item.error)


def commit_group(sinks: Sequence[AudioSink], sync: DataSync, outcomes: Sequence[_Queued] | None = None) -> None:
    """Data durable, then renamed into place, then the folders durable; blocking (a worker thread).

    Each outcome gets its SinkResult or the OSError that failed its file; a
    failed file is removed (it never appears under its name, or it is not
    reported as committed).
    """
    items = outcomes if outcomes is not None else [_Queued(sink) for sink in sinks]
    failed = sync.sync_data(sinks) if sync.durable else {}
    folders: dict[str, list[_Queued]] = {}
    for item in items:
        error = failed.get(id(item.sink))
        if error is not None:
            item.error = error
            item.sink.abort()
            continue
        try:
            item.result = item.sink.publish()
        except OSError as exc:  # publish() has removed the temporary file
            item.error = exc
            continue
        folders.setdefault(os.path.dirname(item.result.path), []).append(item)
    for folder, landed in folders.items() if sync.durable else ():
        try:
            fsync_folder(folder)
        except OSError as exc:
            for item in landed:  # in place, but the rename may not survive a power cut: not ok
                item.result, item.error = None, exc


class DataSync:
    """Makes the data of finished files durable: ``syncfs`` per file system, or ``fdatasync`` per file.

    The policy only; the calls themselves are :mod:`batchtts.storage.files`'s.
    """

    def __init__(self, *, use_syncfs: bool = True, durable: bool = True) -> None:
        self.durable = durable
        self._syncfs = _load_syncfs() if use_syncfs and durable else None
        self._file_systems = FileSystemHandles()  # kept open, for errors (see sync_data)

    @property
    def uses_syncfs(self) -> bool:
        return self._syncfs is not None

    def sync_data(self, sinks: Sequence[AudioSink]) -> dict[int, OSError]:
        """Sync every sink's data; return the errors by ``id(sink)`` (empty when all is durable).

        ``syncfs`` reports a write-back error anywhere on the file system (Linux
        5.8+), perhaps another program's, without saying which file: then each
        file of the group is fdatasync'ed on its own descriptor, which reports
        only an error of that file since it was opened.
        """
        if self._syncfs is not None:
            try:
                for handle in {self._file_systems.handle_for(os.path.dirname(sink.temp_path)) for sink in sinks}:
                    try:
                        syncfs(self._syncfs, handle)
                    except OSError as exc:
                        if exc.errno in (errno.ENOSYS, errno.EPERM):  # not allowed here: per file from now on
                            log.debug("syncfs unavailable (%s); fdatasync per file", os.strerror(exc.errno))
                            self._syncfs = None
                        raise
                return {}
            except OSError as exc:
                log.debug("%s; fdatasync file by file to find the files it concerns", exc)
        failed: dict[int, OSError] = {}
        for sink in sinks:
            try:
                _fdatasync(sink.fileno())
            except OSError as exc:
                failed[id(sink)] = exc
        return failed

    def close(self) -> None:
        self._file_systems.close()
