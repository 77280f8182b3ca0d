"""``batchtts run`` options for audiobooks and datasets: long texts, chapters, voices, layouts.

Kept apart from ``run.py`` so the command gains them with one decorator and
one call; every check that can be made before a request is made here (exit 2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from batchtts.storage.names import MAX_SHARD_LEVELS

F = TypeVar("F", bound=Callable[..., Any])

METADATA_CHOICES = ("audiofolder", "audiofolder-jsonl", "ljspeech")
_PARAMS = ("max_chars", "join_gap_ms", "group_by", "order_by", "title_column", "voices", "keep_parts",
           "shard_dirs", "metadata", "loudness", "peak", "room_tone", "limiter")  # fmt: skip


def shape_options(func: F) -> F:
    options = [
        click.option(
            "--max-chars",
            type=click.IntRange(1),
            metavar="N",
            help="Split texts longer than N characters at sentence, clause, then word ends; "
            "the parts are joined into the row's one file.",
        ),
        click.option(
            "--join-gap-ms",
            type=click.IntRange(0, 60_000),
            default=0,
            show_default=True,
            metavar="MS",
            help="Silence between joined parts and between the rows of a --group-by file.",
        ),
        click.option(
            "--group-by",
            metavar="COLUMN",
            help="Join the rows of each value of COLUMN into one file named after it, "
            "with a chapters file (FFMETADATA) beside it.",
        ),
        click.option(
            "--order-by",
            metavar="COLUMN",
            help="Order of the rows inside a --group-by file (numeric when every value is a number).",
        ),
        click.option("--title-column", metavar="COLUMN", help="Chapter titles for --group-by (default: the row id)."),
        click.option(
            "--voices",
            metavar="A,B,...",
            help="Synthesize every row once per voice: one file and one results row per (row, voice).",
        ),
        click.option(
            "--keep-parts",
            is_flag=True,
            help="Keep the parts of split and grouped rows after their file is written (in OUT/.batchtts/parts/).",
        ),
        click.option(
            "--shard-dirs",
            type=click.IntRange(0, MAX_SHARD_LEVELS),
            default=0,
            show_default=True,
            metavar="N",
            help="Spread files over N levels of hashed subfolders (256 per level).",
        ),
        click.option(
            "--metadata",
            type=click.Choice(METADATA_CHOICES),
            help="Also write a dataset index of the ok files at OUT's root.",
        ),
        click.option(
            "--loudness",
            type=click.FloatRange(-70.0, 0.0),
            metavar="LUFS",
            help="Normalise each joined file (chapter) to this integrated loudness (ITU-R BS.1770), "
            "e.g. -18; needs --group-by or --max-chars and the book extra.",
        ),
        click.option(
            "--peak",
            type=click.FloatRange(-40.0, 0.0),
            default=-3.0,
            show_default=True,
            metavar="DBTP",
            help="True-peak ceiling for --loudness: no true peak goes above it (see --limiter).",
        ),
        click.option(
            "--limiter/--no-limiter",
            default=True,
            show_default=True,
            help="With --loudness: reach the target by limiting the few peaks above --peak (look-ahead, true peak); "
            "--no-limiter lowers the whole file's gain instead.",
        ),
        click.option(
            "--room-tone",
            metavar="HEAD,TAIL",
            help="Seconds of silence at the start and end of each joined file, e.g. 0.75,2 (ACX asks 0.5-1 and 1-5).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def shape_from(params: dict[str, Any], *, defaults: dict[str, Any], file_format: str) -> Any:
    """Pop this module's options from ``params`` -> a ShapeOptions; click.UsageError for bad combinations."""
    from batchtts.job.shaping.fanout import parse_voices
    from batchtts.job.shaping.options import JOINABLE_FORMATS, ShapeOptions

    values = {name: params.pop(name) for name in _PARAMS}
    voices: tuple[str, ...] = ()
    if values["voices"] is not None:
        try:
            voices = parse_voices(values["voices"])
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--voices") from None
        if defaults.get("voice_id") is not None:
            raise click.UsageError("--voices and --voice-id cannot be combined: --voices sets every row's voice")
    for option, name in (("--order-by", "order_by"), ("--title-column", "title_column")):
        if values[name] is not None and values["group_by"] is None:
            raise click.UsageError(f"{option} needs --group-by")
    output_format = defaults.get("output_format")
    joins = values["max_chars"] is not None or values["group_by"] is not None
    if joins and output_format is not None and output_format not in JOINABLE_FORMATS:
        raise click.UsageError(
            f"--output-format {output_format} cannot be joined: --max-chars and --group-by need 16-bit PCM "
            "(--output-format pcm or wav; store it as --file-format wav, flac or raw)"
        )
    metadata = values["metadata"]
    if metadata is not None and values["group_by"] is not None:
        raise click.UsageError(
            "--metadata lists one clip per row; with --group-by a file holds many rows (use the chapters files)"
        )
    if metadata == "ljspeech":
        if len(voices) > 1:
            raise click.UsageError("--metadata ljspeech is a single-speaker layout; use audiofolder with --voices")
        if values["shard_dirs"]:
            raise click.UsageError("--metadata ljspeech keeps every file in wavs/; it cannot use --shard-dirs")
        if file_format != "wav" or (output_format is not None and output_format not in JOINABLE_FORMATS):
            raise click.UsageError(
                "--metadata ljspeech needs 16-bit WAV files (--output-format pcm or wav, --file-format wav)"
            )
    loudness, room_tone = values["loudness"], _room_tone(values["room_tone"])
    for option, value in (("--loudness", loudness), ("--room-tone", room_tone)):
        if value is not None and not joins:
            raise click.UsageError(f"{option} is set on joined files: use it with --group-by or --max-chars")
    if loudness is not None:
        from batchtts.audio.loudness import MissingExtra, require_book_extra
        from batchtts.cli.options import OneLineError

        try:
            require_book_extra("--loudness")
        except MissingExtra as exc:
            raise OneLineError(str(exc)) from None
    return ShapeOptions(
        max_chars=values["max_chars"],
        join_gap_ms=values["join_gap_ms"],
        group_by=values["group_by"],
        order_by=values["order_by"],
        title_column=values["title_column"],
        voices=voices,
        keep_parts=values["keep_parts"],
        shard_dirs=values["shard_dirs"],
        metadata=metadata,
        loudness=loudness,
        peak=values["peak"],
        room_tone=room_tone,
        limiter=values["limiter"],
    )


def _room_tone(value: str | None) -> tuple[float, float] | None:
    """``HEAD,TAIL`` seconds -> (head, tail); click.BadParameter for anything else."""
    if value is None:
        return None
    try:
        head, tail = (float(piece) for piece in str(value).split(","))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not HEAD,TAIL in seconds (e.g. 0.75,2)", param_hint="--room-tone"
        ) from None
    if not (0.0 <= head <= 60.0 and 0.0 <= tail <= 60.0):
        raise click.BadParameter(f"{value!r}: each is 0 to 60 seconds", param_hint="--room-tone")
    return head, tail
