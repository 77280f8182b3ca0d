"""A run's counts, and ``DIR/summary.json``: what a scheduler needs to know, in one small JSON file.

Written at the end of every run that got as far as taking the folder's lock,
however it ended (done, failed rows, a limit, SIGINT/SIGTERM, a rejected key),
whole or not at all (temp file + rename), so a wrapper script can read
``exit_status`` and the counts without parsing logs or the results manifest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchtts import __version__
from batchtts.outcomes import ExitStatus, Stop, exit_meaning
from batchtts.storage import atomic_file
from batchtts.storage.names import SUMMARY_NAME as SUMMARY_NAME  # re-exported for the ledger's users
from batchtts.storage.objects import shown


@dataclass(frozen=True, slots=True)
class FailedRow:
    """One failure, for the end-of-job summary: the row, why, and its voice in a ``--voices`` fan-out."""

    row_id: str
    reason: str
    voice: str | None = None


@dataclass(slots=True)
class JobSummary:
    """What one run did; kept by the job's recorder, read by the summary, summary.json and the caller."""

    rows: int = 0
    ok: int = 0  # ok rows in the results, earlier results that stand included
    failed: int = 0
    skipped: int = 0  # rows whose earlier result (ok, or failed with --no-retry-failed) stands: no request
    reused_ok: int = 0  # the ok ones among them
    pending: int = 0  # rows not started or not finished (a limit, a signal): the next run does them
    attempts: int = 0
    retries: int = 0
    rate_limited: int = 0
    characters_sent: int = 0  # text characters of every attempt sent
    audio_seconds: float = 0.0  # audio made by this run
    audio_seconds_total: float = 0.0  # audio of every ok row in the results
    ttfb_ms_sum: float = 0.0
    total_ms_sum: float = 0.0
    wall_seconds: float = 0.0
    started_at: str | None = None
    finished_at: str | None = None
    #: The run went over the whole manifest (the results describe all of it).
    complete: bool = False
    #: Why the run stopped early, if it did.
    stop: Stop | None = None
    results_path: Path | None = None
    exit_code: ExitStatus = ExitStatus.OK
    #: The first few failures, for the end-of-job summary.
    failure_examples: list[FailedRow] = field(default_factory=list)
    #: ``--group-by`` files (chapters) this run wrote; None without ``--group-by``.
    group_files: int | None = None
    #: ``--loudness``: each normalised file (relative path) -> what normalising it did, and
    #: ``"reused": true`` for a file an earlier run made; None when no row had a normalised file.
    loudness: dict[str, dict[str, Any]] | None = None

    def note_loudness(self, path: Any, figures: Any, *, reused: bool) -> None:
        """A normalised file seen in a result (every row of a chapter names the same file: counted once)."""
        if not isinstance(path, str) or not isinstance(figures, dict):
            return
        files = self.loudness if self.loudness is not None else {}
        self.loudness = files
        if path not in files:
            files[path] = {**figures, "reused": reused}

    #: Audio checks (``--qa``): rows in the results that were checked, those flagged, each flag's count,
    #: and the takes made again because of a flag (not counted in ``retries``).
    qa_checked: int = 0
    qa_flagged: int = 0
    qa_flags: dict[str, int] = field(default_factory=dict)
    qa_retakes: int = 0

    @property
    def stopped(self) -> str | None:
        """The stop reason's value (``"deadline"``), or None when the run was not stopped."""
        return None if self.stop is None else self.stop.reason.value

    @property
    def stop_message(self) -> str | None:
        return None if self.stop is None else self.stop.message

    @property
    def synthesized(self) -> int:
        """Ok rows this run made (not kept from earlier runs)."""
        return self.ok - self.reused_ok


def summary_document(summary: JobSummary, *, manifest: Path, out_dir: Path) -> dict[str, Any]:
    """The content of summary.json (also the ``summary`` event of ``--log-format json``)."""
    synthesized = summary.synthesized
    wall = summary.wall_seconds
    return {
        "exit_status": int(summary.exit_code),
        "exit_meaning": exit_meaning(summary.exit_code),
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
        "manifest": shown(manifest),
        "out": shown(out_dir),
        "results": shown(summary.results_path) if summary.results_path else None,
        "group_files": summary.group_files,
        **({"loudness": loudness_document(summary.loudness)} if summary.loudness is not None else {}),
        "qa": {
            "checked": summary.qa_checked,
            "flagged": summary.qa_flagged,
            "flags": dict(sorted(summary.qa_flags.items())),
            "retakes": summary.qa_retakes,
        },
        "batchtts_version": __version__,
    }


def loudness_document(files: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """summary.json's ``loudness``: counts, the range reached, and every normalised file's figures."""
    after = [f["after_lufs"] for f in files.values() if isinstance(f.get("after_lufs"), (int, float))]
    return {
        "files": len(files),
        "normalised": sum(1 for f in files.values() if not f.get("reused")),
        "limited_by_peak": sum(1 for f in files.values() if f.get("limited_by_peak")),
        "limiter_applied": sum(1 for f in files.values() if f.get("limited_samples_share")),
        "after_lufs_min": min(after) if after else None,
        "after_lufs_max": max(after) if after else None,
        "by_file": files,
    }


def _mean(total: float, count: int) -> float | None:
    return round(total / count, 1) if count else None


def write_summary_json(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` to ``path`` whole or not at all."""
    with atomic_file(path) as handle:
        json.dump(document, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
