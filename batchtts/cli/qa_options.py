"""``batchtts run`` options for the audio checks (``--qa`` and its thresholds).

Kept apart from ``run.py`` so the command gains them with one decorator and
one call (:func:`qa_from`); what they mean is :mod:`batchtts.job.qa`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

#: ``--qa`` choices (the same as batchtts.job.qa.QA_MODES; not imported, so ``--help`` stays light).
QA_CHOICES = ("retry", "flag", "fail", "off")
_PARAMS = ("qa", "qa_attempts", "qa_floor", "qa_short", "qa_long", "qa_min_rows", "qa_max_silence", "qa_clip")


def qa_options(func: F) -> F:
    options = [
        click.option(
            "--qa",
            type=click.Choice(QA_CHOICES),
            default="retry",
            show_default=True,
            help="Check each take's audio (silent, truncated, overlong, clipped, long_silence): retry makes a "
            "flagged row again and keeps the better take, flag only records, fail fails it, off checks nothing.",
        ),
        click.option(
            "--qa-attempts",
            type=click.IntRange(0, 10),
            default=2,
            show_default=True,
            metavar="N",
            help="With --qa retry: takes made again for a flagged row, at most (not counted in --max-attempts).",
        ),
        click.option(
            "--qa-floor",
            type=click.FloatRange(-120, 0),
            default=-50.0,
            show_default=True,
            metavar="DBFS",
            help="Audio at or below this level (over 10 ms windows) is silence.",
        ),
        click.option(
            "--qa-short",
            type=click.FloatRange(0, 1, min_open=True, max_open=True),
            default=0.5,
            show_default=True,
            metavar="RATIO",
            help="Flag truncated: seconds per character below RATIO times the job's running median "
            "(same voice, speed and language).",
        ),
        click.option(
            "--qa-long",
            type=click.FloatRange(1, min_open=True),
            default=2.0,
            show_default=True,
            metavar="RATIO",
            help="Flag overlong: seconds per character above RATIO times the running median.",
        ),
        click.option(
            "--qa-min-rows",
            type=click.IntRange(1),
            default=10,
            show_default=True,
            metavar="N",
            help="Takes of a voice, speed and language before its median is trusted (truncated, overlong).",
        ),
        click.option(
            "--qa-max-silence",
            type=click.FloatRange(0, min_open=True),
            default=2.0,
            show_default=True,
            metavar="SECONDS",
            help="Flag long_silence: a silence inside the audio longer than this.",
        ),
        click.option(
            "--qa-clip",
            type=click.FloatRange(0, 1, max_open=True),
            default=0.001,
            show_default=True,
            metavar="SHARE",
            help="Flag clipped: more than this share of the samples at full scale.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def qa_from(params: dict[str, Any]) -> Any:
    """Pop this module's options from ``params`` -> a QaOptions."""
    from batchtts.job.qa import QaOptions

    values = {name: params.pop(name) for name in _PARAMS}
    return QaOptions(
        mode=values["qa"],
        attempts=values["qa_attempts"],
        floor_dbfs=values["qa_floor"],
        short=values["qa_short"],
        long=values["qa_long"],
        min_rows=values["qa_min_rows"],
        max_silence=values["qa_max_silence"],
        clip_share=values["qa_clip"],
    )
