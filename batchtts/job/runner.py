"""The job: manifest rows in, one audio file and one result per row out.

A producer streams the manifest, plans each row and turns it into work items
(:meth:`Assembly.items`): bad ones are recorded failed at once, with no
request; earlier results that stand are kept (:mod:`batchtts.job.reuse`); the
rest go to a fixed pool of workers (one per stream the job may run:
``--concurrency N`` or ``--max-concurrency``) over a small bounded channel, so
memory does not grow with the manifest. A worker takes an item only in its
turn (:meth:`Throttle.turn`: no more items under way than the stream cap
allows, which ``--concurrency auto`` finds as it goes), asks the start gate
(deadline, budget, limit), then has the item made (:class:`Assembly`, through
:class:`~batchtts.job.attempts.Attempts`). Every result goes through the
:class:`~batchtts.job.recorder.Recorder` into the journal at once; the results
manifest and summary.json are written from the journal when the job ends,
however it ends.

When the job stops early (a signal, a limit, a rejected key), the producer
still goes over the rest of the manifest, sending nothing: it keeps earlier
results that stand and marks every other row ``pending``, so the results
describe the whole manifest. The folder is locked for the whole run
(:mod:`batchtts.job.lock`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from batchtts.api.client import WavesClient
from batchtts.api.request import RECOMMENDED_MAX_CHARS
from batchtts.audio import GroupCommit, remove_stale_temp_files
from batchtts.errors import ManifestError
from batchtts.job.attempts import Attempts
from batchtts.job.items import WorkItem
from batchtts.job.lock import job_lock
from batchtts.job.objectout import ObjectOutput
from batchtts.job.progress import InFlight, ProgressReporter
from batchtts.job.qa import QaJudge
from batchtts.job.recorder import Recorder
from batchtts.job.reuse import Reuse
from batchtts.job.shaping.assembly import Assembly
from batchtts.job.shards import (
    PartRecord,
    manifest_digest,
    manifest_location,
    resume_sources,
    shard_key,
    write_part_record,
)
from batchtts.job.spec import JobSpec
from batchtts.job.stopping import StopControl
from batchtts.ledger import (
    EarlierRuns,
    JobSummary,
    Journal,
    final_entries,
    summary_document,
    utc_now_iso,
    write_journal_results,
    write_summary_json,
)
from batchtts.manifest.planner import RowPlanner
from batchtts.manifest.readers import Manifest, Row
from batchtts.outcomes import ExitStatus, Stop, StopReason
from batchtts.schedule.startgate import StartGate
from batchtts.schedule.throttle import Throttle
from batchtts.storage import remove_stale_results_temp

log = logging.getLogger("batchtts")
#: The level of what a run says by default (the command line names it NOTICE).
NOTICE = 25


class Runner:
    """Runs one job over one opened manifest; :meth:`run` returns its summary."""

    def __init__(
        self,
        spec: JobSpec,
        manifest: Manifest,
        client: WavesClient,
        progress: ProgressReporter,
        *,
        redact: Callable[[str], str] = lambda text: text,
        voices: frozenset[str] | None = None,
        throttle: Throttle | None = None,
        output: ObjectOutput | None = None,
    ) -> None:
        self.spec = spec
        #: ``--out s3://...``: the store the scratch folder (``spec.out_dir``) is moved to.
        self._output = output
        self.manifest = manifest
        self.progress = progress
        self.summary = JobSummary(group_files=0 if spec.shape.group_by else None)
        self._redact = redact
        self._stops = StopControl(grace_seconds=spec.grace_seconds)
        # Given: limits shared with other jobs (batchtts.schedule.shared); else this job's own.
        self._throttle = throttle or Throttle(
            spec.concurrency,
            spec.rate,
            max_concurrency=spec.max_concurrency,
            adaptive=spec.adaptive,
            retry_after_scale=spec.retry.time_scale,
        )
        self._gate = StartGate(deadline=spec.deadline, max_characters=spec.max_characters, limit=spec.limit)
        #: Finished files are made durable and renamed in groups, out of the stream slots.
        self._commits = GroupCommit(durable=output is None)
        self._recorder = Recorder(self.summary, progress, self._stops)
        self._attempts = attempts = Attempts(
            client=client,
            throttle=self._throttle,
            retry=spec.retry,
            commits=self._commits,
            recorder=self._recorder,
            stops=self._stops,
            progress=progress,
            redact=redact,
            qa=QaJudge(spec.qa) if spec.qa.enabled else None,
        )
        self._assembly = Assembly(
            spec.shape,
            manifest,
            out_dir=spec.out_dir,
            file_format=spec.file_format,
            concurrency=spec.streams,
            defaults=spec.defaults,
            attempts=attempts,
            recorder=self._recorder,
            stops=self._stops,
            redact=redact,
            voices=voices,
        )
        self._earlier = EarlierRuns(spec.state_dir, spec.out_dir.resolve(), force=spec.force,
                                    retry_failed=spec.retry_failed,
                                    stands=output.stands if output is not None else None)  # fmt: skip
        self._reuse = Reuse(self._earlier, self._assembly, self._recorder, force=spec.force,
                            redo_flagged=spec.qa.mode == "fail")  # fmt: skip
        self._manifest_error: ManifestError | None = None
        #: Whether the long-text advice was given (once a job, see :meth:`_advise_on_length`).
        self._advised_length = spec.shape.max_chars is not None
        progress.watch(self._in_flight, row_cap=spec.limit)

    @property
    def _carried_columns(self) -> list[str]:
        """The manifest's carried columns, and its text column with ``--results-text``."""
        text = [self.manifest.text_column] if self.spec.results_text else []
        return [*self.manifest.carried_columns, *text]

    def _in_flight(self) -> InFlight:
        """The job at this moment, for displays that print on a clock (read from their thread)."""
        state = self._throttle.state
        audio = self.summary.audio_seconds + self._attempts.audio_seconds_in_flight()
        return InFlight(state.in_flight, state.concurrency, state.rate_per_second, audio, state.auto)

    async def run(self) -> JobSummary:
        started = time.monotonic()
        spec = self.spec
        self.summary.started_at = utc_now_iso()
        work_scope = self._stops.open_work_scope()
        with self._folder_lock():
            # Shards share DIR: each cleans only its own folder (an unsharded run cleans the rest).
            cleaned = spec.out_dir if spec.shard is None else spec.state_dir
            removed = remove_stale_temp_files(cleaned) + remove_stale_results_temp(spec.results, spec.out_dir)
            if removed:
                log.warning("removed %d temporary file(s) left by an earlier run", removed)
            self._earlier.also_read, self._earlier.absorb = resume_sources(spec.out_dir, spec.shard)
            if spec.shard is not None:
                self._write_part_record()
            if self._output is not None:
                await anyio.to_thread.run_sync(self._output.start, spec.state_dir)
            journal = self._earlier.open()
            if self._output is not None:
                journal.close()
                journal = self._output.journal(journal.path)
            self._recorder.attach(journal)
            try:
                async with anyio.create_task_group() as outer:
                    # The signal watcher outlives the rows: a signal while the results are written
                    # waits for them instead of killing the process half-way.
                    outer.start_soon(self._stops.watch_signals, outer)
                    failure: BaseException | None = None
                    try:
                        await self._run_rows(work_scope)
                    except BaseException as exc:
                        failure = _single_error(exc)
                        raise
                    finally:
                        self._write_outputs(started, failure)
                        outer.cancel_scope.cancel()
            except BaseException as exc:
                single = _single_error(exc)
                if single is exc:
                    raise
                raise single from None  # a ManifestError from the producer, not a group of one
        return self.summary

    @contextlib.contextmanager
    def _folder_lock(self) -> Iterator[None]:
        """The folder's lock: alone, or shared with the other shards plus this shard's own."""
        spec = self.spec
        with contextlib.ExitStack() as locks:
            shared = spec.shard is not None
            locks.enter_context(job_lock(spec.main_state_dir, out_dir=spec.out_dir, shared=shared))
            if shared:
                locks.enter_context(job_lock(spec.state_dir, out_dir=spec.state_dir))
            yield

    def _write_part_record(self) -> None:
        """part.json: what ``batchtts merge`` needs to put this shard's rows back in manifest order."""
        spec, manifest = self.spec, self.manifest
        assert spec.shard is not None
        record = PartRecord(
            index=spec.shard.index,
            count=spec.shard.count,
            manifest=manifest_location(spec.manifest),
            manifest_digest=manifest_digest(manifest.files),
            text_column=manifest.text_column,
            id_column=manifest.id_column,
            dialect=asdict(spec.dialect),
            carried_columns=self._carried_columns,
            extra_columns=list(spec.shape.extra_columns),
            voices=list(spec.shape.voices),
            defaults=dict(spec.defaults),
            metadata=spec.shape.metadata,
            results=_inside_or_absolute(spec.merged_results, spec.out_dir),
            group_by=spec.shape.group_by,
        )
        write_part_record(spec.state_dir, record)

    def _rows(self) -> Iterator[Row]:
        """The manifest's rows this run does: all, or its shard's (by id, or by group with --group-by)."""
        shard = self.spec.shard
        for row in self.manifest:
            if shard is None:
                yield row
                continue
            group = self._assembly.group_key(row, None)
            if shard.owns(shard_key(row.id, None if group is None else group[0])):
                yield row

    # --- rows -----------------------------------------------------------------------

    async def _run_rows(self, work_scope: anyio.CancelScope) -> None:
        """The producer outlives the workers: after a stop it still records the rest of the manifest."""
        # One worker per stream the job may ever run; the throttle's turns decide how many work at once.
        send, receive = anyio.create_memory_object_stream[WorkItem](self.spec.streams)
        clones = [receive.clone() for _ in range(self.spec.streams)]
        receive.close()
        async with anyio.create_task_group() as rows:
            rows.start_soon(self._produce, send)
            rows.start_soon(self._commits.run)  # outside the work scope: what finished still lands
            try:
                with work_scope:
                    async with anyio.create_task_group() as workers:
                        for clone in clones:
                            workers.start_soon(self._work, clone)
                    await self._assembly.finish()  # --group-by: every row is done, join the groups
            finally:
                self._commits.close()  # commits what is queued, then ends
                for clone in clones:  # a producer blocked in send() wakes up: the workers are gone
                    clone.close()
        if self._manifest_error is not None:
            raise self._manifest_error

    async def _produce(self, send: MemoryObjectSendStream[WorkItem]) -> None:
        """Damage deep in the manifest stops new starts; rows in flight still finish, then it is raised."""
        async with send:  # closed however this ends, so the workers always see the end of the rows
            try:
                await self._produce_items(send)
            except ManifestError as exc:
                self._manifest_error = exc
                self._stops.stop_starting(Stop.because(StopReason.MANIFEST, self._redact(str(exc))), override=True)

    async def _produce_items(self, send: MemoryObjectSendStream[WorkItem]) -> None:
        manifest, stops, recorder = self.manifest, self._stops, self._recorder
        track = manifest.id_column is not None
        self._reuse.find_standing_groups(self._rows(), RowPlanner(self.spec.defaults, track_duplicates=track))
        planner = RowPlanner(self.spec.defaults, track_duplicates=track)
        workers_gone = False
        text_name = manifest.text_column if self.spec.results_text else None
        for count, row in enumerate(self._rows(), start=1):
            if stops.abandoned:
                return
            if text_name is not None:
                row.carried[text_name] = row.text  # --results-text: every result of the row has it
            if count % 64 == 0:
                await anyio.sleep(0)  # let workers and the signal watcher run between long stretches
            for item in self._assembly.items(planner.plan(row)):
                self.summary.rows += 1
                if item.problem is not None:
                    self._assembly.record_bad(item, item.problem)
                elif self._reuse.reuse(item):
                    pass  # an earlier result stands (its voice may have left the catalog since: the file is there)
                elif (unknown := self._assembly.unknown_voice(item)) is not None:
                    self._assembly.record_bad(item, unknown)
                elif stops.stopping or workers_gone:
                    recorder.record_pending(item)
                else:
                    if not self._advised_length:
                        self._advise_on_length(item)
                    recorder.opened(item)
                    try:
                        await send.send(item)
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                        workers_gone = True  # stopped; the item stays open and is recorded pending at the end
        self.summary.complete = True

    def _advise_on_length(self, item: WorkItem) -> None:
        """Without --max-chars, say once that texts past the model card's recommended length can be split."""
        length = len(item.request.text)
        if length <= RECOMMENDED_MAX_CHARS:
            return
        self._advised_length = True
        log.warning(
            "row %r has %d characters; the model card recommends at most %d per request: "
            "--max-chars %d splits longer texts at sentence ends and joins the audio (said once)",
            item.row.id,
            length,
            RECOMMENDED_MAX_CHARS,
            RECOMMENDED_MAX_CHARS,
        )

    async def _work(self, receive: MemoryObjectReceiveStream[WorkItem]) -> None:
        """Take a row only in a turn (a stream could start now), so the gate and a stop see it when it starts."""
        async with receive:
            while True:
                async with self._throttle.turn():
                    try:
                        item = await receive.receive()
                    except anyio.EndOfStream:
                        return
                    if self._stops.stopping:
                        return
                    refusal = self._gate.admit(len(item.request.text))
                    if refusal is not None:
                        self._stops.stop_starting(
                            Stop.because(refusal.reason, refusal.message, next_step=refusal.next_step)
                        )
                        return
                    self._recorder.started(item)
                    await self._assembly.make(item)

    # --- the end ----------------------------------------------------------------------

    def _write_outputs(self, started: float, failure: BaseException | None) -> None:
        """Journal, results, summary.json: however the run ended (synchronous, so nothing cancels it)."""
        spec, summary, journal = self.spec, self.summary, self._recorder.journal
        self._commits.drain()  # streams that finished: their files land and their rows are journaled
        self._assembly.record_unfinished()
        self._recorder.record_unfinished()
        journal.close()
        self._count_lost_uploads(journal)
        summary.rate_limited = self._throttle.rate_limited
        self._say_concurrency()
        summary.results_path = spec.results
        write_journal_results(
            journal,
            spec.results,
            carried_columns=self._carried_columns,
            extra_columns=spec.shape.extra_columns,
        )
        self._write_metadata()
        self._earlier.finish(complete=summary.complete)
        self._note_failure(failure)
        summary.stop = self._stops.stop
        summary.exit_code = self._stops.exit_status(summary.failed)
        summary.wall_seconds = time.monotonic() - started
        summary.finished_at = utc_now_iso()
        document = summary_document(summary, manifest=spec.manifest, out_dir=spec.out_dir)
        if spec.shard is not None:
            document["shard"] = str(spec.shard)
        write_summary_json(spec.summary_path, document)
        if self._output is not None:
            summary_name = spec.summary_path.relative_to(spec.out_dir).as_posix()
            try:
                self._output.finish(journal.path, complete=summary.complete, summary_name=summary_name,
                                    shown_out=self._output.url)  # fmt: skip
            except Exception as exc:  # the store went away at the end: the objects uploaded so far stand
                log.error("could not upload the results and journal to %s: %s; run the job again to write them",
                          self._output.url, self._redact(str(exc)))  # fmt: skip
                if summary.exit_code == ExitStatus.OK:
                    summary.exit_code = ExitStatus.ROWS_FAILED

    def _count_lost_uploads(self, journal: Journal) -> None:
        """``--out s3://``: a row whose upload failed is failed (its journal says so already)."""
        for entry, reason in getattr(journal, "lost", ()):
            self.summary.ok -= 1
            self.summary.failed += 1
            if isinstance(entry.get("audio_seconds"), (int, float)):
                self.summary.audio_seconds_total -= entry["audio_seconds"]
            log.error("row %s failed: %s", entry.get("id"), self._redact(reason))

    def _say_concurrency(self) -> None:
        """--concurrency auto: one line on what the job found."""
        auto = self._throttle.auto
        if auto is None or self.summary.attempts == 0:
            return
        if auto.refused_at is None:
            found = f"no stream refused; up to {auto.highest} at once (--max-concurrency {auto.ceiling})"
        else:
            found = f"the account refused {auto.refused_at} streams at once"
        fields = {"concurrency": auto.cap, "highest": auto.highest, "refused_at": auto.refused_at}
        log.log(
            NOTICE,
            "concurrency auto: %d stream(s) at the end; %s",
            auto.cap,
            found,
            extra={"event": "concurrency", "fields": fields},
        )

    def _note_failure(self, failure: BaseException | None) -> None:
        """An exception that ended the run is its stop reason (KeyboardInterrupt & co: the interpreter decides)."""
        if isinstance(failure, ManifestError):
            self._stops.note(Stop.because(StopReason.MANIFEST, self._redact(str(failure))), override=True)
        elif isinstance(failure, Exception):
            message = self._redact(f"{type(failure).__name__}: {failure}")
            self._stops.note(Stop.because(StopReason.ERROR, message), override=True)

    def _write_metadata(self) -> None:
        """--metadata: the dataset index of the ok files, from the results just written."""
        kind = self.spec.shape.metadata
        if kind is None or self.spec.shard is not None:  # a shard's rows are indexed by the merge
            return
        from batchtts.job.shaping.metadata import write_metadata

        try:
            path, count = write_metadata(
                kind, self.spec.out_dir, final_entries(self._recorder.journal), self.manifest, self.spec.defaults
            )
        except ManifestError as exc:
            log.error("no %s metadata: the manifest cannot be read again: %s", kind, exc)
            return
        log.info("%s: %d file(s) listed", path, count)


def _inside_or_absolute(path: Path, out_dir: Path) -> str:
    """``path`` relative to ``out_dir`` when inside it (the folder may be mounted elsewhere later), else absolute."""
    resolved, base = path.resolve(), out_dir.resolve()
    return resolved.relative_to(base).as_posix() if resolved.is_relative_to(base) else str(resolved)


def _single_error(exc: BaseException) -> BaseException:
    """The one exception inside (nested) task-group exception groups, or ``exc`` itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
