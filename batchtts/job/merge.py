"""``batchtts merge DIR``: the shards' parts put back together, in manifest order.

Each shard (``--shard K/N``) leaves its journal and a ``part.json`` under
``DIR/.batchtts/shards/K-of-N/`` (:mod:`batchtts.job.shards`). The merge reads
the manifest the parts name (checked against the digest they recorded) and walks
it row by row, beside every part's latest entries in row order (a k-way merge,
so memory does not grow with the manifest): a row one part has is taken as it
is; a row no part has is ``pending`` (its shard has not run, or not that far);
a row two parts have is an error (exit 2), since they cannot both be true.
What it writes is what an unsharded run writes: the results manifest, the
dataset index (``--metadata``) and ``summary.json``, each whole or not at all.

The merge holds the folder's lock alone, so it never runs beside a shard (nor
a shard beside it), and it changes no part: a shard may be run again and the
merge too.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from batchtts.errors import ManifestError, UsageError
from batchtts.job.lock import job_lock
from batchtts.job.shards import (
    PartRecord,
    find_parts,
    main_state_dir,
    manifest_digest,
    read_part_record,
    shard_key,
    shard_of,
)
from batchtts.ledger import SUMMARY_NAME, JobSummary, summary_document, utc_now_iso, write_summary_json
from batchtts.ledger.entry import VARIANT_KEY
from batchtts.ledger.journal import Journal, final_entries, final_entries_at
from batchtts.ledger.resume import journal_files
from batchtts.ledger.summary import FailedRow
from batchtts.ledger.writers import results_format, write_journal_results
from batchtts.manifest.dialect import CsvDialect
from batchtts.manifest.readers import Manifest, Row, open_manifest
from batchtts.outcomes import ExitStatus, RowStatus, Stop, StopReason
from batchtts.storage import atomic_file, check_writable_folder

log = logging.getLogger("batchtts")

#: The merged entries, written in order while the parts are walked, read back by the writers.
MERGE_JOURNAL_NAME = "merge.jsonl"
#: Failures the end-of-merge summary lists.
FAILURE_EXAMPLES = 5


class DuplicateRow(UsageError):
    """A row is in two shard parts (exit 2): they were made under different splits or manifests."""


@dataclass(slots=True)
class MergeOptions:
    """What ``batchtts merge`` may override; None: what the parts recorded."""

    out_dir: Path
    results_path: Path | None = None
    metadata: str | None = None
    manifest: Path | None = None


@dataclass(slots=True)
class Part:
    """One shard part: its folder and record."""

    folder: Path
    record: PartRecord

    @property
    def name(self) -> str:
        return self.record.name


@dataclass(slots=True)
class Merged:
    """What a merge did: its summary, and the summary.json document written from it."""

    summary: JobSummary
    document: dict[str, Any]


def merge(options: MergeOptions) -> Merged:
    """Merge ``options.out_dir``'s shard parts; return the merged summary (also in summary.json).

    Raises :class:`UsageError` (nothing written) when there is nothing to merge,
    the parts disagree (split, manifest), the manifest cannot be found or has
    changed, a row is in two parts, or a shard is still running.
    """
    from batchtts.storage.objects import object_url

    if object_url(options.out_dir) is not None:  # s3://bucket/prefix/: shards that wrote one prefix
        from batchtts.job.objectmerge import merge_in_store

        return merge_in_store(options)
    out_dir = Path(options.out_dir)
    _read_parts(out_dir, warn=False)  # nothing to merge: say so before the lock makes any folder
    state_dir = main_state_dir(out_dir)
    with job_lock(state_dir, out_dir=out_dir):
        parts = _read_parts(out_dir)  # again: no shard can change them now
        first = parts[0].record
        manifest = _open_manifest(first, options.manifest)
        results = options.results_path or _recorded_results(first, out_dir)
        results_format(results)
        metadata = options.metadata if options.metadata is not None else first.metadata
        check_writable_folder(results.parent, f"--results {results}")
        summary = JobSummary(started_at=utc_now_iso())
        merged_path = state_dir / MERGE_JOURNAL_NAME
        merged_path.unlink(missing_ok=True)
        try:
            journal = Journal(merged_path, fsync_every=1 << 30, fsync_seconds=1e9)
            with contextlib.ExitStack() as stack, journal:
                streams = [stack.enter_context(_part_entries(part, state_dir)) for part in parts]
                _walk(manifest, first, parts, streams, journal, summary)
            summary.results_path = results
            write_journal_results(
                journal, results, carried_columns=first.carried_columns, extra_columns=first.extra_columns
            )
            if metadata is not None:
                _write_metadata(metadata, out_dir, journal, manifest, first.defaults)
        finally:
            merged_path.unlink(missing_ok=True)
        summary.complete = True
        summary.finished_at = utc_now_iso()
        _add_run_figures(summary, parts)
        document = summary_document(summary, manifest=manifest.path, out_dir=out_dir)
        document["shards"] = {"count": first.count, "parts": [part.name for part in parts]}
        if summary.pending and summary.stop is None:
            document["stop_message"] = f"{summary.pending} row(s) pending: a shard has not run or did not finish"
        write_summary_json(out_dir / SUMMARY_NAME, document)
    return Merged(summary, document)


# --- the parts -----------------------------------------------------------------------


def _read_parts(out_dir: Path, *, warn: bool = True) -> list[Part]:
    folders = find_parts(out_dir)
    parts: list[Part] = []
    for folder in folders:
        record = read_part_record(folder)
        if record is None:
            if journal_files(folder):
                raise UsageError(f"{folder}: a shard part without part.json; run that shard again")
            continue  # killed before it began: nothing in it
        parts.append(Part(folder, record))
    if not parts:
        raise UsageError(
            f"{out_dir}: no shard parts to merge (none under .batchtts/shards/); "
            f"run `batchtts run MANIFEST --out {out_dir} --shard K/N` for each K first"
        )
    splits = sorted({part.record.count for part in parts})
    if len(splits) > 1:
        names = ", ".join(part.name for part in parts)
        raise UsageError(
            f"{out_dir}: shard parts of different splits ({names}); "
            f"remove the parts of the split no longer used (under {out_dir}/.batchtts/shards/)"
        )
    digests = {part.record.manifest_digest for part in parts}
    if len(digests) > 1:
        names = ", ".join(f"{part.name} ({part.record.manifest})" for part in parts)
        raise UsageError(
            f"{out_dir}: the shard parts were made from different manifests ({names}); "
            "run the shards whose manifest is not the current one again"
        )
    missing = sorted(set(range(splits[0])) - {part.record.index for part in parts})
    if missing and warn:
        log.warning("no part of shard(s) %s of %d: their rows are pending", ", ".join(map(str, missing)), splits[0])
    return parts


def _open_manifest(record: PartRecord, given: Path | None) -> Manifest:
    path = Path(given) if given is not None else Path(record.manifest)
    hint = "" if given is not None else "; give its path here with --manifest"
    try:
        manifest = open_manifest(
            path,
            text_column=record.text_column,
            id_column=record.id_column,
            dialect=CsvDialect(**record.dialect),
        )
        digest = manifest_digest(manifest.files)
    except (ManifestError, OSError) as exc:
        raise UsageError(f"cannot read the manifest the shards ran over: {exc}{hint}") from None
    if digest != record.manifest_digest:
        raise UsageError(
            f"{path} is not the manifest the shards ran over (its content differs){hint}: "
            "run the shards again over this manifest, or give the one they used"
        )
    return manifest


def _recorded_results(record: PartRecord, out_dir: Path) -> Path:
    path = Path(record.results)
    return path if path.is_absolute() else out_dir / path


@contextlib.contextmanager
def _part_entries(part: Part, state_dir: Path) -> Iterator[Iterator[dict[str, Any]]]:
    """The part's latest entry per row (and voice), in row order, over its journals (earlier runs first)."""
    files = journal_files(part.folder)
    if len(files) <= 1:
        yield iter(final_entries_at(files[0])) if files else iter(())
        return
    joined = state_dir / f"merge-{part.name}.jsonl"
    try:
        with atomic_file(joined, "wb") as out:  # the previous journal, then the latest (which wins)
            for path in files:
                with open(path, "rb") as source:
                    shutil.copyfileobj(source, out, 1 << 20)
                    if out.tell() and source.seek(0, os.SEEK_END) and _last_byte(source) != b"\n":
                        out.write(b"\n")  # a torn last line stays a line of its own
        yield iter(final_entries_at(joined))
    finally:
        joined.unlink(missing_ok=True)


def _last_byte(handle: BinaryIO) -> bytes:
    handle.seek(-1, os.SEEK_END)
    return handle.read(1)


# --- the walk --------------------------------------------------------------------------


def _walk(
    manifest: Manifest,
    record: PartRecord,
    parts: list[Part],
    streams: list[Iterator[dict[str, Any]]],
    journal: Journal,
    summary: JobSummary,
) -> None:
    """Every manifest row in order: its parts' entries, or pending ones; duplicates and strays raise."""

    def keyed(index: int, entries: Iterator[dict[str, Any]]) -> Iterator[tuple[int, int, int, dict[str, Any]]]:
        for entry in entries:
            row, variant = entry.get("row"), entry.get(VARIANT_KEY)
            yield (row if type(row) is int else -1, variant if type(variant) is int else -1, index, entry)

    merged = heapq.merge(*(keyed(i, s) for i, s in enumerate(streams)))
    waiting = next(merged, None)
    text_column = record.text_column if record.text_column in record.carried_columns else None
    for row in manifest:
        found: dict[int, tuple[int, dict[str, Any]]] = {}
        while waiting is not None and waiting[0] <= row.number:
            number, variant, index, entry = waiting
            if number < row.number or entry.get("id") != row.id:
                _stray(parts[index], entry, manifest)
            if variant in found:
                other = parts[found[variant][0]].name
                raise DuplicateRow(
                    f"row {row.number} (id {row.id!r}) is in two shard parts, {other} and {parts[index].name}; "
                    "remove the part that should not have it and run its shard again"
                )
            found[variant] = (index, entry)
            waiting = next(merged, None)
        if found:
            for variant in sorted(found):
                _take(found[variant][1], journal, summary)
        else:
            for entry in _pending(row, record, text_column):
                _take(entry, journal, summary)
    if waiting is not None:
        _stray(parts[waiting[2]], waiting[3], manifest)


def _stray(part: Part, entry: Mapping[str, Any], manifest: Manifest) -> None:
    raise UsageError(
        f"shard part {part.name} has row {entry.get('row')} (id {entry.get('id')!r}), which {manifest.path} "
        "does not have there; run that shard again over this manifest"
    )


def _pending(row: Row, record: PartRecord, text_column: str | None) -> list[dict[str, Any]]:
    """A row no part has: pending, as a run records a row it did not start (one per ``--voices`` voice)."""
    carried = dict(row.carried)
    if text_column is not None:
        carried[text_column] = row.text
    group = None
    if record.group_by is not None:
        from batchtts.job.shaping.cells import cell

        group = cell(row, record.group_by, id_column=record.id_column, text_column=record.text_column)
    shard = shard_of(shard_key(row.id, group), record.count)
    base = {
        "id": row.id,
        "row": row.number,
        "status": RowStatus.PENDING.value,
        "attempts": 0,
        "error": f"not run: shard {shard}/{record.count} has no result for it",
        "reused": False,
        "carried": carried,
    }
    if not record.voices:
        return [base]
    return [{**base, "voice_id": voice, VARIANT_KEY: index} for index, voice in enumerate(record.voices)]


def _take(entry: dict[str, Any], journal: Journal, summary: JobSummary) -> None:
    journal.append_entry(entry, durable=False)
    summary.rows += 1
    status = entry.get("status")
    if entry.get("reused"):
        summary.skipped += 1
    if status == RowStatus.OK:
        summary.ok += 1
        summary.reused_ok += bool(entry.get("reused"))
        seconds = entry.get("audio_seconds")
        summary.audio_seconds_total += seconds if isinstance(seconds, int | float) else 0.0
    elif status == RowStatus.FAILED:
        summary.failed += 1
        if len(summary.failure_examples) < FAILURE_EXAMPLES:
            voice = entry.get("voice_id") if entry.get(VARIANT_KEY) is not None else None
            summary.failure_examples.append(FailedRow(str(entry.get("id")), str(entry.get("error")), voice))
    else:
        summary.pending += 1


# --- the end -------------------------------------------------------------------------


def _write_metadata(kind: str, out_dir: Path, journal: Journal, manifest: Manifest, defaults: dict[str, Any]) -> None:
    from batchtts.job.shaping.metadata import write_metadata

    path, count = write_metadata(kind, out_dir, final_entries(journal), manifest, defaults)
    log.info("%s: %d file(s) listed", path, count)


def _add_run_figures(summary: JobSummary, parts: list[Part]) -> None:
    """What the shards' last runs did (their summary.json), and the exit status the merged results give.

    The wall time is the longest part's (shards run side by side). Pending rows
    give the first stopped part's exit status (its stop reason too), else 4: rows remain to do.
    Otherwise 1 when rows failed, else 0.
    """
    import json

    stop: Stop | None = None
    for part in parts:
        try:
            document = json.loads((part.folder / SUMMARY_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # killed before its end: its journal still counts, its figures are lost
        for name in ("attempts", "retries", "rate_limited", "characters_sent"):
            setattr(summary, name, getattr(summary, name) + int(document.get(name) or 0))
        summary.audio_seconds += float(document.get("audio_seconds") or 0.0)
        made = int(document.get("synthesized") or 0)
        summary.ttfb_ms_sum += float(document.get("ttfb_ms_mean") or 0.0) * made
        summary.total_ms_sum += float(document.get("total_ms_mean") or 0.0) * made
        summary.wall_seconds = max(summary.wall_seconds, float(document.get("wall_seconds") or 0.0))
        reason = document.get("stop_reason")
        if stop is None and reason in StopReason.__members__.values():
            code = document.get("exit_status")
            status = ExitStatus(code) if code in ExitStatus.__members__.values() else None
            stop = Stop.because(StopReason(reason), f"shard {part.name}: {document.get('stop_message')}", status)
    if summary.pending:
        summary.stop = stop
        summary.exit_code = stop.exit_status if stop is not None else ExitStatus.STOPPED_BY_LIMIT
        log.warning("%d row(s) pending: run their shards again (the same command), then merge again", summary.pending)
    else:
        summary.exit_code = ExitStatus.ROWS_FAILED if summary.failed else ExitStatus.OK
