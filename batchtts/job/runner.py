"""The job: manifest rows in, one audio file and one result per row out.

A producer streams the manifest, plans each row (bad rows are recorded failed
at once, with no request) and hands good rows to a fixed pool of workers over a
small bounded channel, so memory does not grow with the manifest. Each worker
synthesizes a row through the throttle (concurrency, pacing, adaptive backoff)
with retries, streaming the audio into a sink that renames into place only when
complete. Every finished row goes to the journal at once; the results manifest
is written from the journal when the job ends, however it ends.

Nightly reruns (see :mod:`batchtts.ledger.resume`): a row whose earlier result stands
is recorded from the previous journal without a request. When the job stops
early (a signal, a limit, a rejected key), the producer still goes over the
rest of the manifest, sending nothing: it records earlier results that stand
and marks every other row ``pending``, so the results describe the whole
manifest. The folder is locked for the whole run (:mod:`batchtts.job.lock`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from batchtts.job.shaping.assembly import Assembly, ShapeOptions, Synthesized
from batchtts.api.client import AttemptOutcome, WavesClient
from batchtts.audio.commit import GroupCommit
from batchtts.errors import AttemptError, AuthRejected, ManifestError, RateLimited, StorageError
from batchtts.api.ids import new_run_token, request_id_for
from batchtts.storage.names import TEMP_NAME, resolve_inside
from batchtts.schedule.throttle import Throttle
from batchtts.job.lock import job_lock
from batchtts.manifest.readers import Manifest, open_manifest
from batchtts.manifest.planner import PlannedRow, RowPlanner
from batchtts.cli.progress import ProgressReporter
from batchtts.ledger.summary_doc import SUMMARY_NAME, summary_document, write_summary_json
from batchtts.api.request import TtsRequest
from batchtts.ledger import (
    STATUS_OK,
    STATUS_PENDING,
    VARIANT_KEY,
    Journal,
    RowResult,
    final_entries,
    utc_now_iso,
    write_journal_results,
)
from batchtts.ledger.resume import EarlierRuns, GroupCheck, file_stamp, row_fingerprint
from batchtts.schedule.retry import RetryPolicy, retrying
from batchtts.audio import AudioSink, SinkResult, remove_stale_temp_files
from batchtts.schedule.startgate import StartGate
from batchtts.units import Deadline, Rate

log = logging.getLogger("batchtts")

EXIT_OK = 0
EXIT_ROWS_FAILED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_STOPPED_BY_LIMIT = 4
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


@dataclass(slots=True)
class JobSpec:
    """Everything a job needs to know, whatever it was read from."""

    manifest: Path
    out_dir: Path
    results_path: Path | None = None
    text_column: str = "text"
    id_column: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    file_format: str = "wav"
    concurrency: int = 4
    rate: Rate | None = None
    adaptive: bool = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    grace_seconds: float = 10.0
    #: Long texts, chapters, voice fan-out, folders, dataset index (batchtts.job.shaping.assembly).
    shape: ShapeOptions = field(default_factory=ShapeOptions)
    #: Resume: redo every row (``--force``); try earlier failures again (``--no-retry-failed`` keeps them).
    force: bool = False
    retry_failed: bool = True
    #: Limits for schedulers (:mod:`batchtts.schedule.startgate`); None = no limit.
    deadline: Deadline | None = None
    max_characters: int | None = None
    limit: int | None = None

    @property
    def results(self) -> Path:
        return self.results_path or self.out_dir / "results.parquet"

    @property
    def state_dir(self) -> Path:
        return self.out_dir / ".batchtts"


@dataclass(slots=True)
class JobSummary:
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
    stopped: str | None = None
    stop_message: str | None = None
    results_path: Path | None = None
    exit_code: int = EXIT_OK
    #: The first few failures, (id, reason), for the end-of-job summary.
    failure_examples: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class _Attempted:
    """What the last attempt of a row left behind, success or not."""

    request_id: str | None = None
    outcome: AttemptOutcome | None = None
    #: The stream's file, finished but not committed yet (batchtts.audio.commit).
    finished: AudioSink | None = None
    attempts: int = 0
    error: AttemptError | None = None

    def synthesized(self, sink: SinkResult | None, error: AttemptError | None) -> Synthesized:
        return Synthesized(self.request_id, self.attempts, self.outcome, sink, error)


class Runner:
    def __init__(
        self,
        spec: JobSpec,
        client: WavesClient,
        progress: ProgressReporter,
        *,
        redact: Callable[[str], str] = lambda text: text,
    ) -> None:
        self.spec = spec
        self.client = client
        self.progress = progress
        self.summary = JobSummary()
        self._redact = redact
        self._throttle = Throttle(
            spec.concurrency, spec.rate, adaptive=spec.adaptive, retry_after_scale=spec.retry.time_scale
        )
        self._run_token = new_run_token()
        self._made_dirs: set[Path] = set()
        self._out_dir = spec.out_dir.resolve()
        self._stopping = False  # no new row starts
        self._abandoned = False  # a second signal: stop going over the manifest too
        self._forced_exit: int | None = None
        self._journal: Journal | None = None
        self._assembly: Assembly | None = None
        if spec.shape.assembles:
            self._assembly = Assembly(
                spec.shape, self, out_dir=spec.out_dir, file_format=spec.file_format, concurrency=spec.concurrency
            )
        self._work_scope: anyio.CancelScope | None = None  # made in run(): it needs the event loop
        self._earlier = EarlierRuns(
            spec.state_dir, self._out_dir, force=spec.force, retry_failed=spec.retry_failed
        )
        self._gate = StartGate(
            deadline=spec.deadline, max_characters=spec.max_characters, limit=spec.limit
        )
        #: Items (a row, or a (row, voice) of a --voices fan-out) handed to the workers and not
        #: recorded yet, by (row number, variant): recorded pending at the end. As many as are in flight.
        self._open: dict[tuple[int, int | None], PlannedRow] = {}
        self._started: set[tuple[int, int | None]] = set()
        self._manifest_error: ManifestError | None = None
        #: Finished files are made durable and renamed in groups, out of the stream slots.
        self._commits = GroupCommit()

    def open_manifest(self, manifest: Manifest | None = None) -> Manifest:
        """Read the manifest's schema (unless given it opened); a ManifestError here means no request was sent."""
        if manifest is None:
            manifest = open_manifest(
                self.spec.manifest, text_column=self.spec.text_column, id_column=self.spec.id_column
            )
        if self._assembly is not None:
            self._assembly.check_columns(manifest)
        return manifest

    async def run(self, manifest: Manifest) -> JobSummary:
        started = time.monotonic()
        spec = self.spec
        self.summary.started_at = utc_now_iso()
        self._work_scope = anyio.CancelScope()  # may be cancelled (a signal) before the workers enter it
        with job_lock(spec.state_dir, out_dir=spec.out_dir):
            removed = remove_stale_temp_files(spec.out_dir) + _remove_stale_results_temp(spec)
            if removed:
                log.warning("removed %d temporary file(s) left by an earlier run", removed)
            self._journal = self._earlier.open()
            try:
                async with anyio.create_task_group() as outer:
                    # The signal watcher outlives the rows: a signal while the results are written
                    # waits for them instead of killing the process half-way.
                    outer.start_soon(self._watch_signals, outer)
                    failure: BaseException | None = None
                    try:
                        await self._run_rows(manifest)
                    except BaseException as exc:
                        failure = _single_error(exc)
                        raise
                    finally:
                        self._write_outputs(manifest, started, failure)
                        outer.cancel_scope.cancel()
            except BaseException as exc:
                single = _single_error(exc)
                if single is exc:
                    raise
                raise single from None  # a ManifestError from the producer, not a group of one
        return self.summary

    def _write_outputs(self, manifest: Manifest, started: float, failure: BaseException | None) -> None:
        """Journal, results, summary.json: however the run ended (synchronous, so nothing cancels it)."""
        assert self._journal is not None
        spec = self.spec
        self._commits.drain()  # streams that finished: their files land and their rows are journaled
        if self._assembly is not None:
            self._assembly.record_unfinished()
        self._record_unfinished()
        self._journal.close()
        self.summary.rate_limited = self._throttle.rate_limited
        self.summary.results_path = spec.results
        write_journal_results(
            self._journal,
            spec.results,
            carried_columns=manifest.carried_columns,
            extra_columns=spec.shape.extra_columns,
        )
        self._write_metadata(manifest)
        self._earlier.finish(complete=self.summary.complete)
        self.summary.exit_code = self._exit_code(failure)
        self.summary.wall_seconds = time.monotonic() - started
        self.summary.finished_at = utc_now_iso()
        write_summary_json(spec.out_dir / SUMMARY_NAME, summary_document(self.summary, spec))

    def _write_metadata(self, manifest: Manifest) -> None:
        """--metadata: the dataset index of the ok files, from the results just written."""
        if self.spec.shape.metadata is None or self._journal is None:
            return
        from batchtts.errors import ManifestError
        from batchtts.job.shaping.metadata import write_metadata

        try:
            path, count = write_metadata(
                self.spec.shape.metadata, self.spec.out_dir, final_entries(self._journal), manifest, self.spec.defaults
            )
        except ManifestError as exc:
            log.error("no %s metadata: the manifest cannot be read again: %s", self.spec.shape.metadata, exc)
            return
        log.info("%s: %d file(s) listed", path, count)

    async def _run_rows(self, manifest: Manifest) -> None:
        """The producer outlives the workers: after a stop it still records the rest of the manifest."""
        send, receive = anyio.create_memory_object_stream[PlannedRow](self.spec.concurrency)
        clones = [receive.clone() for _ in range(self.spec.concurrency)]
        receive.close()
        async with anyio.create_task_group() as rows:
            rows.start_soon(self._produce, manifest, send)
            rows.start_soon(self._commits.run)  # outside the work scope: what finished still lands
            try:
                with self._work_scope:
                    async with anyio.create_task_group() as workers:
                        for clone in clones:
                            workers.start_soon(self._work, clone)
                    if self._assembly is not None:
                        await self._assembly.finish()  # --group-by: every row is done, join the groups
            finally:
                self._commits.close()  # commits what is queued, then ends
                for clone in clones:  # a producer blocked in send() wakes up: the workers are gone
                    clone.close()
        if self._manifest_error is not None:
            raise self._manifest_error

    async def _produce(self, manifest: Manifest, send: MemoryObjectSendStream[PlannedRow]) -> None:
        """Damage deep in the manifest stops new starts; rows in flight still finish, then it is raised."""
        async with send:  # closed however this ends, so the workers always see the end of the rows
            try:
                await self._produce_rows(manifest, send)
            except ManifestError as exc:
                self._manifest_error = exc
                self._note_stop("manifest", self._redact(str(exc)), EXIT_USAGE, override=True)
                self._stopping = True

    async def _produce_rows(self, manifest: Manifest, send: MemoryObjectSendStream[PlannedRow]) -> None:
        planner = RowPlanner(self.spec.defaults, track_duplicates=manifest.id_column is not None)
        standing = self._standing_groups(manifest)
        workers_gone = False
        for count, row in enumerate(manifest, start=1):
            if self._abandoned:
                return
            if count % 64 == 0:
                await anyio.sleep(0)  # let workers and the signal watcher run between long stretches
            for variant, voice, item, problem in self._items(planner.plan(row)):
                self.summary.rows += 1
                if problem is not None:
                    self._record_bad(item, variant, voice, problem)
                elif self._reuse_earlier(item, variant, voice, standing):
                    pass
                elif self._stopping or workers_gone:
                    self._record_pending(item, variant)
                else:
                    self._open[(row.number, variant)] = item
                    try:
                        await send.send(item)
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                        workers_gone = True  # stopped; the item stays open and is recorded pending at the end
        self.summary.complete = True

    def _items(self, planned: PlannedRow) -> list[tuple[int | None, str | None, PlannedRow, str | None]]:
        """(variant, voice, item, why it is bad) for each result a row makes: one, or one per --voices voice."""
        if self._assembly is not None:
            return self._assembly.items(planned)
        return [(None, None, planned, planned.error)]

    def _variant_of(self, planned: PlannedRow) -> int | None:
        voices = self.spec.shape.voices
        return voices.index(planned.request.voice_id) if voices and planned.request is not None else None

    async def _work(self, receive: MemoryObjectReceiveStream[PlannedRow]) -> None:
        async with receive:
            async for planned in receive:
                if self._stopping:
                    return
                assert planned.request is not None
                refusal = self._gate.admit(len(planned.request.text))
                if refusal is not None:
                    self._note_stop(refusal.reason, refusal.message, EXIT_STOPPED_BY_LIMIT)
                    self._stopping = True
                    return
                self._started.add((planned.row.number, self._variant_of(planned)))
                if self._assembly is not None:
                    await self._assembly.synthesize(planned)
                else:
                    await self._synthesize_row(planned)

    async def _synthesize_row(self, planned: PlannedRow) -> None:
        """Stream the row, then queue its file for the group commit and go on: the row is recorded then."""
        row, request = planned.row, planned.request
        assert request is not None
        final = self._final_path(row.id, request)
        started_at = utc_now_iso()
        last = await self._stream_file(request, row.id, final, self.spec.file_format)
        # When its last attempt ended, not when its group of files landed: the row's own timing.
        finished_at = utc_now_iso()
        if last.finished is None:
            self._record(
                planned, request, last.synthesized(None, last.error), last.error, started_at, final, finished_at
            )
            return

        def committed(sink: SinkResult | None, error: OSError | None) -> None:
            failure = None if error is None else self._storage_failed(error)
            self._record(planned, request, last.synthesized(sink, failure), failure, started_at, final, finished_at)

        self._commits.submit(last.finished, committed)

    async def _attempt(
        self, request: TtsRequest, row_id: str, final: Path, last: _Attempted, file_format: str | None = None
    ) -> None:
        """One request in a stream slot; leaves the finished, uncommitted file in ``last.finished``."""
        last.attempts += 1
        last.request_id = request_id_for(row_id, self._run_token, last.attempts)
        last.outcome = None
        async with self._throttle.slot() as start:
            self.progress.limits_changed(self._throttle.state)
            sink = AudioSink(
                final,
                output_format=request.output_format,
                sample_rate=request.sample_rate,
                file_format=file_format or self.spec.file_format,
            )
            try:
                last.outcome = await self.client.synthesize(
                    request.with_request_id(last.request_id), sink, start=start if self._throttle.counts_sends else None
                )
                sink.finish()
            except RateLimited as exc:
                sink.abort()
                self._throttle.on_rate_limited(start.granted_at, exc.retry_after)
                raise
            except OSError as exc:  # the audio came, the disk refused it (full?): retrying would not help
                sink.abort()
                raise self._storage_failed(exc) from exc
            except BaseException:
                sink.abort()
                raise
            last.finished = sink
            self._throttle.on_success()

    def _fingerprint(self, request: TtsRequest) -> str:
        return row_fingerprint(request, self.spec.file_format)

    def _relative_path(self, row_id: str, request: TtsRequest) -> str:
        extension = AudioSink.extension_for(request.output_format, self.spec.file_format)
        return self.spec.shape.audio_path(row_id, extension).as_posix()

    def _final_path(self, row_id: str, request: TtsRequest) -> Path:
        extension = AudioSink.extension_for(request.output_format, self.spec.file_format)
        final = resolve_inside(self._out_dir, self.spec.shape.audio_path(row_id, extension))
        if final.parent not in self._made_dirs:
            final.parent.mkdir(parents=True, exist_ok=True)
            self._made_dirs.add(final.parent)
        return final

    # --- what the assembly (batchtts.job.shaping.assembly) uses ------------------------------

    async def synthesize_file(self, request: TtsRequest, key: str, path: Path, file_format: str) -> Synthesized:
        """One file (a part, a fan-out row) through the same throttle and retry loop as a row.

        ``key`` names the request ids (:func:`batchtts.job.shaping.fanout.request_key`).
        Never raises an AttemptError: the error comes back in the result. Waits
        for the file to be committed (a part is joined next), out of the stream slot.
        """
        last = await self._stream_file(request, key, path, file_format)
        if last.finished is None:
            return last.synthesized(None, last.error)
        try:
            sink = await self._commits.commit(last.finished)
        except OSError as exc:
            return last.synthesized(None, self._storage_failed(exc))
        return last.synthesized(sink, None)

    async def _stream_file(self, request: TtsRequest, key: str, path: Path, file_format: str) -> _Attempted:
        """The retry loop: ``finished`` holds the file of the attempt that succeeded, ``error`` the last error."""
        last = _Attempted()
        try:
            async for attempt in retrying(self.spec.retry):
                with attempt:
                    await self._attempt(request, key, path, last, file_format=file_format)
        except AuthRejected as exc:
            last.error = exc
            self._stop("auth", self._redact(exc.message), EXIT_AUTH)
        except AttemptError as exc:
            last.error = exc
        except BaseException:
            if last.finished is not None:  # cancelled on the way out of the loop: nobody would commit it
                last.finished.abort()
            raise
        self.summary.attempts += last.attempts
        self.summary.retries += max(0, last.attempts - 1)
        self.summary.characters_sent += len(request.text) * last.attempts
        return last

    def append_result(self, result: RowResult) -> None:
        self._append(result)

    def stopping(self) -> bool:
        return self._stopping

    def redact(self, text: str) -> str:
        return self._redact(text)

    def _record_bad_row(self, planned: PlannedRow) -> None:
        now = utc_now_iso()
        row = planned.row
        voice = planned.row.fields.get("voice_id") or self.spec.defaults.get("voice_id")
        self._append(
            RowResult(
                id=row.id,
                row=row.number,
                status="failed",
                attempts=0,
                error=planned.error,
                voice_id=voice if isinstance(voice, str) else None,
                started_at=now,
                finished_at=now,
                carried=row.carried,
            )
        )

    def _record(
        self,
        planned: PlannedRow,
        request: TtsRequest,
        last: Synthesized,
        error: AttemptError | None,
        started_at: str,
        final: Path,
        finished_at: str | None = None,
    ) -> None:
        row = planned.row
        ok = error is None and last.sink is not None
        outcome = last.outcome
        result = RowResult(
            id=row.id,
            row=row.number,
            status="ok" if ok else "failed",
            path=final.relative_to(self._out_dir).as_posix() if ok else None,
            request_id=last.request_id,
            server_request_id=outcome.server_request_id if outcome else (error.server_request_id if error else None),
            attempts=last.attempts,
            http_status=outcome.http_status if outcome else (error.http_status if error else None),
            error=None if ok else self._redact(error.message if error else "cancelled"),
            ttfb_ms=outcome.ttfb_ms if outcome else None,
            total_ms=outcome.total_ms if outcome else None,
            audio_seconds=last.sink.audio_seconds if ok and last.sink else None,
            audio_bytes=last.sink.audio_bytes if ok and last.sink else None,
            sample_rate=last.sink.sample_rate if ok and last.sink else request.sample_rate,
            output_format=request.output_format,
            voice_id=request.voice_id,
            started_at=started_at,
            finished_at=finished_at or utc_now_iso(),
            reused=False,
            carried=row.carried,
        )
        if ok and last.sink and last.sink.audio_seconds:
            self.summary.audio_seconds += last.sink.audio_seconds
        if outcome is not None:
            self.summary.ttfb_ms_sum += outcome.ttfb_ms or 0.0
            self.summary.total_ms_sum += outcome.total_ms
        result.extra["fingerprint"] = self._fingerprint(request)  # for reruns (batchtts.ledger.resume)
        if ok:
            result.extra.update(file_stamp(final) or {})
        self._append(result)

    def _record_bad(self, item: PlannedRow, variant: int | None, voice: str | None, problem: str) -> None:
        if self._assembly is not None:
            self._assembly.record_bad(item, variant, voice, problem)
        else:
            self._record_bad_row(item)

    def _standing_groups(self, manifest: Manifest) -> set[Any]:
        """--group-by reruns: the groups whose file stands whole (a first pass over the manifest)."""
        assembly = self._assembly
        if assembly is None or self.spec.shape.group_by is None or not len(self._earlier.index) or self.spec.force:
            return set()
        check = GroupCheck(self._earlier)
        planner = RowPlanner(self.spec.defaults, track_duplicates=manifest.id_column is not None)
        for row in manifest:
            for variant, voice, item, problem in assembly.items(planner.plan(row)):
                group = assembly.group_key(item.row, variant)
                if group is None:
                    continue
                if problem is not None or item.request is None:
                    check.add(group, row.id, None, None, None)
                    continue
                check.add(
                    group,
                    row.id,
                    voice if self.spec.shape.voices else None,
                    assembly.row_fingerprint(row, item.request),
                    assembly.expected_path(row, item.request, voice),
                )
        return check.standing()

    def _reuse_earlier(self, item: PlannedRow, variant: int | None, voice: str | None, standing: set[Any]) -> bool:
        """Record the item's earlier result if it stands (resume); False: it needs requests."""
        row, request = item.row, item.request
        assert request is not None
        key_voice = voice if self.spec.shape.voices else None
        assembly = self._assembly
        group = assembly.group_key(row, variant) if assembly is not None else None
        if group is not None and group not in standing:
            return False  # a group's rows stand or fall together
        if not self._earlier.may_know(row.id, key_voice):
            return False
        if assembly is not None:
            fingerprint = assembly.row_fingerprint(row, request)
            expected = assembly.expected_path(row, request, voice)
        else:
            fingerprint, expected = self._fingerprint(request), self._relative_path(row.id, request)
        earlier = self._earlier.earlier_result(row.id, key_voice, fingerprint, expected)
        if earlier is None:
            if group is not None:  # its file was checked a moment ago: someone changed it since
                self._record_bad(item, variant, voice, f"group {group[0]!r} changed while the job ran; run it again")
                return True
            return False
        assert self._journal is not None
        entry = {**earlier, "row": row.number, "carried": row.carried, "reused": True}
        entry.pop(VARIANT_KEY, None)
        if variant is not None:
            entry[VARIANT_KEY] = variant  # today's place in --voices
        self._journal.append_entry(entry, durable=False)  # the previous journal holds it until this run ends
        self.summary.skipped += 1
        self._count(entry["id"], entry.get("status"), entry.get("error"), entry.get("audio_seconds"))
        if entry.get("status") == STATUS_OK:
            self.summary.reused_ok += 1
        self.progress.row_finished("skipped")
        return True

    def _record_pending(self, item: PlannedRow, variant: int | None, *, attempts: int = 0) -> None:
        """An item this run did not start, or did not finish: the next run does it."""
        row, request = item.row, item.request
        assert request is not None and self._journal is not None
        key = (row.number, variant)
        self._open.pop(key, None)
        cancelled = key in self._started
        self._started.discard(key)
        why = self.summary.stop_message or self.summary.stopped or "the job stopped"
        result = RowResult(
            id=row.id,
            row=row.number,
            status=STATUS_PENDING,
            attempts=attempts,
            error=f"{'cancelled' if cancelled else 'not started'}: {why}",
            sample_rate=request.sample_rate,
            output_format=request.output_format,
            voice_id=request.voice_id,
            reused=False,
            carried=row.carried,
            extra={VARIANT_KEY: variant} if variant is not None else {},
        )
        # Only the known values (a pending row has few), and not durable: the next run starts it anyway.
        entry = {name: value for name, value in result.to_entry().items() if value is not None}
        self._journal.append_entry(entry, durable=False)
        self.summary.pending += 1

    def _record_unfinished(self) -> None:
        """Items handed to the workers that never finished (stopped, cancelled): pending."""
        for key in sorted(self._open, key=lambda k: (k[0], -1 if k[1] is None else k[1])):
            self._record_pending(self._open[key], key[1], attempts=1 if key in self._started else 0)

    def _append(self, result: RowResult) -> None:
        assert self._journal is not None
        if result.reused is None:
            result.reused = False  # made (or refused) by this run
        key = (result.row, result.extra.get(VARIANT_KEY))
        self._open.pop(key, None)
        self._started.discard(key)
        self._journal.append(result)
        self._count(result.id, result.status, result.error, result.audio_seconds)
        if result.status == STATUS_OK:
            log.debug("row %s ok", result.id, extra={"event": "row_ok", "fields": {"row_id": result.id}})
        else:
            fields = {"row_id": result.id, "error": result.error, "http_status": result.http_status}
            log.info("row %s failed: %s", result.id, result.error, extra={"event": "row_failed", "fields": fields})
        self.progress.row_finished(result.status)

    def _count(self, row_id: str, status: Any, error: Any, audio_seconds: Any) -> None:
        if status == STATUS_OK:
            self.summary.ok += 1
            if isinstance(audio_seconds, (int, float)):
                self.summary.audio_seconds_total += audio_seconds
        else:
            self.summary.failed += 1
            if len(self.summary.failure_examples) < 5:
                self.summary.failure_examples.append((row_id, error or "unknown"))

    def _note_stop(self, reason: str, message: str | None, exit_code: int, *, override: bool = False) -> None:
        """Remember why the job stopped; the first reason wins unless ``override`` (a signal, a rejected key)."""
        if self.summary.stopped is None or override:
            self.summary.stopped = reason
            self.summary.stop_message = message
            self._forced_exit = exit_code

    def _storage_failed(self, exc: OSError) -> StorageError:
        """A row's failure when its file could not be written or committed (its request was paid for).

        A full, over-quota or read-only disk would refuse every later file too, each
        after a paid request: no new row starts (they stay pending for a rerun once
        there is room); rows in flight finish or fail on their own.
        """
        error = StorageError(f"cannot store the audio file: {exc.strerror or exc}")
        if exc.errno in _STORAGE_EXHAUSTED and not self._stopping:
            log.error("%s: no new rows start; free space, then rerun to do the pending rows", error.message)
            self._note_stop("storage", error.message, EXIT_ROWS_FAILED)
            self._stopping = True
        return error

    def _stop(self, reason: str, message: str | None, exit_code: int) -> None:
        """Stop at once (a rejected key): in-flight streams are cancelled."""
        self._note_stop(reason, message, exit_code, override=True)
        self._stopping = True
        self._cancel_work()

    def _cancel_work(self) -> None:
        assert self._work_scope is not None
        self._work_scope.cancel()

    async def _watch_signals(self, outer: TaskGroup) -> None:
        """SIGINT/SIGTERM: stop new starts, let streams finish for a grace period, then cancel.

        A second signal cancels the streams at once and stops going over the
        rest of the manifest (the results then list only the rows reached).
        """
        signalled = False
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                if not signalled:
                    signalled = True
                    name = signal.Signals(signum).name
                    code = EXIT_SIGINT if signum == signal.SIGINT else EXIT_SIGTERM
                    self._note_stop("interrupted", f"received {name}", code, override=self.summary.stopped != "auth")
                    log.warning("%s: no new rows start; rows in flight get %gs to finish", name,
                                self.spec.grace_seconds)
                    self._stopping = True
                    outer.start_soon(self._cancel_after_grace)
                else:
                    self._abandoned = True
                    self._cancel_work()  # a second signal: stop now

    async def _cancel_after_grace(self) -> None:
        await anyio.sleep(self.spec.grace_seconds)
        self._cancel_work()

    def _exit_code(self, failure: BaseException | None = None) -> int:
        if failure is not None and not isinstance(failure, Exception):
            failure = None  # KeyboardInterrupt & co: the interpreter decides
        if isinstance(failure, ManifestError):
            self._note_stop("manifest", self._redact(str(failure)), EXIT_USAGE, override=True)
        elif failure is not None:
            message = self._redact(f"{type(failure).__name__}: {failure}")
            self._note_stop("error", message, EXIT_ROWS_FAILED, override=True)
        if self._forced_exit is not None:
            return self._forced_exit
        return EXIT_ROWS_FAILED if self.summary.failed else EXIT_OK


#: Storage errors after which no later file can land either: the job stops starting rows.
_STORAGE_EXHAUSTED = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def _single_error(exc: BaseException) -> BaseException:
    """The one exception inside (nested) task-group exception groups, or ``exc`` itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _remove_stale_results_temp(spec: JobSpec) -> int:
    """A results manifest outside DIR leaves its temporary file next to itself if the job is killed."""
    folder = spec.results.parent
    if not folder.is_dir() or spec.results.resolve().is_relative_to(spec.out_dir.resolve()):
        return 0
    removed = 0
    prefix = f".{spec.results.name}."
    with contextlib.suppress(OSError):
        for candidate in folder.iterdir():
            if candidate.name.startswith(prefix) and TEMP_NAME.fullmatch(candidate.name):
                candidate.unlink(missing_ok=True)
                removed += 1
    return removed
