"""Parsing of the human-friendly quantities options take: rates and durations."""

from __future__ import annotations

import re
from dataclasses import dataclass

_PERIODS = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "hr": 3600.0}
_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


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
