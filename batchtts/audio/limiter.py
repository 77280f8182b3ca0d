"""A look-ahead true-peak limiter for ``--loudness``: the gain to the target, the peaks held under the ceiling.

Speech with 20 dB between its loudness and its peaks (espeak, many narrators)
cannot reach -18 LUFS under a -3 dBTP ceiling by one gain. The limiter lowers
the gain only around the peaks that would pass the ceiling, streamed block by
block (bounded memory, state carried across blocks), with numpy and
``scipy.ndimage`` over whole blocks rather than a loop per sample:

1. the peak of every input sample, 4x oversampled with
   ``scipy.signal.resample_poly`` (the true peak, as the meter measures it),
   and the reduction (dB) that sample needs to stay ``SAFETY_DB`` under the ceiling;
2. that reduction held over the interpolation filter's reach and the attack
   (a sliding max, ``maximum_filter1d``), so the gain is already down, and flat,
   wherever a sample could shape an oversampled peak;
3. a moving average of ``ATTACK_MS``: the gain ramps down within the look-ahead
   instead of stepping (a step would click);
4. the release: the reduction falls back at ``RELEASE_DB_PER_S`` (a linear
   ramp in dB, 6 dB in 100 ms), computed for a whole block at once as a
   running maximum (``np.maximum.accumulate``) of ``reduction + rate * index``.

The output is the input delayed by the look-ahead; :meth:`PeakLimiter.finish`
returns the last samples, so the file has exactly the samples it was given.
Where no sample needs a reduction the output is the gain alone, to the bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

#: Oversampling of the true peak, and input samples of context on each side (resample_poly's
#: filter reaches 10 input samples either way at 4x): as :mod:`batchtts.audio.loudness` measures it.
OVERSAMPLING = 4
_CONTEXT = 16
#: The reach, in input samples, over which the gain must be flat around a peak so the
#: oversampled peak of the output is the gain times the input's.
_REACH = 12
ATTACK_MS = 1.5
RELEASE_DB_PER_S = 60.0
#: The limiter aims this far under the ceiling (int16 rounding, a gain that is flat only nearly).
SAFETY_DB = 0.05
_FULL_SCALE = 32768.0
#: Reductions below this are none (a millionth of a dB changes no int16 sample).
_NEGLIGIBLE_DB = 1e-6


class _Sliding:
    """A stage that needs ``left`` samples before and ``right`` after each one it outputs.

    Rows of a 2-D array travel together (the samples and what is computed from them);
    ``compute`` maps the whole window to the same number of columns, and only the
    columns with all their context are kept, so blocks of any size give the same result.
    """

    def __init__(
        self, rows: int, left: int, right: int, compute: Callable[[np.ndarray], np.ndarray], *, rows_out: int = 2
    ) -> None:
        self._left, self._right, self._compute, self._rows_out = left, right, compute, rows_out
        self._tail = np.zeros((rows, left))  # the context before the first sample: silence

    def push(self, block: np.ndarray) -> np.ndarray:
        data = np.concatenate((self._tail, block), axis=1) if self._tail.shape[1] else block
        ready = data.shape[1] - self._left - self._right
        if ready <= 0:
            self._tail = data
            return np.zeros((self._rows_out, 0))
        out = self._compute(data)[:, self._left : self._left + ready]
        self._tail = data[:, data.shape[1] - self._left - self._right :]
        return out


def _peaks(data: np.ndarray) -> np.ndarray:
    """[samples] -> [samples, peak of each sample oversampled (it and the three points after it)]."""
    from scipy.signal import resample_poly

    samples = data[0]
    upsampled = np.abs(resample_poly(samples, OVERSAMPLING, 1))
    peaks = upsampled[0::OVERSAMPLING].copy()
    for phase in range(1, OVERSAMPLING):  # faster than a max along a short axis
        np.maximum(peaks, upsampled[phase::OVERSAMPLING], out=peaks)
    return np.vstack((samples, peaks))


class TruePeaks:
    """Stage 1, shared by limiters that differ only in gain: each sample with its oversampled peak."""

    delay = _CONTEXT

    def __init__(self) -> None:
        self._stage = _Sliding(1, _CONTEXT, _CONTEXT, _peaks)

    def push(self, samples: np.ndarray) -> np.ndarray:
        return self._stage.push(samples.reshape(1, -1))


class Reduction:
    """Stages 2 to 4 for one gain: [samples, peaks] -> [samples, gain reduction in dB]."""

    def __init__(self, rate: int, *, gain_db: float, ceiling_dbtp: float) -> None:
        from scipy.ndimage import maximum_filter1d, uniform_filter1d

        half = max(1, round(ATTACK_MS / 1000 * rate / 2))
        hold = _REACH + half
        # The peak (int16 scale) above which a sample needs a reduction, before the gain.
        self._threshold_db = ceiling_dbtp - SAFETY_DB - gain_db + 20 * math.log10(_FULL_SCALE)
        self._hold = _Sliding(2, hold, hold, lambda d: np.vstack((d[0], maximum_filter1d(d[1], 2 * hold + 1))))
        self._smooth = _Sliding(2, half, half, lambda d: np.vstack((d[0], uniform_filter1d(d[1], 2 * half + 1))))
        self._release_per_sample = RELEASE_DB_PER_S / rate
        self._last = 0.0  # the reduction of the last sample out
        self.delay = hold + half

    def push(self, peaks: np.ndarray) -> np.ndarray:
        need = np.zeros(peaks.shape[1])
        over = peaks[1] > 0
        with np.errstate(divide="ignore"):
            need[over] = np.maximum(20 * np.log10(peaks[1][over]) - self._threshold_db, 0.0)
        smoothed = self._smooth.push(self._hold.push(np.vstack((peaks[0], need))))
        # The moving average's running sum leaves residues (1e-15 dB) that depend on where a block starts.
        smoothed[1][smoothed[1] < _NEGLIGIBLE_DB] = 0.0
        return np.vstack((smoothed[0], self._release(smoothed[1])))

    def _release(self, reduction: np.ndarray) -> np.ndarray:
        """Never falling faster than the release rate: max over j <= i of reduction[j] - rate * (i - j)."""
        if not len(reduction) or (self._last <= 0.0 and not reduction.any()):
            return reduction
        ramp = self._release_per_sample * np.arange(1, len(reduction) + 1)
        held = np.maximum.accumulate(np.maximum(reduction + ramp, self._last))
        out = np.maximum(held - ramp, 0.0)
        self._last = float(out[-1])
        return out


class PeakLimiter:
    """Gain, then the limiter: int16 blocks in, int16 blocks out (delayed), the same samples in all.

    Limiters that differ only in gain may share one :class:`TruePeaks` (the
    costly part) and be fed its rows with :meth:`limit`. After :meth:`finish`:
    ``limited_samples`` (whose gain was lowered) and ``max_reduction_db``.
    """

    def __init__(self, rate: int, *, gain_db: float, ceiling_dbtp: float) -> None:
        self._factor = 10.0 ** (gain_db / 20.0)
        self._peaks = TruePeaks()
        self._reduction = Reduction(rate, gain_db=gain_db, ceiling_dbtp=ceiling_dbtp)
        self.delay = self._peaks.delay + self._reduction.delay
        self._taken = 0
        self._given = 0
        self.limited_samples = 0
        self.max_reduction_db = 0.0

    def process(self, block: np.ndarray) -> np.ndarray:
        """The next samples out (fewer than in at first: the look-ahead)."""
        return self.limit(self._peaks.push(block.astype(np.float64)), taken=len(block))

    def finish(self) -> np.ndarray:
        """The samples still held back by the look-ahead (as if silence followed)."""
        return self.limit(self._peaks.push(np.zeros(self.delay)), taken=0, last=True)

    def limit(self, peaks: np.ndarray, *, taken: int, last: bool = False) -> np.ndarray:
        """The output for rows of a :class:`TruePeaks` fed ``taken`` more samples; ``last``: they were the padding."""
        self._taken += taken
        held_back = self._taken - self._given
        samples, reduction = self._reduction.push(peaks)
        if last:
            samples, reduction = samples[:held_back], reduction[:held_back]
        out = samples * self._factor
        lowered = reduction > 0
        if lowered.any():
            self.limited_samples += int(np.count_nonzero(lowered))
            self.max_reduction_db = max(self.max_reduction_db, float(reduction.max()))
            out[lowered] *= 10.0 ** (-reduction[lowered] / 20.0)
        self._given += len(out)
        return np.clip(np.rint(out), -32768, 32767).astype(np.int16)
