"""batchtts: batch text-to-speech jobs for the Smallest AI Waves streaming API.

The public Python API (docs/python-api.md); everything else is internal::

    from batchtts import JobSpec, run_job

    summary = run_job(JobSpec(manifest="lines.csv", out_dir="out"), local=True)

Names are imported on first use, so ``batchtts --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from batchtts._lazy import lazy_exports

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_PUBLIC = {
    "Job": "batchtts.job.launch",
    "run_job": "batchtts.job.launch",
    "JobSpec": "batchtts.job.spec",
    "ShapeOptions": "batchtts.job.shaping.options",
    "Shard": "batchtts.job.shards",
    "QaOptions": "batchtts.job.qa",
    "ProgressReporter": "batchtts.job.progress",
    "JobSummary": "batchtts.ledger.summary",
    "RetryPolicy": "batchtts.schedule.retry",
    "Rate": "batchtts.units",
    "Deadline": "batchtts.units",
    "parse_rate": "batchtts.units",
    "parse_deadline": "batchtts.units",
    "RowStatus": "batchtts.outcomes",
    "StopReason": "batchtts.outcomes",
    "ExitStatus": "batchtts.outcomes",
    "BatchTTSError": "batchtts.errors",
    "UsageError": "batchtts.errors",
    "ManifestError": "batchtts.errors",
}

if TYPE_CHECKING:
    from batchtts.errors import BatchTTSError, ManifestError, UsageError
    from batchtts.job.launch import Job, run_job
    from batchtts.job.progress import ProgressReporter
    from batchtts.job.qa import QaOptions
    from batchtts.job.shaping.options import ShapeOptions
    from batchtts.job.shards import Shard
    from batchtts.job.spec import JobSpec
    from batchtts.ledger.summary import JobSummary
    from batchtts.outcomes import ExitStatus, RowStatus, StopReason
    from batchtts.schedule.retry import RetryPolicy
    from batchtts.units import Deadline, Rate, parse_deadline, parse_rate


__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)


__all__ = [
    "BatchTTSError",
    "Deadline",
    "ExitStatus",
    "Job",
    "JobSpec",
    "JobSummary",
    "ManifestError",
    "ProgressReporter",
    "QaOptions",
    "Rate",
    "RetryPolicy",
    "RowStatus",
    "ShapeOptions",
    "Shard",
    "StopReason",
    "UsageError",
    "__version__",
    "parse_deadline",
    "parse_rate",
    "run_job",
]
