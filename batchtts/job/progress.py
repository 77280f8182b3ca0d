"""What the runner tells whoever watches it: rows finished, the throttle's state, the total.

The runner only calls these methods; how (and whether) they are shown is the
caller's choice: the command line's displays live in :mod:`batchtts.cli.progress`,
a notebook or a scheduler may pass its own subclass, and the base shows nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from batchtts.schedule.throttle import ThrottleState


@dataclass(slots=True)
class Counts:
    done: int = 0
    ok: int = 0
    failed: int = 0
    skipped: int = 0


class ProgressReporter:
    """Base: counts rows; subclasses decide how (and whether) to show them."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.counts = Counts()
        self.started = time.monotonic()
        self.limits: ThrottleState | None = None

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

    def eta_seconds(self) -> float | None:
        rate = self.rows_per_second()
        if self.total is None or rate <= 0:
            return None
        return max(0.0, (self.total - self.counts.done) / rate)
