"""The client reads the 2026 frames: ``done`` is on every frame and only ``done: true`` ends a stream."""

from __future__ import annotations

import anyio
import pytest

from batchtts.api.client import ApiKey, AttemptOutcome, WavesClient
from batchtts.api.request import TtsRequest
from batchtts.errors import StreamIncomplete
from tests.server_support import expected_pcm

TEXT = "A sentence long enough for many chunks of audio."


class Collect:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, chunk: bytes) -> None:
        self.data += chunk


def _synthesize(base_url: str) -> tuple[AttemptOutcome, bytes]:
    async def main() -> tuple[AttemptOutcome, bytes]:
        client = WavesClient(base_url, ApiKey("test-key"))
        sink = Collect()
        try:
            outcome = await client.synthesize(TtsRequest(text=TEXT, sample_rate=8000), sink)
        finally:
            await client.aclose()
        return outcome, bytes(sink.data)

    return anyio.run(main)


@pytest.mark.parametrize("styles", [(), ("seed",), ("multiline", "crlf", "split")])
def test_every_chunk_is_kept_until_done_true(local_server, styles):
    """Chunk frames say "done": false (and status 206): the stream goes on to the end frame."""
    server = local_server(sse_style=frozenset(styles))
    outcome, audio = _synthesize(server.base_url)
    assert audio == expected_pcm(text=TEXT, sample_rate=8000)
    assert outcome.audio_bytes == len(audio) and outcome.http_status == 200


@pytest.mark.parametrize(("fault", "message"), [("nodone", "without the done frame"), ("error-frame", "error frame")])
def test_a_stream_without_done_true_is_truncated(local_server, fault, message):
    server = local_server(faults={fault: 1.0})
    with pytest.raises(StreamIncomplete, match=message) as raised:
        _synthesize(server.base_url)
    if fault == "error-frame":
        assert "injected fault: error-frame" in raised.value.message
