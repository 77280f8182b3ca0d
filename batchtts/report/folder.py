"""What a job folder holds for a report, read without changing anything in it.

A folder is in one of four states: ``finished`` (summary.json and a results
manifest at least as new as the journal), ``running`` (a live run holds the
lock: its journal is read, never the lock taken), ``interrupted`` (a journal
newer than any results: a run killed on the way) or ``sharded`` (only the
``--shard`` runs' journals under ``.batchtts/shards/``, not merged yet). A
merged sharded folder is a finished one.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchtts.errors import UsageError

STATE_DIR = ".batchtts"
JOURNAL = "journal.jsonl"
LOCK = "lock"
SHARDS = "shards"
SUMMARY = "summary.json"
RESULT_NAMES = ("results.parquet", "results.csv", "results.jsonl")


@dataclass(slots=True)
class JobFolder:
    """A job folder and where its rows are: a results manifest, or journal files."""

    out_dir: Path
    state: str  # finished, running, interrupted or sharded
    summary: dict[str, Any] | None = None
    results: Path | None = None
    journals: list[Path] = field(default_factory=list)
    #: The live run's lock record (pid, host, started_at) when running.
    holder: dict[str, Any] | None = None

    @property
    def from_journal(self) -> bool:
        return self.results is None


def open_job_folder(out_dir: Path) -> JobFolder:
    """The folder's state and row source; :class:`UsageError` when it is not a job folder."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise UsageError(f"{out_dir}: no such job folder")
    state_dir = out_dir / STATE_DIR
    summary = _read_summary(out_dir / SUMMARY)
    results = _results_path(out_dir, summary)
    journal = state_dir / JOURNAL
    holder = _live_holder(state_dir / LOCK)
    shard_journals = sorted((state_dir / SHARDS).glob(f"*/{JOURNAL}")) if (state_dir / SHARDS).is_dir() else []
    if holder is not None and journal.is_file():
        return JobFolder(out_dir, "running", summary, None, [journal], holder)
    if journal.is_file() and (results is None or _newer(journal, results)):
        return JobFolder(out_dir, "interrupted", summary, None, [journal])
    if results is not None:
        return JobFolder(out_dir, "finished", summary, results)
    if shard_journals:
        return JobFolder(out_dir, "sharded", summary, None, shard_journals)
    raise UsageError(f"{out_dir}: not a job folder (no results, summary.json or .batchtts/journal.jsonl)")


def _read_summary(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def _results_path(out_dir: Path, summary: dict[str, Any] | None) -> Path | None:
    """The results manifest summary.json names (absolute, or relative to DIR), else DIR/results.*."""
    named = summary.get("results") if summary else None
    candidates: list[Path] = []
    if isinstance(named, str) and named:
        path = Path(named)
        candidates += [path] if path.is_absolute() else [out_dir / path.name, path]
    candidates += [out_dir / name for name in RESULT_NAMES]
    return next((path for path in candidates if path.is_file()), None)


def _newer(journal: Path, results: Path) -> bool:
    """The journal was written after the results: a later run that did not get to write its own."""
    try:
        return journal.stat().st_mtime > results.stat().st_mtime + 1.0 and journal.stat().st_size > 0
    except OSError:
        return False


def _live_holder(lock: Path) -> dict[str, Any] | None:
    """The lock's record when its process is alive on this host; read, never locked.

    A run writes its record when it takes the lock and empties it when it lets go;
    a record left by a killed run names a pid that is gone.
    """
    try:
        holder = json.loads(lock.read_text(encoding="utf-8") or "null")
    except (OSError, ValueError):
        return None
    if not isinstance(holder, dict) or not isinstance(holder.get("pid"), int):
        return None
    if holder.get("host") not in (None, socket.gethostname()):
        return holder  # another machine's run: assume it is alive
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return holder
    return holder
