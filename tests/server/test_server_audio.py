"""The audio: deterministic, as long as the text says, shaped by speed and rate, tones not noise."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from batchtts.api.request import TtsRequest
from batchtts.server.synthetic import SLOT_SECONDS, SyntheticEngine, slot_samples
from batchtts.server.voices import CATALOG
from tests.server_support import BODY, as_int16, expected_pcm, live

ENGINE = SyntheticEngine()
LETTERS = "abcdefghij"  # ten characters, one slot each


def samples(text: str, **fields: object) -> np.ndarray:
    return ENGINE.synthesize(TtsRequest(text=text, **fields))  # type: ignore[arg-type]


def test_the_same_request_gives_the_same_audio_over_the_wire(server):
    body = {**BODY, "text": "Deterministic, every time."}
    first = live(server.base_url, body).audio
    again = live(server.base_url, {**body, "request_id": "other-id", "session_id": "s"}).audio
    assert first == again == expected_pcm(**body)
    assert live(server.base_url, {**body, "voice_id": "emily"}).audio != first
    assert live(server.base_url, {**body, "text": "Deterministic, every tima."}).audio != first


def test_audio_is_16_bit_mono_at_the_requested_rate(server):
    for rate in (8000, 16000, 24000, 44100):
        audio = live(server.base_url, {**BODY, "text": LETTERS, "sample_rate": rate}).audio
        assert len(audio) == 2 * len(LETTERS) * round(SLOT_SECONDS * rate)


@pytest.mark.parametrize("rate", [8000, 16000, 24000, 44100])
def test_duration_is_60_ms_a_character_at_any_rate(rate):
    for n in (1, 10, 100):
        audio = samples("x" * n, sample_rate=rate)
        assert audio.dtype == np.int16 and audio.ndim == 1
        assert len(audio) / rate == pytest.approx(n * SLOT_SECONDS, rel=1e-3)


def test_duration_grows_with_the_text():
    short, long = samples("Hello there."), samples("Hello there. " * 10)
    assert len(long) > 9 * len(short)
    assert len(samples("a b c")) == len(samples("abcde"))  # a space is a slot of silence
    assert len(samples("a, b")) > len(samples("a  b"))  # punctuation pauses longer
    assert len(samples("a. b")) > len(samples("a, b"))


@pytest.mark.parametrize("speed", [0.5, 0.8, 1.5, 2.0])
def test_speed_divides_the_duration(speed):
    normal, faster = samples(LETTERS * 5), samples(LETTERS * 5, speed=speed)
    assert len(faster) == len(LETTERS) * 5 * slot_samples(44100, speed)
    assert len(normal) / len(faster) == pytest.approx(speed, rel=1e-3)


def test_it_is_tones_at_the_voices_pitch_not_noise():
    rate = 44100
    for voice in ("magnus", "emily"):
        audio = samples("o", voice_id=voice, sample_rate=rate).astype(np.float64)
        spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio)), n=1 << 17))
        peak_hz = np.argmax(spectrum) * rate / (1 << 17)
        pitch = CATALOG[voice].pitch_hz
        scale = [pitch * 2 ** (s / 12) for s in (0, 2, 4, 7, 9, 12, 14, 16, 19, 21)]
        assert min(abs(peak_hz - f) / f for f in scale) < 0.02, (voice, peak_hz)
        # Energy sits at the fundamental and a few harmonics: a clean tone, unlike noise.
        top = np.sort(spectrum)[::-1]
        assert top[:200].sum() > 0.5 * spectrum.sum()


def test_every_character_fades_in_and_out_without_clicks():
    audio = samples("abc", sample_rate=16000).astype(np.int32)
    slot = slot_samples(16000, 1.0)
    peak = np.abs(audio).max()
    assert peak > 3000  # audible
    for start in range(0, len(audio), slot):
        edges = np.abs(audio[[start, start + slot - 1]])
        assert edges.max() < 0.02 * peak
    assert not samples("   ", sample_rate=8000).any()  # spaces are silence


def test_the_engine_is_safe_from_many_threads():
    requests = [TtsRequest(text=f"Thread {i % 3} speaking, clearly.", sample_rate=16000) for i in range(24)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(ENGINE.synthesize, requests))
    for request, audio in zip(requests, results, strict=True):
        assert np.array_equal(audio, ENGINE.synthesize(request))


def test_non_latin_text_gets_audio_too():
    audio = samples("नमस्ते दुनिया।", voice_id="priya", sample_rate=16000)
    assert len(audio) > 0 and np.abs(audio).max() > 1000


def test_first_audio_waits_for_the_latency(local_server):
    # A lower bound only: the server must sleep at least this long, however fast the machine.
    server = local_server(latency=0.3)
    start = time.monotonic()
    result = live(server.base_url)
    assert time.monotonic() - start >= 0.3
    assert result.audio == expected_pcm()


def test_chunks_are_paced_by_the_realtime_factor(local_server):
    # 1.26 s of audio at 5x real time cannot arrive in under ~0.25 s (lower bound only).
    server = local_server(realtime_factor=5.0)
    start = time.monotonic()
    result = live(server.base_url)
    duration = len(result.audio) / 2 / 8000
    assert time.monotonic() - start >= (duration - 0.1) / 5 - 0.02
    assert as_int16(result.audio).size == len(expected_pcm()) // 2
