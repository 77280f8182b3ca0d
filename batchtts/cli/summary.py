"""The end-of-job summary a person reads (the machine-readable one is summary.json)."""

from __future__ import annotations

from pathlib import Path

import click

from batchtts.cli.progress import format_duration
from batchtts.job.runner import JobSummary

#: What to do after each kind of stop (the stop's own message says why).
_NEXT_STEP = {
    "auth": "the API rejected the key: check SMALLEST_API_KEY or --api-key-file, then rerun",
    "interrupted": "rerun the same command to finish the remaining rows",
    "deadline": "rerun the same command to do the pending rows (a --deadline given as a date and time must be moved later)",
    "budget": "rerun with a new --max-characters budget to do the pending rows",
    "limit": "rerun the same command to do the pending rows",
    "manifest": "fix the manifest, then rerun: the rows already done are kept",
    "storage": "free space (or make the folder writable), then rerun to do the pending rows",
}


def print_summary(summary: JobSummary, out_dir: Path, *, local: bool = False) -> None:
    wall = summary.wall_seconds
    # Rows this run finished: not the pending ones, not the ones kept from earlier runs.
    finished = summary.ok - summary.skipped + summary.failed
    speed = finished / wall if wall > 0 else 0.0
    hours = summary.audio_seconds / 3600
    earlier = f" ({summary.skipped} kept from earlier runs)" if summary.skipped else ""
    pending = f", {summary.pending} pending" if summary.pending else ""
    lines = [
        f"batchtts: {summary.rows} rows: {summary.ok} ok, {summary.failed} failed{pending}{earlier} "
        f"in {format_duration(wall)} ({speed:.1f} rows/s)",
        f"batchtts: {hours:.3f} h of audio made ({format_duration(summary.audio_seconds)})"
        f"{' by the local server' if local else ''}"
        f"{f', {format_duration(summary.audio_seconds_total)} in all' if summary.skipped else ''}; "
        f"{summary.retries} retries, {summary.rate_limited} rate-limited (429)",
    ]
    for row_id, reason in summary.failure_examples:
        lines.append(f"batchtts:   failed {row_id!r}: {reason}")
    if summary.failed > len(summary.failure_examples):
        lines.append(f"batchtts:   ... and {summary.failed - len(summary.failure_examples)} more failed rows")
    if summary.stopped:
        # Why (the run's own words, e.g. which deadline), then what to do about it.
        advice = _NEXT_STEP.get(summary.stopped, summary.stopped)
        lines.append(f"batchtts: stopped: {summary.stop_message or summary.stopped}")
        lines.append(f"batchtts: next: {advice}")
    lines.append(f"batchtts: audio in {out_dir}/, results in {summary.results_path}, summary in {out_dir}/summary.json")
    for line in lines:
        click.echo(line, err=True)
