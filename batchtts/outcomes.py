"""The words a job's outcome is told in: row statuses, stop reasons, exit statuses.

One table each, so the summary, summary.json, the exit code and the advice a
person reads can never disagree. The enums are ``str``/``int`` subclasses: they
go into JSON, Arrow and ``sys.exit`` as their plain values.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum


class RowStatus(StrEnum):
    """A row's status in the results manifest."""

    OK = "ok"
    FAILED = "failed"
    #: Not started or not finished (a limit, a signal, a rejected key): the next run does it.
    PENDING = "pending"


class ExitStatus(IntEnum):
    """The exit status of ``batchtts run`` (docs: "Exit status")."""

    OK = 0
    ROWS_FAILED = 1
    USAGE = 2
    AUTH = 3
    STOPPED_BY_LIMIT = 4
    SIGINT = 130
    SIGTERM = 143

    @property
    def meaning(self) -> str:
        return EXIT_MEANINGS[self]


EXIT_MEANINGS: dict[ExitStatus, str] = {
    ExitStatus.OK: "every row ok",
    ExitStatus.ROWS_FAILED: "some rows failed",
    ExitStatus.USAGE: "bad usage, unreadable manifest, no API key, or the folder is in use by another run",
    ExitStatus.AUTH: "the API refused the key, or the account's usage limit is reached (401/403); the job stopped",
    ExitStatus.STOPPED_BY_LIMIT: "stopped early by --deadline, --max-characters or --limit; pending rows remain",
    ExitStatus.SIGINT: "interrupted by SIGINT",
    ExitStatus.SIGTERM: "interrupted by SIGTERM",
}


def exit_meaning(code: int) -> str:
    """What an exit status means, for summary.json (any int: a crash may exit otherwise)."""
    try:
        return ExitStatus(code).meaning
    except ValueError:
        return "unexpected error"


class StopReason(StrEnum):
    """Why a run stopped before going over the whole manifest (``stop_reason`` in summary.json)."""

    AUTH = "auth"
    QUOTA = "quota"
    INTERRUPTED = "interrupted"
    DEADLINE = "deadline"
    BUDGET = "budget"
    LIMIT = "limit"
    MANIFEST = "manifest"
    STORAGE = "storage"
    ERROR = "error"

    @property
    def exit_status(self) -> ExitStatus:
        """The exit status this stop gives (an interruption's depends on the signal: see :class:`Stop`)."""
        return _STOPS[self][0]

    @property
    def next_step(self) -> str:
        """What to do about it, for the end-of-job summary (the stop's own message says why)."""
        return _STOPS[self][1]


_STOPS: dict[StopReason, tuple[ExitStatus, str]] = {
    StopReason.AUTH: (
        ExitStatus.AUTH,
        "the API rejected the key (a wrong key, or one of another workspace or product): "
        "check SMALLEST_API_KEY or --api-key-file, then rerun",
    ),
    StopReason.QUOTA: (
        ExitStatus.AUTH,
        "the account's trial or workspace usage limit is reached: raise it (or wait until it resets), "
        "then rerun the same command to do the pending rows",
    ),
    StopReason.INTERRUPTED: (ExitStatus.SIGINT, "rerun the same command to finish the remaining rows"),
    StopReason.DEADLINE: (ExitStatus.STOPPED_BY_LIMIT, "rerun the same command to do the pending rows"),
    StopReason.BUDGET: (
        ExitStatus.STOPPED_BY_LIMIT,
        "rerun the same command to do the pending rows (each run starts rows worth at most the budget)",
    ),
    StopReason.LIMIT: (ExitStatus.STOPPED_BY_LIMIT, "rerun the same command to do the pending rows"),
    StopReason.MANIFEST: (ExitStatus.USAGE, "fix the manifest, then rerun: the rows already done are kept"),
    StopReason.STORAGE: (
        ExitStatus.ROWS_FAILED,
        "free space (or make the folder writable), then rerun to do the pending rows",
    ),
    StopReason.ERROR: (
        ExitStatus.ROWS_FAILED,
        "an unexpected error stopped the job (a bug: please report it with the log); "
        "rerun the same command to do the pending rows, the rows already done are kept",
    ),
}


@dataclass(frozen=True, slots=True)
class Stop:
    """Why the run stopped, in its own words, and the exit status it gives."""

    reason: StopReason
    message: str | None
    exit_status: ExitStatus
    #: What to do next when this stop needs other advice than its reason's (``--limit 0``).
    next_step_override: str | None = None

    @property
    def next_step(self) -> str:
        return self.next_step_override or self.reason.next_step

    @classmethod
    def because(
        cls,
        reason: StopReason,
        message: str | None,
        exit_status: ExitStatus | None = None,
        *,
        next_step: str | None = None,
    ) -> Stop:
        return cls(reason, message, reason.exit_status if exit_status is None else exit_status, next_step)


__all__ = ["EXIT_MEANINGS", "ExitStatus", "RowStatus", "Stop", "StopReason", "exit_meaning"]
