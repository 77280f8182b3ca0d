"""Every result of a job goes through here: made, failed, bad, pending or kept from an earlier run.

One place writes the journal line, keeps the counts of :class:`JobSummary`,
logs the row and tells the progress display, so a row's bookkeeping is the same
whatever shape the job has (plain rows, split texts, chapters, voice fan-out).
It also knows which items were handed to the workers and not recorded yet:
those are recorded ``pending`` when the job ends.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from batchtts.job.items import ItemKey, WorkItem
from batchtts.job.progress import ProgressReporter
from batchtts.job.stopping import StopControl
from batchtts.ledger import LOUDNESS_KEY, VARIANT_KEY, FailedRow, JobSummary, Journal, RowResult, utc_now_iso
from batchtts.outcomes import RowStatus

log = logging.getLogger("batchtts")

#: Failures kept for the end-of-job summary.
FAILURE_EXAMPLES = 5


class Recorder:
    """Writes results to the journal and counts them; tracks the items in flight."""

    def __init__(self, summary: JobSummary, progress: ProgressReporter, stops: StopControl) -> None:
        self.summary = summary
        self.progress = progress
        self._stops = stops
        self._journal: Journal | None = None
        #: Items handed to the workers and not recorded yet (as many as are in flight).
        self._open: dict[ItemKey, WorkItem] = {}
        #: The open items whose first request was sent.
        self._started: set[ItemKey] = set()

    def attach(self, journal: Journal) -> None:
        """Record into ``journal`` (opened once the folder is locked)."""
        self._journal = journal

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            raise RuntimeError("the recorder has no journal yet")
        return self._journal

    # --- items in flight -------------------------------------------------------

    def opened(self, item: WorkItem) -> None:
        """``item`` was handed to the workers: if it is never recorded, it ends up pending."""
        self._open[item.key] = item

    def started(self, item: WorkItem) -> None:
        """``item``'s first request is about to go out."""
        self._started.add(item.key)

    # --- results -----------------------------------------------------------------

    def record(self, result: RowResult) -> None:
        """A result this run made (ok or failed), bad rows included."""
        if result.reused is None:
            result.reused = False  # made (or refused) by this run
        self._close((result.row, result.extra.get(VARIANT_KEY)))
        self.journal.append(result)
        voice = result.voice_id if result.extra.get(VARIANT_KEY) is not None else None
        self._count(result.id, result.status, result.error, result.audio_seconds, voice)
        self._count_qa(result.qa)
        if result.status == RowStatus.OK:
            if LOUDNESS_KEY in result.extra:
                self.summary.note_loudness(result.path, result.extra[LOUDNESS_KEY], reused=bool(result.reused))
            if not result.reused:
                self.summary.audio_seconds += result.audio_seconds or 0.0
                self.summary.ttfb_ms_sum += result.ttfb_ms or 0.0
                self.summary.total_ms_sum += result.total_ms or 0.0
            log.debug("row %s ok", result.id, extra={"event": "row_ok", "fields": {"row_id": result.id}})
        else:
            fields = {"row_id": result.id, "error": result.error, "http_status": result.http_status}
            log.info("row %s failed: %s", result.id, result.error, extra={"event": "row_failed", "fields": fields})
        self.progress.row_finished(result.status)

    def record_bad(self, item: WorkItem, reason: str, *, voice: str | None, extra: dict[str, Any]) -> None:
        """An item that cannot be made: failed, with no request."""
        now = utc_now_iso()
        row = item.row
        self.record(
            RowResult(
                id=row.id,
                row=row.number,
                status=RowStatus.FAILED,
                attempts=0,
                error=reason,
                voice_id=voice,
                started_at=now,
                finished_at=now,
                carried=row.carried,
                extra=extra,
            )
        )

    def record_reused(self, item: WorkItem, earlier: Mapping[str, Any]) -> None:
        """An earlier run's result that stands (resume): kept, no request."""
        row = item.row
        entry = {**earlier, "row": row.number, "carried": row.carried, "reused": True}
        entry.pop(VARIANT_KEY, None)
        if item.variant is not None:
            entry[VARIANT_KEY] = item.variant  # today's place in --voices
        self.journal.append_entry(entry, durable=False)  # the previous journal holds it until this run ends
        self.summary.skipped += 1
        voice = entry.get("voice_id") if item.variant is not None else None
        self._count(entry["id"], entry.get("status"), entry.get("error"), entry.get("audio_seconds"), voice)
        self._count_qa(entry.get("qa"))
        if entry.get("status") == RowStatus.OK:
            self.summary.reused_ok += 1
            if LOUDNESS_KEY in entry:
                self.summary.note_loudness(entry.get("path"), entry[LOUDNESS_KEY], reused=True)
        self.progress.row_finished("skipped")

    def record_pending(self, item: WorkItem, *, attempts: int = 0) -> None:
        """An item this run did not start, or did not finish: the next run does it."""
        request = item.request
        cancelled = item.key in self._started
        self._close(item.key)
        stop = self._stops.stop
        why = (stop.message or stop.reason.value) if stop is not None else "the job stopped"
        result = RowResult(
            id=item.row.id,
            row=item.row.number,
            status=RowStatus.PENDING,
            attempts=attempts,
            error=f"{'cancelled' if cancelled else 'not started'}: {why}",
            sample_rate=request.sample_rate,
            output_format=request.output_format,
            voice_id=request.voice_id,
            reused=False,
            carried=item.row.carried,
            extra={VARIANT_KEY: item.variant} if item.variant is not None else {},
        )
        # Only the known values (a pending row has few), and not durable: the next run starts it anyway.
        entry = {name: value for name, value in result.to_entry().items() if value is not None}
        self.journal.append_entry(entry, durable=False)
        self.summary.pending += 1

    def record_unfinished(self) -> None:
        """Items handed to the workers that never finished (stopped, cancelled): pending."""
        for key in sorted(self._open, key=lambda k: (k[0], -1 if k[1] is None else k[1])):
            self.record_pending(self._open[key], attempts=1 if key in self._started else 0)

    def count_attempts(self, attempts: int, characters: int, *, qa_takes: int = 0) -> None:
        """One file's requests, sent by :class:`~batchtts.job.attempts.Attempts`; takes made again
        because the audio checks flagged one are counted apart from retries."""
        self.summary.attempts += attempts
        self.summary.retries += max(0, attempts - 1 - qa_takes)
        self.summary.qa_retakes += qa_takes
        self.summary.characters_sent += characters * attempts

    def _close(self, key: ItemKey) -> None:
        self._open.pop(key, None)
        self._started.discard(key)

    def group_written(self) -> None:
        """A ``--group-by`` group's file (a chapter) was written."""
        self.summary.group_files = (self.summary.group_files or 0) + 1

    def _count_qa(self, flags: Any) -> None:
        """The audio checks of one row in the results: checked, flagged, each flag."""
        if not isinstance(flags, list):
            return  # not checked
        summary = self.summary
        summary.qa_checked += 1
        if flags:
            summary.qa_flagged += 1
        for flag in flags:
            summary.qa_flags[flag] = summary.qa_flags.get(flag, 0) + 1

    def _count(self, row_id: str, status: Any, error: Any, audio_seconds: Any, voice: str | None = None) -> None:
        summary = self.summary
        if status == RowStatus.OK:
            summary.ok += 1
            if isinstance(audio_seconds, (int, float)):
                summary.audio_seconds_total += audio_seconds
        else:
            summary.failed += 1
            if len(summary.failure_examples) < FAILURE_EXAMPLES:
                summary.failure_examples.append(FailedRow(row_id, error or "unknown", voice))
