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
#: Bytes of samples measured at a time (about 5.5 s at 24 kHz: most rows are measured in one go).
BATCH_BYTES = 1 << 18


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

    Chunks are gathered into batches of :data:`BATCH_BYTES` and measured a batch
    at a time: a handful of numpy passes per batch rather than per 100 ms chunk,
    so the checks stay a small share of a row's CPU. Memory is one batch.
    """

    def __init__(
        self, sample_rate: int, *, floor_dbfs: float = DEFAULT_FLOOR_DBFS, window_seconds: float = WINDOW_SECONDS
    ) -> None:
        self.sample_rate = sample_rate
        self.window = max(1, round(sample_rate * window_seconds))
        #: A sample louder than this (in sample units) is sound.
        self._threshold = int(FULL_SCALE * 10.0 ** (floor_dbfs / 20.0))
        #: Chunks not measured yet (whole windows are, a batch at a time): joined once per batch,
        #: not appended to a growing buffer (which copies it again at every growth).
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._count = 0
        self._sum_squares = 0.0
        self._peak = 0
        self._clipped = 0
        self._windows = 0  # windows judged
        self._first_sound: int | None = None  # window index
        self._last_sound = -1
        self._longest_gap = 0  # windows

    def feed_pcm16(self, data: bytes) -> None:
        """Little-endian 16-bit samples (kept, not copied: bytes, never a buffer reused later);
        a chunk may end mid-sample."""
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered >= BATCH_BYTES:
            self._measure(final=False)

    def feed(self, samples: np.ndarray) -> None:
        """int16 samples, the next ones of the take."""
        self.feed_pcm16(samples.astype("<i2", copy=False).tobytes())

    def _measure(self, *, final: bool) -> None:
        """Measure the buffered samples: its whole windows, or (``final``) all of them."""
        import numpy as np

        window_bytes = self.window * 2
        usable = self._buffered & ~1
        take = usable if final else usable // window_bytes * window_bytes
        if not take:
            return
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        rest = data[take:]
        self._chunks, self._buffered = ([rest] if rest else []), len(rest)
        self._measure_samples(np.frombuffer(data, dtype="<i2", count=take // 2))

    def _measure_samples(self, samples: np.ndarray) -> None:
        import numpy as np

        count = len(samples)
        self._count += count
        magnitude = np.abs(samples).view(np.uint16)  # -32768 becomes 32768, not itself
        peak = int(magnitude.max())
        self._peak = max(self._peak, peak)
        if peak >= CLIP_LEVEL:
            self._clipped += int(np.count_nonzero(magnitude >= CLIP_LEVEL))
        as_float = samples.astype(np.float32)
        # einsum, not np.dot: dot goes to BLAS, whose threads then spin on the other core after each call.
        self._sum_squares += float(np.einsum("i,i->", as_float, as_float))
        sound = magnitude > self._threshold
        whole = count // self.window * self.window
        windows = sound[:whole].reshape(-1, self.window).any(axis=1)
        if whole < count:  # the last samples of the take: one shorter window
            windows = np.append(windows, sound[whole:].any())
        self._judge(windows)

    def _judge(self, windows: np.ndarray) -> None:
        """Note which of these consecutive windows are sound, and the silences between them."""
        import numpy as np

        sound = np.flatnonzero(windows)
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
            self._longest_gap = max(self._longest_gap, int((sound[1:] - sound[:-1]).max()) - 1)
        self._last_sound = last

    def levels(self) -> AudioLevels:
        """The take's levels: every sample fed so far (the last ones short of a window count as one window)."""
        self._measure(final=True)
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
