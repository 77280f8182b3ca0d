"""``DIR/summary.json``: what a scheduler needs to know about a run, in one small JSON file.

Written at the end of every run that got as far as taking the folder's lock,
however it ended (done, failed rows, a limit, SIGINT/SIGTERM, a rejected key),
whole or not at all (temp file + rename), so a wrapper script can read
``exit_status`` and the counts without parsing logs or the results manifest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchtts import __version__
from batchtts.storage.files import atomic_file

if TYPE_CHECKING:
    from batchtts.job.runner import JobSpec, JobSummary

SUMMARY_NAME = "summary.json"

#: Every exit status of ``batchtts run``, with what it means (README "Exit status").
EXIT_MEANINGS: dict[int, str] = {
    0: "every row ok",
    1: "some rows failed",
    2: "bad usage, unreadable manifest, no API key, or the folder is in use by another run",
    3: "the API rejected the key; the job stopped",
    4: "stopped early by --deadline, --max-characters or --limit; pending rows remain",
    130: "interrupted by SIGINT",
    143: "interrupted by SIGTERM",
}


def summary_document(summary: JobSummary, spec: JobSpec) -> dict[str, Any]:
    """The content of summary.json (also the ``summary`` event of ``--log-format json``)."""
    synthesized = summary.ok - summary.reused_ok
    wall = summary.wall_seconds
    return {
        "exit_status": summary.exit_code,
        "exit_meaning": EXIT_MEANINGS.get(summary.exit_code, "unexpected error"),
        "stop_reason": summary.stopped,
        "stop_message": summary.stop_message,
        "complete": summary.complete,
        "rows": summary.rows,
        "ok": summary.ok,
        "synthesized": synthesized,
        "skipped": summary.skipped,
        "failed": summary.failed,
        "pending": summary.pending,
        "attempts": summary.attempts,
        "retries": summary.retries,
        "rate_limited": summary.rate_limited,
        "characters_sent": summary.characters_sent,
        "audio_seconds": round(summary.audio_seconds, 3),
        "audio_seconds_total": round(summary.audio_seconds_total, 3),
        "started_at": summary.started_at,
        "finished_at": summary.finished_at,
        "wall_seconds": round(wall, 3),
        "rows_per_second": round(synthesized / wall, 3) if wall > 0 else None,
        "ttfb_ms_mean": _mean(summary.ttfb_ms_sum, synthesized),
        "total_ms_mean": _mean(summary.total_ms_sum, synthesized),
        "manifest": str(spec.manifest),
        "out": str(spec.out_dir),
        "results": str(summary.results_path) if summary.results_path else None,
        "batchtts_version": __version__,
    }


def _mean(total: float, count: int) -> float | None:
    return round(total / count, 1) if count else None


def write_summary_json(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` to ``path`` whole or not at all."""
    with atomic_file(path) as handle:
        json.dump(document, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
