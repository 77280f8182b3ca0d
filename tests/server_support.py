"""Helpers for the local server's tests: one live request read the way a client reads it."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import httpx_sse
import numpy as np

from batchtts.api.request import parse_request
from batchtts.server.synthetic import SyntheticEngine
from batchtts.server.voices import CATALOG

LIVE = "/waves/v1/tts/live"
SYNC = "/waves/v1/tts"
VOICES = "/waves/v1/lightning-v3.1/get_voices"
STATS = "/_batchtts/stats"
AUTH = {"Authorization": "Bearer test-key"}
#: Short and at 8 kHz: several chunks, little work.
BODY: dict[str, Any] = {"text": "Hello from Waves TTS.", "voice_id": "magnus", "sample_rate": 8000}


@dataclass
class LiveResult:
    status: int
    headers: httpx.Headers
    events: list[httpx_sse.ServerSentEvent] = field(default_factory=list)
    raw_chunks: list[bytes] = field(default_factory=list)
    error_body: Any = None

    @property
    def audio_events(self) -> list[httpx_sse.ServerSentEvent]:
        return [e for e in self.events if e.event == "audio"]

    @property
    def audio(self) -> bytes:
        return b"".join(base64.b64decode(e.json()["audio"], validate=True) for e in self.audio_events)

    @property
    def done(self) -> bool:
        """The stream ended with the done frame: no ``event:`` line, ``"done": true``."""
        return bool(self.events) and self.events[-1].event == "message" and self.events[-1].json().get("done") is True


def live(base_url: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> LiveResult:
    """POST to the live route and parse the stream with httpx_sse (events with no data skipped)."""
    with httpx.Client(base_url=base_url, headers=AUTH if headers is None else headers, timeout=30) as client:
        with httpx_sse.connect_sse(client, "POST", LIVE, json=BODY if body is None else body) as source:
            response = source.response
            result = LiveResult(response.status_code, response.headers)
            if response.status_code != 200:
                response.read()
                result.error_body = response.json()
                return result
            result.events = [e for e in source.iter_sse() if e.data != ""]
            return result


def live_raw(base_url: str, body: dict[str, Any] | None = None) -> LiveResult:
    """POST to the live route and keep the body as the network delivered it (no SSE parsing)."""
    with httpx.Client(base_url=base_url, headers=AUTH, timeout=30) as client:
        with client.stream("POST", LIVE, json=BODY if body is None else body) as response:
            return LiveResult(response.status_code, response.headers, raw_chunks=list(response.iter_raw()))


def expected_pcm(**body: Any) -> bytes:
    """The s16le bytes the server's synthetic voice makes for ``body`` (over BODY's defaults)."""
    request = parse_request({**BODY, **body}, voices=CATALOG)
    return SyntheticEngine().synthesize(request).astype("<i2").tobytes()


def as_int16(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2")


def tts_error(response: httpx.Response) -> dict[str, Any]:
    """The TtsError JSON of an error answer (asserting its shape)."""
    payload = json.loads(response.content)
    assert set(payload) == {"error", "message"}, payload
    assert isinstance(payload["error"], str) and isinstance(payload["message"], str)
    return payload


def validation_issues(response: httpx.Response) -> list[dict[str, Any]]:
    """The Zod-style issues of a 400 (asserting the live API's list shape)."""
    payload = json.loads(response.content)
    assert set(payload) == {"error"} and isinstance(payload["error"], list) and payload["error"], payload
    for issue in payload["error"]:
        assert {"code", "path", "message"} <= set(issue), issue
        assert isinstance(issue["path"], list) and isinstance(issue["message"], str)
    return payload["error"]
