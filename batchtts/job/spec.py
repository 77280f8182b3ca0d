"""What a job is asked to do, whatever it was read from (options, a job file, Python)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from batchtts.api.endpoint import DEFAULT_BASE_URL
from batchtts.errors import UsageError
from batchtts.job.qa import QaOptions
from batchtts.job.shaping.options import ShapeOptions
from batchtts.job.shards import Shard
from batchtts.ledger.summary import SUMMARY_NAME
from batchtts.manifest.dialect import CsvDialect
from batchtts.schedule.retry import RetryPolicy
from batchtts.storage.names import DEFAULT_RESULTS_NAME, PART_RESULTS_STEM, STATE_DIR
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
    #: ``--shard K/N``: only this shard's rows, its state under ``DIR/.batchtts/shards/K-of-N/``.
    shard: Shard | None = None
    #: Share the limits (streams, pace, 429 back-off) with every job of the account through this
    #: Redis URL (:mod:`batchtts.schedule.shared`); None = this job's limits are its own.
    limits_url: str | None = None
    #: Added to the account's digest in the Redis namespace: jobs share limits only within one.
    limits_namespace: str | None = None
    #: Audio checks on every take, and what a flagged one gets (``--qa``: retry, flag, fail, off).
    qa: QaOptions = field(default_factory=QaOptions)
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
        """Where this run writes its results: the results manifest, or a shard's part of it."""
        if self.shard is not None:
            return self.state_dir / f"{PART_RESULTS_STEM}{self.merged_results.suffix.lower()}"
        return self.merged_results

    @property
    def merged_results(self) -> Path:
        """The results manifest of the whole job (a shard's part goes into it with ``batchtts merge``)."""
        return self.results_path or self.out_dir / DEFAULT_RESULTS_NAME

    @property
    def main_state_dir(self) -> Path:
        """``DIR/.batchtts``: the unsharded job's journal and lock (shards share the lock)."""
        return self.out_dir / STATE_DIR

    @property
    def state_dir(self) -> Path:
        """This run's own journal, lock and records: the job's, or its shard's."""
        return self.main_state_dir if self.shard is None else self.shard.state_dir(self.out_dir)

    @property
    def summary_path(self) -> Path:
        return (self.out_dir if self.shard is None else self.state_dir) / SUMMARY_NAME


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
