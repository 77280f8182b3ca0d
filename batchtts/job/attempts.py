"""One file's attempts: throttle -> retry -> client -> sink -> commit, the same for every request.

A plain row, a part of a split text and a (row, voice) of a fan-out all make
their file here, so every request of a job goes through one stream cap, one
pacing, one 429 back-off and one retry policy. An attempt writes into a temp
file (:class:`~batchtts.audio.AudioSink`); the file of the attempt that
succeeds is made durable and renamed in a group (:class:`~batchtts.audio.GroupCommit`),
out of the stream slot. Never raises an :class:`~batchtts.errors.AttemptError`:
the last error comes back in :class:`Synthesized`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from batchtts.api.client import AttemptOutcome, WavesClient
from batchtts.api.ids import new_run_token, request_id_for
from batchtts.api.request import TtsRequest
from batchtts.audio import AudioSink, GroupCommit, SinkResult
from batchtts.errors import AccessDenied, AttemptError, AudioCheckFailed, RateLimited, UsageLimitReached
from batchtts.job.progress import ProgressReporter
from batchtts.job.qa import QaCheck, QaJudge, better, describe
from batchtts.job.recorder import Recorder
from batchtts.job.stopping import StopControl
from batchtts.ledger import utc_now_iso
from batchtts.outcomes import Stop, StopReason
from batchtts.schedule.retry import RetryPolicy, retrying
from batchtts.schedule.throttle import Throttle, refusal_kind

log = logging.getLogger("batchtts")


@dataclass(slots=True)
class Synthesized:
    """One file through the throttle and the retry loop: what its last attempt left."""

    request_id: str | None = None
    attempts: int = 0
    outcome: AttemptOutcome | None = None
    #: The committed file (None until committed, or when the file failed).
    sink: SinkResult | None = None
    error: AttemptError | None = None
    #: When the last attempt ended (ISO, UTC): the row's own timing, not when its file landed.
    finished_at: str | None = None
    #: Answers 429 among the attempts (the report marks such rows; they do not use up attempts).
    rate_limited: int = 0
    #: The audio checks of the take kept (None: not checked).
    qa: QaCheck | None = None
    #: Takes made again because the audio checks flagged one (not counted as retries).
    qa_takes: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None and self.sink is not None


class Attempts:
    """Makes files from requests for one job; shared by all its workers."""

    def __init__(
        self,
        *,
        client: WavesClient,
        throttle: Throttle,
        retry: RetryPolicy,
        commits: GroupCommit,
        recorder: Recorder,
        stops: StopControl,
        progress: ProgressReporter,
        redact: Callable[[str], str],
        qa: QaJudge | None = None,
    ) -> None:
        self._client = client
        #: The audio checks (None: ``--qa off``).
        self._qa = qa
        self._throttle = throttle
        self._retry = retry
        self._commits = commits
        self._recorder = recorder
        self._stops = stops
        self._progress = progress
        self._redact = redact
        self._run_token = new_run_token()
        #: The sinks of the streams in flight, for progress (audio received so far).
        self._streaming: set[AudioSink] = set()

    def audio_seconds_in_flight(self) -> float:
        """Audio the streams in flight have received so far."""
        return sum(sink.seconds_so_far for sink in list(self._streaming))

    async def make_file(self, request: TtsRequest, key: str, path: Path, file_format: str) -> Synthesized:
        """The file at ``path``, committed (a part is joined next): waits for its group commit."""
        done, finished = await self._stream(request, key, path, file_format)
        if finished is None:
            return done
        try:
            done.sink = await self._commits.commit(finished)
        except OSError as exc:
            done.error = self._stops.storage_failed(exc)
        return done

    async def submit_file(
        self,
        request: TtsRequest,
        key: str,
        path: Path,
        file_format: str,
        landed: Callable[[Synthesized], None],
    ) -> None:
        """Stream the file, queue it for the group commit and go on: ``landed`` is called once it is
        committed (or failed), so the worker takes its next row while the file is made durable."""
        done, finished = await self._stream(request, key, path, file_format)
        if finished is None:
            landed(done)
            return

        def committed(sink: SinkResult | None, error: OSError | None) -> None:
            done.sink = sink
            if error is not None:
                done.error = self._stops.storage_failed(error)
            landed(done)

        self._commits.submit(finished, committed)

    async def _stream(
        self, request: TtsRequest, key: str, path: Path, file_format: str
    ) -> tuple[Synthesized, AudioSink | None]:
        """The takes of one file: the finished, uncommitted file of the take kept, or the last error.

        Without audio checks there is one take. With them, a flagged take is made
        again under ``--qa retry`` (each take its own retry loop, so QA takes do not
        use up ``--max-attempts``) and the better take is kept; under ``--qa fail`` a
        flagged take fails the file. ``key`` names the request ids
        (:func:`batchtts.job.shaping.fanout.request_key`).
        """
        done = Synthesized()
        finished = await self._retry_loop(request, key, path, file_format, done)
        qa = self._qa
        if finished is not None and qa is not None:
            levels = finished.levels
            done.qa = None if levels is None else qa.check(request, levels)
            finished = await self._retake(request, key, path, file_format, done, finished)
            if done.qa is not None and done.qa.flags and qa.options.mode == "fail":
                finished.abort()
                finished = None
                done.error = AudioCheckFailed(describe(done.qa.flags))
        done.finished_at = utc_now_iso()
        self._recorder.count_attempts(done.attempts, len(request.text), qa_takes=done.qa_takes)
        return done, finished

    async def _retake(
        self, request: TtsRequest, key: str, path: Path, file_format: str, done: Synthesized, kept: AudioSink
    ) -> AudioSink:
        """``--qa retry``: make a flagged take again until one is clean or the takes run out; the best one.

        Cancelled on the way, the take kept so far is dropped too (nobody would commit it).
        """
        qa = self._qa
        assert qa is not None
        try:
            while (
                done.qa is not None
                and done.qa.flags
                and qa.options.mode == "retry"
                and done.qa_takes < qa.options.attempts
                and not self._stops.stopping
            ):
                done.qa_takes += 1
                flagged = done.qa
                best = (done.request_id, done.outcome)
                log.info(
                    "%s: audio check flagged %s; making it again", key, ", ".join(flagged.flags),
                    extra={"event": "qa_retake", "fields": {"key": key, "flags": list(flagged.flags)}},
                )  # fmt: skip
                retake = await self._retry_loop(request, key, path, file_format, done)
                levels = retake.levels if retake is not None else None
                check = qa.check(request, levels) if levels is not None else None
                if retake is not None and check is not None and better(flagged, check):
                    kept.abort()
                    kept, done.qa = retake, check
                    continue
                if retake is not None:
                    retake.abort()
                (done.request_id, done.outcome), done.qa = best, flagged
                done.error = None  # the kept take stands, whatever the retake's error
                break
        except BaseException:
            kept.abort()
            raise
        return kept

    async def _retry_loop(
        self, request: TtsRequest, key: str, path: Path, file_format: str, done: Synthesized
    ) -> AudioSink | None:
        """One take: the retry loop's finished, uncommitted file, or None with the last error in ``done``."""
        finished: AudioSink | None = None
        done.error = None
        try:
            async for attempt in retrying(self._retry, sleep=self._throttle.rest):
                with attempt:
                    finished = await self._attempt(request, key, path, file_format, done)
        except AccessDenied as exc:  # a refused key or a usage limit: nothing more is sent
            done.error = exc
            reason = StopReason.QUOTA if isinstance(exc, UsageLimitReached) else StopReason.AUTH
            self._stops.stop_now(Stop.because(reason, self._redact(exc.message)))
        except AttemptError as exc:
            done.error = exc
        except BaseException:
            if finished is not None:  # cancelled on the way out of the loop: nobody would commit it
                finished.abort()
            raise
        return finished if done.error is None else None

    async def _attempt(
        self, request: TtsRequest, key: str, path: Path, file_format: str, done: Synthesized
    ) -> AudioSink:
        """One request in a stream slot; returns the finished, uncommitted file."""
        done.attempts += 1
        done.request_id = request_id_for(key, self._run_token, done.attempts)
        done.outcome = None
        throttle = self._throttle
        async with throttle.slot() as start:
            self._progress.limits_changed(throttle.state)
            sink = AudioSink(
                path,
                output_format=request.output_format,
                sample_rate=request.sample_rate,
                file_format=file_format,
                measure_floor=self._qa.options.floor_dbfs if self._qa is not None else None,
            )
            self._streaming.add(sink)
            try:
                done.outcome = await self._client.synthesize(
                    request.with_request_id(done.request_id), sink, start=start if throttle.counts_sends else None
                )
                sink.finish()
            except RateLimited as exc:
                sink.abort()
                done.rate_limited += 1
                throttle.on_rate_limited(start, exc.retry_after, kind=refusal_kind(exc.message))
                raise
            except OSError as exc:  # the audio came, the disk refused it (full?): retrying would not help
                sink.abort()
                raise self._stops.storage_failed(exc) from exc
            except BaseException:
                sink.abort()
                raise
            finally:
                self._streaming.discard(sink)
            throttle.on_success()
            return sink
