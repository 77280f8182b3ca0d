"""Levels of one take, measured on the samples as they stream in: peak, RMS, clipping, silences.

The sink hands every chunk of 16-bit samples to an :class:`AudioMeter` on its
way to the file, so the checks cost a few numpy reductions per chunk and never
a second read of the file. Silence is judged over short windows (10 ms): a
window is *sound* when any of its samples rises above the floor (``-50 dBFS``
by default), so the leading and trailing silences, and the longest silence
inside the audio, are whole windows of samples at or below it. What the
levels mean for a row (its flags) is decided by :mod:`batchtts.job.qa`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

#: Full scale of 16-bit samples: 0 dBFS.
FULL_SCALE = 32768.0
#: A sample at or beyond this magnitude counts as clipped (the int16 limits).
CLIP_LEVEL = 32767
#: dBFS reported for digital silence (the log of zero has no value).
SILENCE_DBFS = -120.0
DEFAULT_FLOOR_DBFS = -50.0
WINDOW_SECONDS = 0.010


def dbfs(amplitude: float) -> float:
    """``amplitude`` (in sample units) in dBFS, :data:`SILENCE_DBFS` at the lowest."""
    if amplitude <= 0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 20.0 * math.log10(amplitude / FULL_SCALE))


@dataclass(frozen=True, slots=True)
class AudioLevels:
    """What one take's samples measured."""

    samples: int
    sample_rate: int
    peak_dbfs: float
    rms_dbfs: float
    clipped_share: float  # of the samples, at full scale
    leading_silence_s: float
    trailing_silence_s: float
    longest_silence_s: float  # the longest silence between two sounds
    #: No window rose above the floor.
    silent: bool

    @property
    def seconds(self) -> float:
        return self.samples / self.sample_rate if self.sample_rate else 0.0


class AudioMeter:
    """Streaming levels of int16 mono samples: feed chunks in order, then :meth:`levels`.

    Memory is one window of samples (kept across chunks) and a few counters.
    """

    def __init__(
        self, sample_rate: int, *, floor_dbfs: float = DEFAULT_FLOOR_DBFS, window_seconds: float = WINDOW_SECONDS
    ) -> None:
        import numpy as np

        self.sample_rate = sample_rate
        self.window = max(1, round(sample_rate * window_seconds))
        #: A sample louder than this (in sample units) is sound.
        self._threshold = int(FULL_SCALE * 10.0 ** (floor_dbfs / 20.0))
        self._count = 0
        self._sum_squares = 0.0
        self._peak = 0
        self._clipped = 0
        self._carry = b""  # an odd byte waiting for its sample's other half
        self._pending = np.empty(0, dtype=np.int16)  # samples short of a whole window
        self._windows = 0  # whole windows judged
        self._first_sound: int | None = None  # window index
        self._last_sound = -1
        self._longest_gap = 0  # windows

    def feed_pcm16(self, data: bytes | memoryview) -> None:
        """Little-endian 16-bit samples; a chunk may end mid-sample."""
        import numpy as np

        if self._carry:
            data = self._carry + bytes(data)
        whole = len(data) & ~1
        self._carry = bytes(data[whole:])
        if whole:
            self.feed(np.frombuffer(data, dtype="<i2", count=whole // 2))

    def feed(self, samples: np.ndarray) -> None:
        """int16 samples, the next ones of the take."""
        import numpy as np

        count = len(samples)
        if not count:
            return
        self._count += count
        as_float = samples.astype(np.float64)
        self._sum_squares += float(np.dot(as_float, as_float))
        high, low = int(samples.max()), int(samples.min())
        self._peak = max(self._peak, high, -low)
        if high >= CLIP_LEVEL or low <= -CLIP_LEVEL:
            self._clipped += int(np.count_nonzero((samples >= CLIP_LEVEL) | (samples <= -CLIP_LEVEL)))
        if self._pending.size:
            samples = np.concatenate((self._pending, samples))
        whole = len(samples) // self.window * self.window
        if whole:
            self._judge(samples[:whole].reshape(-1, self.window))
        self._pending = samples[whole:].copy()

    def _judge(self, windows: np.ndarray) -> None:
        """Note which of these consecutive windows are sound, and the silences between them."""
        import numpy as np

        threshold = self._threshold
        sound = np.flatnonzero((windows.max(axis=1) > threshold) | (windows.min(axis=1) < -threshold))
        base = self._windows
        self._windows += len(windows)
        if not len(sound):
            return
        first, last = base + int(sound[0]), base + int(sound[-1])
        if self._first_sound is None:
            self._first_sound = first
        else:
            self._longest_gap = max(self._longest_gap, first - self._last_sound - 1)
        if len(sound) > 1:
            self._longest_gap = max(self._longest_gap, int(np.diff(sound).max()) - 1)
        self._last_sound = last

    def levels(self) -> AudioLevels:
        """The take's levels so far (the samples short of a window count as one last, shorter window)."""
        if self._pending.size:
            self._judge(self._pending.reshape(1, -1))
            self._pending = self._pending[:0]
        count, rate, window = self._count, self.sample_rate, self.window
        if self._first_sound is None:
            leading = trailing = count
            longest = 0
        else:
            leading = min(count, self._first_sound * window)
            trailing = max(0, count - (self._last_sound + 1) * window)
            longest = self._longest_gap * window
        return AudioLevels(
            samples=count,
            sample_rate=rate,
            peak_dbfs=round(dbfs(self._peak), 2),
            rms_dbfs=round(dbfs(math.sqrt(self._sum_squares / count)) if count else SILENCE_DBFS, 2),
            clipped_share=self._clipped / count if count else 0.0,
            leading_silence_s=round(leading / rate, 4),
            trailing_silence_s=round(trailing / rate, 4),
            longest_silence_s=round(longest / rate, 4),
            silent=self._first_sound is None,
        )
