"""Concurrency, pacing and adaptive slow-down, as one small "throttle".

Every request start goes through :meth:`Throttle.slot`: it waits for a free
stream (the effective concurrency), then for the pacing schedule (GCRA, the
virtual-scheduling form used by aiometer: starts are spaced one interval apart
on a fixed schedule, catching up at most one interval after a late wake-up),
then for the window guard (the user's N starts per period, counted at the times
the requests actually left, as the API counts them), then for any Retry-After
pause the API asked for. When the API answers 429 the whole job slows down: the
concurrency and the pace are cut multiplicatively, then raised additively while
requests succeed (AIMD, as TCP does), never above what the user set.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio

from batchtts.units import Rate

log = logging.getLogger("batchtts")

#: The window guard: start k+N is granted no sooner than one window after the
#: API has surely counted start k, which is when its answer (status line and
#: headers) came back: the API decides to admit or refuse a request before it
#: answers. Causal, so it holds whatever the network or a busy server does in
#: between (measured: a local server warming up counted requests sent 25 ms
#: apart in one bunch 100 ms later, which a fixed allowance after the send did
#: not cover). A request not answered this long after it left is taken as
#: counted then, so one hung request cannot hold every start back.
ANSWER_WAIT_LIMIT = 1.0
#: Added to the window for clock granularity.
WINDOW_EPSILON = 0.001
#: How often a start waiting on the guard looks again while the oldest start is unanswered.
GUARD_POLL = 0.005
#: How far behind its schedule the pacer may catch up after a late wake-up, at most
#: one interval: the window guard, not the schedule, keeps any window from overfilling.
MAX_CATCH_UP = 0.05
#: Multiplicative decrease on a 429: streams halve (as TCP's window), the pace
#: drops by 30% (as CUBIC's beta) so the job keeps most of its speed.
CONCURRENCY_DECREASE = 0.5
RATE_DECREASE = 0.7
#: Additive increase of the pace: this share of the pace at the last cut, per second of successes.
RATE_INCREASE_PER_SECOND = 0.05
#: Floor for an adaptive pace, in starts per second.
MIN_RATE = 0.05


class Start:
    """One granted request start; the client marks when it left and when it was answered.

    The API counts a request somewhere between the two, so the window guard
    uses those times rather than the grant: a start that waited on a new
    connection's handshake left later than it was granted, and a busy server may
    count it later still.
    """

    __slots__ = ("_clock", "answered_at", "granted_at", "sent_at")

    def __init__(self, granted_at: float, clock: Callable[[], float]) -> None:
        self.granted_at = granted_at
        self.sent_at: float | None = None
        self.answered_at: float | None = None
        self._clock = clock

    def mark_sent(self) -> None:
        """The request's last byte left (httpcore's trace); the first mark counts."""
        if self.sent_at is None:
            self.sent_at = self._clock()

    def mark_answered(self) -> None:
        """The API's answer (status and headers) arrived; by then it has counted the request."""
        if self.answered_at is None:
            self.answered_at = self._clock()

    def counted_by(self, now: float) -> float | None:
        """A time by which the API has surely counted this start, or None if not known yet."""
        if self.answered_at is not None:
            return self.answered_at
        if self.sent_at is not None and now >= self.sent_at + ANSWER_WAIT_LIMIT:
            return self.sent_at + ANSWER_WAIT_LIMIT
        return None


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
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._max_concurrency = concurrency
        self._max_rate = rate.per_second if rate else None
        # The window the API counts in: N whole starts per window (a fractional rate
        # keeps its average, as the API's own limiter does: 2.5/s is 2 per 0.8 s).
        self._window_starts = max(1, math.floor(rate.count)) if rate else 0
        self._window = self._window_starts / rate.per_second if rate else 0.0
        self._window_guard: deque[Start] = deque(maxlen=self._window_starts or 1)
        self._adaptive = adaptive
        self._clock = clock
        self._sleep = sleep
        self._retry_after_scale = retry_after_scale
        self._limit = float(concurrency)
        self._rate = self._max_rate
        self._in_flight = 0
        # fast_acquire: an uncontended lock is taken without yielding. Otherwise anyio
        # yields while holding it, and with hundreds of streams finishing together the
        # tasks queue behind each other one event-loop pass each (measured: 100 ms
        # mean wait for a slot at 256 streams, 4 ms at 64).
        self._changed = anyio.Condition(anyio.Lock(fast_acquire=True))
        self._pace_lock = anyio.Lock(fast_acquire=True)
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
    def counts_sends(self) -> bool:
        """Whether the client should mark each :class:`Start` sent and answered (the window guard's input)."""
        return self._window_starts > 0

    @property
    def state(self) -> ThrottleState:
        return ThrottleState(
            concurrency=int(self._limit),
            rate_per_second=self._rate,
            in_flight=self._sending,
            rate_limited=self.rate_limited,
        )

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[Start]:
        """Hold one stream for the body; yields the :class:`Start` (clock units)."""
        async with self._changed:
            while self._in_flight >= int(self._limit):
                await self._changed.wait()
            self._in_flight += 1
        sending = False
        start: Start | None = None
        try:
            start = await self._wait_for_start()
            self._sending += 1
            sending = True
            yield start
        finally:
            self._sending -= sending
            if start is not None:
                # Unanswered (failed before an answer, or no client marks): the attempt is
                # over, so whatever the API made of it has happened by now.
                start.mark_answered()
            async with self._changed:
                self._in_flight -= 1
                self._changed.notify_all()

    async def _wait_for_start(self) -> Start:
        async with self._pace_lock:
            while True:
                now = self._clock()
                start = max(now, self._paused_until)
                if self._rate:
                    start = max(start, self._next_start)
                if self._window_starts and len(self._window_guard) == self._window_starts:
                    start = max(start, self._window_reopens(now))
                if start <= now:
                    break
                await self._sleep(start - now)
            if self._rate:
                # GCRA on a fixed schedule: the next start is one interval after this
                # one's *scheduled* time, so a late wake-up does not push every later
                # start back; after idling (or a long lateness) it catches up by at
                # most MAX_CATCH_UP, never a burst.
                interval = 1.0 / self._rate
                self._next_start = max(self._next_start, now - min(interval, MAX_CATCH_UP)) + interval
            granted = Start(now, self._clock)
            if self._window_starts:
                self._window_guard.append(granted)
            self._recent_starts.append(now)
            return granted

    def _window_reopens(self, now: float) -> float:
        """When the oldest of the last N starts leaves the API's window.

        That is one window after the API surely counted it; while that time is
        not known (the request is still on its way), look again shortly.
        """
        counted = self._window_guard[0].counted_by(now)
        if counted is None:
            return now + GUARD_POLL
        return counted + self._window + WINDOW_EPSILON

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
