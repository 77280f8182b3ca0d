"""`batchtts run`: options -> a JobSpec -> the runner -> an exit code."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Any, Literal

import click

from batchtts.api.endpoint import DEFAULT_BASE_URL, KEY_ENV
from batchtts.cli.jobfile import job_file_option
from batchtts.cli.options import (
    manifest_options,
    parse_rate_option,
    parse_shard_option,
    request_default_options,
    request_defaults_from,
    run_api_options,
    storage_option,
)
from batchtts.cli.qa_options import qa_from, qa_options
from batchtts.cli.shape_options import shape_from, shape_options
from batchtts.server.engines import ENGINES
from batchtts.storage.names import FILE_FORMATS
from batchtts.units import AUTO, DEFAULT_MAX_CONCURRENCY, MAX_STREAMS, parse_concurrency


def _deadline(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    from batchtts.units import parse_deadline

    try:
        return parse_deadline(str(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _limits_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if not value:
        return None
    from batchtts.schedule.shared.address import check_limits_url

    try:
        return check_limits_url(str(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


class Concurrency(click.ParamType):
    """``auto`` or a number of streams (a job file may give either as a number or text)."""

    name = "auto|N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return parse_concurrency(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _read_key(api_key_file: Path | None) -> str:
    if api_key_file is not None:
        try:
            key = api_key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise click.UsageError(f"cannot read --api-key-file {api_key_file}: {exc.strerror}") from None
        if not key:
            raise click.UsageError(f"--api-key-file {api_key_file} is empty")
        return key
    key = os.environ.get(KEY_ENV, "").strip()
    if not key:
        raise click.UsageError(
            f"no API key: set {KEY_ENV}=<your key>, or pass --api-key-file PATH, "
            "or use --local to run against the bundled local server"
        )
    return key


def _count_in_background(manifest: Any, progress: Any, per_row: int = 1) -> None:
    """Give the progress display a total (and so an ETA) without delaying the first request."""
    import threading

    def count() -> None:
        with contextlib.suppress(Exception):  # a broken row: the job itself will report it
            progress.total_known(manifest.scan_row_count() * per_row)

    threading.Thread(target=count, name="batchtts-count-rows", daemon=True).start()


@click.command()
@click.argument("manifest", required=False, type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder: audio files, results manifest, journal, summary.json. Required.",
)
@click.option(
    "--results",
    "results_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Results manifest path (.parquet, .csv or .jsonl). Default: OUT/results.parquet.",
)
@manifest_options
@request_default_options
@run_api_options
@click.option(
    "--results-text",
    is_flag=True,
    help="Carry each row's text into the results manifest (a column named as the text column).",
)
@click.option(
    "--file-format", type=click.Choice(FILE_FORMATS), default="wav", show_default=True, help="How PCM audio is stored."
)
@shape_options
@qa_options
@click.option(
    "--base-url",
    envvar="BATCHTTS_BASE_URL",
    default=DEFAULT_BASE_URL,
    show_default=True,
    help="API endpoint (env BATCHTTS_BASE_URL).",
)
@click.option(
    "--api-key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"File holding the API key (else env {KEY_ENV}).",
)
@click.option("--local", is_flag=True, help="Run against the bundled local server, started in-process (no key).")
@click.option(
    "--engine", type=click.Choice(ENGINES), default="auto", show_default=True, help="Local server engine, with --local."
)
@click.option(
    "--concurrency",
    type=Concurrency(),
    default=AUTO,
    show_default=True,
    metavar="auto|N",
    help="Streams at once: auto finds the account's limit (one stream, more while all succeed, "
    "settling below a refusal); N is a fixed cap.",
)
@click.option(
    "--max-concurrency",
    type=click.IntRange(1, MAX_STREAMS),
    default=DEFAULT_MAX_CONCURRENCY,
    show_default=True,
    metavar="N",
    help="With --concurrency auto: the most streams it grows to.",
)
@click.option(
    "--rate", callback=parse_rate_option, metavar="N/s|N/min|N/h", help="Pace request starts to at most N per period."
)
@click.option(
    "--adaptive/--no-adaptive",
    default=True,
    show_default=True,
    help="Slow the whole job down on 429s (AIMD), then speed back up.",
)
@click.option(
    "--limits-url",
    envvar="BATCHTTS_LIMITS_URL",
    callback=_limits_url,
    metavar="redis://[:PASSWORD@]HOST:PORT/DB",
    help="Share --concurrency, --rate and the 429 back-off with every job of the account using this Redis "
    "(env BATCHTTS_LIMITS_URL).",
)
@click.option(
    "--limits-namespace",
    metavar="NAME",
    help="With --limits-url: share limits only with jobs giving the same NAME (the account is always apart).",
)
@click.option(
    "--max-attempts",
    type=click.IntRange(1, 100),
    default=5,
    show_default=True,
    help="Attempts per row, the first included (429 answers are counted apart: --max-rate-limited).",
)
@click.option(
    "--max-rate-limited",
    type=click.IntRange(1, 10_000),
    default=50,
    show_default=True,
    help="429 answers a row may get before it fails; they do not use up --max-attempts.",
)
@click.option(
    "--max-backoff",
    type=click.FloatRange(0),
    default=60.0,
    show_default=True,
    help="Longest wait between attempts, seconds.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.1),
    default=30.0,
    show_default=True,
    help="Idle read timeout of one attempt, seconds.",
)
@click.option(
    "--connect-timeout", type=click.FloatRange(0.1), default=10.0, show_default=True, help="Connect timeout, seconds."
)
@click.option("--force", is_flag=True, help="Redo every row, even those an earlier run finished.")
@click.option(
    "--retry-failed/--no-retry-failed",
    default=True,
    show_default=True,
    help="Try rows that failed in an earlier run again (no: keep their failure, send nothing).",
)
@click.option(
    "--grace",
    "grace",
    type=click.FloatRange(0),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="On SIGINT/SIGTERM, time rows in flight get to finish before they are cancelled.",
)
@click.option(
    "--deadline",
    callback=_deadline,
    metavar="DURATION|HH:MM|DATETIME",
    help="Start no row after this long (90m, 5h), or after this time (06:00, the next one; "
    "2026-11-25T06:00); rows in flight finish; exit 4.",
)
@click.option(
    "--max-characters",
    type=click.IntRange(0),
    metavar="N",
    help="Start no row that would take the characters of text started past N; exit 4.",
)
@click.option(
    "--limit",
    type=click.IntRange(0),
    metavar="N",
    help="Start at most N rows this run (rows whose earlier result stands do not count); exit 4.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="stderr as text lines, or one JSON object per line.",
)
@click.option(
    "--progress",
    "progress_mode",
    type=click.Choice(["auto", "live", "plain", "off"]),
    default="auto",
    show_default=True,
    help="Live display on a terminal, plain lines elsewhere.",
)
@click.option(
    "--progress-interval",
    type=click.FloatRange(0.05),
    default=10.0,
    hidden=True,
    help="Tests: seconds between plain progress lines.",
)
@click.option("--no-progress", is_flag=True, help="Same as --progress off.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and a one-line outcome (counts and exit status).")
@click.option("-v", "--verbose", count=True, help="More detail: -v each failed row, -vv every row.")
@click.option(
    "--shard",
    callback=parse_shard_option,
    metavar="K/N|auto/N",
    help="Do only shard K of N (K from 0) of the rows, by a hash of each row's id; auto/N reads K from "
    "JOB_COMPLETION_INDEX. Shards may share one OUT; `batchtts merge OUT` puts their results together.",
)
@click.option("--backoff-scale", type=float, default=1.0, hidden=True, help="Tests: scale every retry wait.")
@storage_option
@job_file_option(required={"manifest": "MANIFEST", "out_dir": "--out"})
def run(
    manifest: Path,
    out_dir: Path,
    results_path: Path | None,
    results_text: bool,
    file_format: str,
    base_url: str,
    api_key_file: Path | None,
    local: bool,
    engine: str,
    concurrency: int | Literal["auto"],
    max_concurrency: int,
    rate: Any,
    adaptive: bool,
    max_attempts: int,
    max_rate_limited: int,
    max_backoff: float,
    timeout: float,
    connect_timeout: float,
    force: bool,
    retry_failed: bool,
    grace: float,
    deadline: Any,
    max_characters: int | None,
    limit: int | None,
    log_format: str,
    progress_mode: str,
    progress_interval: float,
    no_progress: bool,
    quiet: bool,
    verbose: int,
    backoff_scale: float,
    shard: Any,
    **options: Any,
) -> None:
    """Synthesize every row of MANIFEST into OUT, one audio file per row.

    Rerunning the same command on the same OUT sends nothing for rows already
    done, retries failed rows and redoes new or changed ones. A --job FILE.toml
    may give every option; options typed here override it.

    \b
    Example:
      batchtts run jobs/demo.csv --out out/ --voice-id emily --rate 300/min
      batchtts run jobs/demo.csv --out out/ --local        # no key, bundled local server
      batchtts run --job jobs/nightly-dataset.toml --deadline 5h
    """
    from batchtts.cli.logs import NOTICE, configure
    from batchtts.cli.options import dialect_from
    from batchtts.cli.summary import print_summary
    from batchtts.errors import ManifestError, UsageError
    from batchtts.job.launch import Job, redactor
    from batchtts.job.spec import JobSpec
    from batchtts.ledger import summary_document
    from batchtts.manifest.arrowpool import use_system_allocator
    from batchtts.outcomes import ExitStatus
    from batchtts.schedule.retry import RetryPolicy
    from batchtts.storage.objects import parse_storage_options

    use_system_allocator()
    cli_log = configure(log_format, verbose=verbose, quiet=quiet)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    text_column, id_column, dialect = options.pop("text_column"), options.pop("id_column"), dialect_from(options)
    expire_content, voice_check = options.pop("expire_content"), options.pop("voice_check")
    limits_url, limits_namespace = options.pop("limits_url"), options.pop("limits_namespace")
    try:
        storage_options = parse_storage_options(options.pop("storage_option", ()))
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None
    defaults = request_defaults_from(options)
    shape = shape_from(options, defaults=defaults, file_format=file_format)
    qa = qa_from(options)
    spec = JobSpec(
        manifest=manifest,
        out_dir=out_dir,
        results_path=results_path,
        results_text=results_text,
        text_column=text_column,
        id_column=id_column,
        dialect=dialect,
        defaults=defaults,
        file_format=file_format,
        shape=shape,
        concurrency=concurrency,
        max_concurrency=max_concurrency,
        rate=rate,
        adaptive=adaptive,
        retry=RetryPolicy(
            max_attempts=max_attempts,
            max_rate_limited=max_rate_limited,
            max_backoff=max_backoff,
            time_scale=backoff_scale,
        ),
        grace_seconds=grace,
        force=force,
        retry_failed=retry_failed,
        deadline=deadline,
        max_characters=max_characters,
        limit=limit,
        expire_content=expire_content,
        voice_check=voice_check,
        base_url=base_url,
        idle_timeout=timeout,
        connect_timeout=connect_timeout,
        shard=shard,
        limits_url=limits_url,
        limits_namespace=limits_namespace,
        qa=qa,
        storage_options=storage_options,
    )
    try:  # before any server starts or key is read: a bad manifest is the first thing said
        job = Job(spec)
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None
    except ManifestError as exc:
        cli_log.error(str(exc))
        sys.exit(ExitStatus.USAGE)
    key = None if local else _read_key(api_key_file)
    if key is not None:
        cli_log.set_redact(redactor(key))
    mode = "off" if (no_progress or quiet) else progress_mode
    progress = cli_log.progress(mode, job.total_results, interval=progress_interval)
    if mode != "off" and job.total_results is None and shard is None:
        _count_in_background(job.manifest, progress, shape.results_per_row)
    try:
        summary = job.run(api_key=key, local=local, engine=engine, progress=progress, announce=cli_log.say)
    except (ManifestError, UsageError) as exc:  # UsageError: the folder is locked by another run
        cli_log.error(str(exc))
        sys.exit(ExitStatus.USAGE)
    if cli_log.json:  # the summary event, -q or not: a log collector wants the outcome
        document = summary_document(summary, manifest=spec.manifest, out_dir=spec.out_dir)
        level = logging.ERROR if quiet else NOTICE
        cli_log.say(
            "summary", f"{summary.rows} rows: {summary.ok} ok, {summary.failed} failed", level=level, **document
        )
    else:
        print_summary(summary, out_dir, local=local, quiet=quiet)
    sys.exit(summary.exit_code)
