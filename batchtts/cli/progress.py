"""What a person (or a scheduler's log) sees while a job runs, and at its end.

On a terminal: a live rich display. Off a terminal: a plain line now and then,
so cron mail and CI logs stay readable. Both show rows done and failed, rows/s,
ETA, streams in flight and the current effective concurrency (the cap
``--concurrency auto`` has reached) and pace.
"""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.text import Text

from batchtts.job.progress import InFlight, ProgressReporter


def describe_in_flight(live: InFlight | None) -> str:
    """``streaming 3/4, pace 5.0/s, 1m12s of audio``: the job at this moment."""
    if live is None:
        return ""
    pace = f"{live.rate_per_second:.1f}/s" if live.rate_per_second else "unpaced"
    cap = f"{live.concurrency} (auto)" if live.auto else str(live.concurrency)
    return f"streaming {live.streams}/{cap}, pace {pace}, {format_duration(live.audio_seconds)} of audio"


class PlainProgress(ProgressReporter):
    """A line every ``interval`` seconds on a clock, for logs: it shows the job is alive even while
    no row finishes (one long row streaming, a slow server)."""

    def __init__(self, total: int | None, *, stream: TextIO | None = None, interval: float = 10.0) -> None:
        super().__init__(total)
        self._stream = stream
        self._interval = interval
        self._stopped = threading.Event()
        self._clock: threading.Thread | None = None

    def start(self) -> None:
        self._clock = threading.Thread(target=self._tick, name="batchtts-progress", daemon=True)
        self._clock.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._clock is not None:
            self._clock.join(timeout=1.0)

    def _tick(self) -> None:
        while not self._stopped.wait(self._interval):
            self._print()

    def _print(self) -> None:
        c = self.counts
        total = f"/{self.total}" if self.total is not None else ""
        eta = self.eta_seconds()
        eta_text = f", ETA {format_duration(eta)}" if eta is not None else ""
        live = describe_in_flight(self.in_flight())
        print(
            f"batchtts: {c.done}{total} rows ({c.failed} failed), {self.rows_per_second():.1f} rows/s"
            f"{eta_text}{', ' + live if live else ''}",
            file=self._stream or sys.stderr,
            flush=True,
        )


class _Figures(ProgressColumn):
    """Rendered by rich at each refresh from the reporter itself, so nothing shown is stale."""

    def __init__(self, reporter: ProgressReporter) -> None:
        super().__init__()
        self._reporter = reporter

    def render(self, task: Task) -> Text:
        reporter = self._reporter
        eta = reporter.eta_seconds()
        parts = [
            f"{reporter.counts.failed} failed",
            f"{reporter.rows_per_second():.1f} rows/s",
            f"ETA {format_duration(eta) if eta is not None else '?'}",
        ]
        live = describe_in_flight(reporter.in_flight())
        return Text(", ".join([*parts, live] if live else parts))


class LiveProgress(ProgressReporter):
    """A rich progress bar on stderr, refreshed by rich's own thread."""

    def __init__(self, total: int | None, *, console: Console | None = None) -> None:
        super().__init__(total)
        self._progress = Progress(
            TextColumn("[bold]batchtts"),
            BarColumn(),
            MofNCompleteColumn(),
            _Figures(self),
            console=console or Console(stderr=True),
            refresh_per_second=4,
        )
        self._task: TaskID | None = None

    def start(self) -> None:
        self._progress.start()
        self._task = self._progress.add_task("rows", total=self.total)

    def stop(self) -> None:
        self._progress.stop()

    def total_known(self, total: int) -> None:
        super().total_known(total)
        if self._task is not None:
            self._progress.update(self._task, total=total)

    def _changed(self) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=self.counts.done)


def make_progress(
    mode: str, total: int | None, stream: TextIO | None = None, *, interval: float = 10.0
) -> ProgressReporter:
    """``auto`` picks live on a terminal and plain elsewhere; ``off`` shows nothing."""
    stream = stream or sys.stderr
    if mode == "auto":
        mode = "live" if stream.isatty() else "plain"
    if mode == "live":
        return LiveProgress(total, console=Console(file=stream))
    if mode == "plain":
        return PlainProgress(total, stream=stream, interval=interval)
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
