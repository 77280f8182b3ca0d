"""What a job folder holds for a report, read without changing anything in it.

A folder is in one of four states: ``finished`` (summary.json and a results
manifest at least as new as the journals), ``running`` (a live run, or live
``--shard`` runs, hold their locks: their journals are read, no lock is ever
taken), ``interrupted`` (a journal newer than any results: a run killed on the
way) or ``sharded`` (shard parts under ``.batchtts/shards/``, not merged yet:
each part's results, or its journal when it has none). A merged sharded folder
is a finished one, and its parts are listed with their own counts.

Every name comes from :mod:`batchtts.storage.names`; the shard layout is
:mod:`batchtts.job.shards`' (its part folders and ``part.json``).
"""

from __future__ import annotations

import json
import os
import socket
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchtts.errors import UsageError
from batchtts.job.shards import find_parts, read_part_record
from batchtts.storage.names import (
    DEFAULT_RESULTS_NAME,
    JOURNAL_NAME,
    LOCK_NAME,
    PART_RESULTS_STEM,
    PREVIOUS_JOURNAL_NAME,
    RESULTS_SUFFIXES,
    STATE_DIR,
    SUMMARY_NAME,
    parse_shard_part_name,
)

#: The results manifests looked for in DIR when summary.json names none.
RESULT_NAMES = tuple(Path(DEFAULT_RESULTS_NAME).stem + suffix for suffix in RESULTS_SUFFIXES)


@dataclass(slots=True)
class ShardPart:
    """One ``--shard K/N`` part: where its rows are, and what it has done."""

    folder: Path
    index: int
    count: int
    state: str  # finished, running or interrupted
    results: Path | None = None
    journal: Path | None = None
    summary: dict[str, Any] | None = None
    #: The manifest its run read (part.json), for the rows' texts.
    manifest: Path | None = None
    #: Rows by status: the part's summary.json when merged, else counted as its rows are read.
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def name(self) -> str:
        return self.folder.name


@dataclass(slots=True)
class JobFolder:
    """A job folder and where its rows are: a results manifest, or shard parts, or journal files."""

    out_dir: Path
    state: str  # finished, running, interrupted or sharded
    summary: dict[str, Any] | None = None
    results: Path | None = None
    journals: list[Path] = field(default_factory=list)
    #: The live run's lock record (pid, host, started_at) when running.
    holder: dict[str, Any] | None = None
    #: The shard parts (``--shard K/N``), merged or not.
    parts: list[ShardPart] = field(default_factory=list)
    #: Whether the rows come from the parts (not merged yet) rather than a merged results manifest.
    from_parts: bool = False

    @property
    def from_journal(self) -> bool:
        return self.results is None and not self.from_parts

    @property
    def shard_count(self) -> int:
        return self.parts[0].count if self.parts else 0

    @property
    def manifest(self) -> Path | None:
        """The manifest the parts' runs read (part.json), when the rows come from them."""
        return next((part.manifest for part in self.parts if part.manifest is not None), None)

    @property
    def shard_note(self) -> str | None:
        """ "N of M shards, not merged: run batchtts merge DIR", or None when there is nothing to merge."""
        if not self.from_parts:
            return None
        done = sum(part.state == "finished" for part in self.parts)
        running = sum(part.state == "running" for part in self.parts)
        note = f"{done} of {self.shard_count} shards finished"
        if running:
            note += f", {running} running"
        return f"{note}, not merged: run batchtts merge {self.out_dir}"


def open_job_folder(out_dir: Path) -> JobFolder:
    """The folder's state and row source; :class:`UsageError` when it is not a job folder."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise UsageError(f"{out_dir}: no such job folder")
    state_dir = out_dir / STATE_DIR
    summary = _read_summary(out_dir / SUMMARY_NAME)
    results = _results_path(out_dir, summary)
    journal = state_dir / JOURNAL_NAME
    holder = _live_holder(state_dir / LOCK_NAME)
    if holder is not None and journal.is_file():
        return JobFolder(out_dir, "running", summary, None, [journal], holder)
    parts = _read_parts(out_dir)
    if parts and _merged(summary, results, parts):
        for part in parts:
            part.counts.update(_summary_counts(part.summary))
        return JobFolder(out_dir, "finished", summary, results, parts=parts)
    if any(part.state == "running" for part in parts):
        return JobFolder(out_dir, "running", summary, parts=parts, from_parts=True)
    if journal.is_file() and (results is None or _newer(journal, results)):
        return JobFolder(out_dir, "interrupted", summary, None, [journal])
    if parts and (results is None or any(_newer(_part_file(part), results) for part in parts)):
        return JobFolder(out_dir, "sharded", summary, parts=parts, from_parts=True)
    if results is not None:
        return JobFolder(out_dir, "finished", summary, results)
    raise UsageError(f"{out_dir}: not a job folder (no results, {SUMMARY_NAME} or {STATE_DIR}/{JOURNAL_NAME})")


def _read_parts(out_dir: Path) -> list[ShardPart]:
    """The parts of the split written last (parts of an older split, ``K-of-N`` with another N, are left out)."""
    parts: list[ShardPart] = []
    for folder in find_parts(out_dir):
        place = parse_shard_part_name(folder.name)
        journal = next((folder / n for n in (JOURNAL_NAME, PREVIOUS_JOURNAL_NAME) if (folder / n).is_file()), None)
        results = next((p for s in RESULTS_SUFFIXES if (p := folder / f"{PART_RESULTS_STEM}{s}").is_file()), None)
        if place is None or (journal is None and results is None):
            continue
        summary = _read_summary(folder / SUMMARY_NAME)
        if _live_holder(folder / LOCK_NAME) is not None and journal is not None:
            state, results = "running", None
        elif results is not None and summary is not None and (journal is None or not _newer(journal, results)):
            state = "finished"
        else:
            state, results = "interrupted", None
        parts.append(ShardPart(folder, place[0], place[1], state, results, journal, summary, _part_manifest(folder)))
    if not parts:
        return parts
    newest = max(parts, key=lambda part: _mtime(_part_file(part)))
    return [part for part in parts if part.count == newest.count]


def _part_manifest(folder: Path) -> Path | None:
    try:
        record = read_part_record(folder)
    except UsageError:
        return None
    return Path(record.manifest) if record is not None and record.manifest else None


def _part_file(part: ShardPart) -> Path:
    return part.results or part.journal or part.folder


def _merged(summary: dict[str, Any] | None, results: Path | None, parts: list[ShardPart]) -> bool:
    """summary.json is a merge's (it has ``shards``) and no part was written after the merged results."""
    if summary is None or results is None or not isinstance(summary.get("shards"), dict):
        return False
    return not any(part.state == "running" or _newer(_part_file(part), results) for part in parts)


def _summary_counts(summary: dict[str, Any] | None) -> dict[str, int]:
    summary = summary or {}
    counts = {key: summary.get(key) for key in ("rows", "ok", "failed", "pending")}
    return {key: value for key, value in counts.items() if isinstance(value, int)}


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


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _newer(journal: Path, results: Path) -> bool:
    """The journal was written after the results: a later run that did not get to write its own."""
    try:
        return journal.stat().st_mtime > results.stat().st_mtime + 1.0 and journal.stat().st_size > 0
    except OSError:
        return False


def _live_holder(lock: Path) -> dict[str, Any] | None:
    """The lock's record when its process is alive on this host; read, never locked.

    A run writes its record when it takes the lock and empties it when it lets go;
    a record left by a killed run names a pid that is gone. Shard runs share the
    folder's lock without a record and each write one in their part's lock.
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
