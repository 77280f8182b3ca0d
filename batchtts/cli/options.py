"""Click options shared by ``batchtts run``, ``batchtts validate`` and ``batchtts serve``.

One definition of the manifest and request-default options, so both commands
spell them the same and validate checks exactly what run would send; and one
parser for the ``--rate`` option run and serve both take.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

from batchtts.api.request import (
    DEFAULT_MODEL,
    DEFAULT_OUTPUT_FORMAT,
    DEFAULT_SAMPLE_RATE,
    DEFAULT_SPEED,
    DEFAULT_VOICE,
    ID_MAX_LENGTH,
    LANGUAGES,
    MODELS,
    OUTPUT_FORMATS,
    SAMPLE_RATES,
    SPEED_MAX,
    SPEED_MIN,
    is_valid_id,
)
from batchtts.manifest.dialect import CsvDialect, parse_column_names, parse_delimiter, parse_quote
from batchtts.units import Rate, parse_rate

F = TypeVar("F", bound=Callable[..., Any])


class OneLineError(click.ClickException):
    """A problem a person fixes (a missing extra, a broken install): one ``Error: ...`` line, exit 2."""

    exit_code = 2


#: Click parameter name -> request field, for the request-default options.
REQUEST_OPTION_FIELDS: dict[str, str] = {
    "voice_id": "voice_id",
    "model": "model",
    "sample_rate": "sample_rate",
    "speed": "speed",
    "language": "language",
    "output_format": "output_format",
    "pronunciation_dict": "pronunciation_dicts",
    "session_id": "session_id",
    "number_pronunciation_language": "number_pronunciation_language",
    "math_notation": "math_notation",
}


def _apply(options: list[Callable[[F], F]], func: F) -> F:
    for option in reversed(options):
        func = option(func)
    return func


def storage_option(func: F) -> F:
    """``--storage-option KEY=VALUE`` (repeatable): options for s3:// (gs://, az://) manifests and outputs."""
    return click.option(
        "--storage-option",
        "storage_option",
        multiple=True,
        metavar="KEY=VALUE",
        help="An option for object storage, e.g. endpoint=http://127.0.0.1:9000, region=eu-west-1, "
        "skip_signature=true (obstore's S3 config keys; gs:// and az:// manifests: fsspec's). "
        "Credentials and the endpoint otherwise come from the AWS environment "
        "and config files (AWS_ENDPOINT_URL included). Repeatable.",
    )(func)


def manifest_options(func: F) -> F:
    """``--text-column``, ``--id-column``, and how a CSV/TSV splits into cells (read them with :func:`dialect_from`)."""
    return _apply(
        [
            click.option(
                "--text-column",
                default="text",
                show_default=True,
                metavar="COLUMN",
                help="Manifest column holding the text to speak.",
            ),
            click.option(
                "--id-column",
                default=None,
                metavar="COLUMN",
                help="Manifest column holding each row's id. Default: 'id' when the manifest has it, "
                "else the row number.",
            ),
            click.option(
                "--delimiter",
                callback=_parsed(parse_delimiter),
                metavar="CHAR",
                help="Cell separator of a CSV/TSV manifest ('tab' for a tab). Default: ',' for .csv, tab for .tsv.",
            ),
            click.option(
                "--quote",
                callback=_parsed(parse_quote),
                metavar="CHAR|none",
                help="Quote character of a CSV/TSV manifest; 'none': quotes are ordinary text. "
                "Default: '\"' for .csv, none for .tsv.",
            ),
            click.option(
                "--no-header",
                is_flag=True,
                help="The CSV/TSV manifest has no header row: name its columns with --columns.",
            ),
            click.option(
                "--columns",
                type=_ColumnNames(),
                help="Names of a headerless manifest's columns, in order (with --no-header), e.g. id,raw,text.",
            ),
        ],
        func,
    )


class _ColumnNames(click.ParamType):
    """``id,raw,text`` on the command line; a job file may also give a list (``accepts_lists``)."""

    name = "NAME,..."
    accepts_lists = True

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, ...]:
        try:
            return parse_column_names(value)
        except (ValueError, TypeError) as exc:
            self.fail(str(exc), param, ctx)


def _parsed(parse: Callable[[str], Any]) -> Callable[[click.Context, click.Parameter, str | None], Any]:
    """A click callback running ``parse`` on a given value; its ValueError becomes a usage error (exit 2)."""

    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        try:
            return None if value is None else parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx, param) from None

    return callback


def dialect_from(params: dict[str, Any]) -> CsvDialect:
    """Pop the CSV/TSV options from a command's parsed parameters -> a :class:`CsvDialect`;
    click.UsageError for a combination that cannot work (``--columns`` without ``--no-header``)."""
    try:
        return CsvDialect(
            delimiter=params.pop("delimiter"),
            quote=params.pop("quote"),
            header=not params.pop("no_header"),
            columns=params.pop("columns"),
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def _check_session_id(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not is_valid_id(value):
        raise click.BadParameter(f"must be 1 to {ID_MAX_LENGTH} letters, digits, '-', '_' or '.'")
    return value


def _to_int(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    return None if value is None else int(value)


def request_default_options(func: F) -> F:
    """The request fields a job may set for every row (a manifest column of the same name wins)."""
    return _apply(
        [
            click.option("--voice-id", metavar="VOICE", help=f"Voice for every row. [API default: {DEFAULT_VOICE}]"),
            click.option("--model", type=click.Choice(MODELS), help=f"Model. [API default: {DEFAULT_MODEL}]"),
            click.option(
                "--sample-rate",
                type=click.Choice([str(rate) for rate in SAMPLE_RATES]),
                callback=_to_int,
                help=f"Sample rate in Hz. [API default: {DEFAULT_SAMPLE_RATE}]",
            ),
            click.option(
                "--speed",
                type=click.FloatRange(SPEED_MIN, SPEED_MAX),
                help=f"Speech speed, {SPEED_MIN} to {SPEED_MAX}. [API default: {DEFAULT_SPEED}]",
            ),
            click.option(
                "--language",
                type=click.Choice(LANGUAGES),
                metavar="CODE",
                help="Language of the text: auto or a language code (en, hi, de, ja, ...). [API default: not sent]",
            ),
            click.option(
                "--number-pronunciation-language",
                type=click.Choice(LANGUAGES),
                metavar="CODE",
                help="Language numbers, currency, times and dates are read in (same codes as --language). "
                "[API default: not sent]",
            ),
            click.option(
                "--math-notation/--no-math-notation",
                default=None,
                help="Read digit-flanked operators (5 x 3) as words. [API default: off; not sent]",
            ),
            click.option(
                "--output-format",
                type=click.Choice(OUTPUT_FORMATS),
                help=f"Audio format the API sends. [API default: {DEFAULT_OUTPUT_FORMAT}]",
            ),
            click.option(
                "--pronunciation-dict",
                multiple=True,
                metavar="DICT_ID",
                help="Pronunciation dictionary id; repeat for several.",
            ),
            click.option(
                "--session-id",
                callback=_check_session_id,
                metavar="ID",
                help=f"Session id sent with every request (1 to {ID_MAX_LENGTH} of A-Z a-z 0-9 . _ -).",
            ),
        ],
        func,
    )


def run_api_options(func: F) -> F:
    """What ``batchtts run`` asks of the API beyond each request's body: content expiry, the voice check."""
    return _apply(
        [
            click.option(
                "--expire-content",
                is_flag=True,
                default=False,
                help="Send 'x-expire-content: true': the API deletes the content after 7 days (Enterprise); "
                "the answer's verdict goes into the results (content_expiry).",
            ),
            click.option(
                "--voice-check/--no-voice-check",
                default=True,
                show_default=True,
                help="Before the first request, read the account's voice catalog once and fail the rows whose "
                "voice is not in it, with no request (if it cannot be read: a warning, no check).",
            ),
        ],
        func,
    )


def request_defaults_from(params: Mapping[str, Any]) -> dict[str, Any]:
    """The request defaults the user set, by request field, from a command's parsed parameters.

    ``params`` may hold other parameters too (pass the command's kwargs); unset
    options are left out so the API's own defaults apply.
    """
    defaults: dict[str, Any] = {}
    for param, field_name in REQUEST_OPTION_FIELDS.items():
        value = params.get(param)
        if value is None or value == ():
            continue
        defaults[field_name] = list(value) if field_name == "pronunciation_dicts" else value
    return defaults


def parse_rate_option(ctx: click.Context, param: click.Parameter, value: str | None) -> Rate | None:
    """Click callback of a ``--rate N/s|N/min|N/h`` option: :func:`batchtts.units.parse_rate`, None if not given."""
    if value is None:
        return None
    try:
        return parse_rate(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def parse_shard_option(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """``--shard K/N`` or ``auto/N`` (K from ``JOB_COMPLETION_INDEX``) -> a Shard; one clear error otherwise."""
    if value is None:
        return None
    from batchtts.errors import UsageError
    from batchtts.job.shards import parse_shard

    try:
        return parse_shard(str(value))
    except UsageError as exc:
        raise click.BadParameter(str(exc)) from None
