"""What ``batchtts run`` says on stderr: text lines for people, or JSON lines for log collectors.

``--log-format text`` (default) prints ``batchtts: <message>`` lines.
``--log-format json`` prints one JSON object per line instead, for every log
event, progress line and the final summary::

    {"time": "2025-01-31T12:00:00.123Z", "level": "info", "event": "row_failed", "message": "...", "row_id": "a"}

Every line, in either format, passes through the job's redaction, so the API
key never appears (the runner redacts error texts too; this is the last net).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import Any, TextIO

from batchtts.cli.progress import PlainProgress, make_progress
from batchtts.job.progress import ProgressReporter
from batchtts.ledger import utc_now_iso

LOG_FORMATS: tuple[str, ...] = ("text", "json")
#: Between INFO and WARNING: what a run says by default (the local server banner, the end summary).
NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")

_LOGGER = "batchtts"


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"batchtts: {record.getMessage()}"


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": utc_now_iso(),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", None) or "log",
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            event.update(fields)
        return json.dumps(event, ensure_ascii=False, default=str)


class _CliHandler(logging.StreamHandler[TextIO]):
    """Writes to the stderr of the moment (click's test runner swaps it) and redacts every line."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(formatter)
        self.redact: Callable[[str], str] = lambda text: text

    @property
    def stream(self) -> TextIO:
        """sys.stderr when the line is written: under the live display it is rich's proxy, so a
        message (a SIGINT notice) prints above the bar instead of onto its line."""
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # always the stderr of the moment

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


class CliLog:
    """The run command's stderr: ``configure()`` it once, then ``say()`` events or use ``logging``."""

    def __init__(self, log_format: str, handler: _CliHandler) -> None:
        self.format = log_format
        self._handler = handler
        self._logger = logging.getLogger(_LOGGER)

    @property
    def json(self) -> bool:
        return self.format == "json"

    def set_redact(self, redact: Callable[[str], str]) -> None:
        self._handler.redact = redact

    def say(self, event: str, message: str, *, level: int = NOTICE, **fields: Any) -> None:
        """One event: ``batchtts: message`` as text, or a JSON object with ``fields``."""
        self._logger.log(level, "%s", message, extra={"event": event, "fields": fields})

    def error(self, message: str, **fields: Any) -> None:
        self.say("error", f"error: {message}", level=logging.ERROR, **fields)

    def progress(self, mode: str, total: int | None, *, interval: float = 10.0) -> ProgressReporter:
        """The progress display for ``--progress MODE``: JSON lines replace the text ones in json mode."""
        if self.json and mode != "off":
            return JsonProgress(total, self, interval=interval)
        return make_progress(mode, total, interval=interval)


def configure(log_format: str = "text", *, verbose: int = 0, quiet: bool = False) -> CliLog:
    """Route the ``batchtts`` loggers to stderr in ``log_format``; replaces an earlier configuration."""
    logger = logging.getLogger(_LOGGER)
    for old in [h for h in logger.handlers if isinstance(h, _CliHandler)]:
        logger.removeHandler(old)
    handler = _CliHandler(_JsonFormatter() if log_format == "json" else _TextFormatter())
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.ERROR if quiet else max(logging.DEBUG, NOTICE - 10 * verbose))
    return CliLog(log_format, handler)


class JsonProgress(PlainProgress):
    """The plain progress line's numbers as a ``progress`` JSON event, every ``interval`` seconds."""

    def __init__(self, total: int | None, log: CliLog, *, interval: float = 10.0, stream: TextIO | None = None) -> None:
        super().__init__(total, stream=stream, interval=interval)
        self._log = log

    def _print(self) -> None:
        c = self.counts
        live = self.in_flight()
        eta = self.eta_seconds()
        self._log.say(
            "progress",
            f"{c.done}/{self.total if self.total is not None else '?'} rows",
            done=c.done,
            total=self.total,
            ok=c.ok,
            failed=c.failed,
            skipped=c.skipped,
            rows_per_second=round(self.rows_per_second(), 2),
            eta_seconds=round(eta, 1) if eta is not None else None,
            in_flight=live.streams if live else None,
            concurrency=live.concurrency if live else None,
            audio_seconds=round(live.audio_seconds, 3) if live else None,
            auto=live.auto if live else None,
        )
