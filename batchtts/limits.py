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

import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio

from batchtts.units import Rate

log = logging.getLogger("batchtts")

#: Seconds added to the user's period when pacing, so that jitter on the wire
#: (a new connection's handshake, a late wake-up) never puts one start too many
#: into any window the server counts: 20/s is paced as 20 per 1.01 s.
WINDOW_ALLOWANCE = 0.01
LATENESS_TOLERANCE = 0.0
#: Multiplicative decrease on a 429: streams halve (as TCP's window), the pace
#: drops by 30% (as CUBIC's beta) so the job keeps most of its speed.
CONCURRENCY_DECREASE = 0.5
RATE_DECREASE = 0.7
#: Additive increase of the pace: this share of the pace at the last cut, per second of successes.
RATE_INCREASE_PER_SECOND = 0.05
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
        retry_after_scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._max_concurrency = concurrency
        self._max_rate = rate.count / (rate.period + WINDOW_ALLOWANCE) if rate else None
        self._adaptive = adaptive
        self._clock = clock
        self._retry_after_scale = retry_after_scale
        self._limit = float(concurrency)
        self._rate = self._max_rate
        self._in_flight = 0
        self._changed = anyio.Condition()
        self._pace_lock = anyio.Lock()
        self._next_start = 0.0
        self._paused_until = 0.0
        self._last_decrease = -math.inf
        self._recent_starts: deque[float] = deque(maxlen=4096)
        self._rate_at_cut = self._max_rate or 1.0
        self._rate_before_cut = self._rate_at_cut
        self._sending = 0
        self._streams_at_429 = concurrency + 1
        self.rate_limited = 0

    @property
    def state(self) -> ThrottleState:
        return ThrottleState(
            concurrency=int(self._limit),
            rate_per_second=self._rate,
            in_flight=self._sending,
            rate_limited=self.rate_limited,
        )

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[float]:
        """Hold one stream for the body; yields the start time (clock units)."""
        async with self._changed:
            while self._in_flight >= int(self._limit):
                await self._changed.wait()
            self._in_flight += 1
        sending = False
        try:
            started = await self._wait_for_start()
            self._sending += 1
            sending = True
            yield started
        finally:
            self._sending -= sending
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
                # GCRA: the next start is one interval after this one's actual
                # time (LATENESS_TOLERANCE is 0: measured, even 3 ms of forgiven
                # lateness let a busy event loop put 21 starts in a server's
                # 1 s window). Costs ~2% of drift at 20/s; no burst after idling.
                self._next_start = max(self._next_start, now - LATENESS_TOLERANCE) + 1.0 / self._rate
            self._recent_starts.append(now)
            return now

    def on_success(self) -> None:
        """Additive increase: +1 stream per window of successes, pace up by a step."""
        if not self._adaptive:
            return
        if self._limit < self._max_concurrency:
            # Waiters re-check when this slot is released, right after.
            # +1 stream per round of successes up to just below the level that
            # drew the last 429; past it, probe ten times more slowly.
            step = 1.0 / max(self._limit, 1.0)
            if self._limit + 1 >= self._streams_at_429:
                step /= 10
            self._limit = min(float(self._max_concurrency), self._limit + step)
        if self._rate is not None:
            # About +10% of the pace at the last cut per second: successes arrive
            # at ~rate per second, so each adds that share divided by the rate.
            # Below the pace that last drew a 429, close half the gap per second
            # (CUBIC's fast recovery); above it, probe gently.
            per_second = max(RATE_INCREASE_PER_SECOND * self._rate_at_cut, 0.5 * (self._rate_before_cut - self._rate))
            step = per_second / max(self._rate, MIN_RATE)
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
            self._paused_until = max(self._paused_until, now + retry_after * self._retry_after_scale)
        if not self._adaptive or started < self._last_decrease:
            return  # this request left before the last cut took effect
        self._last_decrease = now
        if self._sending >= int(self._limit):
            # Every stream was busy: the cap on streams may be what the API refused.
            self._streams_at_429 = max(1, self._sending)
            self._limit = max(1.0, math.floor(min(self._limit, self._sending) * CONCURRENCY_DECREASE))
        current = self._rate if self._rate is not None else self._observed_rate()
        self._rate_before_cut = current
        self._rate = max(MIN_RATE, current * RATE_DECREASE)
        self._rate_at_cut = self._rate
        self._next_start = max(self._next_start, now)
        log.info(
            "429: slowing down to %d streams, %.2f starts/s%s",
            int(self._limit),
            self._rate,
            f", pausing new starts {retry_after:g}s" if retry_after else "",
        )

    def _observed_rate(self) -> float:
        """Starts in the last second: what the API was being asked to take."""
        horizon = self._clock() - 1.0
        return max(1.0, float(sum(1 for t in self._recent_starts if t > horizon)))
