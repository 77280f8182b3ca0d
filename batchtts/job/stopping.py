"""How a job stops early: why (the first reason wins), whether rows may still start, and the signals.

Several parts can stop a job: a limit at a row's start, a rejected key or a
usage limit in an attempt, a full disk at a commit, damage deep in the manifest, SIGINT/SIGTERM.
They all tell this one object, which every part asks before starting work.
"""

from __future__ import annotations

import errno
import logging
import signal

import anyio
from anyio.abc import TaskGroup

from batchtts.errors import StorageError
from batchtts.outcomes import ExitStatus, Stop, StopReason

log = logging.getLogger("batchtts")

#: Storage errors after which no later file can land either: the job stops starting rows.
_STORAGE_EXHAUSTED = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


class StopControl:
    """The job's stop state, shared by the runner, the attempts and the shaping layer."""

    def __init__(self, *, grace_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        #: No new row starts.
        self.stopping = False
        #: A second signal: stop going over the manifest too.
        self.abandoned = False
        self.stop: Stop | None = None
        #: Cancelled to end the streams in flight; made in the event loop by :meth:`open_work_scope`.
        self._work_scope: anyio.CancelScope | None = None

    def open_work_scope(self) -> anyio.CancelScope:
        """The scope the workers run in (it may be cancelled, by a signal, before they enter it)."""
        self._work_scope = anyio.CancelScope()
        return self._work_scope

    def note(self, stop: Stop, *, override: bool = False) -> None:
        """Remember why the job stopped; the first reason wins unless ``override`` (a signal, a rejected key)."""
        if self.stop is None or override:
            self.stop = stop

    def stop_starting(self, stop: Stop, *, override: bool = False) -> None:
        """No new row starts; rows in flight finish."""
        self.note(stop, override=override)
        self.stopping = True

    def stop_now(self, stop: Stop) -> None:
        """Stop at once (a rejected key): in-flight streams are cancelled."""
        self.stop_starting(stop, override=True)
        self.cancel_work()

    def cancel_work(self) -> None:
        if self._work_scope is not None:
            self._work_scope.cancel()

    def storage_failed(self, exc: OSError) -> StorageError:
        """A row's failure when its file could not be written or committed (its request was paid for).

        A full, over-quota or read-only disk would refuse every later file too, each
        after a paid request: no new row starts (they stay pending for a rerun once
        there is room); rows in flight finish or fail on their own.
        """
        error = StorageError(f"cannot store the audio file: {exc.strerror or exc}")
        if exc.errno in _STORAGE_EXHAUSTED and not self.stopping:
            log.error("%s: no new rows start; free space, then rerun to do the pending rows", error.message)
            self.stop_starting(Stop.because(StopReason.STORAGE, error.message))
        return error

    def exit_status(self, failed_rows: int) -> ExitStatus:
        if self.stop is not None:
            return self.stop.exit_status
        return ExitStatus.ROWS_FAILED if failed_rows else ExitStatus.OK

    async def watch_signals(self, outer: TaskGroup) -> None:
        """SIGINT/SIGTERM: stop new starts, let streams finish for a grace period, then cancel.

        A second signal cancels the streams at once and stops going over the
        rest of the manifest (the results then list only the rows reached).
        """
        signalled = False
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                if not signalled:
                    signalled = True
                    name = signal.Signals(signum).name
                    code = ExitStatus.SIGINT if signum == signal.SIGINT else ExitStatus.SIGTERM
                    # A refused key or a usage limit stays the reason (exit 3): a rerun alone would not help.
                    keep_access = self.stop is not None and self.stop.exit_status is ExitStatus.AUTH
                    self.stop_starting(
                        Stop.because(StopReason.INTERRUPTED, f"received {name}", code), override=not keep_access
                    )
                    log.warning("%s: no new rows start; rows in flight get %gs to finish", name, self.grace_seconds)
                    outer.start_soon(self._cancel_after_grace)
                else:
                    self.abandoned = True
                    self.cancel_work()  # a second signal: stop now

    async def _cancel_after_grace(self) -> None:
        await anyio.sleep(self.grace_seconds)
        self.cancel_work()
