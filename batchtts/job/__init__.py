"""One job: the spec, the runner, a row's attempts, the recorder, the stop control, the folder lock.

Imported on first use (:mod:`batchtts._lazy`), so naming them here costs nothing.
"""

from batchtts._lazy import lazy_exports

_EXPORTS = {
    "Job": "batchtts.job.launch",
    "run_job": "batchtts.job.launch",
    "JobSpec": "batchtts.job.spec",
    "Runner": "batchtts.job.runner",
    "Attempts": "batchtts.job.attempts",
    "Recorder": "batchtts.job.recorder",
    "StopControl": "batchtts.job.stopping",
    "WorkItem": "batchtts.job.items",
    "ProgressReporter": "batchtts.job.progress",
    "InFlight": "batchtts.job.progress",
    "job_lock": "batchtts.job.lock",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
