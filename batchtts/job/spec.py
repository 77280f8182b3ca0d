"""What a job is asked to do, whatever it was read from (options, a job file, Python)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from batchtts.api.endpoint import DEFAULT_BASE_URL
from batchtts.errors import UsageError
from batchtts.job.shaping.options import ShapeOptions
from batchtts.manifest.dialect import CsvDialect
from batchtts.schedule.retry import RetryPolicy
from batchtts.units import AUTO, DEFAULT_MAX_CONCURRENCY, Deadline, Rate


@dataclass(slots=True)
class JobSpec:
    """Everything a job needs to know: the manifest, the outputs, the requests' defaults and the limits.

    Only ``manifest`` and ``out_dir`` are required; every default is the
    command line's. ``defaults`` holds request fields (``voice_id``, ``speed``,
    ``sample_rate``, ...) that a row's own cells override.
    """

    manifest: Path
    out_dir: Path
    results_path: Path | None = None
    text_column: str = "text"
    id_column: str | None = None
    #: How a CSV/TSV manifest splits into cells (delimiter, quoting, header); the extension's defaults.
    dialect: CsvDialect = field(default_factory=CsvDialect)
    defaults: dict[str, Any] = field(default_factory=dict)
    file_format: str = "wav"
    #: Streams at once: ``"auto"`` finds the account's limit (from one stream up to
    #: ``max_concurrency``, see :class:`batchtts.schedule.throttle.AutoConcurrency`), a number is a fixed cap.
    concurrency: int | Literal["auto"] = AUTO
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    rate: Rate | None = None
    adaptive: bool = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    grace_seconds: float = 10.0
    #: Long texts, chapters, voice fan-out, folders, dataset index (batchtts.job.shaping).
    shape: ShapeOptions = field(default_factory=ShapeOptions)
    #: Resume: redo every row (``--force``); try earlier failures again (``--no-retry-failed`` keeps them).
    force: bool = False
    retry_failed: bool = True
    #: Limits for schedulers (:mod:`batchtts.schedule.startgate`); None = no limit.
    deadline: Deadline | None = None
    max_characters: int | None = None
    limit: int | None = None
    #: Carry each row's text into the results (a column named as the manifest's text column).
    results_text: bool = False
    #: Send ``x-expire-content: true`` (Enterprise: the content is deleted after 7 days).
    expire_content: bool = False
    #: Before the first request, read the account's voice catalog once and fail (without a
    #: request) the rows whose voice is not in it; the job goes on unchecked when it cannot be read.
    voice_check: bool = True
    #: The API endpoint and the client's timeouts (seconds).
    base_url: str = DEFAULT_BASE_URL
    idle_timeout: float = 30.0
    connect_timeout: float = 10.0
    #: Object storage (``s3://`` manifests and ``--out``): fsspec options (``--storage-option KEY=VALUE``).
    storage_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.manifest, self.out_dir = Path(self.manifest), Path(self.out_dir)
        if self.concurrency != AUTO and not _is_count(self.concurrency):
            raise UsageError(f"concurrency: {self.concurrency!r} is not {AUTO!r} or a whole number of at least 1")
        if not _is_count(self.max_concurrency):
            raise UsageError(f"max_concurrency: {self.max_concurrency!r} is not a whole number of at least 1")
        if self.results_path is not None:
            self.results_path = Path(self.results_path)

    @property
    def streams(self) -> int:
        """The most streams the job may run at once: its workers and connections."""
        return self.max_concurrency if self.concurrency == AUTO else int(self.concurrency)

    @property
    def results(self) -> Path:
        return self.results_path or self.out_dir / "results.parquet"

    @property
    def state_dir(self) -> Path:
        return self.out_dir / ".batchtts"


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
