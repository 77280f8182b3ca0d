"""What the runner tells whoever watches it: rows finished, the throttle's state, the total.

The runner only calls these methods; how (and whether) they are shown is the
caller's choice: the command line's displays live in :mod:`batchtts.cli.progress`,
a notebook or a scheduler may pass its own subclass, and the base shows nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from batchtts.schedule.throttle import ThrottleState


@dataclass(slots=True)
class Counts:
    done: int = 0
    ok: int = 0
    failed: int = 0
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class InFlight:
    """The job as it is at this moment: what a display shows between row completions."""

    streams: int  # requests streaming now
    concurrency: int  # the stream cap now
    rate_per_second: float | None  # the pace now (None: unpaced)
    audio_seconds: float  # audio received by this run so far, streams in flight included
    auto: bool = False  # the cap is --concurrency auto's, found as the job runs


class ProgressReporter:
    """Base: counts rows; subclasses decide how (and whether) to show them.

    The runner calls :meth:`row_finished` for every result and :meth:`watch`
    once, with a function that tells the job's state at any moment (streams
    open, audio received): a display that prints on a clock uses it, so it
    shows the job is alive while one long row streams.
    """

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.counts = Counts()
        self.started = time.monotonic()
        self.limits: ThrottleState | None = None
        self._live: Callable[[], InFlight] | None = None
        #: ``--limit``: at most this many rows start this run (the ETA counts no more).
        self.row_cap: int | None = None

    def watch(self, live: Callable[[], InFlight], *, row_cap: int | None = None) -> None:
        self._live, self.row_cap = live, row_cap

    def in_flight(self) -> InFlight | None:
        return self._live() if self._live is not None else None

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def row_finished(self, status: str) -> None:
        counts = self.counts
        counts.done += 1
        if status == "ok":
            counts.ok += 1
        elif status == "skipped":
            counts.skipped += 1
        else:
            counts.failed += 1
        self._changed()

    def limits_changed(self, state: ThrottleState) -> None:
        self.limits = state

    def total_known(self, total: int) -> None:
        """The row count arrived (a CSV or JSONL is counted beside the job)."""
        self.total = total

    def _changed(self) -> None: ...

    def rows_per_second(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.counts.done / elapsed if elapsed > 0 else 0.0

    def remaining(self) -> int | None:
        """Rows this run still has to finish: the manifest's rest, or fewer under ``--limit``."""
        if self.total is None:
            return None
        left = max(0, self.total - self.counts.done)
        if self.row_cap is not None:
            made = self.counts.ok + self.counts.failed
            left = min(left, max(0, self.row_cap - made))
        return left

    def eta_seconds(self) -> float | None:
        """Remaining rows ÷ the rows/s shown beside it."""
        rate, left = self.rows_per_second(), self.remaining()
        if left is None or rate <= 0:
            return None
        return left / rate
