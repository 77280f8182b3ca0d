"""The report page: one self-contained HTML file (inline CSS and SVG, no script, no network), written whole.

Every value that comes from the job (ids, texts, error messages, voice names,
paths) is escaped; audio players point at the job's files by a path relative
to the page, so the page and the folder move together.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from batchtts import __version__
from batchtts.ledger.entry import utc_now_iso
from batchtts.report.charts import distribution_svg, legend, timeline_svg
from batchtts.report.figures import Figures, collect_figures
from batchtts.report.folder import JobFolder, open_job_folder
from batchtts.report.rows import iter_rows
from batchtts.report.texts import manifest_texts, shorten
from batchtts.storage import atomic_file

REPORT_NAME = "report.html"
#: summary.json figures shown, in order, with their labels.
SUMMARY_FIELDS = (
    ("rows", "rows"),
    ("ok", "ok"),
    ("synthesized", "made by the last run"),
    ("skipped", "kept from earlier runs"),
    ("failed", "failed"),
    ("pending", "pending"),
    ("attempts", "requests sent"),
    ("retries", "retries"),
    ("rate_limited", "answered 429"),
    ("audio_seconds_total", "audio (s)"),
    ("wall_seconds", "wall time (s)"),
    ("rows_per_second", "rows per second"),
    ("ttfb_ms_mean", "mean time to first audio (ms)"),
    ("total_ms_mean", "mean total time (ms)"),
    ("exit_status", "exit status"),
    ("exit_meaning", "meaning"),
    ("stop_reason", "stop reason"),
    ("started_at", "started"),
    ("finished_at", "finished"),
)
QA_FIGURES = (
    ("seconds_per_char", "s/char", 4),
    ("leading_silence_s", "lead silence s", 2),
    ("trailing_silence_s", "tail silence s", 2),
    ("peak_dbfs", "peak dBFS", 1),
    ("rms_dbfs", "RMS dBFS", 1),
    ("clipped_share", "clipped", 4),
    ("longest_silence_s", "longest silence s", 2),
)
#: summary.json's ``qa`` block, shown beside its other figures (then one line per flag).
QA_SUMMARY_FIELDS = (
    ("checked", "rows checked"),
    ("flagged", "rows flagged"),
    ("retakes", "takes made again (--qa retry)"),
)
STATE_NOTES = {
    "finished": "finished: read from its results manifest",
    "running": "running: the rows its run has recorded so far, read from the journal (the job was not disturbed)",
    "interrupted": "interrupted: a run stopped before writing its results; read from the journal",
    "sharded": "sharded, not merged yet: read from each shard's results, or its journal when it has none",
}


@dataclass(slots=True)
class ReportOptions:
    max_listed: int = 200
    sample_size: int = 12
    seed: int = 0
    manifest: Path | None = None
    text_column: str = "text"
    id_column: str | None = None


def write_report(out_dir: Path, out: Path | None = None, options: ReportOptions | None = None) -> tuple[Path, Figures]:
    """Write the report of the job folder ``out_dir`` to ``out`` (default ``DIR/report.html``), whole."""
    options = options or ReportOptions()
    folder = open_job_folder(out_dir)
    figures = collect_figures(
        iter_rows(folder, (options.text_column,)),
        max_listed=options.max_listed,
        sample_size=options.sample_size,
        seed=options.seed,
    )
    target = Path(out) if out is not None else Path(out_dir) / REPORT_NAME
    text_note = _fill_texts(folder, figures, options)
    page = render_page(folder, figures, page_dir=target.parent, text_note=text_note)
    with atomic_file(target, "w", encoding="utf-8") as handle:
        handle.write(page)
    return target, figures


def _fill_texts(folder: JobFolder, figures: Figures, options: ReportOptions) -> str | None:
    """Texts for listed rows the results did not carry, from the manifest; a note when they cannot be had."""
    listed = [row for row in (*figures.flagged, *figures.sample) if row.get("text") is None]
    if not listed:
        return None
    manifest = options.manifest or (folder.manifest if folder.from_parts else None) or _summary_manifest(folder)
    if manifest is None:
        return "The results do not carry the rows' texts: pass --manifest to show them."
    from batchtts.errors import ManifestError

    try:
        texts = manifest_texts(
            manifest,
            [row["row"] for row in listed if row.get("row") is not None],
            text_column=options.text_column,
            id_column=options.id_column,
        )
    except ManifestError as exc:
        return f"The rows' texts could not be read from the manifest: {exc}"
    for row in listed:
        row["text"] = texts.get(row.get("row") or -1)
    return None


def _summary_manifest(folder: JobFolder) -> Path | None:
    """The manifest summary.json names: as written, or, when the run was given relative paths, found
    from the folder the run started in (the folder whose ``out`` is DIR)."""
    summary = folder.summary or {}
    named, out = summary.get("manifest"), summary.get("out")
    if not isinstance(named, str) or not named:
        return None
    manifest = Path(named)
    if manifest.is_absolute() or manifest.exists() or not isinstance(out, str):
        return manifest
    base = folder.out_dir.resolve()
    for part in Path(out).parts:
        if part not in (".", ""):
            base = base.parent
    guess = base / manifest
    return guess if guess.exists() else manifest


def render_page(folder: JobFolder, figures: Figures, *, page_dir: Path, text_note: str | None = None) -> str:
    title = f"batchtts report: {folder.out_dir.name or folder.out_dir}"
    sections = [
        _summary_section(folder, figures),
        _timeline_section(figures),
        _times_section(figures),
        _failures_section(figures),
        _flagged_section(folder, figures, page_dir, text_note),
        _sample_section(folder, figures, page_dir, text_note),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "media-src 'self' file:; img-src data:\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        f'<p class="meta">Folder <code>{escape(str(folder.out_dir))}</code>; '
        f'<span id="state" data-state="{escape(folder.state)}">{escape(_state_note(folder))}</span>. '
        f"Made {escape(utc_now_iso())} by batchtts {escape(__version__)}.</p>" + "".join(sections) + "</body></html>\n"
    )


def _state_note(folder: JobFolder) -> str:
    if folder.from_parts:
        if folder.state == "running":
            how = "finished parts read from their results, running ones from their journals (not disturbed)"
        else:
            how = "each part read from its results, or its journal when it has none"
        return f"{folder.state}: {folder.shard_note}; {how}"
    return STATE_NOTES[folder.state]


def _shards_table(folder: JobFolder) -> str:
    """One line per shard part: its state and rows by status (its summary.json when merged, else counted)."""
    if not folder.parts:
        return ""
    caption = "shards (from each part's summary.json)" if not folder.from_parts else "shards (counted from the rows)"
    html = [
        f'<table class="figures" id="shards" data-count="{folder.shard_count}"><caption>{escape(caption)}</caption>'
        "<tr><th>shard</th><th>state</th><th>rows</th><th>ok</th><th>failed</th><th>pending</th></tr>"
    ]
    for part in folder.parts:
        cells = "".join(
            f'<td data-key="{key}">{part.counts.get(key, 0)}</td>' for key in ("rows", "ok", "failed", "pending")
        )
        html.append(
            f'<tr class="shard" data-shard="{escape(part.name)}"><th>{part.index}/{part.count}</th>'
            f'<td data-key="state">{escape(part.state)}</td>{cells}</tr>'
        )
    html.append("</table>")
    return "".join(html)


def _summary_section(folder: JobFolder, figures: Figures) -> str:
    counted = [
        ("rows", figures.rows),
        ("ok", figures.statuses.get("ok", 0)),
        ("failed", figures.statuses.get("failed", 0)),
        ("pending", figures.statuses.get("pending", 0)),
        ("attempts", figures.attempts),
        ("retried_rows", figures.retried_rows),
        ("rate_limited_rows", figures.rate_limited_rows),
        ("flagged", figures.flagged_count),
        ("audio_seconds", round(figures.audio_seconds, 3)),
    ]
    labels = {
        "rows": "rows",
        "ok": "ok",
        "failed": "failed",
        "pending": "pending",
        "attempts": "requests",
        "retried_rows": "rows retried",
        "rate_limited_rows": "rows answered 429",
        "flagged": "rows flagged by the audio checks",
        "audio_seconds": "audio (s)",
    }
    html = ['<section id="summary"><h2>Summary</h2>']
    if folder.state == "finished" and folder.summary is not None:
        html.append('<table class="figures" id="summary-json"><caption>summary.json</caption>')
        for key, label in SUMMARY_FIELDS:
            value = folder.summary.get(key)
            if value is None and key not in ("rows", "ok", "failed"):
                continue
            html.append(f'<tr><th>{escape(label)}</th><td data-key="{escape(key)}">{escape(_plain(value))}</td></tr>')
        html.append("</table>")
        html.append(_qa_summary_table(folder.summary))
    elif folder.summary is not None:
        html.append(
            '<p class="note">summary.json is from an earlier run; the figures below are counted from the rows.</p>'
        )
    html.append('<table class="figures" id="counted"><caption>counted from the rows</caption>')
    for key, value in counted:
        if key == "flagged" and not figures.has_qa:
            continue
        html.append(f'<tr><th>{escape(labels[key])}</th><td data-key="{key}">{escape(_plain(value))}</td></tr>')
    html.append("</table>")
    html.append(_shards_table(folder))
    if figures.flags:
        html.append('<p class="flags">Audio check flags: ' + ", ".join(
            f'<span class="flag">{escape(flag)}</span> {count}' for flag, count in figures.flags.most_common()
        ) + "</p>")  # fmt: skip
    html.append("</section>")
    return "".join(html)


def _qa_summary_table(summary: dict[str, Any]) -> str:
    """summary.json's ``qa`` block (rows checked, flagged, each flag, takes made again); none before the checks."""
    block = summary.get("qa")
    if not isinstance(block, dict):
        return ""
    html = ['<table class="figures" id="summary-qa"><caption>audio checks (summary.json)</caption>']
    for key, label in QA_SUMMARY_FIELDS:
        html.append(f'<tr><th>{escape(label)}</th><td data-key="{key}">{escape(_plain(block.get(key)))}</td></tr>')
    flags = block.get("flags")
    for flag, count in sorted(flags.items()) if isinstance(flags, dict) else ():
        html.append(
            f'<tr><th>flagged <span class="flag">{escape(str(flag))}</span></th>'
            f'<td data-key="flags.{escape(str(flag))}">{escape(_plain(count))}</td></tr>'
        )
    html.append("</table>")
    return "".join(html)


def _timeline_section(figures: Figures) -> str:
    return (
        '<section id="timeline"><h2>Rows over time</h2>'
        f'<p class="legend">{legend()}</p>{timeline_svg(figures)}'
        '<p class="note">Rows counted when their last attempt ended; rows kept from earlier runs are not shown. '
        "A row counts as answered 429 when any of its requests was "
        "(the journal says so; a merged folder only knows of rows whose last answer was 429).</p></section>"
    )


def _times_section(figures: Figures) -> str:
    voices = sorted(figures.voices.items())
    rows = "".join(
        f"<tr><td>{escape(voice)}</td><td>{times.ttfb.count}</td>"
        + "".join(f"<td>{_ms(h.quantile(q))}</td>" for h in (times.ttfb, times.total) for q in (0.5, 0.9, 0.99))
        + "</tr>"
        for voice, times in voices
    )
    return (
        '<section id="times"><h2>Time to first audio and total time, per voice</h2>'
        "<h3>Time to first audio</h3>"
        + distribution_svg([(voice, times.ttfb) for voice, times in voices], "time to first audio")
        + "<h3>Total time</h3>"
        + distribution_svg([(voice, times.total) for voice, times in voices], "total time")
        + '<table class="list"><tr><th>voice</th><th>rows</th><th>first audio p50</th><th>p90</th><th>p99</th>'
        "<th>total p50</th><th>p90</th><th>p99</th></tr>" + rows + "</table>"
        '<p class="note">Boxes span the 10th to 90th percentile, the line is the median, whiskers reach the '
        "fastest and slowest row; percentiles are read from log-scale bins (within about 26%).</p></section>"
    )


def _failures_section(figures: Figures) -> str:
    if not figures.reasons:
        return '<section id="failures"><h2>Failures by reason</h2><p class="none">No row failed.</p></section>'
    most = figures.reasons.most_common()
    top = most[0][1]
    rows = "".join(
        f'<tr><td class="count">{count}</td><td><span class="bar" style="width:{max(1, round(120 * count / top))}px">'
        f"</span></td><td>{escape(reason)}</td></tr>"
        for reason, count in most
    )
    return (
        '<section id="failures"><h2>Failures by reason</h2>'
        f'<table class="list" id="reasons"><tr><th>rows</th><th></th><th>reason</th></tr>{rows}</table></section>'
    )


def _flagged_section(folder: JobFolder, figures: Figures, page_dir: Path, note: str | None) -> str:
    if not figures.has_qa:
        return (
            '<section id="flagged"><h2>Flagged rows</h2><p class="none">No row of this job was checked by the '
            "audio checks (made with --qa off, or before the checks existed).</p></section>"
        )
    if not figures.flagged:
        return '<section id="flagged"><h2>Flagged rows</h2><p class="none">No row was flagged.</p></section>'
    more = figures.flagged_count - len(figures.flagged)
    return (
        f'<section id="flagged"><h2>Flagged rows ({figures.flagged_count})</h2>'
        + (f'<p class="note">{escape(note)}</p>' if note else "")
        + _rows_table(folder, figures.flagged, page_dir, qa=True)
        + (f'<p class="more">and {more} more (see the results manifest\'s qa column)</p>' if more > 0 else "")
        + "</section>"
    )


def _sample_section(folder: JobFolder, figures: Figures, page_dir: Path, note: str | None) -> str:
    if not figures.sample:
        return '<section id="sample"><h2>Listen to a sample</h2><p class="none">No ok row to listen to.</p></section>'
    return (
        f'<section id="sample"><h2>Listen to a sample ({len(figures.sample)} of {figures.ok_count} ok rows)</h2>'
        + (f'<p class="note">{escape(note)}</p>' if note else "")
        + _rows_table(folder, figures.sample, page_dir, qa=figures.has_qa)
        + "</section>"
    )


def _rows_table(folder: JobFolder, rows: list[dict[str, Any]], page_dir: Path, *, qa: bool) -> str:
    head = "<tr><th>row</th><th>id</th><th>voice</th>"
    if qa:
        head += "<th>flags</th>" + "".join(f"<th>{escape(label)}</th>" for _, label, _ in QA_FIGURES)
    head += "<th>text</th><th>audio</th></tr>"
    body = []
    for row in rows:
        cells = [
            f"<td>{escape(_plain(row.get('row')))}</td>",
            f'<td class="id">{escape(_plain(row.get("id")))}</td>',
            f"<td>{escape(_plain(row.get('voice_id')))}</td>",
        ]
        if qa:
            flags = " ".join(f'<span class="flag">{escape(flag)}</span>' for flag in row.get("qa") or [])
            cells.append(f'<td class="flags">{flags}</td>')
            for name, _label, digits in QA_FIGURES:
                value = row.get(name)
                shown = "" if value is None else f"{value:.{digits}f}"
                cells.append(f'<td data-key="{name}">{shown}</td>')
        text = row.get("text")
        cells.append(f'<td class="text">{escape(shorten(text)) if text else ""}</td>')
        cells.append(f"<td>{_player(folder, row.get('path'), page_dir)}</td>")
        body.append(f'<tr class="row">{"".join(cells)}</tr>')
    return f'<table class="list rows">{head}{"".join(body)}</table>'


def _player(folder: JobFolder, path: str | None, page_dir: Path) -> str:
    """An ``<audio>`` for the row's file, by a path relative to the page; a note when there is no file."""
    if not path:
        return '<span class="none">no file</span>'
    out_dir = folder.out_dir.resolve()
    target = (out_dir / path).resolve()
    if not target.is_relative_to(out_dir) or not target.is_file():
        return f'<span class="none">missing: {escape(path)}</span>'
    relative = Path(os.path.relpath(target, page_dir.resolve())).as_posix()
    return f'<audio controls preload="none" src="{escape(quote(relative))}"></audio>'


def _plain(value: Any) -> str:
    if value is None:
        return "–"
    return str(value)  # floats as Python writes them: the figure summary.json holds, digit for digit


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f} ms"


CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;
padding:0 16px;color:#1d2329}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px}code{background:#f3f3f3;padding:1px 4px}.meta,.note,.more{color:#555}
table.figures{border-collapse:collapse;display:inline-table;margin:0 24px 12px 0;vertical-align:top}
table.figures caption{text-align:left;color:#555;font-size:12px}
table.figures th{text-align:left;font-weight:normal;padding:2px 12px 2px 0;color:#444}
table.figures td{font-variant-numeric:tabular-nums;text-align:right}
table.list{border-collapse:collapse;width:100%;margin:8px 0}
table.list th,table.list td{border-bottom:1px solid #eee;padding:4px 6px;text-align:left;vertical-align:top}
td.text{max-width:380px;white-space:pre-wrap;word-break:break-word}td.id{word-break:break-all}
.flag{background:#fde2e1;color:#8a1f17;border-radius:3px;padding:0 5px;font-size:12px;margin-right:2px}
.bar{display:inline-block;height:10px;background:#c43c35}.count{text-align:right}
.key{margin-right:16px;color:#444}.swatch{display:inline-block;width:10px;height:10px;margin-right:4px}
.none{color:#777}svg.chart{max-width:100%;height:auto;display:block}
svg .tick,svg .label{font-size:11px;fill:#444}audio{height:32px;width:220px}
"""
