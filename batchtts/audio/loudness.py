"""Loudness of a joined file: measured (ITU-R BS.1770) and set once, by one gain, under a true-peak ceiling.

``--loudness -18 --peak -3`` makes every joined file (a chapter) read -18 LUFS
with no true peak above -3 dBTP. It is done while joining
(:func:`normalise_join`), in two streamed passes over the parts:

1. measure: the integrated loudness (BS.1770-4: K-weighting, 400 ms blocks
   every 100 ms, the -70 LUFS absolute and -10 LU relative gates) and the
   true peak (the largest sample of the audio oversampled 4x with
   ``scipy.signal.resample_poly``, BS.1770's method) of the audio as it will
   be joined;
2. write: the join again, every sample times one gain, measured again as it
   is written (the loudness "after" is of the samples in the file).

The gain is ``target - measured``. When that would push the true peak over
the ceiling, the look-ahead limiter (:mod:`batchtts.audio.limiter`, on by
default) lowers the gain around those peaks only, by at most
:data:`MAX_LIMITING_DB`. Limiting lowers the loudness a little (more where
more is limited), so the gain is *predicted* first, without writing:

2a. predict: one more streamed pass through the limiter at two gains (the
    target's, and :data:`PREDICT_STEP_DB` more), measuring what each would
    read; the oversampled peaks (the costly part) are computed once for both.
    The gain that reads the target is interpolated between them.

Predicting rather than correcting a written file means the file is written
once, by the same one streamed pass as without a limiter, and a correction
pass over a temporary file (decode, limit again, encode) is never needed; the
measure of what is written says how close it came (within 0.1 LU for speech).
Without the limiter (``--no-limiter``), or when the limiter would have to
take more than :data:`MAX_LIMITING_DB` off a peak, the gain is *reduced*
instead (``ceiling - true peak``, or as far as the limiter may go): the file
is left quieter than asked, and that is recorded (``limited_by_peak``) and
said in a warning, so a book can be checked (``batchtts check-audiobook``)
rather than silently squashed.

The K-weighting filters are pyloudnorm's (its ``IIRfilter`` with the
BS.1770 constants it uses for ``Meter(rate)``), run block by block with
``scipy.signal.lfilter``'s state, so memory stays at one block whatever the
chapter's length (pyloudnorm's meter wants the whole file in memory as
float64: 1.3 GB for an hour at 44.1 kHz); a test checks both agree.
Parts are never normalised: they stay as the API sent them, so a file made
again from them (a rerun, another ``--loudness``) is normalised exactly once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from batchtts.audio.join import BLOCK_FRAMES, Joined, join_files, joined_blocks, source_rate
from batchtts.audio.limiter import SAFETY_DB, PeakLimiter, TruePeaks

#: The install that brings pyloudnorm and scipy.
BOOK_EXTRA = "pip install 'batchtts[book]'"
#: BS.1770 gating.
_BLOCK_HOPS = 4  # a 400 ms block is four 100 ms hops (75% overlap)
_ABSOLUTE_GATE = -70.0
_RELATIVE_GATE = -10.0
#: True peak: oversampling, and input samples of context kept on each side of a block (the
#: polyphase filter reaches 10 input samples either way at 4x).
OVERSAMPLING = 4
_CONTEXT = 16
_FULL_SCALE = 32768.0
#: The most the limiter may take off a peak: more would be heard (pumping, squashed consonants).
MAX_LIMITING_DB = 12.0
#: The second gain the prediction tries, above the target's.
PREDICT_STEP_DB = 2.0


class MissingExtra(RuntimeError):
    """pyloudnorm or scipy is not installed: the message names the install."""


def require_book_extra(what: str = "--loudness") -> None:
    """Raise :class:`MissingExtra` (one line, with the install) when the ``book`` extra is missing."""
    try:
        import pyloudnorm  # noqa: F401
        import scipy.signal  # noqa: F401
    except ImportError as exc:
        raise MissingExtra(f"{what} needs pyloudnorm and scipy ({exc.name} is missing): {BOOK_EXTRA}") from None


def db(value: float) -> float:
    """20 log10(value), -inf for 0."""
    return 20.0 * math.log10(value) if value > 0 else -math.inf


class LoudnessMeter:
    """Integrated loudness (BS.1770-4, mono) and peaks of audio fed to it in blocks of int16 or float samples."""

    def __init__(self, rate: int, *, true_peak: bool = True) -> None:
        from pyloudnorm.iirfilter import IIRfilter

        self.rate = rate
        # pyloudnorm's K-weighting (Meter(rate, "K-weighting")): a high shelf, then a high pass.
        stages = [
            IIRfilter(4.0, 1 / math.sqrt(2), 1500.0, rate, "high_shelf"),
            IIRfilter(0.0, 0.5, 38.0, rate, "high_pass"),
        ]
        self._filters = [(stage.b, stage.a, float(stage.passband_gain)) for stage in stages]
        self._states = [np.zeros(max(len(a), len(b)) - 1) for b, a, _gain in self._filters]
        self._hop = max(1, round(rate / 10))
        self._carry = np.zeros(0)  # weighted samples not yet a whole hop
        self._hop_energy: list[np.ndarray] = []  # sum of squares of each 100 ms hop
        self.frames = 0
        self.sample_peak = 0.0
        self._true_peak = 0.0 if true_peak else None
        self._history = np.zeros(2 * _CONTEXT)

    def add(self, block: np.ndarray) -> None:
        """Feed the next samples (int16 are scaled to [-1, 1))."""
        from scipy.signal import lfilter

        samples = block.astype(np.float64) / _FULL_SCALE if block.dtype == np.int16 else block.astype(np.float64)
        if not len(samples):
            return
        self.frames += len(samples)
        self.sample_peak = max(self.sample_peak, float(np.max(np.abs(samples))))
        if self._true_peak is not None:
            self._true_peak = max(self._true_peak, self._oversampled_peak(samples))
        weighted = samples
        for index, (b, a, gain) in enumerate(self._filters):
            weighted, self._states[index] = lfilter(b, a, weighted, zi=self._states[index])
            weighted = weighted * gain if gain != 1.0 else weighted
        pending = np.concatenate((self._carry, weighted)) if len(self._carry) else weighted
        whole = len(pending) // self._hop * self._hop
        if whole:
            hops = pending[:whole].reshape(-1, self._hop)
            self._hop_energy.append(np.einsum("ij,ij->i", hops, hops))
        self._carry = pending[whole:].copy()

    def _oversampled_peak(self, samples: np.ndarray) -> float:
        """The largest |sample| of this block oversampled 4x, with the neighbours' context on both sides."""
        from scipy.signal import resample_poly

        extended = np.concatenate((self._history, samples))
        upsampled = resample_poly(extended, OVERSAMPLING, 1)
        # Inputs [len(history) - CONTEXT, len(extended) - CONTEXT): each sample once, with context around it.
        low, high = OVERSAMPLING * (len(self._history) - _CONTEXT), OVERSAMPLING * (len(extended) - _CONTEXT)
        self._history = extended[-2 * _CONTEXT :]
        window = upsampled[low:high]
        return float(np.max(np.abs(window))) if len(window) else 0.0

    @property
    def true_peak(self) -> float:
        """The 4x oversampled peak (linear), the last samples included; the sample peak without true_peak."""
        if self._true_peak is None:
            return self.sample_peak
        from scipy.signal import resample_poly

        tail = np.concatenate((self._history, np.zeros(_CONTEXT)))
        upsampled = resample_poly(tail, OVERSAMPLING, 1)[OVERSAMPLING * _CONTEXT : OVERSAMPLING * 2 * _CONTEXT]
        return max(self._true_peak, float(np.max(np.abs(upsampled))) if len(upsampled) else 0.0, self.sample_peak)

    def integrated(self) -> float:
        """Integrated loudness in LUFS; -inf for silence or less than one 400 ms block."""
        if not self._hop_energy:
            return -math.inf
        hops = np.concatenate(self._hop_energy)
        if len(hops) < _BLOCK_HOPS:
            return -math.inf
        cumulative = np.concatenate(([0.0], np.cumsum(hops)))
        blocks = (cumulative[_BLOCK_HOPS:] - cumulative[:-_BLOCK_HOPS]) / (_BLOCK_HOPS * self._hop)
        with np.errstate(divide="ignore"):
            loudness = -0.691 + 10.0 * np.log10(blocks)
        above = blocks[loudness >= _ABSOLUTE_GATE]
        if not len(above):
            return -math.inf
        relative = -0.691 + 10.0 * math.log10(float(np.mean(above))) + _RELATIVE_GATE
        gated = blocks[(loudness > relative) & (loudness > _ABSOLUTE_GATE)]
        if not len(gated):
            return -math.inf
        return -0.691 + 10.0 * math.log10(float(np.mean(gated)))


@dataclass(frozen=True, slots=True)
class LoudnessFigures:
    """What normalising one file did, as recorded in the journal, the chapters file and summary.json."""

    target_lufs: float
    ceiling_dbtp: float
    before_lufs: float | None  # None: silent (no 400 ms block above -70 LUFS)
    after_lufs: float | None
    gain_db: float
    true_peak_before_dbtp: float | None
    true_peak_after_dbtp: float | None  # measured with the limiter; else the true peak before plus the gain
    limited_by_peak: bool  # the gain was reduced: the file is quieter than the target
    #: The limiter: the share of the file's samples whose gain it lowered, and by how much at most.
    limited_samples_share: float = 0.0
    max_gain_reduction_db: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_gain(loudness: float, true_peak: float, *, target: float, ceiling: float) -> tuple[float, bool]:
    """(gain in dB, reduced for the peak?): ``target - loudness``, less when the true peak would pass ``ceiling``."""
    if not math.isfinite(loudness):
        return 0.0, False  # silence: nothing to bring up
    gain = target - loudness
    peak_db = db(true_peak)
    if math.isfinite(peak_db) and peak_db + gain > ceiling:
        return ceiling - peak_db, True
    return gain, False


def plan_limited_gain(loudness: float, true_peak: float, *, target: float, ceiling: float) -> tuple[float, bool]:
    """(gain in dB, reduced?) with the limiter: ``target - loudness``, less when it would limit > MAX_LIMITING_DB."""
    gain, most = target - loudness, _most_gain(true_peak, ceiling)
    return (most, True) if gain > most else (gain, False)


def _most_gain(true_peak: float, ceiling: float) -> float:
    """The gain at which the limiter takes MAX_LIMITING_DB off the highest peak (it aims SAFETY_DB under)."""
    return ceiling - SAFETY_DB + MAX_LIMITING_DB - db(true_peak)


def _finite(value: float, digits: int = 2) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


def normalise_join(
    sources: Sequence[Path],
    final_path: Path,
    *,
    target_lufs: float,
    ceiling_dbtp: float,
    file_format: str = "wav",
    gap_ms: int = 0,
    room_tone: tuple[float, float] = (0.0, 0.0),
    block_frames: int = BLOCK_FRAMES,
    limiter: bool = True,
) -> tuple[Joined, LoudnessFigures]:
    """Join ``sources`` into ``final_path`` (see :func:`~batchtts.audio.join.join_files`) at ``target_lufs``.

    The file is written once, already normalised, whole or not at all: there
    is never an unnormalised file under its name.
    """
    if not sources:
        from batchtts.audio.join import JoinError

        raise JoinError("nothing to join")
    rate = source_rate(sources[0])

    def blocks() -> Iterator[np.ndarray]:
        return joined_blocks(sources, rate, gap_ms=gap_ms, block_frames=block_frames, room_tone=room_tone)

    before = LoudnessMeter(rate)
    for block in blocks():
        before.add(block)
    loudness, true_peak = before.integrated(), before.true_peak
    gain_db, limited = plan_gain(loudness, true_peak, target=target_lufs, ceiling=ceiling_dbtp)
    peak_limiter = None
    if limited and limiter:
        gain_db, limited = _predicted_gain(blocks, rate, loudness, true_peak, target_lufs, ceiling_dbtp)
        peak_limiter = PeakLimiter(rate, gain_db=gain_db, ceiling_dbtp=ceiling_dbtp)
    after = LoudnessMeter(rate, true_peak=peak_limiter is not None)
    if peak_limiter is None:
        transform, finish = _gain(10.0 ** (gain_db / 20.0), after), None
    else:
        transform = partial(_limited, peak_limiter.process, meter=after)
        finish = partial(_limited, lambda _: peak_limiter.finish(), None, meter=after)
    joined = join_files(
        sources,
        final_path,
        file_format=file_format,
        gap_ms=gap_ms,
        block_frames=block_frames,
        room_tone=room_tone,
        transform=transform,
        finish=finish,
    )
    peak_db = db(true_peak)
    peak_after = db(after.true_peak) if peak_limiter is not None else peak_db + gain_db
    frames = max(1, after.frames)
    figures = LoudnessFigures(
        target_lufs=target_lufs,
        ceiling_dbtp=ceiling_dbtp,
        before_lufs=_finite(loudness),
        after_lufs=_finite(after.integrated()),
        gain_db=round(gain_db, 2),
        true_peak_before_dbtp=_finite(peak_db),
        true_peak_after_dbtp=_finite(peak_after),
        limited_by_peak=limited,
        limited_samples_share=round(peak_limiter.limited_samples / frames, 6) if peak_limiter else 0.0,
        max_gain_reduction_db=round(peak_limiter.max_reduction_db, 2) if peak_limiter else 0.0,
    )
    return joined, figures


def _predicted_gain(
    blocks: Callable[[], Iterable[np.ndarray]],
    rate: int,
    loudness: float,
    true_peak: float,
    target: float,
    ceiling: float,
) -> tuple[float, bool]:
    """(gain in dB, reduced?) that reads ``target`` once limited: two gains tried in one pass, interpolated."""
    low, reduced = plan_limited_gain(loudness, true_peak, target=target, ceiling=ceiling)
    most = _most_gain(true_peak, ceiling)
    if reduced:
        return low, True
    gains = (low, min(low + PREDICT_STEP_DB, most))
    if gains[1] <= gains[0]:
        return low, False
    peaks = TruePeaks()
    limiters = [PeakLimiter(rate, gain_db=gain, ceiling_dbtp=ceiling) for gain in gains]
    meters = [LoudnessMeter(rate, true_peak=False) for _ in gains]
    for block in blocks():
        rows = peaks.push(block.astype(np.float64))
        for peak_limiter, meter in zip(limiters, meters, strict=True):
            meter.add(peak_limiter.limit(rows, taken=len(block)))
    rows = peaks.push(np.zeros(limiters[0].delay))
    for peak_limiter, meter in zip(limiters, meters, strict=True):
        meter.add(peak_limiter.limit(rows, taken=0, last=True))
    reads = [meter.integrated() for meter in meters]
    if not all(math.isfinite(value) for value in reads) or reads[1] <= reads[0]:
        return low, False
    gain = gains[0] + (target - reads[0]) * (gains[1] - gains[0]) / (reads[1] - reads[0])
    if gain > most:
        return most, True
    return max(gain, low), False


def _limited(limit: Callable[[Any], np.ndarray], block: Any, *, meter: LoudnessMeter) -> np.ndarray:
    """The limiter's output for ``block``, measured by ``meter`` on its way to the file."""
    out = limit(block)
    meter.add(out)
    return out


def _gain(factor: float, meter: LoudnessMeter) -> Callable[[np.ndarray], np.ndarray]:
    """Each block times ``factor``, rounded to int16 (clipped, though the ceiling keeps it below full scale)."""

    def apply(block: np.ndarray) -> np.ndarray:
        if factor == 1.0:
            out = block
        else:
            out = np.clip(np.rint(block.astype(np.float64) * factor), -32768, 32767).astype(np.int16)
        meter.add(out)
        return out

    return apply
