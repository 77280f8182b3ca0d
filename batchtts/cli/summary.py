"""The end-of-job summary a person reads (the machine-readable one is summary.json)."""

from __future__ import annotations

from pathlib import Path

import click

from batchtts.cli.progress import format_duration
from batchtts.ledger import JobSummary


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
    if summary.stop is not None:
        # Why (the run's own words, e.g. which deadline), then what to do about it.
        lines.append(f"batchtts: stopped: {summary.stop.message or summary.stop.reason}")
        lines.append(f"batchtts: next: {summary.stop.reason.next_step}")
    lines.append(f"batchtts: audio in {out_dir}/, results in {summary.results_path}, summary in {out_dir}/summary.json")
    for line in lines:
        click.echo(line, err=True)
