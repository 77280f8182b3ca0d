"""`batchtts merge DIR`: the shard parts of a job put together into its results, index and summary."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click


@click.command()
@click.argument("out_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--results",
    "results_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Results manifest to write (.parquet, .csv or .jsonl). Default: the one the shards were given "
    "(DIR/results.parquet unless they had --results).",
)
@click.option(
    "--metadata",
    type=click.Choice(["audiofolder", "audiofolder-jsonl", "ljspeech"]),
    help="Dataset index to write. Default: the shards' --metadata, if they had one.",
)
@click.option(
    "--manifest",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The manifest the shards ran over, when it is not at the path they recorded (another host or mount).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="stderr as text lines, or one JSON object per line.",
)
@click.option("-q", "--quiet", is_flag=True, help="Only errors and a one-line outcome.")
def merge(
    out_dir: Path, results_path: Path | None, metadata: str | None, manifest: Path | None, log_format: str, quiet: bool
) -> None:
    """Put the shard parts in DIR (from `batchtts run ... --shard K/N`) together.

    Writes the results manifest in manifest order, the dataset index and
    DIR/summary.json, as one unsharded run would. Rows no part has are
    pending; a row two parts have is an error (exit 2). The exit status is
    run's: 0 every row ok, 1 rows failed, 4 (or a shard's own stop) rows pending.
    DIR may be s3://bucket/prefix/ (shards that ran with --out there): merged in the store.

    \b
    Example:
      batchtts merge out/
      batchtts merge s3://bucket/tts/v3/
    """
    from batchtts.cli.logs import NOTICE, configure
    from batchtts.cli.summary import print_summary
    from batchtts.errors import ManifestError, UsageError
    from batchtts.job.merge import MergeOptions
    from batchtts.job.merge import merge as merge_parts
    from batchtts.manifest.arrowpool import use_system_allocator
    from batchtts.outcomes import ExitStatus

    use_system_allocator()
    cli_log = configure(log_format, verbose=0, quiet=quiet)
    options = MergeOptions(out_dir=out_dir, results_path=results_path, metadata=metadata, manifest=manifest)
    try:
        merged = merge_parts(options)
    except (UsageError, ManifestError) as exc:
        cli_log.error(str(exc))
        sys.exit(ExitStatus.USAGE)
    summary = merged.summary
    if cli_log.json:
        level = logging.ERROR if quiet else NOTICE
        message = f"{summary.rows} rows: {summary.ok} ok, {summary.failed} failed"
        cli_log.say("summary", message, level=level, **merged.document)
    else:
        print_summary(summary, out_dir, quiet=quiet)
    sys.exit(summary.exit_code)
