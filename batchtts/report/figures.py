"""The figures a report shows, from one streamed pass over the rows, in memory that does not grow with them.

Times are kept as counts per second of finishing (at most :data:`MAX_TIME_SLOTS`
slots: a longer job gets wider ones), durations as log-scale histograms per
voice, failure reasons as a capped tally, and rows to list (flagged, and a
seeded sample of ok rows to listen to) up to a cap, with a count of the rest.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: Histogram bins: 10 per decade from 1 ms to 1,000,000 ms (about 17 minutes), one more below and above.
BINS_PER_DECADE = 10
LOWEST_MS, DECADES = 1.0, 6
BIN_COUNT = BINS_PER_DECADE * DECADES + 2
#: Voices with a histogram of their own; the others share one.
MAX_VOICES = 24
OTHER_VOICES = "(other voices)"
#: Distinct failure reasons tallied; later new ones are counted together.
MAX_REASONS = 200
OTHER_REASONS = "(other reasons)"
#: Time slots kept before they are made ten times wider (about 150 bytes each).
MAX_TIME_SLOTS = 50_000
#: Characters of a failure reason kept.
REASON_CHARS = 300


class Histogram:
    """Counts on a log scale: quantiles to within a bin (about 26%), exact count, min and max."""

    __slots__ = ("bins", "count", "high", "low", "total")

    def __init__(self) -> None:
        self.bins = [0] * BIN_COUNT
        self.count = 0
        self.total = 0.0
        self.low = math.inf
        self.high = -math.inf

    def add(self, value: float) -> None:
        self.bins[bin_of(value)] += 1
        self.count += 1
        self.total += value
        self.low = min(self.low, value)
        self.high = max(self.high, value)

    def quantile(self, share: float) -> float | None:
        """The upper edge of the bin holding the ``share`` quantile, clamped to the exact min and max."""
        if not self.count:
            return None
        rank = share * self.count
        seen = 0
        for index, count in enumerate(self.bins):
            seen += count
            if seen >= rank and count:
                return min(max(bin_edge(index + 1), self.low), self.high)
        return self.high

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None


def bin_of(value: float) -> int:
    if value < LOWEST_MS:
        return 0
    index = 1 + int(math.log10(value / LOWEST_MS) * BINS_PER_DECADE)
    return min(index, BIN_COUNT - 1)


def bin_edge(index: int) -> float:
    """The lower edge of bin ``index`` in ms (bin 0 starts at 0)."""
    if index <= 0:
        return 0.0
    return LOWEST_MS * 10 ** ((index - 1) / BINS_PER_DECADE)


@dataclass(slots=True)
class VoiceTimes:
    ttfb: Histogram = field(default_factory=Histogram)
    total: Histogram = field(default_factory=Histogram)


@dataclass(slots=True)
class Second:
    """What finished in one second of the job."""

    ok: int = 0
    failed: int = 0
    retried: int = 0  # rows that needed more than one request
    rate_limited: int = 0  # rows that were answered 429 at least once (as far as the results say)


@dataclass(slots=True)
class Figures:
    rows: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    attempts: int = 0
    retried_rows: int = 0
    rate_limited_rows: int = 0
    audio_seconds: float = 0.0
    #: Finishes per time slot (its first second since the epoch), slots of ``resolution`` seconds.
    seconds: dict[int, Second] = field(default_factory=dict)
    resolution: int = 1
    voices: dict[str, VoiceTimes] = field(default_factory=dict)
    reasons: Counter[str] = field(default_factory=Counter)
    flags: Counter[str] = field(default_factory=Counter)
    has_qa: bool = False
    flagged: list[dict[str, Any]] = field(default_factory=list)
    flagged_count: int = 0
    sample: list[dict[str, Any]] = field(default_factory=list)
    ok_count: int = 0

    @property
    def first_second(self) -> int | None:
        return min(self.seconds) if self.seconds else None


def collect_figures(
    rows: Iterable[dict[str, Any]], *, max_listed: int = 200, sample_size: int = 12, seed: int = 0
) -> Figures:
    """One pass over ``rows`` (see :func:`batchtts.report.rows.iter_rows`)."""
    figures = Figures()
    chooser = random.Random(seed)
    for row in rows:
        figures.rows += 1
        status = row.get("status") or "unknown"
        figures.statuses[status] += 1
        attempts = row.get("attempts") or 0
        figures.attempts += attempts
        retried = attempts > 1
        limited = (row.get("rate_limited") or 0) > 0 or row.get("http_status") == 429
        figures.retried_rows += retried
        figures.rate_limited_rows += limited
        if row.get("qa") or any(row.get(name) is not None for name in ("peak_dbfs", "seconds_per_char")):
            figures.has_qa = True
        if status == "ok":
            figures.audio_seconds += row.get("audio_seconds") or 0.0
        _count_time(figures, row, status, retried, limited)
        if status in ("ok", "failed") and not row.get("reused") and attempts:
            _count_voice(figures, row)
        if status == "failed":
            _count_reason(figures, row.get("error") or "(no reason recorded)")
        flags = row.get("qa") or []
        figures.flags.update(flags)
        if flags:
            figures.flagged_count += 1
            if len(figures.flagged) < max_listed:
                figures.flagged.append(row)
        elif status == "ok" and row.get("path"):
            figures.ok_count += 1  # reservoir sampling: every unflagged ok row has the same chance
            if len(figures.sample) < sample_size:
                figures.sample.append(row)
            else:
                slot = chooser.randrange(figures.ok_count)
                if slot < sample_size:
                    figures.sample[slot] = row
    figures.sample.sort(key=lambda row: row.get("row") or 0)
    return figures


def _count_time(figures: Figures, row: dict[str, Any], status: str, retried: bool, limited: bool) -> None:
    if status not in ("ok", "failed") or row.get("reused"):
        return
    moment = parse_time(row.get("finished_at"))
    if moment is None:
        return
    moment -= moment % figures.resolution
    second = figures.seconds.get(moment)
    if second is None:
        second = figures.seconds[moment] = Second()
    if status == "ok":
        second.ok += 1
    else:
        second.failed += 1
    second.retried += retried
    second.rate_limited += limited
    if len(figures.seconds) > MAX_TIME_SLOTS:
        _coarsen(figures)


def _coarsen(figures: Figures) -> None:
    """Ten times wider time slots: a job of many days keeps a bounded tally (the chart shows 60 bars)."""
    figures.resolution *= 10
    merged: dict[int, Second] = {}
    for moment, second in figures.seconds.items():
        into = merged.setdefault(moment - moment % figures.resolution, Second())
        into.ok += second.ok
        into.failed += second.failed
        into.retried += second.retried
        into.rate_limited += second.rate_limited
    figures.seconds = merged


def _count_voice(figures: Figures, row: dict[str, Any]) -> None:
    voice = row.get("voice_id") or "(no voice)"
    times = figures.voices.get(voice)
    if times is None:
        if len(figures.voices) >= MAX_VOICES:
            voice = OTHER_VOICES
        times = figures.voices.setdefault(voice, VoiceTimes())
    if row.get("ttfb_ms") is not None:
        times.ttfb.add(row["ttfb_ms"])
    if row.get("total_ms") is not None:
        times.total.add(row["total_ms"])


def _count_reason(figures: Figures, reason: str) -> None:
    reason = reason[:REASON_CHARS]
    if reason not in figures.reasons and len(figures.reasons) >= MAX_REASONS:
        reason = OTHER_REASONS
    figures.reasons[reason] += 1


def parse_time(text: Any) -> int | None:
    """Whole seconds since the epoch of an ISO 8601 timestamp (``2025-01-31T12:00:00.123Z``)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None
