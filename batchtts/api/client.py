"""One synthesis attempt: POST, stream SSE frames, decode, classify the outcome.

The client promises nothing the API page does not: frames and lines may be
split across reads (:mod:`batchtts.api.sse` reassembles them as the HTML standard says),
chunks may split a sample (the sink carries odd bytes), and an attempt counts
as a success only when a frame with ``"done": true`` arrives (every frame
carries ``done``, false on the audio chunks: the end is its value, not its
presence; ``status`` is informational). Every other ending raises an
:class:`~batchtts.errors.AttemptError` subclass that says whether to retry.
"""

from __future__ import annotations

import binascii
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import anyio
import httpx
import orjson
import pybase64

from batchtts import __version__
from batchtts.api.answers import classify_http_error, describe_network_error, error_body_message
from batchtts.api.request import LIVE_PATH, VOICES_PATH, TtsRequest
from batchtts.api.sse import SseDecoder
from batchtts.errors import (
    AttemptError,
    NetworkError,
    StreamIncomplete,
    VoiceCatalogUnavailable,
)

_MAX_ERROR_BODY = 4096
#: After the done frame: how long and how much to read for the connection's sake.
_DRAIN_SECONDS = 1.0
_DRAIN_LIMIT = 1 << 16
#: Connections per httpx pool (see WavesClient).
POOL_CONNECTIONS = 16
#: Longest wait for the voice catalog, seconds: past it, the job goes on without the voice check.
VOICES_TIMEOUT = 15.0
#: Request header asking for the content to be deleted after 7 days (Enterprise), and the answer's verdict.
EXPIRE_CONTENT_HEADER = "x-expire-content"
CONTENT_EXPIRY_HEADER = "x-content-expiry"


class ChunkWriter(Protocol):
    def write(self, chunk: bytes) -> None: ...


@dataclass(slots=True)
class AttemptOutcome:
    """What a successful attempt measured."""

    http_status: int
    server_request_id: str | None
    ttfb_ms: float | None
    total_ms: float
    audio_bytes: int
    #: The answer's ``X-Session-Id`` (the server's session UUID).
    server_session_id: str | None = None
    #: The answer's ``x-content-expiry`` (``applied``, ``not-entitled``, ``unavailable``) when it sent one.
    content_expiry: str | None = None


class ApiKey:
    """A secret that never shows itself in a repr, a log line or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "ApiKey('********')"

    __str__ = __repr__


class WavesClient:
    """A pooled HTTP client for the streaming route; one per job.

    The connections are spread over several small httpx pools rather than one
    big one, and each attempt takes the least busy pool. httpcore's pool walks
    all of its connections (and polls each idle socket) on every request start
    and end, so one pool of 256 connections costs several times more CPU per
    row than 16 pools of 16 (encode/httpcore#1035; BENCHMARKS.md has the figures).
    """

    def __init__(
        self,
        base_url: str,
        api_key: ApiKey,
        *,
        idle_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        max_connections: int = 100,
        expire_content: bool = False,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._url = self._base_url + LIVE_PATH
        self._auth = f"Bearer {api_key.reveal()}"
        #: Ask for the content to be deleted after 7 days (``x-expire-content: true``, Enterprise).
        self._expire_content = expire_content
        pools = max(1, -(-max_connections // POOL_CONNECTIONS))
        per_pool = -(-max_connections // pools)
        # One TLS context for all pools: each httpx client would otherwise load the
        # CA bundle again (~20 ms of CPU each, 0.3 s for the 16 pools of 256 streams).
        tls = httpx.create_ssl_context()
        self._pools = [
            httpx.AsyncClient(
                verify=tls,
                timeout=httpx.Timeout(idle_timeout, connect=connect_timeout),
                limits=httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool),
                headers={"User-Agent": f"batchtts/{__version__}"},
            )
            for _ in range(pools)
        ]
        self._busy = [0] * pools  # attempts in flight per pool

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()

    async def fetch_voices(self, *, timeout: float = VOICES_TIMEOUT) -> frozenset[str]:
        """The account's voice catalog, ``GET /waves/v1/lightning-v3.1/get_voices``: the set of ``voiceId``.

        The answer is ``{"voices": [{"voiceId", "displayName", "tags": {...}}, ...]}``.
        Any failure (network, timeout, a non-200, a body of another shape, an
        empty catalog) raises :class:`~batchtts.errors.VoiceCatalogUnavailable`
        saying what went wrong; the caller goes on without the check. The
        connection it used goes back to the pool, for the first row.
        """
        pool = self._pools[self._least_busy()]
        headers = {"Authorization": self._auth, "Accept": "application/json"}
        try:
            with anyio.fail_after(timeout):
                response = await pool.get(self._base_url + VOICES_PATH, headers=headers)
        except TimeoutError:
            raise VoiceCatalogUnavailable(f"no answer within {timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise VoiceCatalogUnavailable(f"network error ({type(exc).__name__})") from None
        if response.status_code != 200:
            said = error_body_message(response.content[:_MAX_ERROR_BODY])
            raise VoiceCatalogUnavailable(f"HTTP {response.status_code}: {said}")
        try:
            payload = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise VoiceCatalogUnavailable("the answer is not JSON") from None
        voices = payload.get("voices") if isinstance(payload, dict) else None
        if not isinstance(voices, list):
            raise VoiceCatalogUnavailable('the answer has no "voices" list')
        ids = frozenset(v["voiceId"] for v in voices if isinstance(v, dict) and isinstance(v.get("voiceId"), str))
        if not ids:
            raise VoiceCatalogUnavailable("the catalog lists no voices")
        return ids

    def _least_busy(self) -> int:
        busy = self._busy
        return busy.index(min(busy))

    async def synthesize(
        self,
        request: TtsRequest,
        sink: ChunkWriter,
        *,
        start: SendMarks | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> AttemptOutcome:
        """Stream one request into ``sink``; raise an AttemptError on any failure.

        ``start`` (the throttle's) is marked when the request has left and when
        its answer arrived: the API counts it against the account's rate in between.
        """
        started = clock()
        headers = {
            "Authorization": self._auth,
            "Accept": "text/event-stream",
            "Cache-Control": "no-store",
        }
        if self._expire_content:
            headers[EXPIRE_CONTENT_HEADER] = "true"
        pool = self._least_busy()
        self._busy[pool] += 1
        server_session_id: str | None = None
        try:
            async with self._pools[pool].stream(
                "POST",
                self._url,
                json=request.to_body(),
                headers=headers,
                extensions={"trace": _send_tracer(start)} if start is not None else None,
            ) as response:
                server_request_id = response.headers.get("x-request-id")
                server_session_id = response.headers.get("x-session-id") or None
                content_expiry = response.headers.get(CONTENT_EXPIRY_HEADER) or None
                if response.status_code != 200:
                    body = await _read_bounded(response)
                    raise classify_http_error(response, body, server_request_id)
                ttfb_ms, audio_bytes, done_at = await _consume_stream(response, sink, started, clock, server_request_id)
        except AttemptError as exc:
            if exc.server_session_id is None:
                exc.server_session_id = server_session_id
            raise
        except httpx.RemoteProtocolError:
            raise StreamIncomplete("connection cut mid-stream") from None
        except httpx.TransportError as exc:
            raise NetworkError(describe_network_error(exc, self._url)) from None
        finally:
            self._busy[pool] -= 1
        return AttemptOutcome(
            http_status=200,
            server_request_id=server_request_id,
            ttfb_ms=ttfb_ms,
            total_ms=(done_at - started) * 1000.0,
            audio_bytes=audio_bytes,
            server_session_id=server_session_id,
            content_expiry=content_expiry,
        )


class SendMarks(Protocol):
    def mark_sent(self) -> None: ...
    def mark_answered(self) -> None: ...


def _send_tracer(start: SendMarks) -> Callable[[str, dict[str, object]], Awaitable[None]]:
    """An httpcore ``trace`` extension: marks when the request left and when its answer came."""

    async def trace(event: str, info: dict[str, object]) -> None:
        if event.endswith(".complete"):
            if event.endswith("send_request_body.complete"):
                start.mark_sent()
            elif event.endswith("receive_response_headers.complete"):
                start.mark_answered()

    return trace


async def _consume_stream(
    response: httpx.Response,
    sink: ChunkWriter,
    started: float,
    clock: Callable[[], float],
    server_request_id: str | None,
) -> tuple[float | None, int, float]:
    """Feed every audio frame to the sink; return (ttfb_ms, bytes, done time) once done arrives.

    The hot path of a job: bytes from the socket go through the byte-level SSE
    decoder, orjson and pybase64 (each several times cheaper than the standard
    library's on these frames; see BENCHMARKS.md) and straight to the sink.
    """
    content_type = response.headers.get("content-type", "")
    if "text/event-stream" not in content_type:
        raise StreamIncomplete(
            f"expected text/event-stream, got {content_type or 'no content type'}",
            http_status=200,
            server_request_id=server_request_id,
        )
    ttfb_ms: float | None = None
    audio_bytes = 0

    def incomplete(message: str) -> StreamIncomplete:
        return StreamIncomplete(message, http_status=200, server_request_id=server_request_id)

    decoder = SseDecoder()
    body = response.aiter_bytes()
    async for data in body:
        for event in decoder.feed(data):
            if event.event == "error":
                raise incomplete(f"error event: {error_body_message(event.data)}")
            if not event.data:
                continue  # e.g. an event field with no data: nothing to decode
            try:
                payload = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                raise incomplete("undecodable frame: data is not JSON") from None
            if not isinstance(payload, dict):
                raise incomplete("undecodable frame: data is not a JSON object")
            audio = payload.get("audio")
            if audio is not None:
                if not isinstance(audio, str):
                    raise incomplete("undecodable frame: audio is not a string")
                try:
                    chunk = pybase64.b64decode(audio, validate=True)
                except (binascii.Error, ValueError):
                    raise incomplete("undecodable frame: audio is not valid base64") from None
                if chunk:
                    if ttfb_ms is None:
                        ttfb_ms = (clock() - started) * 1000.0
                    sink.write(chunk)
                    audio_bytes += len(chunk)
            # The end is "done": true (every frame carries "done"; false on the chunks). "status"
            # ("206", "200") is informational, except the older routes' error frame.
            if payload.get("done") is True:
                done_at = clock()
                await _finish_body(body)
                return ttfb_ms, audio_bytes, done_at
            if audio is None and payload.get("status") == "error":
                raise incomplete(f"error frame: {error_body_message(event.data)}")
    raise incomplete("stream ended without the done frame")


async def _finish_body(body: AsyncIterator[bytes]) -> None:
    """Read what follows the done frame, so the connection goes back to the pool.

    After ``{"done": true}`` a server sends only the end of the chunked body;
    reading it lets httpx keep the connection alive for the next row instead
    of opening (and, over TLS, handshaking) a new one per row. The row has
    succeeded already: a server that keeps talking or stalls here only costs
    its connection, never the row.
    """
    received = 0
    with anyio.move_on_after(_DRAIN_SECONDS):
        try:
            async for rest in body:
                received += len(rest)
                if received > _DRAIN_LIMIT:
                    return
        except (httpx.HTTPError, httpx.StreamError):
            return


async def _read_bounded(response: httpx.Response) -> bytes:
    body = b""
    async for part in response.aiter_bytes():
        body += part
        if len(body) >= _MAX_ERROR_BODY:
            break
    return body[:_MAX_ERROR_BODY]
