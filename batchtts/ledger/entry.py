"""One finished row as the ledger records it: :class:`RowResult` and its columns.

The journal (:mod:`batchtts.ledger.journal`) stores a RowResult as one JSON
line and the results manifest (:mod:`batchtts.ledger.writers`) has one column
per field; both sides, and the job layer that fills them in, agree on the
names and the timestamp format defined here (the statuses are
:class:`batchtts.outcomes.RowStatus`), so this module exists to keep that
vocabulary in one place with nothing heavy to import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

#: The fixed columns of the results manifest, in order; carried columns follow.
#: The audio checks' measures of a take (batchtts.job.qa fills them in; the report shows them).
QA_MEASURES: tuple[str, ...] = (
    "seconds_per_char",
    "leading_silence_s",
    "trailing_silence_s",
    "longest_silence_s",
    "peak_dbfs",
    "rms_dbfs",
    "clipped_share",
)
RESULT_COLUMNS: tuple[str, ...] = (
    "id",
    "row",
    "status",
    "path",
    "request_id",
    "server_request_id",
    "server_session_id",
    "attempts",
    "http_status",
    "error",
    "ttfb_ms",
    "total_ms",
    "audio_seconds",
    "audio_bytes",
    "sample_rate",
    "output_format",
    "voice_id",
    "started_at",
    "finished_at",
    "reused",
    "content_expiry",
    # The audio checks (batchtts.job.qa): measures of the take kept, its flags, one column per flag.
    *QA_MEASURES,
    "qa",
    "silent",
    "truncated",
    "overlong",
    "clipped",
    "long_silence",
)
#: The audio checks' flags, each a boolean column of its own (and listed in ``qa``).
QA_FLAG_COLUMNS: tuple[str, ...] = ("silent", "truncated", "overlong", "clipped", "long_silence")
#: Columns only some jobs have, placed after the fixed ones: ``--max-chars`` adds
#: the number of parts of each row's text and each part's request id.
OPTIONAL_COLUMNS: tuple[str, ...] = ("parts", "part_request_ids")
#: Journal-only key: a voice fan-out's index, so each (row, voice) keeps its own results row.
VARIANT_KEY = "variant"
#: Journal-only key: with ``--loudness``, what normalising the row's file did (kept when a rerun reuses it).
LOUDNESS_KEY = "loudness"


def utc_now_iso() -> str:
    """Now as ISO 8601 UTC with milliseconds and a ``Z``: ``2025-01-31T12:00:00.123Z``."""
    return to_iso_utc(datetime.now(UTC))


def to_iso_utc(moment: datetime) -> str:
    """``moment`` (aware; naive means UTC) in the results' timestamp format (see :func:`utc_now_iso`)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class RowResult:
    """What happened to one manifest row; one field per results column (None where unknown)."""

    id: str
    row: int  # 1-based data row number in the manifest
    status: str  # a RowStatus: ok, failed or pending
    path: str | None = None  # audio file, relative to the output folder, with "/" separators
    request_id: str | None = None
    server_request_id: str | None = None
    server_session_id: str | None = None  # the server's X-Session-Id
    attempts: int | None = None
    http_status: int | None = None
    error: str | None = None
    ttfb_ms: float | None = None
    total_ms: float | None = None
    audio_seconds: float | None = None
    audio_bytes: int | None = None
    sample_rate: int | None = None
    output_format: str | None = None
    voice_id: str | None = None
    started_at: str | None = None  # utc_now_iso() format
    finished_at: str | None = None
    reused: bool | None = None  # True: an earlier run's result, kept without a request
    content_expiry: str | None = None  # the answer's x-content-expiry (with --expire-content)
    # The audio checks (None: not checked: --qa off, mp3, a row that failed or was joined from parts).
    seconds_per_char: float | None = None
    leading_silence_s: float | None = None
    trailing_silence_s: float | None = None
    longest_silence_s: float | None = None
    peak_dbfs: float | None = None
    rms_dbfs: float | None = None
    clipped_share: float | None = None
    qa: list[str] | None = None  # the flags, worst first; [] when checked and clean
    silent: bool | None = None
    truncated: bool | None = None
    overlong: bool | None = None
    clipped: bool | None = None
    long_silence: bool | None = None
    carried: dict[str, Any] = field(default_factory=dict)
    #: Optional columns (:data:`OPTIONAL_COLUMNS`) and :data:`VARIANT_KEY`, when the job has them,
    #: and journal-only keys: the resume fingerprint and file stamp (:mod:`batchtts.ledger.resume`).
    extra: dict[str, Any] = field(default_factory=dict)

    def to_entry(self) -> dict[str, Any]:
        """The journal entry: every fixed column by name, extras, carried values under ``"carried"``."""
        entry = {name: getattr(self, name) for name in RESULT_COLUMNS}
        if isinstance(self.path, PurePath):
            entry["path"] = self.path.as_posix()
        entry.update(self.extra)
        entry["carried"] = self.carried
        return entry


def json_default(value: Any) -> Any:
    """JSON for what the manifest reader may still hand over: dates, decimals, bytes, numpy scalars."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "backslashreplace")
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, PurePath):
        return value.as_posix()
    return str(value)
