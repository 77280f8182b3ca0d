"""Limits a scheduler sets on one run: a deadline, a character budget, a row count.

Each is checked when a worker is about to start a row (its first request), so
a row is either started whole or not at all: rows in flight always finish (with
their retries), and the rows refused are recorded ``pending`` for the next run.
Rows whose earlier result stands (resume) and bad rows send nothing, so they
count against none of these limits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from batchtts.outcomes import StopReason
from batchtts.units import Deadline


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: StopReason  # DEADLINE, BUDGET or LIMIT: the stop reason in summary.json
    message: str  # for people: which limit, and its value
    #: What to do next, when rerunning the same command would not help.
    next_step: str | None = None


class StartGate:
    """Says whether the next row may start; counts the rows and characters started."""

    def __init__(
        self,
        *,
        deadline: Deadline | None = None,
        max_characters: int | None = None,
        limit: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._deadline_text = deadline.text if deadline is not None else ""
        self._deadline_fixed = deadline is not None and deadline.fixed
        self._deadline = clock() + deadline.seconds_left() if deadline is not None else None
        self.max_characters = max_characters
        self.limit = limit
        self.rows_started = 0
        self.characters_started = 0

    def admit(self, characters: int) -> Refusal | None:
        """Count a row of ``characters`` as started, or say which limit refuses it."""
        if self._deadline is not None and self._clock() >= self._deadline:
            moved = "move --deadline later (it is a date and time), then rerun to do the pending rows"
            return Refusal(
                StopReason.DEADLINE,
                f"the deadline (--deadline {self._deadline_text}) passed",
                moved if self._deadline_fixed else None,
            )
        if self.limit is not None and self.rows_started >= self.limit:
            started = "1 row" if self.limit == 1 else f"{self.limit} rows"
            zero = "--limit 0 starts no row: give a larger --limit (or none) to do the pending rows"
            return Refusal(
                StopReason.LIMIT, f"{started} started (--limit {self.limit})", zero if self.limit == 0 else None
            )
        if self.max_characters is not None and self.characters_started + characters > self.max_characters:
            alone = characters > self.max_characters
            raise_it = f"raise --max-characters to at least {characters}: the next row alone needs that many"
            return Refusal(
                StopReason.BUDGET,
                f"the next row ({characters} characters) would exceed the character budget "
                f"(--max-characters {self.max_characters}; {self.characters_started} started)",
                raise_it if alone else None,
            )
        self.rows_started += 1
        self.characters_started += characters
        return None
