"""Concurrency, pacing and adaptive slow-down, as one small "throttle".

Every request start goes through :meth:`Throttle.slot`: it waits for a free
stream (the effective concurrency), then for the pacing schedule (GCRA, the
virtual-scheduling form used by aiometer: starts are spaced one interval apart
on a fixed schedule, never bursting to catch up), then for any Retry-After pause
the API asked for. When the API answers 429 the whole job slows down: the
concurrency and the pace are cut multiplicatively, then raised additively while
requests succeed (AIMD, as TCP does), never above what the user set.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio

from batchtts.units import Rate

#: Pace a little under the user's rate so jitter on the wire never puts one
#: start too many into any window the server counts.
RATE_SAFETY = 0.99
DECREASE_FACTOR = 0.5
#: Floor for an adaptive pace, in starts per second.
MIN_RATE = 0.05


@dataclass(frozen=True, slots=True)
class ThrottleState:
    """What the progress display shows."""

    concurrency: int
    rate_per_second: float | None
    in_flight: int
    rate_limited: int


class Throttle:
    """Concurrency cap + GCRA pacing + AIMD on 429s + Retry-After pauses."""

    def __init__(
        self,
        concurrency: int,
        rate: Rate | None = None,
        *,
        adaptive: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._max_concurrency = concurrency
        self._max_rate = rate.per_second * RATE_SAFETY if rate else None
        self._adaptive = adaptive
        self._clock = clock
        self._limit = float(concurrency)
        self._rate = self._max_rate
        self._in_flight = 0
        self._changed = anyio.Condition()
        self._pace_lock = anyio.Lock()
        self._next_start = 0.0
        self._paused_until = 0.0
        self._last_decrease = -math.inf
        self._recent_starts: deque[float] = deque(maxlen=256)
        self.rate_limited = 0

    @property
    def state(self) -> ThrottleState:
        return ThrottleState(
            concurrency=int(self._limit),
            rate_per_second=self._rate,
            in_flight=self._in_flight,
            rate_limited=self.rate_limited,
        )

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[float]:
        """Hold one stream for the body; yields the start time (clock units)."""
        async with self._changed:
            while self._in_flight >= int(self._limit):
                await self._changed.wait()
            self._in_flight += 1
        try:
            started = await self._wait_for_start()
            yield started
        finally:
            async with self._changed:
                self._in_flight -= 1
                self._changed.notify_all()

    async def _wait_for_start(self) -> float:
        async with self._pace_lock:
            while True:
                now = self._clock()
                start = max(now, self._paused_until)
                if self._rate:
                    start = max(start, self._next_start)
                if start <= now:
                    break
                await anyio.sleep(start - now)
            if self._rate:
                # GCRA: a fixed schedule, so a slightly late wake-up does not shift
                # later slots (no drift), yet an idle spell earns no burst.
                interval = 1.0 / self._rate
                tolerance = min(interval / 2, 0.005)
                self._next_start = max(self._next_start, now - tolerance) + interval
            self._recent_starts.append(now)
            return now

    def on_success(self) -> None:
        """Additive increase: +1 stream per window of successes, pace up by a step."""
        if not self._adaptive:
            return
        if self._limit < self._max_concurrency:
            # Waiters re-check when this slot is released, right after.
            self._limit = min(float(self._max_concurrency), self._limit + 1.0 / max(self._limit, 1.0))
        if self._rate is not None:
            step = max(self._rate, MIN_RATE) * 0.05 / max(self._limit, 1.0)
            ceiling = self._max_rate
            if ceiling is None and self._rate + step > self._observed_rate() * 2:
                self._rate = None  # the API kept up: stop pacing again
            else:
                self._rate = self._rate + step if ceiling is None else min(ceiling, self._rate + step)

    def on_rate_limited(self, started: float, retry_after: float | None) -> None:
        """A 429: pause new starts for Retry-After; cut once per round trip."""
        self.rate_limited += 1
        now = self._clock()
        if retry_after:
            self._paused_until = max(self._paused_until, now + retry_after)
        if not self._adaptive or started < self._last_decrease:
            return  # this request left before the last cut took effect
        self._last_decrease = now
        self._limit = max(1.0, math.floor(self._limit * DECREASE_FACTOR))
        current = self._rate if self._rate is not None else self._observed_rate()
        self._rate = max(MIN_RATE, current * DECREASE_FACTOR)
        self._next_start = max(self._next_start, now)

    def _observed_rate(self) -> float:
        """Starts per second over the recent starts; a guess for the first cut."""
        if len(self._recent_starts) < 2:
            return max(float(self._max_concurrency), 1.0)
        span = self._recent_starts[-1] - self._recent_starts[0]
        if span <= 0:
            return float(len(self._recent_starts))
        return (len(self._recent_starts) - 1) / span
