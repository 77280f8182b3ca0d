"""The true-peak limiter of --loudness: the target reached under the ceiling, nothing changed where it is not needed.

Loudness and true peak are measured here with pyloudnorm and scipy's 4x
polyphase resampler on the whole file, not with the code under test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from batchtts.audio.limiter import PeakLimiter
from batchtts.audio.loudness import MAX_LIMITING_DB, normalise_join
from tests.audio.test_loudness import lufs, speechlike, true_peak_db, write_parts


def peaky(seconds: float, rate: int, *, seed: int = 3) -> np.ndarray:
    """Speech-like audio with a click a second: true peaks about 23 dB above its loudness (espeak: about 20)."""
    samples = speechlike(seconds, rate, level=0.1, seed=seed).astype(np.int32)
    click = (22000 * np.hanning(40) * np.sin(np.arange(40) * 0.9)).astype(np.int32)
    for start in np.random.default_rng(seed).integers(0, len(samples) - 40, size=int(seconds)):
        samples[start : start + 40] += click
    return np.clip(samples, -32768, 32767).astype(np.int16)


def limited(samples: np.ndarray, rate: int, block: int, *, gain_db: float, ceiling: float = -3.0) -> np.ndarray:
    limiter = PeakLimiter(rate, gain_db=gain_db, ceiling_dbtp=ceiling)
    out = [limiter.process(samples[start : start + block]) for start in range(0, len(samples), block)]
    return np.concatenate([*out, limiter.finish()])


def read(path: Path) -> np.ndarray:
    samples, _ = soundfile.read(path, dtype="int16")
    return samples


@pytest.mark.parametrize("file_format", ["wav", "flac"])
@pytest.mark.parametrize("target", [-18.0, -20.0])
def test_a_peaky_chapter_reaches_the_target_with_its_true_peak_under_the_ceiling(tmp_path, file_format, target):
    rate = 22050
    sources = write_parts(tmp_path, rate, peaky(12, rate), peaky(9, rate, seed=8))
    final = tmp_path / f"ch.{file_format}"
    joined, figures = normalise_join(
        sources, final, target_lufs=target, ceiling_dbtp=-3.0, file_format=file_format, gap_ms=400,
        room_tone=(0.75, 2.0), block_frames=4096,
    )  # fmt: skip
    samples = read(final)
    assert len(samples) == joined.spans[-1][1] + 2 * rate  # the look-ahead lost no sample
    # Gain alone would have been held back by the peaks (the old behaviour, and --no-limiter's).
    assert figures.true_peak_before_dbtp is not None and figures.before_lufs is not None
    assert figures.true_peak_before_dbtp + (target - figures.before_lufs) > -3.0 + 3
    assert abs(lufs(samples, rate) - target) <= 0.5
    assert true_peak_db(samples) <= -3.0
    assert figures.after_lufs == pytest.approx(lufs(samples, rate), abs=0.01)
    assert figures.true_peak_after_dbtp == pytest.approx(true_peak_db(samples), abs=0.01)
    assert not figures.limited_by_peak
    assert 0 < figures.limited_samples_share < 0.5 and 3 < figures.max_gain_reduction_db <= MAX_LIMITING_DB
    # Room tone stays silence.
    assert not samples[: int(0.75 * rate)].any() and not samples[-2 * rate :].any()


def test_without_the_limiter_the_gain_is_reduced_as_before(tmp_path):
    rate = 22050
    sources = write_parts(tmp_path, rate, peaky(10, rate))
    _joined, figures = normalise_join(sources, tmp_path / "ch.wav", target_lufs=-18, ceiling_dbtp=-3, limiter=False)
    samples = read(tmp_path / "ch.wav")
    assert figures.limited_by_peak and lufs(samples, rate) < -20.0
    assert figures.limited_samples_share == 0 and figures.max_gain_reduction_db == 0
    assert true_peak_db(samples) == pytest.approx(-3.0, abs=0.05)


def test_a_chapter_the_gain_alone_fits_is_the_same_bytes_with_or_without_the_limiter(tmp_path):
    rate = 24000
    sources = write_parts(tmp_path, rate, speechlike(4, rate, level=0.05), speechlike(3, rate, level=0.08, seed=5))
    on, off = tmp_path / "on.flac", tmp_path / "off.flac"
    _, with_limiter = normalise_join(sources, on, target_lufs=-20, ceiling_dbtp=-3, file_format="flac")
    _, without = normalise_join(sources, off, target_lufs=-20, ceiling_dbtp=-3, file_format="flac", limiter=False)
    assert np.array_equal(read(on), read(off)) and len(read(on)) == 7 * rate
    assert with_limiter == without and with_limiter.limited_samples_share == 0


def test_the_limiter_changes_nothing_where_no_peak_needs_it():
    rate = 16000
    quiet = speechlike(5, rate, level=0.05)
    assert np.array_equal(
        limited(quiet, rate, 3000, gain_db=2.5), np.clip(np.rint(quiet * 10 ** (2.5 / 20)), -32768, 32767)
    )
    # One loud burst: far from it (beyond the look-ahead and the release) the output is the gain alone.
    loud = quiet.copy()
    loud[2 * rate : 2 * rate + 100] = 30000
    out = limited(loud, rate, 3000, gain_db=2.5)
    gain_only = np.clip(np.rint(loud * 10 ** (2.5 / 20)), -32768, 32767)
    assert np.array_equal(out[: 2 * rate - 100], gain_only[: 2 * rate - 100])
    assert np.array_equal(out[3 * rate :], gain_only[3 * rate :])
    assert not np.array_equal(out[2 * rate : 2 * rate + 100], gain_only[2 * rate : 2 * rate + 100])
    assert true_peak_db(out) <= -3.0


@pytest.mark.parametrize("rate", [8000, 22050, 44100])
def test_block_boundaries_do_not_change_the_output(rate):
    samples = peaky(6, rate)
    reference = limited(samples, rate, 65536, gain_db=9.0)
    assert len(reference) == len(samples) and true_peak_db(reference) <= -3.0
    for block in (97, 4096, 10007):
        assert np.array_equal(limited(samples, rate, block, gain_db=9.0), reference), block
    short = samples[: rate // 2]  # a sample at a time, on a shorter piece (a loop per sample is slow)
    assert np.array_equal(limited(short, rate, 1, gain_db=9.0), limited(short, rate, 999, gain_db=9.0))


def test_the_joined_file_is_the_same_for_any_block_size(tmp_path):
    rate = 22050
    sources = write_parts(tmp_path, rate, peaky(5, rate), peaky(4, rate, seed=4))
    outputs = []
    for block in (1000, 4096, 65536):
        final = tmp_path / f"ch{block}.wav"
        _, figures = normalise_join(sources, final, target_lufs=-18, ceiling_dbtp=-3, gap_ms=250, block_frames=block)
        outputs.append((read(final), figures))
    assert all(np.array_equal(outputs[0][0], samples) for samples, _ in outputs[1:])
    assert all(figures == outputs[0][1] for _, figures in outputs[1:])


def test_a_target_that_needs_more_than_the_limiter_may_take_is_reduced_and_said(tmp_path):
    rate = 16000
    sources = write_parts(tmp_path, rate, peaky(8, rate))
    _joined, figures = normalise_join(sources, tmp_path / "ch.wav", target_lufs=-3, ceiling_dbtp=-3)
    samples = read(tmp_path / "ch.wav")
    assert figures.limited_by_peak and figures.after_lufs is not None and figures.after_lufs < -4
    assert MAX_LIMITING_DB - 0.5 < figures.max_gain_reduction_db <= MAX_LIMITING_DB
    assert true_peak_db(samples) <= -3.0


def test_only_no_limiter_changes_the_rows_fingerprints():
    from batchtts.job.shaping.options import ShapeOptions

    # Chapters made before the limiter existed keep their fingerprints (a rerun sends nothing for them).
    assert ShapeOptions(group_by="chapter", loudness=-18).file_options() == {"loudness": -18, "peak": -3.0}
    off = ShapeOptions(group_by="chapter", loudness=-18, limiter=False).file_options()
    assert off == {"loudness": -18, "peak": -3.0, "limiter": False}
    assert ShapeOptions(group_by="chapter", limiter=False).file_options() == {}
