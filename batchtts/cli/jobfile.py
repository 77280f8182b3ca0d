"""Job files: ``batchtts run --job jobs/NAME.toml`` reads its options from a TOML file.

A nightly job's options belong in version control, not in a crontab line. A
job file holds any option of ``batchtts run`` under the option's own long
name without the dashes (``voice-id``, ``max-attempts``; ``voice_id`` works
too), plus ``manifest``. Keys may sit at the top level or in the table that
groups them (:data:`TABLES`); a key in another table is an error that names
the right one, and so is a key no option has (with a suggestion).

What wins: an option given on the command line, then the job file, then an
environment variable (e.g. ``BATCHTTS_BASE_URL``), then the built-in default.
Click tells which options the user actually typed
(``ctx.get_parameter_source``); every value from the file goes through the
option's own type and checks, so ``speed = 3`` fails as ``--speed 3`` would.
Relative paths in a job file are relative to the job file's folder, so a job
runs the same from any working directory; relative paths typed on the command
line stay relative to the working directory.
"""

from __future__ import annotations

import difflib
import functools
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

F = TypeVar("F", bound=Callable[..., Any])

#: Tables a job file may group its keys in, and the options each holds. Any
#: option may also be written at the top level (``manifest``, ``out``,
#: ``results``, ``text-column``, ``id-column``, ``delimiter``, ``quote``,
#: ``no-header``, ``columns``, ``file-format`` live there).
TABLES: dict[str, tuple[str, ...]] = {
    "request": (
        "voice-id", "model", "sample-rate", "speed", "language", "output-format", "pronunciation-dict", "session-id",
        "number-pronunciation-language", "math-notation", "expire-content",
    ),
    "api": ("base-url", "api-key-file", "local", "engine", "timeout", "connect-timeout", "voice-check"),
    "limits": (
        "concurrency", "max-concurrency", "rate", "adaptive", "max-attempts", "max-rate-limited", "max-backoff",
        "deadline", "max-characters", "limit", "grace", "limits-url", "limits-namespace",
    ),
    "files": (
        "max-chars", "join-gap-ms", "group-by", "order-by", "title-column", "voices", "keep-parts", "shard-dirs",
        "metadata", "loudness", "peak", "room-tone", "limiter",
    ),
    "resume": ("force", "retry-failed"),
    "qa": ("qa", "qa-attempts", "qa-floor", "qa-short", "qa-long", "qa-min-rows", "qa-max-silence", "qa-clip"),
    "log": ("progress", "no-progress", "quiet", "verbose", "log-format"),
}  # fmt: skip
#: Other spellings accepted for a key.
ALIASES: dict[str, str] = {"pronunciation-dicts": "pronunciation-dict", "out-dir": "out"}
#: Options a job file may not set.
NOT_IN_JOB_FILES: dict[str, str] = {
    "job": "a job file cannot name another job file",
    "help": "not an option for a job file",
    "api-key": "a job file never holds the key: use api-key-file (or the SMALLEST_API_KEY environment variable)",
}


class JobFileError(click.UsageError):
    """A job file that cannot be used (exit 2), naming the file and the key."""


@dataclass(frozen=True, slots=True)
class JobFile:
    path: Path
    values: dict[str, Any]  # option key (e.g. "voice-id") -> the value as TOML gave it

    @property
    def folder(self) -> Path:
        """Where relative paths in the file start (resolved, so ``..`` in them means what it says)."""
        return self.path.resolve().parent


def option_keys(command: click.Command) -> dict[str, click.Parameter]:
    """Job-file key -> parameter: the first long option name without ``--`` (``manifest`` for the argument)."""
    keys: dict[str, click.Parameter] = {}
    for param in command.params:
        if isinstance(param, click.Argument):
            keys[param.name or ""] = param
            continue
        longs = [opt for opt in param.opts if opt.startswith("--")]
        if longs:
            keys[longs[0][2:]] = param
    return keys


def load_job_file(path: Path, command: click.Command) -> JobFile:
    """Read and check a job file's keys against ``command``'s options (values are checked when applied)."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise JobFileError(f"job file {path}: no such file") from None
    except OSError as exc:
        raise JobFileError(f"job file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise JobFileError(f"job file {path}: not valid TOML: {exc}") from None
    known = option_keys(command)
    table_of = {key: table for table, keys in TABLES.items() for key in keys}
    values: dict[str, Any] = {}

    def take(raw_key: str, value: Any, table: str | None) -> None:
        key = _normalise(raw_key)
        where = f"[{table}] {raw_key}" if table else raw_key
        if key in NOT_IN_JOB_FILES:
            raise JobFileError(f"job file {path}: {where}: {NOT_IN_JOB_FILES[key]}")
        if key not in known:
            hint = difflib.get_close_matches(key, [k for k in known if k not in NOT_IN_JOB_FILES], n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise JobFileError(f"job file {path}: {where}: no such option{suggestion}")
        if table is not None and table_of.get(key) != table:
            home = f"in the [{table_of[key]}] table" if key in table_of else "at the top level"
            here = f"in [{table}]" if table else "at the top level"
            raise JobFileError(f"job file {path}: {raw_key!r} goes {home}, not {here}")
        if key in values:
            raise JobFileError(f"job file {path}: {key} is set twice")
        values[key] = value

    for raw_key, value in data.items():
        if isinstance(value, dict) and raw_key in TABLES:
            for inner_key, inner_value in value.items():
                take(inner_key, inner_value, raw_key)
        elif isinstance(value, dict):
            tables = ", ".join(f"[{t}]" for t in TABLES)
            raise JobFileError(f"job file {path}: [{raw_key}]: no such table (tables: {tables})")
        else:
            take(raw_key, value, None)
    return JobFile(Path(path), values)


def _normalise(key: str) -> str:
    key = key.strip().replace("_", "-")
    return ALIASES.get(key, key)


def apply_job_file(ctx: click.Context, job: JobFile, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` (the command's parsed values) with the job file's values where the user typed nothing."""
    known = option_keys(ctx.command)
    merged = dict(params)
    for key, raw in job.values.items():
        param = known[key]
        name = param.name or key
        if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.PROMPT):
            continue  # what the user typed wins
        try:
            merged[name] = param.process_value(ctx, _prepare(param, raw, job.folder))
        except click.BadParameter as exc:
            raise JobFileError(f"job file {job.path}: {key}: {exc.message}") from None
    return merged


def _prepare(param: click.Parameter, value: Any, folder: Path) -> Any:
    """A TOML value in the shape click's conversion expects; relative paths made relative to ``folder``."""
    if param.multiple:
        items = value if isinstance(value, list) else [value]
        return tuple(_prepare_one(param.type, item, folder) for item in items)
    if isinstance(value, list) and getattr(param.type, "accepts_lists", False):
        return value  # e.g. columns = ["id", "raw", "text"]: the option's type takes the list
    if isinstance(value, (list, dict)):
        raise click.BadParameter(f"expected a single value, got {type(value).__name__} {value!r}")
    return _prepare_one(param.type, value, folder)


def _prepare_one(kind: click.ParamType, value: Any, folder: Path) -> Any:
    if isinstance(kind, click.Path) and isinstance(value, str):
        from batchtts.storage.objects import object_url

        if object_url(value) is not None:
            return Path(value)  # s3://bucket/...: a URL, not a path relative to the job file
        path = Path(value).expanduser()
        return path if path.is_absolute() else Path(os.path.normpath(folder / path))
    if isinstance(kind, click.Choice) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # sample-rate = 24000: the choices are spelled as text
    return value


def job_file_option(*, required: Mapping[str, str]) -> Callable[[F], F]:
    """Add ``--job FILE`` to a command; ``required``: parameter -> how to name it when neither gives it.

    Put it directly above the ``def``, below every other option, so that it
    wraps the plain function.
    """

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, job: Path | None = None, **params: Any) -> Any:
            ctx = click.get_current_context()
            if job is not None:
                params = apply_job_file(ctx, load_job_file(job, ctx.command), params)
            for name, shown in required.items():
                if params.get(name) is None:
                    raise click.UsageError(f"missing {shown} (give it on the command line or in a --job file)", ctx)
            return func(*args, **params)

        return click.option(
            "--job",
            type=click.Path(dir_okay=False, path_type=Path),
            metavar="FILE.toml",
            help="Read options from a TOML job file (see jobs/); options on the command line override it.",
        )(wrapper)  # type: ignore[return-value]

    return decorate
