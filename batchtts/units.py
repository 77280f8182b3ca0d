"""Parsing of the human-friendly quantities options take: rates, durations, deadlines, concurrency."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

_PERIODS = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "hr": 3600.0}
_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


#: ``--concurrency auto``: the stream cap is found at run time (``batchtts.schedule.throttle.AutoConcurrency``).
AUTO: Final = "auto"
#: The highest cap ``--concurrency auto`` grows to unless ``--max-concurrency`` says otherwise.
DEFAULT_MAX_CONCURRENCY = 64
#: The most streams one job may run (``--concurrency`` and ``--max-concurrency``).
MAX_STREAMS = 1024


def parse_concurrency(value: object) -> int | Literal["auto"]:
    """``auto`` or a whole number of streams, 1 to MAX_STREAMS (text or int); raise ValueError naming both forms."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    if isinstance(value, str) and value.strip().isdigit():
        streams = int(value.strip())
    elif isinstance(value, int) and not isinstance(value, bool):
        streams = value
    else:
        raise ValueError(f"{value!r} is not a concurrency; use auto or a whole number of streams")
    if not 1 <= streams <= MAX_STREAMS:
        raise ValueError(f"{streams} streams is not within 1 to {MAX_STREAMS}")
    return streams


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``count`` request starts in any window of ``period`` seconds."""

    count: float
    period: float

    @property
    def per_second(self) -> float:
        return self.count / self.period

    @property
    def interval(self) -> float:
        """Seconds between two evenly paced starts."""
        return self.period / self.count

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "min", 3600.0: "h"}.get(self.period, f"{self.period:g}s")
        return f"{self.count:g}/{unit}"


def parse_rate(text: str) -> Rate:
    """Parse ``N/s``, ``N/min`` or ``N/h``; raise ValueError naming the accepted forms."""
    match = _RATE.fullmatch(text.lower())
    if not match or match.group(2) not in _PERIODS or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a rate; use N/s, N/min or N/h with N > 0")
    return Rate(float(match.group(1)), _PERIODS[match.group(2)])


def parse_duration(text: str) -> float:
    """Parse ``90``, ``90s``, ``15m``, ``2h``, ``1h30m`` into seconds."""
    compact = text.replace(" ", "").lower()
    total, pos = 0.0, 0
    for match in _DURATION.finditer(compact):
        if match.start() != pos or not match.group(0):
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(compact) or not compact:
        raise ValueError(f"{text!r} is not a duration; use e.g. 90s, 15m, 2h or 1h30m")
    return total


_ISO_DATE = re.compile(r"\d{4}-\d")
_CLOCK_TIME = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")


@dataclass(frozen=True, slots=True)
class Deadline:
    """When a run stops starting rows: a span from its start, or a wall-clock time.

    A scheduler thinks in clock times ("done by 06:00, when the day's users
    come"), a person at a prompt in spans ("5h"); both are accepted.
    """

    text: str  # as the user wrote it, for messages
    seconds: float | None = None  # a span from the run's start
    at: datetime | None = None  # a wall-clock time (aware)
    #: A time of day (``06:00``): the next run's is the next one, so a rerun moves on by itself.
    daily: bool = False

    @property
    def fixed(self) -> bool:
        """A date and time: once past, every rerun stops at once until it is moved later."""
        return self.at is not None and not self.daily

    def seconds_left(self, now: datetime | None = None) -> float:
        """Seconds from ``now`` (aware; default: this moment) to the deadline; negative once past."""
        if self.seconds is not None:
            return self.seconds
        assert self.at is not None
        return (self.at - (now or datetime.now().astimezone())).total_seconds()


def parse_deadline(text: str, now: datetime | None = None) -> Deadline:
    """Parse a duration (``5h``, ``1h30m``), a clock time (``06:00``: the next one, local
    time) or an ISO 8601 date and time (``2026-11-25T06:00``, local unless it has an offset)."""
    value = text.strip()
    # Naive local wall-clock times, made aware by the system's zone rules (so a
    # nightly run across a daylight-saving change still stops at 06:00 on the wall).
    local_now = (now or datetime.now().astimezone()).astimezone().replace(tzinfo=None)
    clock = _CLOCK_TIME.fullmatch(value)
    if clock:
        hour, minute, second = int(clock.group(1)), int(clock.group(2)), int(clock.group(3) or 0)
        if hour > 23 or minute > 59 or second > 59:
            raise ValueError(f"{text!r} is not a time of day; use HH:MM, 00:00 to 23:59")
        at = local_now.replace(hour=hour, minute=minute, second=second, microsecond=0)
        if at <= local_now:
            at += timedelta(days=1)  # 06:00 at 22:00 means tomorrow morning
        return Deadline(text=value, at=at.astimezone(), daily=True)
    if _ISO_DATE.match(value):
        try:
            at = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T"))
        except ValueError:
            raise ValueError(f"{text!r} is not a date and time; use e.g. 2026-11-25T06:00") from None
        return Deadline(text=value, at=at if at.tzinfo else at.astimezone())
    try:
        return Deadline(text=value, seconds=parse_duration(value))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a deadline; use a duration (90m, 5h, 1h30m), a time of day (06:00) "
            "or a date and time (2026-11-25T06:00)"
        ) from None
