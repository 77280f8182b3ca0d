"""Inline SVG charts drawn in Python: no script, no network, every label escaped.

The page's charts are plain ``<svg>`` elements with ``<title>`` tooltips, so
the report opens the same offline, from a mail attachment, or with scripts off.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from html import escape

from batchtts.report.figures import Figures, Histogram, Second

#: Bars at most on the timeline; seconds are merged into intervals to fit.
MAX_BARS = 60
WIDTH, BAR_AREA = 720, 160
COLORS = {"ok": "#2f8f46", "failed": "#c43c35", "retried": "#e08a00", "rate_limited": "#7b3fb5"}
_NICE_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)


def interval_seconds(span: int) -> int:
    """A round interval that fits ``span`` seconds into at most :data:`MAX_BARS` bars."""
    for step in _NICE_STEPS:
        if span / step <= MAX_BARS:
            return step
    return math.ceil(span / MAX_BARS / 86400) * 86400


def timeline_svg(figures: Figures) -> str:
    """Completions per interval, ok over failed, with marks above for retried and 429-answered rows."""
    first = figures.first_second
    if first is None:
        return '<p class="none">No row finished with a time recorded.</p>'
    last = max(figures.seconds)
    step = interval_seconds(last - first + 1)
    bars: dict[int, Second] = {}
    for moment, second in figures.seconds.items():
        bucket = bars.setdefault((moment - first) // step, Second())
        bucket.ok += second.ok
        bucket.failed += second.failed
        bucket.retried += second.retried
        bucket.rate_limited += second.rate_limited
    count = (last - first) // step + 1
    peak = max(b.ok + b.failed for b in bars.values()) or 1
    left, top, bar_width = 44, 28, (WIDTH - 56) / count
    parts = [
        f'<svg class="chart" role="img" aria-label="rows finished per interval" viewBox="0 0 {WIDTH} '
        f'{top + BAR_AREA + 34}" width="{WIDTH}" height="{top + BAR_AREA + 34}" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{left}" y1="{top + BAR_AREA}" x2="{WIDTH - 8}" y2="{top + BAR_AREA}" stroke="#888"/>',
        f'<text x="{left - 4}" y="{top + 4}" text-anchor="end" class="tick">{peak}</text>',
        f'<text x="{left - 4}" y="{top + BAR_AREA}" text-anchor="end" class="tick">0</text>',
    ]
    for index, bar in sorted(bars.items()):
        x = left + index * bar_width
        start = _clock(first + index * step)
        ok_height = BAR_AREA * bar.ok / peak
        failed_height = BAR_AREA * bar.failed / peak
        tip = escape(
            f"{start} (+{step} s): {bar.ok} ok, {bar.failed} failed, {bar.retried} retried, "
            f"{bar.rate_limited} answered 429"
        )
        width = max(bar_width - 1, 1)
        y_ok = top + BAR_AREA - ok_height
        parts.append(f'<g class="bar"><title>{tip}</title>')
        parts.append(
            f'<rect x="{x:.1f}" y="{y_ok:.1f}" width="{width:.1f}" height="{ok_height:.1f}" fill="{COLORS["ok"]}"/>'
        )
        parts.append(
            f'<rect x="{x:.1f}" y="{y_ok - failed_height:.1f}" width="{width:.1f}" height="{failed_height:.1f}" '
            f'fill="{COLORS["failed"]}"/>'
        )
        mark_x = x + width / 2
        if bar.retried:
            parts.append(f'<circle cx="{mark_x:.1f}" cy="{top - 16}" r="4" fill="{COLORS["retried"]}"/>')
        if bar.rate_limited:
            parts.append(
                f'<rect x="{mark_x - 4:.1f}" y="{top - 10}" width="8" height="8" fill="{COLORS["rate_limited"]}"/>'
            )
        parts.append("</g>")
    end = _clock(first + count * step)
    parts.append(f'<text x="{left}" y="{top + BAR_AREA + 16}" class="tick">{escape(_clock(first))}</text>')
    parts.append(f'<text x="{WIDTH - 8}" y="{top + BAR_AREA + 16}" text-anchor="end" class="tick">{escape(end)}</text>')
    parts.append(
        f'<text x="{WIDTH / 2:.0f}" y="{top + BAR_AREA + 30}" text-anchor="middle" class="tick">'
        f"one bar per {step} s (UTC)</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def legend() -> str:
    items = [
        ("ok", "ok rows"),
        ("failed", "failed rows"),
        ("retried", "some rows needed more than one request"),
        ("rate_limited", "some rows were answered 429"),
    ]
    return "".join(
        f'<span class="key"><span class="swatch" style="background:{COLORS[name]}"></span>{escape(text)}</span>'
        for name, text in items
    )


def distribution_svg(histograms: list[tuple[str, Histogram]], label: str) -> str:
    """One box per voice on a log-scale axis: 10th to 90th percentile, the median, whiskers to min and max."""
    shown = [(voice, h) for voice, h in histograms if h.count]
    if not shown:
        return '<p class="none">No times recorded.</p>'
    low = min(h.low for _, h in shown)
    high = max(h.high for _, h in shown)
    lo_decade = math.floor(math.log10(max(low, 1.0)))
    hi_decade = max(math.ceil(math.log10(max(high, 1.0))), lo_decade + 1)
    left, right, row_height, top = 170, WIDTH - 16, 26, 8
    height = top + row_height * len(shown) + 30

    def x_of(value: float) -> float:
        share = (math.log10(max(value, 1.0)) - lo_decade) / (hi_decade - lo_decade)
        return left + share * (right - left)

    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(label)} per voice" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for decade in range(lo_decade, hi_decade + 1):
        x = x_of(10.0**decade)
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - 24}" stroke="#ddd"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle" class="tick">{_ms_label(10.0**decade)}</text>'
        )
    for index, (voice, hist) in enumerate(shown):
        y = top + index * row_height + row_height / 2
        p10, p50, p90 = (hist.quantile(q) or 0.0 for q in (0.1, 0.5, 0.9))
        tip = escape(
            f"{voice}: {hist.count} rows; min {hist.low:.0f} ms, p10 {p10:.0f}, median {p50:.0f}, "
            f"p90 {p90:.0f}, max {hist.high:.0f} ms (percentiles to within 26%)"
        )
        parts.append(f'<g class="box"><title>{tip}</title>')
        parts.append(
            f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end" class="label">{escape(voice[:24])}</text>'
        )
        parts.append(
            f'<line x1="{x_of(hist.low):.1f}" y1="{y:.1f}" x2="{x_of(hist.high):.1f}" y2="{y:.1f}" stroke="#555"/>'
        )
        parts.append(
            f'<rect x="{x_of(p10):.1f}" y="{y - 8:.1f}" width="{max(x_of(p90) - x_of(p10), 2):.1f}" height="16" '
            f'fill="#9cc3e6" stroke="#2a6ea6"/>'
        )
        parts.append(
            f'<line x1="{x_of(p50):.1f}" y1="{y - 8:.1f}" x2="{x_of(p50):.1f}" y2="{y + 8:.1f}" stroke="#123"/>'
        )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _ms_label(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:g} s"
    return f"{value:g} ms"


def _clock(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")
