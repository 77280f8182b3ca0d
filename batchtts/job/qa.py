"""Audio checks: what a take's levels mean for its row (flags), and which of two takes to keep.

A stream that ends with its done frame can still carry bad audio: cut short,
silent, clipped, or far longer than its text. The sink measures every take as
it streams (:mod:`batchtts.audio.meter`); :class:`QaJudge` turns the levels
into flags:

- ``silent``: no window rose above the floor;
- ``truncated`` / ``overlong``: seconds per character below ``short`` times,
  or above ``long`` times, the job's running median for the same voice, speed
  and language (trusted once ``min_rows`` takes fed it; texts of at least
  :data:`LENGTH_CHECK_MIN_CHARS` characters);
- ``clipped``: more than ``clip_share`` of the samples at full scale;
- ``long_silence``: a silence inside the audio longer than ``max_silence`` seconds.

What a job does about a flagged take is its mode (``--qa``): ``retry`` makes
it again (at most ``attempts`` more takes) and keeps the better one, ``flag``
records the flags only, ``fail`` fails the row (a rerun tries it again),
``off`` measures nothing. QA takes are not retries of errors: they do not use
up ``--max-attempts``.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from batchtts.api.request import TtsRequest
from batchtts.audio.meter import DEFAULT_FLOOR_DBFS, SILENCE_DBFS, AudioLevels
from batchtts.ledger.entry import QA_MEASURES as QA_MEASURES  # the columns live with the results

QaMode = Literal["retry", "flag", "fail", "off"]
QA_MODES: tuple[str, ...] = ("retry", "flag", "fail", "off")
#: Every flag, the worst first: a take's severity is the sum of its flags' weights.
FLAGS: tuple[str, ...] = ("silent", "truncated", "long_silence", "clipped", "overlong")
_WEIGHTS = {flag: 1 << (len(FLAGS) - index) for index, flag in enumerate(FLAGS)}
#: Takes of one voice, speed and language the running median remembers (the most recent).
MEDIAN_WINDOW = 2001
#: Texts shorter than this are not checked for length (nor feed the median): a pause or a breath
#: is a large share of a short text's audio, so its seconds per character say little.
LENGTH_CHECK_MIN_CHARS = 20


@dataclass(frozen=True, slots=True)
class QaOptions:
    """``--qa`` and its thresholds."""

    mode: QaMode = "retry"
    #: Takes made again for a flagged row, at most (``--qa retry``).
    attempts: int = 2
    #: Samples at or below this level (dBFS, over 10 ms windows) are silence.
    floor_dbfs: float = DEFAULT_FLOOR_DBFS
    #: ``truncated`` below this ratio to the running median of seconds per character.
    short: float = 0.5
    #: ``overlong`` above this ratio.
    long: float = 2.0
    #: Takes of a voice, speed and language before its median is trusted.
    min_rows: int = 10
    #: ``long_silence`` past this many seconds of silence inside the audio.
    max_silence: float = 2.0
    #: ``clipped`` above this share of samples at full scale.
    clip_share: float = 0.001

    def __post_init__(self) -> None:
        if self.mode not in QA_MODES:
            raise ValueError(f"qa: {self.mode!r} is not one of {', '.join(QA_MODES)}")
        if not 0 < self.short < 1 < self.long:
            raise ValueError(f"qa: need 0 < short ({self.short:g}) < 1 < long ({self.long:g})")
        if self.attempts < 0 or self.min_rows < 1 or self.max_silence <= 0 or not 0 <= self.clip_share < 1:
            raise ValueError("qa: attempts >= 0, min_rows >= 1, max_silence > 0 and 0 <= clip_share < 1")

    @property
    def enabled(self) -> bool:
        return self.mode != "off"


@dataclass(frozen=True, slots=True)
class QaCheck:
    """One take judged: its levels, its seconds per character and its flags."""

    levels: AudioLevels
    seconds_per_char: float | None
    flags: tuple[str, ...]

    @property
    def severity(self) -> int:
        return sum(_WEIGHTS[flag] for flag in self.flags)

    def columns(self) -> dict[str, Any]:
        """The results columns of this take."""
        levels = self.levels
        columns: dict[str, Any] = {
            "seconds_per_char": None if self.seconds_per_char is None else round(self.seconds_per_char, 5),
            "leading_silence_s": levels.leading_silence_s,
            "trailing_silence_s": levels.trailing_silence_s,
            "longest_silence_s": levels.longest_silence_s,
            "peak_dbfs": levels.peak_dbfs,
            "rms_dbfs": levels.rms_dbfs,
            "clipped_share": round(levels.clipped_share, 6),
            "qa": list(self.flags),
        }
        columns.update({flag: flag in self.flags for flag in FLAGS})
        return columns


def combine(checks: list[QaCheck], seconds: float | None, characters: int) -> QaCheck | None:
    """The checks of a row joined from parts (``--max-chars``): one QaCheck over all of them.

    Levels add up (peak: the highest, RMS and clipping: over every sample), the
    leading silence is the first part's and the trailing the last's, the flags
    are every part's. None when there are no checks (a part came from an earlier run).
    """
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]
    levels = [check.levels for check in checks]
    samples = sum(level.samples for level in levels)
    power = sum(level.samples * 10.0 ** (level.rms_dbfs / 10.0) for level in levels)
    rms = round(10.0 * math.log10(power / samples), 2) if samples and power > 0 else SILENCE_DBFS
    joined = AudioLevels(
        samples=samples,
        sample_rate=levels[0].sample_rate,
        peak_dbfs=max(level.peak_dbfs for level in levels),
        rms_dbfs=max(SILENCE_DBFS, rms),
        clipped_share=sum(level.clipped_share * level.samples for level in levels) / samples if samples else 0.0,
        leading_silence_s=levels[0].leading_silence_s,
        trailing_silence_s=levels[-1].trailing_silence_s,
        longest_silence_s=max(level.longest_silence_s for level in levels),
        silent=all(level.silent for level in levels),
    )
    flags = {flag for check in checks for flag in check.flags}
    per_char = seconds / characters if seconds is not None and characters else None
    return QaCheck(joined, per_char, tuple(flag for flag in FLAGS if flag in flags))


def better(kept: QaCheck, new: QaCheck) -> bool:
    """Whether ``new`` is a better take than ``kept``: less severe flags (a tie keeps the first)."""
    return new.severity < kept.severity


def describe(flags: tuple[str, ...] | list[str]) -> str:
    """The reason a row fails under ``--qa fail``."""
    return f"audio check failed: {', '.join(flags)}"


class RunningMedian:
    """The median of the last :data:`MEDIAN_WINDOW` values: a sorted list beside their arrival order."""

    def __init__(self, window: int = MEDIAN_WINDOW) -> None:
        self._order: deque[float] = deque()
        self._sorted: list[float] = []
        self._window = window

    def __len__(self) -> int:
        return len(self._sorted)

    def add(self, value: float) -> None:
        self._order.append(value)
        bisect.insort(self._sorted, value)
        if len(self._order) > self._window:
            old = self._order.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]

    def median(self) -> float | None:
        values = self._sorted
        if not values:
            return None
        middle = len(values) // 2
        return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


class QaJudge:
    """Flags takes for one job; keeps the running medians (one per voice, speed and language)."""

    def __init__(self, options: QaOptions) -> None:
        self.options = options
        self._medians: dict[tuple[str, float, str | None], RunningMedian] = {}

    def check(self, request: TtsRequest, levels: AudioLevels) -> QaCheck:
        """Judge one take; a take with no length flag feeds its voice's median."""
        options = self.options
        flags: set[str] = set()
        if levels.silent:
            flags.add("silent")
        if levels.clipped_share > options.clip_share:
            flags.add("clipped")
        if levels.longest_silence_s > options.max_silence:
            flags.add("long_silence")
        characters = len(request.text.strip())
        per_char = levels.seconds / characters if characters else None
        median = self._medians.setdefault((request.voice_id, request.speed, request.language), RunningMedian())
        reference = median.median() if len(median) >= options.min_rows else None
        if characters < LENGTH_CHECK_MIN_CHARS:
            reference = None
        if per_char is not None and reference and not levels.silent:
            if per_char < options.short * reference:
                flags.add("truncated")
            elif per_char > options.long * reference:
                flags.add("overlong")
        if (
            per_char is not None
            and characters >= LENGTH_CHECK_MIN_CHARS
            and not flags & {"silent", "truncated", "overlong"}
        ):
            median.add(per_char)
        return QaCheck(levels, per_char, tuple(flag for flag in FLAGS if flag in flags))
