"""The streaming audio meter on synthetic signals: levels, silences and clipping, however the chunks fall."""

from __future__ import annotations

import numpy as np
import pytest

from batchtts.audio import AudioSink
from batchtts.audio.meter import SILENCE_DBFS, AudioMeter, dbfs

RATE = 16000


def tone(seconds: float, amplitude: float = 0.5, hz: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return np.round(amplitude * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * RATE), dtype=np.int16)


def measure(samples: np.ndarray, chunk: int | None = None, **kwargs: float):
    meter = AudioMeter(RATE, **kwargs)
    data = samples.astype("<i2").tobytes()
    step = chunk or len(data) or 1
    for start in range(0, len(data), step):
        meter.feed_pcm16(data[start : start + step])
    return meter.levels()


def test_a_tone_between_silences():
    signal = np.concatenate([silence(0.3), tone(1.0), silence(0.75), tone(0.5), silence(0.2)])
    levels = measure(signal)
    assert levels.samples == len(signal) and levels.seconds == pytest.approx(2.75)
    assert levels.leading_silence_s == pytest.approx(0.3, abs=0.011)
    assert levels.trailing_silence_s == pytest.approx(0.2, abs=0.011)
    assert levels.longest_silence_s == pytest.approx(0.75, abs=0.011)
    assert levels.peak_dbfs == pytest.approx(20 * np.log10(0.5), abs=0.01)
    # RMS of a sine is its peak / sqrt(2), over 1.5 s of tone in 2.75 s.
    expected_rms = 0.5 / np.sqrt(2) * np.sqrt(1.5 / 2.75)
    assert levels.rms_dbfs == pytest.approx(20 * np.log10(expected_rms), abs=0.05)
    assert levels.clipped_share == 0.0 and not levels.silent


@pytest.mark.parametrize("chunk", [1, 3, 101, 4800, 10**6])
def test_the_chunking_does_not_change_the_levels(chunk):
    """Odd byte boundaries split samples; windows straddle chunks: the levels are the same."""
    signal = np.concatenate([silence(0.123), tone(0.4), silence(0.377), tone(0.3, 0.1), silence(0.05)])
    assert measure(signal, chunk) == measure(signal)


def test_digital_silence_is_silent():
    levels = measure(silence(1.5))
    assert levels.silent
    assert levels.peak_dbfs == SILENCE_DBFS and levels.rms_dbfs == SILENCE_DBFS
    assert levels.leading_silence_s == levels.trailing_silence_s == 1.5
    assert levels.longest_silence_s == 0.0


def test_sound_below_the_floor_is_silence():
    quiet = tone(1.0, amplitude=10 ** (-60 / 20))  # -60 dBFS
    assert measure(quiet).silent
    assert not measure(quiet, floor_dbfs=-70.0).silent


def test_clipped_samples_are_counted():
    loud = np.clip(tone(1.0).astype(np.int32) * 4, -32768, 32767).astype(np.int16)
    levels = measure(loud)
    share = np.count_nonzero(np.abs(loud.astype(np.int32)) >= 32767) / len(loud)
    assert levels.clipped_share == pytest.approx(share) and share > 0.3
    assert levels.peak_dbfs == pytest.approx(0.0, abs=0.001)


def test_empty_audio():
    levels = AudioMeter(RATE).levels()
    assert levels.samples == 0 and levels.silent and levels.rms_dbfs == SILENCE_DBFS


def test_dbfs():
    assert dbfs(32768) == 0.0
    assert dbfs(0) == SILENCE_DBFS
    assert dbfs(32768 / 10) == pytest.approx(-20.0)


@pytest.mark.parametrize(
    ("output_format", "file_format"), [("pcm", "wav"), ("pcm", "raw"), ("ulaw", "wav"), ("pcm", "flac")]
)
def test_the_sink_measures_what_it_writes(tmp_path, output_format, file_format):
    signal = np.concatenate([silence(0.2), tone(0.5), silence(0.1)])
    sink = AudioSink(tmp_path / "x", output_format=output_format, sample_rate=RATE, file_format=file_format,
                     measure_floor=-50.0)  # fmt: skip
    if output_format == "ulaw":
        from batchtts.server.audio import encode

        data = encode(signal, RATE, "ulaw")
    else:
        data = signal.astype("<i2").tobytes()
    for start in range(0, len(data), 333):
        sink.write(data[start : start + 333])
    sink.commit()
    levels = sink.levels
    assert levels is not None and levels.samples == len(signal)
    assert levels.leading_silence_s == pytest.approx(0.2, abs=0.011)
    assert levels.trailing_silence_s == pytest.approx(0.1, abs=0.011)
    assert levels.peak_dbfs == pytest.approx(20 * np.log10(0.5), abs=0.3)  # mu-law rounds


def test_the_sink_measures_nothing_unless_asked_or_for_mp3(tmp_path):
    assert AudioSink(tmp_path / "a", output_format="pcm", sample_rate=RATE).levels is None
    mp3 = AudioSink(tmp_path / "b", output_format="mp3", sample_rate=RATE, measure_floor=-50.0)
    assert mp3.levels is None
