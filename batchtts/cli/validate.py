"""`batchtts validate`: check a manifest offline, exactly as `batchtts run` would plan it.

Streams the manifest through the same reader and planner as run, so a clean
validate means run will send a request for every row. Memory stays flat:
only a capped listing, a per-reason tally and the id table are kept.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from batchtts.cli.options import (
    dialect_from,
    manifest_options,
    parse_shard_option,
    request_default_options,
    request_defaults_from,
    storage_option,
)

EXIT_CLEAN, EXIT_BAD_ROWS, EXIT_UNREADABLE = 0, 1, 2
ID_SHOWN_CHARS = 60


@click.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@manifest_options
@storage_option
@request_default_options
@click.option(
    "--max-listed",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    metavar="N",
    help="List at most N bad rows (0: list them all); the tally counts every one.",
)
@click.option(
    "--shard",
    callback=parse_shard_option,
    metavar="K/N|auto/N",
    help="Check only the rows `batchtts run --shard K/N` would do (K from 0; auto/N: K from JOB_COMPLETION_INDEX).",
)
@click.pass_context
def validate(
    ctx: click.Context,
    manifest: Path,
    text_column: str,
    id_column: str | None,
    max_listed: int,
    shard: Any,
    **options: Any,
) -> None:
    """Check MANIFEST without sending anything.

    MANIFEST is a .csv, .tsv, .parquet, .jsonl or .ndjson file (optionally
    compressed: .gz, .bz2, .zst, .lz4) or a folder of .parquet files.

    Reports the row count and every row `batchtts run` would refuse (empty text,
    values the API schema rejects, missing or repeated ids) with its row number,
    id and reason, and how many rows are longer than the 250 characters the
    model card recommends. Takes the same column and request-default options as run.

    Exit status: 0 every row valid, 1 some rows bad, 2 unreadable manifest,
    missing column or bad option.

    \b
    Examples:
      batchtts validate jobs/demo.csv
      batchtts validate jobs/nightly-dataset.csv --text-column sentence --id-column utt_id --voice-id emily
    """
    from batchtts.api.request import RECOMMENDED_MAX_CHARS, InvalidRequest
    from batchtts.errors import ManifestError, UsageError
    from batchtts.manifest.arrowpool import use_system_allocator
    from batchtts.manifest.planner import RowPlanner
    from batchtts.manifest.readers import open_manifest
    from batchtts.storage.objects import parse_storage_options, shown, use_storage_options

    use_system_allocator()
    dialect = dialect_from(options)
    try:
        use_storage_options(parse_storage_options(options.pop("storage_option", ())))
        opened = open_manifest(manifest, text_column=text_column, id_column=id_column, dialect=dialect)
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None
    except ManifestError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(EXIT_UNREADABLE)
    try:
        planner = RowPlanner(request_defaults_from(options), track_duplicates=opened.id_column is not None)
    except InvalidRequest as exc:
        raise click.UsageError(f"invalid request default: {exc}") from exc

    click.echo(f"manifest: {shown(opened.path)} ({opened.describe()})")
    click.echo(f"columns: {_names(opened.columns)}")
    click.echo(
        f"text: {opened.text_column!r} · id: "
        + (repr(opened.id_column) if opened.id_column else "row number")
        + f" · overrides: {_names(opened.override_columns)} · carried: {_names(opened.carried_columns)}"
    )

    rows = bad = long_rows = 0
    tally: Counter[str] = Counter()
    try:
        for planned in map(planner.plan, _shard_rows(opened, shard)):
            rows += 1
            if planned.request is not None:
                long_rows += len(planned.request.text) > RECOMMENDED_MAX_CHARS
                continue
            bad += 1
            tally[planned.kind or "other"] += 1
            if max_listed == 0 or bad <= max_listed:
                if bad == 1:
                    click.echo("bad rows:")
                click.echo(f"  row {planned.row.number}, id {_short(planned.row.id)}: {planned.error}")
    except ManifestError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(EXIT_UNREADABLE)

    if max_listed and bad > max_listed:
        click.echo(f"  ... and {bad - max_listed} more")
    if tally:
        click.echo("bad rows by reason:")
        width = max(len(kind) for kind in tally)
        for kind, count in tally.most_common():
            click.echo(f"  {kind:<{width}}  {count}")
    if planner.duplicate_rows:
        click.echo(
            f"repeated ids: {planner.repeated_ids} id(s) repeated in {planner.duplicate_rows} later row(s);"
            " the first row with each id is kept"
        )
    if long_rows:
        click.echo(
            f"long texts: {long_rows} valid row(s) longer than {RECOMMENDED_MAX_CHARS} characters, the model card's "
            f"recommended maximum per request; batchtts run --max-chars {RECOMMENDED_MAX_CHARS} splits them"
        )
    if bad:
        click.echo(f"{rows} rows{_of_shard(shard)}: {rows - bad} valid, {bad} bad")
        ctx.exit(EXIT_BAD_ROWS)
    click.echo(f"{rows} rows{_of_shard(shard)}, all valid")
    ctx.exit(EXIT_CLEAN)


def _shard_rows(manifest: Any, shard: Any) -> Iterator[Any]:
    """The manifest's rows, or only those of ``shard`` (by id: validate has no --group-by)."""
    for row in manifest:
        if shard is None or shard.owns(row.id):
            yield row


def _of_shard(shard: Any) -> str:
    return "" if shard is None else f" in shard {shard}"


def _names(columns: list[str]) -> str:
    return ", ".join(columns) if columns else "(none)"


def _short(row_id: str) -> str:
    if len(row_id) > ID_SHOWN_CHARS:
        return repr(row_id[:ID_SHOWN_CHARS]) + "…"
    return repr(row_id)
