"""What a person (or a scheduler's log) sees while a job runs, and at its end.

On a terminal: a live rich display. Off a terminal: a plain line now and then,
so cron mail and CI logs stay readable. Both show rows done and failed, rows/s,
ETA, streams in flight and the current effective concurrency (the cap
``--concurrency auto`` has reached) and pace.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from batchtts.job.progress import ProgressReporter
from batchtts.schedule.throttle import ThrottleState


def _describe_limits(state: ThrottleState | None) -> str:
    if state is None:
        return ""
    pace = f"{state.rate_per_second:.1f}/s" if state.rate_per_second else "unpaced"
    cap = f"{state.concurrency} (auto)" if state.auto else str(state.concurrency)
    return f"in flight {state.in_flight}/{cap}, pace {pace}"


class PlainProgress(ProgressReporter):
    """A line every ``interval`` seconds, for logs."""

    def __init__(self, total: int | None, *, stream: TextIO | None = None, interval: float = 10.0) -> None:
        super().__init__(total)
        self._stream = stream or sys.stderr
        self._interval = interval
        self._last = time.monotonic()

    def _changed(self) -> None:
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._print()

    def _print(self) -> None:
        c = self.counts
        total = f"/{self.total}" if self.total is not None else ""
        eta = self.eta_seconds()
        eta_text = f", ETA {format_duration(eta)}" if eta is not None else ""
        limits = _describe_limits(self.limits)
        print(
            f"batchtts: {c.done}{total} rows ({c.failed} failed), {self.rows_per_second():.1f} rows/s"
            f"{eta_text}{', ' + limits if limits else ''}",
            file=self._stream,
            flush=True,
        )


class LiveProgress(ProgressReporter):
    """A rich progress bar on stderr, refreshed by rich's own thread."""

    def __init__(self, total: int | None, *, console: Console | None = None) -> None:
        super().__init__(total)
        self._progress = Progress(
            TextColumn("[bold]batchtts"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[red]{task.fields[failed]} failed"),
            TextColumn("{task.fields[speed]} rows/s"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[limits]}"),
            console=console or Console(stderr=True),
            refresh_per_second=4,
        )
        self._task: TaskID | None = None

    def start(self) -> None:
        self._progress.start()
        self._task = self._progress.add_task("rows", total=self.total, failed=0, speed="0.0", limits="")

    def stop(self) -> None:
        self._progress.stop()

    def total_known(self, total: int) -> None:
        super().total_known(total)
        if self._task is not None:
            self._progress.update(self._task, total=total)

    def _changed(self) -> None:
        if self._task is not None:
            self._progress.update(
                self._task,
                completed=self.counts.done,
                failed=self.counts.failed,
                speed=f"{self.rows_per_second():.1f}",
                limits=_describe_limits(self.limits),
            )


def make_progress(mode: str, total: int | None, stream: TextIO | None = None) -> ProgressReporter:
    """``auto`` picks live on a terminal and plain elsewhere; ``off`` shows nothing."""
    stream = stream or sys.stderr
    if mode == "auto":
        mode = "live" if stream.isatty() else "plain"
    if mode == "live":
        return LiveProgress(total, console=Console(file=stream))
    if mode == "plain":
        return PlainProgress(total, stream=stream)
    return ProgressReporter(total)


def format_duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
