"""The job: manifest rows in, one audio file and one result per row out.

A producer streams the manifest, plans each row (bad rows are recorded failed
at once, with no request) and hands good rows to a fixed pool of workers over a
small bounded channel, so memory does not grow with the manifest. Each worker
synthesizes a row through the throttle (concurrency, pacing, adaptive backoff)
with retries, streaming the audio into a sink that renames into place only when
complete. Every finished row goes to the journal at once; the results manifest
is written from the journal when the job ends, however it ends.
"""

from __future__ import annotations

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

from batchtts.assembly import Assembly, ShapeOptions, Synthesized
from batchtts.client import AttemptOutcome, WavesClient
from batchtts.errors import AttemptError, AuthRejected, RateLimited
from batchtts.ids import new_run_token, request_id_for
from batchtts.layout import resolve_inside
from batchtts.limits import Throttle
from batchtts.manifest import Manifest, open_manifest
from batchtts.plan import PlannedRow, RowPlanner
from batchtts.progress import ProgressReporter
from batchtts.request import TtsRequest
from batchtts.results import Journal, RowResult, final_entries, utc_now_iso, write_journal_results
from batchtts.retry import RetryPolicy, retrying
from batchtts.sink import AudioSink, SinkResult, remove_stale_temp_files
from batchtts.units import Rate

log = logging.getLogger("batchtts")

EXIT_OK = 0
EXIT_ROWS_FAILED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
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
    #: Long texts, chapters, voice fan-out, folders, dataset index (batchtts.assembly).
    shape: ShapeOptions = field(default_factory=ShapeOptions)

    @property
    def results(self) -> Path:
        return self.results_path or self.out_dir / "results.parquet"

    @property
    def state_dir(self) -> Path:
        return self.out_dir / ".batchtts"


@dataclass(slots=True)
class JobSummary:
    rows: int = 0
    ok: int = 0
    failed: int = 0
    attempts: int = 0
    retries: int = 0
    rate_limited: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
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
    sink: SinkResult | None = None
    attempts: int = 0


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
        self._stopping = False
        self._journal: Journal | None = None
        self._assembly: Assembly | None = None
        if spec.shape.assembles:
            self._assembly = Assembly(
                spec.shape, self, out_dir=spec.out_dir, file_format=spec.file_format, concurrency=spec.concurrency
            )

    def open_manifest(self) -> Manifest:
        """Read the manifest's schema; a ManifestError here means no request was sent."""
        manifest = open_manifest(self.spec.manifest, text_column=self.spec.text_column, id_column=self.spec.id_column)
        if self._assembly is not None:
            self._assembly.check_columns(manifest)
        return manifest

    async def run(self, manifest: Manifest) -> JobSummary:
        started = time.monotonic()
        spec = self.spec
        spec.state_dir.mkdir(parents=True, exist_ok=True)
        removed = remove_stale_temp_files(spec.out_dir)
        if removed:
            log.warning("removed %d temporary file(s) left by an earlier run", removed)
        journal_path = spec.state_dir / "journal.jsonl"
        journal_path.unlink(missing_ok=True)
        self._journal = Journal(journal_path)
        try:
            async with anyio.create_task_group() as outer:
                outer.start_soon(self._watch_signals, outer)
                with anyio.CancelScope() as work_scope:
                    self._work_scope = work_scope
                    await self._run_rows(manifest)
                    if self._assembly is not None:
                        await self._assembly.finish()
                outer.cancel_scope.cancel()
        finally:
            if self._assembly is not None:
                self._assembly.record_unfinished()
            self._journal.close()
            self.summary.rate_limited = self._throttle.rate_limited
            self.summary.wall_seconds = time.monotonic() - started
            with anyio.CancelScope(shield=True):
                self.summary.results_path = spec.results
                write_journal_results(
                    self._journal,
                    spec.results,
                    carried_columns=manifest.carried_columns,
                    extra_columns=spec.shape.extra_columns,
                )
                self._write_metadata(manifest)
        self.summary.exit_code = self._exit_code()
        return self.summary

    def _write_metadata(self, manifest: Manifest) -> None:
        """--metadata: the dataset index of the ok files, from the results just written."""
        if self.spec.shape.metadata is None or self._journal is None:
            return
        from batchtts.errors import ManifestError
        from batchtts.metadata import write_metadata

        try:
            path, count = write_metadata(
                self.spec.shape.metadata, self.spec.out_dir, final_entries(self._journal), manifest, self.spec.defaults
            )
        except ManifestError as exc:
            log.error("no %s metadata: the manifest cannot be read again: %s", self.spec.shape.metadata, exc)
            return
        log.info("%s: %d file(s) listed", path, count)

    async def _run_rows(self, manifest: Manifest) -> None:
        send, receive = anyio.create_memory_object_stream[PlannedRow](self.spec.concurrency)
        async with anyio.create_task_group() as workers:
            workers.start_soon(self._produce, manifest, send)
            for _ in range(self.spec.concurrency):
                workers.start_soon(self._work, receive.clone())
            receive.close()

    async def _produce(self, manifest: Manifest, send: MemoryObjectSendStream[PlannedRow]) -> None:
        planner = RowPlanner(self.spec.defaults, track_duplicates=manifest.id_column is not None)
        async with send:
            for row in manifest:
                if self._stopping:
                    return
                planned = planner.plan(row)
                if self._assembly is not None:
                    await self._assembly.submit(planned, send)
                    continue
                self.summary.rows += 1
                if planned.request is None:
                    self._record_bad_row(planned)
                    await anyio.sleep(0)  # let workers run between long stretches of bad rows
                else:
                    await send.send(planned)

    async def _work(self, receive: MemoryObjectReceiveStream[PlannedRow]) -> None:
        async with receive:
            async for planned in receive:
                if self._stopping:
                    return
                if self._assembly is not None:
                    await self._assembly.synthesize(planned)
                else:
                    await self._synthesize_row(planned)

    async def _synthesize_row(self, planned: PlannedRow) -> None:
        row, request = planned.row, planned.request
        assert request is not None
        final = self._final_path(row.id, request)
        started_at = utc_now_iso()
        last = _Attempted()
        error: AttemptError | None = None
        try:
            async for attempt in retrying(self.spec.retry):
                with attempt:
                    await self._attempt(request, row.id, final, last)
        except AuthRejected as exc:
            error = exc
            self._stop("auth", self._redact(exc.message), EXIT_AUTH)
        except AttemptError as exc:
            error = exc
        self.summary.attempts += last.attempts
        self.summary.retries += max(0, last.attempts - 1)
        self._record(planned, request, last, error, started_at, final)

    async def _attempt(
        self, request: TtsRequest, row_id: str, final: Path, last: _Attempted, file_format: str | None = None
    ) -> None:
        last.attempts += 1
        last.request_id = request_id_for(row_id, self._run_token, last.attempts)
        last.outcome = None
        async with self._throttle.slot() as started:
            self.progress.limits_changed(self._throttle.state)
            sink = AudioSink(
                final,
                output_format=request.output_format,
                sample_rate=request.sample_rate,
                file_format=file_format or self.spec.file_format,
            )
            try:
                last.outcome = await self.client.synthesize(request.with_request_id(last.request_id), sink)
                last.sink = await anyio.to_thread.run_sync(sink.commit)
            except RateLimited as exc:
                sink.abort()
                self._throttle.on_rate_limited(started, exc.retry_after)
                raise
            except BaseException:
                sink.abort()
                raise
            self._throttle.on_success()

    def _final_path(self, row_id: str, request: TtsRequest) -> Path:
        extension = AudioSink.extension_for(request.output_format, self.spec.file_format)
        final = resolve_inside(self._out_dir, self.spec.shape.audio_path(row_id, extension))
        if final.parent not in self._made_dirs:
            final.parent.mkdir(parents=True, exist_ok=True)
            self._made_dirs.add(final.parent)
        return final

    # --- what the assembly (batchtts.assembly) uses ------------------------------

    async def synthesize_file(self, request: TtsRequest, key: str, path: Path, file_format: str) -> Synthesized:
        """One file (a part, a fan-out row) through the same throttle and retry loop as a row.

        ``key`` names the request ids (:func:`batchtts.fanout.request_key`).
        Never raises an AttemptError: the error comes back in the result.
        """
        last = _Attempted()
        error: AttemptError | None = None
        try:
            async for attempt in retrying(self.spec.retry):
                with attempt:
                    await self._attempt(request, key, path, last, file_format=file_format)
        except AuthRejected as exc:
            error = exc
            self._stop("auth", self._redact(exc.message), EXIT_AUTH)
        except AttemptError as exc:
            error = exc
        self.summary.attempts += last.attempts
        self.summary.retries += max(0, last.attempts - 1)
        return Synthesized(last.request_id, last.attempts, last.outcome, last.sink, error)

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
        last: _Attempted,
        error: AttemptError | None,
        started_at: str,
        final: Path,
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
            finished_at=utc_now_iso(),
            carried=row.carried,
        )
        if ok and last.sink and last.sink.audio_seconds:
            self.summary.audio_seconds += last.sink.audio_seconds
        self._append(result)

    def _append(self, result: RowResult) -> None:
        assert self._journal is not None
        self._journal.append(result)
        if result.status == "ok":
            self.summary.ok += 1
        else:
            self.summary.failed += 1
            if len(self.summary.failure_examples) < 5:
                self.summary.failure_examples.append((result.id, result.error or "unknown"))
            log.info("row %s failed: %s", result.id, result.error)
        self.progress.row_finished(result.status)

    def _stop(self, reason: str, message: str | None, exit_code: int) -> None:
        """Stop at once (a rejected key): in-flight streams are cancelled."""
        if self.summary.stopped is None:
            self.summary.stopped = reason
            self.summary.stop_message = message
            self._forced_exit = exit_code
        self._stopping = True
        self._work_scope.cancel()

    async def _watch_signals(self, outer: TaskGroup) -> None:
        """SIGINT/SIGTERM: stop new starts, let streams finish for a grace period, then cancel."""
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                if self.summary.stopped is None:
                    self.summary.stopped = "interrupted"
                    self.summary.stop_message = f"received {signal.Signals(signum).name}"
                    self._forced_exit = EXIT_SIGINT if signum == signal.SIGINT else EXIT_SIGTERM
                    self._stopping = True
                    outer.start_soon(self._cancel_after_grace)
                else:
                    self._work_scope.cancel()  # a second signal: stop now

    async def _cancel_after_grace(self) -> None:
        await anyio.sleep(self.spec.grace_seconds)
        self._work_scope.cancel()

    def _exit_code(self) -> int:
        forced = getattr(self, "_forced_exit", None)
        if forced is not None:
            return forced
        return EXIT_ROWS_FAILED if self.summary.failed else EXIT_OK
