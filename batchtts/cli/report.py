"""`batchtts report DIR`: one self-contained HTML page about a job folder (see :mod:`batchtts.report`)."""

from __future__ import annotations

from pathlib import Path

import click

from batchtts.cli.options import OneLineError


@click.command()
@click.argument("out_dir", metavar="DIR", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    metavar="FILE",
    help="Write the page to FILE instead of DIR/report.html.",
)
@click.option(
    "--manifest",
    type=click.Path(path_type=Path),
    default=None,
    metavar="PATH",
    help="Read the listed rows' texts from this manifest (default: the one summary.json names).",
)
@click.option(
    "--text-column",
    default="text",
    show_default=True,
    metavar="NAME",
    help="The manifest's (or the results') text column.",
)
@click.option("--id-column", default=None, metavar="NAME", help="The manifest's id column (default: id, if any).")
@click.option(
    "--max-listed",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    metavar="N",
    help="List at most N flagged rows; the page counts the rest.",
)
@click.option(
    "--sample",
    "sample_size",
    type=click.IntRange(min=0),
    default=12,
    show_default=True,
    metavar="N",
    help="Ok rows to listen to, drawn at random (the same rows for the same --seed).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample of ok rows.")
def report(
    out_dir: Path,
    out: Path | None,
    manifest: Path | None,
    text_column: str,
    id_column: str | None,
    max_listed: int,
    sample_size: int,
    seed: int,
) -> None:
    """Write DIR/report.html: a job folder's summary, rows over time, times per voice,
    failures by reason, flagged rows and a sample to listen to.

    DIR may be finished, running (read only: the job is not disturbed),
    interrupted, or a --shard job (merged, or not yet: each part is read,
    running shards included). The page is one file with no
    network use; its audio players point at DIR's files by relative paths.

    \b
    Examples:
      batchtts report out/
      batchtts report out/ --out /tmp/out-report.html --sample 30 --seed 7
    """
    from batchtts.errors import UsageError
    from batchtts.report.page import ReportOptions, write_report

    options = ReportOptions(
        max_listed=max_listed,
        sample_size=sample_size,
        seed=seed,
        manifest=manifest,
        text_column=text_column,
        id_column=id_column,
    )
    try:
        written, figures = write_report(out_dir, out, options)
    except UsageError as exc:
        raise OneLineError(str(exc)) from None
    except OSError as exc:
        raise OneLineError(f"cannot write the report: {exc.strerror or exc}") from None
    click.echo(f"report: {written} ({figures.rows} rows, {figures.flagged_count} flagged)")
