"""One job per output folder: an advisory lock on ``DIR/.batchtts/lock``.

Two runs writing the same folder would interleave journals and replace each
other's files, so a run takes an exclusive ``flock`` on the lock file before it
touches anything, and a second run fails at once with the holder's pid, host
and start time (written into the file for that message).

``flock`` rather than "create the file exclusively": the kernel drops the lock
when its holder dies, however it dies (SIGKILL, OOM killer, reboot), so a stale
lock left by a killed run is recovered for free, with no pid guessing (a pid may
be reused; a host name says nothing inside containers). The file itself is
never deleted: deleting a lock file while another process has it open lets two
processes lock two different files.

Shards (``--shard K/N``) of one job write one folder at once: each holds its
own part's lock (``DIR/.batchtts/shards/K-of-N/lock``) and shares the folder's
lock (``LOCK_SH``), so shards run side by side while an unsharded run or a
merge, which take the folder's lock alone, waits for none of them and runs
with none. POSIX only (Linux, macOS), like ``fork``
for the espeak engine; on NFS, Linux emulates ``flock`` with byte-range locks.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from batchtts.errors import UsageError
from batchtts.ledger import utc_now_iso
from batchtts.storage.names import LOCK_NAME as LOCK_NAME  # re-exported


class JobLocked(UsageError):
    """Another run holds the folder's lock (exit 2)."""

    def __init__(self, message: str, holder: dict[str, object]) -> None:
        super().__init__(message)
        self.holder = holder


def describe_holder(holder: dict[str, object]) -> str:
    if not holder:
        return "another batchtts run"
    parts = [f"pid {holder.get('pid', '?')}"]
    if holder.get("host"):
        parts.append(f"on {holder['host']}")
    if holder.get("started_at"):
        parts.append(f"started {holder['started_at']}")
    return f"another batchtts run ({' '.join(parts)})"


@contextlib.contextmanager
def job_lock(state_dir: Path, *, out_dir: Path | None = None, shared: bool = False) -> Iterator[Path]:
    """Hold the folder's lock for the ``with`` block; raise :class:`JobLocked` if another run has it.

    ``shared``: hold it with other shared holders (shard runs), against any exclusive one.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            folder = out_dir if out_dir is not None else state_dir.parent
            who = describe_holder(holder) if holder or shared else "shard runs (--shard) or another batchtts run"
            raise JobLocked(
                f"{folder} is in use by {who}; wait for it to finish or stop it (lock: {path})",
                holder,
            ) from None
        if shared:  # the record is the exclusive holder's; shared holders leave it alone
            yield path
            return
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": utc_now_iso()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        try:
            yield path
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # nobody holds it now; the next holder writes its own record
    finally:
        os.close(fd)  # releases the flock


def _read_holder(fd: int) -> dict[str, object]:
    try:
        data = os.pread(fd, 4096, 0)
        holder = json.loads(data.decode("utf-8")) if data.strip() else {}
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}
