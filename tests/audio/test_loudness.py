"""Loudness: the streamed BS.1770 meter against pyloudnorm, the gain under the true-peak ceiling, the join."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile
from scipy.signal import resample_poly

from batchtts.audio.join import join_files
from batchtts.audio.loudness import LoudnessMeter, normalise_join, plan_gain


def speechlike(seconds: float, rate: int, *, level: float = 0.2, seed: int = 3) -> np.ndarray:
    """Bursts of tones and noise with pauses: a loudness that gating matters for."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    envelope = (np.sin(2 * np.pi * 0.7 * t) > -0.2).astype(np.float64)
    tone = np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 1330 * t)
    signal = level * envelope * (0.6 * tone + 0.3 * rng.standard_normal(n))
    return np.clip(np.round(signal * 32767), -32768, 32767).astype(np.int16)


def true_peak_db(samples: np.ndarray) -> float:
    floats = samples.astype(np.float64) / 32768.0
    return 20 * math.log10(float(np.max(np.abs(resample_poly(floats, 4, 1)))))


def lufs(samples: np.ndarray, rate: int) -> float:
    return pyloudnorm.Meter(rate).integrated_loudness(samples.astype(np.float64) / 32768.0)


@pytest.mark.parametrize("rate", [8000, 22050, 44100])
@pytest.mark.parametrize("block", [997, 65536])
def test_the_streamed_meter_agrees_with_pyloudnorm_and_the_whole_file_true_peak(rate, block):
    samples = speechlike(6.3, rate)
    meter = LoudnessMeter(rate)
    for start in range(0, len(samples), block):
        meter.add(samples[start : start + block])
    assert meter.integrated() == pytest.approx(lufs(samples, rate), abs=0.01)
    assert 20 * math.log10(meter.true_peak) == pytest.approx(true_peak_db(samples), abs=0.01)


def test_silence_and_a_too_short_file_have_no_loudness_and_get_no_gain():
    meter = LoudnessMeter(16000)
    meter.add(np.zeros(16000, dtype=np.int16))
    assert meter.integrated() == -math.inf
    short = LoudnessMeter(16000)
    short.add(speechlike(0.3, 16000))
    assert short.integrated() == -math.inf
    assert plan_gain(-math.inf, 0.5, target=-18, ceiling=-3) == (0.0, False)


def test_the_gain_is_reduced_rather_than_pass_the_true_peak_ceiling():
    assert plan_gain(-24.0, 10 ** (-12 / 20), target=-18, ceiling=-3) == pytest.approx((6.0, False))
    gain, limited = plan_gain(-24.0, 10 ** (-6 / 20), target=-18, ceiling=-3)
    assert limited and gain == pytest.approx(3.0)


def write_parts(folder: Path, rate: int, *arrays: np.ndarray) -> list[Path]:
    paths = []
    for index, array in enumerate(arrays):
        path = folder / f"part{index}.wav"
        soundfile.write(path, array, rate, subtype="PCM_16")
        paths.append(path)
    return paths


@pytest.mark.parametrize("file_format", ["wav", "flac", "raw"])
@pytest.mark.parametrize("target", [-23.0, -18.0])
def test_a_normalised_join_meets_the_target_within_half_a_lu_under_the_ceiling(tmp_path, file_format, target):
    rate = 24000
    sources = write_parts(tmp_path, rate, speechlike(4, rate, level=0.05), speechlike(3, rate, level=0.08, seed=5))
    final = tmp_path / "out" / f"ch.{'pcm' if file_format == 'raw' else file_format}"
    joined, figures = normalise_join(
        sources, final, target_lufs=target, ceiling_dbtp=-3.0, file_format=file_format, gap_ms=300,
        room_tone=(0.5, 1.0), block_frames=5000,
    )  # fmt: skip
    if file_format == "raw":
        samples = np.fromfile(final, dtype="<i2")
    else:
        samples, _ = soundfile.read(final, dtype="int16")
    assert abs(lufs(samples, rate) - target) <= 0.5
    assert figures.after_lufs == pytest.approx(lufs(samples, rate), abs=0.01)
    assert true_peak_db(samples) <= -3.0 + 0.01
    assert not figures.limited_by_peak
    assert figures.before_lufs is not None and figures.gain_db == pytest.approx(target - figures.before_lufs, abs=0.01)
    # The room tone and the gap are silence still; the spans moved by the head.
    assert not samples[: rate // 2].any() and not samples[-rate:].any()
    assert joined.spans[0] == (rate // 2, rate // 2 + 4 * rate)


def test_without_the_limiter_a_join_too_peaky_for_the_target_is_left_quieter_with_its_true_peak_at_the_ceiling(
    tmp_path,
):
    rate = 16000
    spiky = speechlike(5, rate, level=0.02)
    spiky[rate::rate] = 30000  # a few clicks: peaks far above the loudness
    sources = write_parts(tmp_path, rate, spiky)
    final = tmp_path / "ch.wav"
    _joined, figures = normalise_join(sources, final, target_lufs=-16.0, ceiling_dbtp=-3.0, limiter=False)
    samples, _ = soundfile.read(final, dtype="int16")
    assert figures.limited_by_peak
    assert figures.after_lufs is not None and figures.after_lufs < -16.5
    assert true_peak_db(samples) == pytest.approx(-3.0, abs=0.05)


def test_without_loudness_the_join_with_room_tone_is_still_byte_exact(tmp_path):
    rate = 16000
    audio = speechlike(1, rate)
    sources = write_parts(tmp_path, rate, audio)
    joined = join_files(sources, tmp_path / "j.wav", room_tone=(0.25, 0.5))
    samples, _ = soundfile.read(tmp_path / "j.wav", dtype="int16")
    assert np.array_equal(samples, np.concatenate([np.zeros(4000, np.int16), audio, np.zeros(8000, np.int16)]))
    assert joined.spans == [(4000, 4000 + rate)]
