"""The end-of-job summary a person reads (the machine-readable one is summary.json).

Every figure is this run's own and says so: a rerun that sent nothing says
there was nothing to do, not ``0.0 rows/s``; a run stopped before the end of
the manifest says its results are partial. ``-q`` gets one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from batchtts.cli.progress import format_duration
from batchtts.ledger import JobSummary
from batchtts.outcomes import exit_meaning


def plural(count: int, word: str, words: str | None = None) -> str:
    """``1 row``, ``2 rows``."""
    return f"{count} {word if count == 1 else (words or word + 's')}"


def outcome_line(summary: JobSummary) -> str:
    """The one-line outcome: counts and the exit status (what ``-q`` prints)."""
    pending = f", {summary.pending} pending" if summary.pending else ""
    code = int(summary.exit_code)
    return (
        f"batchtts: {plural(summary.rows, 'row')}: {summary.ok} ok, {summary.failed} failed{pending}; "
        f"exit {code} ({exit_meaning(code)})"
    )


def qa_line(summary: JobSummary) -> str:
    """The audio checks: rows flagged, by flag, and the takes made again."""
    flags = ", ".join(f"{flag} {count}" for flag, count in sorted(summary.qa_flags.items(), key=lambda kv: -kv[1]))
    retakes = f"; {plural(summary.qa_retakes, 'take')} made again" if summary.qa_retakes else ""
    flagged = f"{plural(summary.qa_flagged, 'row')} of {summary.qa_checked} flagged" + (f" ({flags})" if flags else "")
    return f"batchtts: audio checks: {flagged}{retakes}"


def summary_lines(summary: JobSummary, out_dir: Path, *, local: bool = False) -> list[str]:
    """The whole summary, a line each."""
    pending = f", {summary.pending} pending" if summary.pending else ""
    earlier = f" ({summary.skipped} kept from earlier runs)" if summary.skipped else ""
    counts = f"batchtts: {plural(summary.rows, 'row')}: {summary.ok} ok, {summary.failed} failed{pending}{earlier}"
    wall, made = summary.wall_seconds, summary.synthesized
    if summary.attempts == 0:
        nothing = "nothing to do: every row was kept from an earlier run" if summary.skipped == summary.rows else ""
        lines = [f"{counts}; {nothing or 'no request sent'}"]
    else:
        speed = f", {made / wall:.1f} rows/s" if made and wall > 0 else ""
        lines = [f"{counts} in {format_duration(wall)} ({plural(made, 'row')} made{speed})"]
        audio = format_duration(summary.audio_seconds) if summary.audio_seconds else "no"
        in_all = f", {format_duration(summary.audio_seconds_total)} in all" if summary.skipped else ""
        lines.append(
            f"batchtts: {audio} audio made{' by the local server' if local else ''}{in_all}; "
            f"{plural(summary.retries, 'retry', 'retries')}, {summary.rate_limited} rate-limited (429)"
        )
    if summary.qa_flagged or summary.qa_retakes:
        lines.append(qa_line(summary))
    if summary.group_files is not None:
        lines.append(f"batchtts: {plural(summary.group_files, 'chapter file')} written")
    if summary.loudness:
        lines.append(f"batchtts: loudness: {_loudness_line(summary.loudness)}")
    for failed in summary.failure_examples:
        voice = f" (voice {failed.voice})" if failed.voice else ""
        lines.append(f"batchtts:   failed {failed.row_id!r}{voice}: {failed.reason}")
    more = summary.failed - len(summary.failure_examples)
    if more > 0:
        lines.append(f"batchtts:   ... and {plural(more, 'more failed row')}")
    if not summary.complete:
        lines.append(
            f"batchtts: partial results: the run stopped before the end of the manifest; "
            f"the results list the {plural(summary.rows, 'row')} it reached"
        )
    if summary.stop is not None:
        # Why (the run's own words, e.g. which deadline), then what to do about it.
        lines.append(f"batchtts: stopped: {summary.stop.message or summary.stop.reason}")
        lines.append(f"batchtts: next: {summary.stop.next_step}")
    from batchtts.storage.objects import shown

    out, results = shown(out_dir).rstrip("/"), shown(summary.results_path) if summary.results_path else None
    lines.append(f"batchtts: audio in {out}/, results in {results}, summary in {out}/summary.json")
    return lines


def print_summary(summary: JobSummary, out_dir: Path, *, local: bool = False, quiet: bool = False) -> None:
    lines = [outcome_line(summary)] if quiet else summary_lines(summary, out_dir, local=local)
    for line in lines:
        click.echo(line, err=True)


def _loudness_line(files: dict[str, dict[str, Any]]) -> str:
    """What --loudness did: how many files it normalised, the range they read, how many the peak held back."""
    normalised = sum(1 for figures in files.values() if not figures.get("reused"))
    after = [f["after_lufs"] for f in files.values() if isinstance(f.get("after_lufs"), (int, float))]
    reached = f", {min(after):g} to {max(after):g} LUFS" if after else ""
    limited = sum(1 for figures in files.values() if figures.get("limited_by_peak"))
    held = f", {limited} held back by the true-peak ceiling" if limited else ""
    depth = [f["max_gain_reduction_db"] for f in files.values() if f.get("limited_samples_share")]
    peaks = f", peaks limited in {len(depth)} (up to {max(depth):g} dB)" if depth else ""
    return f"{plural(normalised, 'file')} normalised, {len(files) - normalised} kept{reached}{held}{peaks}"
