"""The local Waves-compatible HTTP app: routes, auth, validation, limits, faults, pacing.

``create_app(config)`` gives a Starlette app that answers like the Waves API
(see ``waves-tts-sse.md``) on four routes:

- ``POST /waves/v1/tts/live``: the audio as Server-Sent Events, in many chunks,
  the first after ``latency``, the rest paced by ``realtime_factor``.
- ``POST /waves/v1/tts``: the whole audio in one response.
- ``GET /waves/v1/lightning-v3.1/get_voices``: the voice catalog.
- ``GET /_batchtts/stats`` (``DELETE`` resets): counters for tests and benchmarks.

A synthesis request goes: auth (401; a key of another workspace: 403) -> JSON
body and schema (400, a Zod-style list of issues as the live API answers; a
model the plan lacks: the plan-gated 400) ->
account limits (429) -> usage quota per key (403) -> fault draw -> synthesis in
a worker thread -> response. The
engine never runs on the event loop, so one long text cannot stall other streams.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from batchtts.api.request import (
    LIVE_PATH,
    VOICES_PATH,
    InvalidRequest,
    TtsRequest,
    canonical_digest,
    is_valid_id,
    parse_request,
)
from batchtts.server.audio import BYTES_PER_SAMPLE, MEDIA_TYPES, encode_view
from batchtts.server.config import ServerConfig
from batchtts.server.engines import Engine, get_engine
from batchtts.server.faults import (
    AUDIO_FAULTS,
    NO_FAULT,
    STREAM_FAULTS,
    ConnectionDropped,
    FaultInjector,
    FaultPlan,
    FirstRequests,
    apply_audio_fault,
)
from batchtts.server.limits import AccountLimits, Refusal, Slot, retry_after_header
from batchtts.server.quota import FORBIDDEN_KEY_MESSAGE, Quotas
from batchtts.server.sse import SseWriter, chunk_size, split_audio
from batchtts.server.stats import ServerStats
from batchtts.server.voices import CATALOG

SYNC_PATH = "/waves/v1/tts"
STATS_PATH = "/_batchtts/stats"
_ROUTE_NAMES = {LIVE_PATH: "live", SYNC_PATH: "sync", VOICES_PATH: "voices"}

log = logging.getLogger("batchtts.server")


def error_response(status: int, error: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """A TtsError answer: ``{"error": ..., "message": ...}``."""
    return JSONResponse({"error": error, "message": message}, status_code=status, headers=headers)


def validation_response(issues: list[dict[str, Any]], headers: Mapping[str, str] | None = None) -> JSONResponse:
    """A 400 as the live API answers a body its schema refuses: a Zod-style list of issues,
    ``{"error": [{"code": ..., "path": [field], "message": ...}, ...]}``."""
    return JSONResponse({"error": issues}, status_code=400, headers=headers)


class _DroppedConnectionFilter(logging.Filter):
    """Keeps the deliberate ``drop`` fault out of uvicorn's error log."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not _is_drop(exc)


def _is_drop(exc: BaseException | None) -> bool:
    if isinstance(exc, ConnectionDropped):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_drop(e) for e in exc.exceptions)
    return False


def _install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DroppedConnectionFilter) for f in logger.filters):
        logger.addFilter(_DroppedConnectionFilter())


class RequestIdMiddleware:
    """Gives every response an ``X-Request-Id`` and an ``X-Session-Id``, counts it, and turns crashes into
    TtsError 500."""

    def __init__(self, app: ASGIApp, stats: ServerStats) -> None:
        self.app = app
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req_{uuid.uuid4().hex}"
        session_id = str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = request_id
        path = scope["path"]
        if path != STATS_PATH:
            self.stats.count_request(_ROUTE_NAMES.get(path, "other"))
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                headers.append("X-Request-Id", request_id)
                headers.append("X-Session-Id", session_id)
                if path != STATS_PATH:
                    self.stats.count_status(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if started or _is_drop(exc):
                raise
            log.exception("unexpected error in %s %s", scope.get("method"), path)
            crash = error_response(500, "internal_server_error", f"unexpected server error: {exc}")
            await crash(scope, receive, send_with_id)


class _TrackedStream(StreamingResponse):
    """A streaming response that runs ``on_close`` however it ends (done, fault, disconnect)."""

    def __init__(
        self, content: AsyncIterator[bytes | memoryview], *, on_close: Callable[[], None], **kwargs: Any
    ) -> None:
        super().__init__(content, **kwargs)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


@dataclass(slots=True)
class _Job:
    """One admitted synthesis request on its way out."""

    request: TtsRequest
    received_at: float
    fault: FaultPlan
    audio: bytes | memoryview
    samples: int
    headers: dict[str, str]
    slot: Slot
    completed: bool = False


class WavesService:
    """The state behind the routes: engine, limits, faults, stats."""

    def __init__(self, config: ServerConfig, engine: Engine, stats: ServerStats) -> None:
        self.config = config
        self.engine = engine
        self.stats = stats
        self.limits = AccountLimits(config.rate, config.concurrency)
        self.faults = FaultInjector(config.faults, config.seed)
        self._first = FirstRequests(config.fault_first) if config.fault_first is not None else None
        self.quotas = Quotas(config.quota_requests, config.quota_characters)
        self._admission_delays = random.Random(config.seed)

    # -- shared steps ---------------------------------------------------------------

    def _auth_failure(self, request: Request) -> str | None:
        header = request.headers.get("authorization")
        if header is None:
            return "missing Authorization header; send 'Authorization: Bearer <key>'"
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return "the Authorization header must be 'Bearer <key>'"
        if self.config.api_key is not None and not hmac.compare_digest(token.encode(), self.config.api_key.encode()):
            return "invalid API key"
        return None

    def _unauthorized(self, request: Request) -> JSONResponse | None:
        """401 for a missing or wrong key; 403 for a key of another workspace (``--forbidden-key``)."""
        failure = self._auth_failure(request)
        if failure is not None:
            return error_response(401, "unauthorized", failure, {"WWW-Authenticate": "Bearer"})
        if self.config.forbidden_keys and _bearer_token(request) in self.config.forbidden_keys:
            return error_response(403, "Forbidden", FORBIDDEN_KEY_MESSAGE)
        return None

    def _echo_headers(self, request: Request, body: Any) -> dict[str, str]:
        """``X-External-*``: the correlation ids the client sent (empty when none, or malformed), and
        ``x-content-expiry`` when the client asked for ``x-expire-content: true``."""
        headers: dict[str, str] = {}
        for field, header in (("request_id", "X-External-Request-Id"), ("session_id", "X-External-Session-Id")):
            value = body.get(field) if isinstance(body, dict) else None
            headers[header] = value if isinstance(value, str) and is_valid_id(value) else ""
        if request.headers.get("x-expire-content", "").strip().lower() == "true":
            headers["x-content-expiry"] = self.config.content_expiry
        return headers

    async def _admit(self, request: Request) -> _Job | Response:
        """Everything before the audio leaves: a job ready to send, or the error answer."""
        received_at = time.monotonic()
        if (unauthorized := self._unauthorized(request)) is not None:
            return unauthorized
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return validation_response([{"code": "invalid_type", "path": [], "message": "the body is not valid JSON"}])
        echo = self._echo_headers(request, body)
        if not isinstance(body, dict):
            issue = {"code": "invalid_type", "path": [], "message": "the body must be a JSON object"}
            return validation_response([issue], echo)
        try:
            tts = parse_request(body, voices=CATALOG)
        except InvalidRequest as exc:
            return validation_response([exc.issue()], echo)
        if tts.model in self.config.plan_gated_models:
            message = f"{tts.model} is not available on your current plan, please upgrade to a higher plan"
            return JSONResponse({"status": False, "errors": [message]}, status_code=400, headers=echo)

        if self.config.admission_delay:
            # A queue before the limiter: the window counts the request later than it came.
            await anyio.sleep(self._admission_delays.uniform(0.0, self.config.admission_delay))
            received_at = time.monotonic()
        admission = self.limits.admit(received_at)
        if isinstance(admission, Refusal):
            headers = {**echo, "Retry-After": retry_after_header(admission.retry_after)}
            return error_response(429, admission.reason, admission.message, headers)
        if self.quotas.active:
            refusal = self.quotas.charge(_bearer_token(request), len(tts.text))
            if refusal is not None:
                admission.release()
                return error_response(403, "Forbidden", refusal.message, echo)
        self.stats.record_start(received_at)

        fault = self.faults.draw()
        if self._first is not None and not self._first.may_strike(canonical_digest(tts.fingerprint_fields())):
            fault = NO_FAULT  # --fault-first: this request was asked before
        if (status := fault.status) is not None:
            admission.release()
            code, error, retry_after = status
            assert fault.kind is not None
            self.stats.count_fault(fault.kind)
            headers = dict(echo)
            if retry_after is not None:
                headers["Retry-After"] = retry_after_header(retry_after)
            return error_response(code, error, f"injected fault: {fault.kind}", headers)

        self.stats.stream_opened()
        try:
            samples, audio = await anyio.to_thread.run_sync(self._render, tts, fault)
        except BaseException:
            admission.release()
            self.stats.stream_closed(completed=False)
            raise
        return _Job(tts, received_at, fault, audio, samples, echo, admission)

    def _render(self, tts: TtsRequest, fault: FaultPlan = NO_FAULT) -> tuple[int, bytes | memoryview]:
        """Synthesis and encoding (an audio fault applied between): CPU work, run in a worker thread."""
        pcm = self.engine.synthesize(tts)
        if fault.kind in AUDIO_FAULTS:
            self.stats.count_fault(fault.kind)
            pcm = apply_audio_fault(pcm, fault)
        return len(pcm), encode_view(pcm, tts.sample_rate, tts.output_format)

    def _tracked(self, job: _Job, body: AsyncIterator[bytes | memoryview], **kwargs: Any) -> _TrackedStream:
        def on_close() -> None:
            job.slot.release()
            self.stats.stream_closed(job.completed)

        return _TrackedStream(body, on_close=on_close, **kwargs)

    async def _wait_until(self, deadline: float) -> None:
        delay = deadline - time.monotonic()
        if delay > 0:
            await anyio.sleep(delay)
        else:
            await anyio.lowlevel.checkpoint()

    # -- routes -----------------------------------------------------------------------

    async def live(self, request: Request) -> Response:
        job = await self._admit(request)
        if isinstance(job, Response):
            return job
        headers = {
            **job.headers,
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
        return self._tracked(job, self._sse_body(job), headers=headers)

    async def sync(self, request: Request) -> Response:
        job = await self._admit(request)
        if isinstance(job, Response):
            return job
        headers = {**job.headers, "Content-Length": str(len(job.audio))}
        media_type = MEDIA_TYPES[job.request.output_format]
        return self._tracked(job, self._sync_body(job), headers=headers, media_type=media_type)

    async def voices(self, request: Request) -> Response:
        if (unauthorized := self._unauthorized(request)) is not None:
            return unauthorized
        return JSONResponse({"voices": [voice.to_json() for voice in CATALOG.values()]})

    async def stats_route(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.stats.reset()
        return JSONResponse(self.stats.snapshot())

    # -- bodies -------------------------------------------------------------------------

    async def _sse_body(self, job: _Job) -> AsyncIterator[bytes]:
        config, tts = self.config, job.request
        writer = SseWriter(config.sse_style)
        samples_per_chunk = max(1, round(tts.sample_rate * config.chunk_ms / 1000))
        size = chunk_size(len(job.audio), job.samples, samples_per_chunk, BYTES_PER_SAMPLE.get(tts.output_format))
        chunks = split_audio(job.audio, size, odd="odd" in config.sse_style)
        fault = job.fault.kind if job.fault.kind in STREAM_FAULTS else None
        strike = job.fault.strike_index(len(chunks)) if fault else -1
        interval = config.chunk_ms / 1000 / config.realtime_factor if config.realtime_factor else 0.0

        await self._wait_until(job.received_at + config.latency)
        first_at = time.monotonic()
        for index in range(len(chunks) + 1):
            if index == strike:
                assert fault is not None
                self.stats.count_fault(fault)
                if fault == "drop":
                    raise ConnectionDropped(f"injected fault: drop after {index} chunks")
                if fault == "nodone":
                    return
                if fault == "error-event":
                    frame = writer.error("internal_server_error", "injected fault: error-event")
                    for piece in writer.pieces(frame):
                        yield piece
                    return
                if fault == "error-frame":
                    for piece in writer.pieces(writer.error_frame("injected fault: error-frame")):
                        yield piece
                    return
                for piece in writer.pieces(writer.bad_frame(job.fault.broken_json)):
                    yield piece
            if index == len(chunks):
                break
            if interval:
                await self._wait_until(first_at + index * interval)
            else:
                await anyio.lowlevel.checkpoint()
            frame = writer.audio(base64.b64encode(chunks[index]).decode("ascii"))
            for piece in writer.pieces(frame):
                yield piece
        for piece in writer.pieces(writer.done()):
            yield piece
        job.completed = True

    async def _sync_body(self, job: _Job) -> AsyncIterator[bytes | memoryview]:
        await self._wait_until(job.received_at + self.config.latency)
        if job.fault.kind == "drop":
            self.stats.count_fault("drop")
            yield job.audio[: max(1, len(job.audio) // 2)]
            raise ConnectionDropped("injected fault: drop mid-body")
        yield job.audio
        job.completed = True


def _bearer_token(request: Request) -> str:
    """The token of an ``Authorization: Bearer <token>`` header (checked by the auth step), else ""."""
    _, _, token = request.headers.get("authorization", "").strip().partition(" ")
    return token.strip()


async def _http_error(request: Request, exc: Exception) -> Response:
    """404 / 405 and friends as TtsError JSON, like every other error."""
    assert isinstance(exc, HTTPException)
    error = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, error, f"{request.method} {request.url.path}: {exc.detail}", exc.headers)


def create_app(config: ServerConfig, *, engine: Engine | None = None) -> Starlette:
    """The app for ``config``; ``engine`` overrides ``config.engine`` (tests, benchmarks)."""
    _install_log_filter()
    engine = engine if engine is not None else get_engine(config.engine)
    stats = ServerStats()
    service = WavesService(config, engine, stats)
    app = Starlette(
        routes=[
            Route(LIVE_PATH, service.live, methods=["POST"]),
            Route(SYNC_PATH, service.sync, methods=["POST"]),
            Route(VOICES_PATH, service.voices, methods=["GET"]),
            Route(STATS_PATH, service.stats_route, methods=["GET", "DELETE"]),
        ],
        middleware=[Middleware(RequestIdMiddleware, stats=stats)],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.config = config
    app.state.engine = engine
    app.state.stats = stats
    app.state.service = service
    return app
