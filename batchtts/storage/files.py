"""What a job does to the file system: temporary files, durable renames, syncs, stale-file cleanup.

Every file a job writes lands the same way: a temporary file beside its final
name (:func:`create_temp_file`), its data made durable (``fsync``, or for
audio in groups: :func:`syncfs` per file system, else :func:`fdatasync` per
file), renamed into place, then the folder fsynced (:func:`fsync_folder`) so
the rename survives a power cut too. Whole files the runner writes in one go
go through :func:`atomic_file`. After a crash, the temporary files left behind
are recognised by name (:data:`batchtts.storage.names.TEMP_NAME`) and removed
at the next start (:func:`remove_stale_temp_files`,
:func:`remove_stale_results_temp`).

The raw OS calls for all of that live here and nowhere else, so this is the
one module to change to add another storage backend later (an object store,
a file system without ``syncfs``). Where names go is
:mod:`batchtts.storage.names`; when files are grouped and renamed is
:mod:`batchtts.audio.commit`.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import random
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from batchtts.storage.names import TEMP_NAME, TEMP_SUFFIX

#: ``syncfs(fd)`` from libc: 0 on success, else -1 with ``errno`` set (see :func:`syncfs`).
SyncFs = Callable[[int], int]


# --- temporary files and whole files ------------------------------------------


def create_temp_file(final_path: Path) -> tuple[int, Path]:
    """Create ``.<final name>.<random>.part`` next to ``final_path``; return (fd, path).

    Same folder, so the final ``os.replace`` is an atomic rename on one file
    system; a leading dot, so listings of finished files skip it; a name
    :data:`TEMP_NAME` recognises, so stale ones can be removed after a crash.
    The folder is made only when it is missing (the first file of a folder):
    this runs once per row, and a ``mkdir`` per call was a third of its cost.
    Mode 0666 minus the umask, as for any new file (``mkstemp``'s 0600 would
    make the finished file private).
    """
    folder = final_path.parent
    prefix = os.path.join(folder, f".{final_path.name}.")
    for _ in range(100):
        name = f"{prefix}{''.join(_random.choices(_TEMP_LETTERS, k=8))}{TEMP_SUFFIX}"
        try:
            return os.open(name, _TEMP_FLAGS, 0o666), Path(name)
        except FileExistsError:
            continue
        except FileNotFoundError:
            folder.mkdir(parents=True, exist_ok=True)
            try:
                return os.open(name, _TEMP_FLAGS, 0o666), Path(name)
            except FileExistsError:
                continue
    raise FileExistsError(f"no free temporary name beside {final_path}")


_TEMP_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_TEMP_LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789_"  # what TEMP_NAME accepts
_random = random.Random()  # names need only be unlikely to clash: O_EXCL makes sure


@contextmanager
def atomic_file(final_path: Path, mode: str = "w", **open_kwargs: Any) -> Iterator[Any]:
    """Open a temp file beside ``final_path``; fsync and rename it into place only if the body succeeds.

    Every whole file the runner writes (results, summary, chapters, metadata)
    goes through here, so each appears whole or not at all. Text modes are UTF-8.
    """
    if "b" not in mode:
        open_kwargs.setdefault("encoding", "utf-8")
    fd, temp = create_temp_file(final_path)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, final_path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


# --- making data and renames durable -------------------------------------------


def fsync_folder(folder: str | Path) -> None:
    """Make the renames into ``folder`` durable (a no-op where folders cannot be opened: Windows)."""
    if sys.platform == "win32":
        return
    fd = _open_folder(folder)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: Makes one open file's data durable: ``fdatasync`` where the OS has it, else ``fsync``.
fdatasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)


def load_syncfs() -> SyncFs | None:
    """libc's ``syncfs(fd)`` (Linux), or None: Python's os module does not offer it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        function = libc.syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return function


def syncfs(function: SyncFs, folder_fd: int) -> None:
    """Write back the whole file system that holds the open folder ``folder_fd``; OSError if that fails.

    ``function`` is :func:`load_syncfs`'s. One call lets the kernel's flusher
    threads write back every file of a group, instead of the caller doing the
    writeback file by file. It reports an error anywhere on the file system
    (Linux 5.8+), without saying which file.
    """
    if function(folder_fd) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"syncfs: {os.strerror(code)}")


class FileSystemHandles:
    """An open folder on each file system seen, to :func:`syncfs` it; :meth:`close` closes them."""

    def __init__(self) -> None:
        self._device_of: dict[str, int] = {}  # folder -> st_dev
        self._fds: dict[int, int] = {}  # st_dev -> an open folder on it

    def handle_for(self, folder: str) -> int:
        """The open folder (a descriptor) on the file system that holds ``folder``."""
        device = self._device_of.get(folder)
        if device is None:
            device = self._device_of[folder] = os.stat(folder).st_dev
            if device not in self._fds:
                self._fds[device] = _open_folder(folder)
        return self._fds[device]

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._device_of.clear()


def _open_folder(folder: str | Path) -> int:
    return os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


# --- what a crashed run left ---------------------------------------------------


def remove_stale_temp_files(out_dir: Path) -> int:
    """Delete the ``.<name>.<random>.part`` files a crashed run left under ``out_dir``; return how many.

    Only names :data:`batchtts.storage.names.TEMP_NAME` matches are touched. Call it
    only when no other job writes to ``out_dir``.
    """
    removed = 0
    for folder, _dirs, files in os.walk(out_dir):
        for name in files:
            if TEMP_NAME.fullmatch(name):
                try:
                    os.unlink(os.path.join(folder, name))
                except FileNotFoundError:
                    continue
                removed += 1
    return removed


def remove_stale_results_temp(results_path: Path, out_dir: Path) -> int:
    """Delete the temporary files a killed job left beside a results manifest outside ``out_dir``.

    A results file inside ``out_dir`` needs nothing more: :func:`remove_stale_temp_files`
    covers it. Only this results file's temporary names are touched; returns how many.
    """
    results_path, out_dir = Path(results_path), Path(out_dir)
    folder = results_path.parent
    if not folder.is_dir() or results_path.resolve().is_relative_to(out_dir.resolve()):
        return 0
    removed = 0
    prefix = f".{results_path.name}."
    with contextlib.suppress(OSError):
        for candidate in folder.iterdir():
            if candidate.name.startswith(prefix) and TEMP_NAME.fullmatch(candidate.name):
                candidate.unlink(missing_ok=True)
                removed += 1
    return removed


def check_writable_folder(folder: Path, label: str) -> None:
    """Make ``folder`` (and its parents) and prove a file can be created in it, before anything is paid for.

    Raises :class:`~batchtts.errors.UsageError` starting with ``label`` (the
    option and the path given, ``--results out/r.parquet``) and saying why: a
    part of the path that is a file, a read-only or missing file system, no permission.
    """
    from batchtts.errors import UsageError

    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{label}: {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, temp = create_temp_file(folder / "write-check")
        os.close(fd)
        temp.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if isinstance(exc, (NotADirectoryError, FileExistsError)):
            reason = "a part of the path is a file, not a folder"
        raise UsageError(f"{label}: cannot write to {folder}: {reason}") from None
