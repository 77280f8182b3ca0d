"""Concurrency, pacing and adaptive slow-down, as one small "throttle".

Every request start goes through :meth:`Throttle.slot`: it waits for a free
stream (the effective concurrency), then for the pacing schedule (GCRA, the
virtual-scheduling form used by aiometer: starts are spaced one interval apart
on a fixed schedule, catching up at most one interval after a late wake-up),
then for the window guard (the user's N starts per period, counted at the times
the API counts them), then for any Retry-After pause the API asked for. A
worker takes its next row only in a :meth:`Throttle.turn`: no more rows are
under way than streams may run, so a row is started when its request can go.

The stream cap is fixed (``--concurrency N``) or found (``--concurrency auto``,
:class:`AutoConcurrency`): one stream first, then twice as many each round of
streams that all succeed (TCP's slow start), up to ``--max-concurrency``; a
concurrency refusal settles the cap at the streams the account had admitted,
and it is probed one higher after a quiet period. When the API answers 429
otherwise, the whole job slows down: the concurrency (fixed caps only) and the
pace are cut multiplicatively, then raised additively while requests succeed
(AIMD, as TCP does), never above what the user set.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

import anyio

from batchtts.units import AUTO, DEFAULT_MAX_CONCURRENCY, Rate

log = logging.getLogger("batchtts")

__all__ = ["AUTO", "DEFAULT_MAX_CONCURRENCY", "AutoConcurrency", "Start", "Throttle", "ThrottleState", "refusal_kind"]

#: After a concurrency refusal, the cap is probed one stream higher this long after it;
#: each probe refused doubles the wait, up to MAX_PROBE_QUIET (a 1-stream account then
#: costs one refused request per ten minutes).
PROBE_QUIET = 30.0
MAX_PROBE_QUIET = 600.0

#: Where the window guard counts a start (``count_from``): ``send``, from when its request
#: left plus SEND_ALLOWANCE, or ``answer``, from when its answer (status line) came back.
CountFrom = Literal["send", "answer"]
#: How much later than its send the API may count a request when the guard counts from
#: the send: its arrival's variation, not the trip itself (a constant trip delays every
#: start alike and keeps their spacing).
SEND_ALLOWANCE = 0.010
#: A long window's allowance is this share of it instead, when that is more: a per-minute rate then
#: takes a count up to 300 ms after the send (a loaded API's queue, a stalled event loop) for at
#: most 0.5% of the rate, as the guard counts from the answer whenever that comes sooner.
SEND_ALLOWANCE_SHARE = 0.005
#: The answer guard: a request not answered this long after it left is taken as counted
#: then, so one hung request cannot hold every start back.
ANSWER_WAIT_LIMIT = 1.0
#: Added to the window for clock granularity.
WINDOW_EPSILON = 0.001
#: How often a start waiting on the guard looks again while the oldest start is not counted yet.
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

#: What a 429 refused, when its message says (the local server's do; the Waves API's body is not documented).
RefusalKind = Literal["concurrency", "rate"]


def refusal_kind(message: str | None) -> RefusalKind | None:
    """``concurrency`` or ``rate`` when a 429's message names the limit it hit, else None."""
    text = (message or "").lower()
    if "concurren" in text:
        return "concurrency"
    if "rate" in text:
        return "rate"
    return None


class Start:
    """One granted request start; the client marks when it left and when it was answered.

    The API counts a request somewhere between the two (when it arrives, for
    the documented limits). The window guard counts it from the send plus a
    small allowance, or, once the API has shown that it counts later than that,
    from the answer: a start that waited on a new connection's handshake left
    later than it was granted, and a busy API may count it later still.
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

    def counted_by(
        self, now: float, count_from: CountFrom = "answer", allowance: float = SEND_ALLOWANCE
    ) -> float | None:
        """When the API counted this start (at the latest, as far as the guard assumes), or None if not known yet.

        ``answer``: the answer's time, which is surely after the count. ``send``: the send
        plus ``allowance``, an estimate of its arrival (or the answer, if that came sooner).
        """
        if count_from == "send" and self.sent_at is not None:
            estimate = self.sent_at + allowance
            return estimate if self.answered_at is None else min(estimate, self.answered_at)
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
    #: The cap is found at run time (``--concurrency auto``), up to ``max_concurrency``.
    auto: bool = False
    max_concurrency: int = 0


class AutoConcurrency:
    """The stream cap of ``--concurrency auto``: found at run time, from the API's answers.

    - **Slow start.** One stream first; each success while every allowed stream is
      busy adds one, so a round of streams that all succeed doubles the cap (TCP's
      slow start), up to ``ceiling``. Rounds in which the cap was not the limit
      (pacing, the manifest's last rows) do not raise it.
    - **Settle.** A concurrency refusal (see :meth:`Throttle.on_rate_limited`) while
      ``level`` other streams of this job were in flight sets the cap to ``level``:
      just below the number that was refused. Refusals of one overshoot (several
      streams refused together) each lower it, so it settles within a round.
    - **Probe.** :data:`PROBE_QUIET` seconds after the refusal, the cap rises by one
      stream per round of successes (additive increase) until the next refusal. A
      probe refused doubles the wait before the next one (to at most
      :data:`MAX_PROBE_QUIET`); a probe that holds resets it.
    """

    def __init__(self, ceiling: int, *, quiet: float = PROBE_QUIET, max_quiet: float = MAX_PROBE_QUIET) -> None:
        if ceiling < 1:
            raise ValueError("max concurrency must be at least 1")
        self.ceiling = ceiling
        self.cap = 1
        #: The most streams the cap allowed at once.
        self.highest = 1
        #: The number of streams last refused; None while no refusal came (slow start).
        self.refused_at: int | None = None
        self._base_quiet = quiet
        self._quiet = quiet
        self._max_quiet = max_quiet
        self._probe_at = math.inf
        self._round = 0  # successes at this cap while it was the limit

    @property
    def slow_start(self) -> bool:
        return self.refused_at is None

    def succeeded(self, now: float, *, saturated: bool) -> None:
        """A stream ended well; ``saturated``: every stream the cap allows was busy."""
        if not saturated or self.cap >= self.ceiling:
            return
        if self.refused_at is None:
            self.cap += 1
        else:
            self._round += 1
            if self._round < self.cap or now < self._probe_at:
                return
            if self.cap >= self.refused_at:
                self._quiet = self._base_quiet  # a probe held: the account takes more than it did
            self.cap += 1
            self._round = 0
        self.highest = max(self.highest, self.cap)

    def refused(self, now: float, level: int) -> None:
        """A concurrency refusal while ``level`` other streams of this job were in flight."""
        probing = self.refused_at is not None and now >= self._probe_at
        if probing:
            self._quiet = min(self._max_quiet, self._quiet * 2)
        level = max(1, level)
        self.refused_at = level + 1
        self.cap = max(1, min(self.cap, level))
        self._round = 0
        if probing or math.isinf(self._probe_at):
            self._probe_at = now + self._quiet

    @property
    def next_probe_in(self) -> float:
        """Seconds from the last refusal to the next probe."""
        return self._quiet


class _Turn:
    """A worker's turn, shared by the tasks making its row (parts of a split text run in child tasks)."""

    __slots__ = ("held",)

    def __init__(self) -> None:
        self.held = True


_current_turn: ContextVar[_Turn | None] = ContextVar("batchtts_turn", default=None)


class Throttle:
    """Stream cap (fixed or auto) + GCRA pacing + window guard + AIMD on 429s + Retry-After pauses."""

    def __init__(
        self,
        concurrency: int | Literal["auto"],
        rate: Rate | None = None,
        *,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        adaptive: bool = True,
        retry_after_scale: float = 1.0,
        count_from: CountFrom = "send",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._auto: AutoConcurrency | None = None
        if concurrency == AUTO:
            self._auto = AutoConcurrency(max_concurrency)
            concurrency = max_concurrency
        elif not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be at least 1 or {AUTO!r}, not {concurrency!r}")
        self._max_concurrency = concurrency
        self._max_rate = rate.per_second if rate else None
        # The window the API counts in: N whole starts per window (a fractional rate
        # keeps its average, as the API's own limiter does: 2.5/s is 2 per 0.8 s).
        self._window_starts = max(1, math.floor(rate.count)) if rate else 0
        self._window = self._window_starts / rate.per_second if rate else 0.0
        self._window_guard: deque[Start] = deque(maxlen=self._window_starts or 1)
        self._send_allowance = max(SEND_ALLOWANCE, SEND_ALLOWANCE_SHARE * self._window)
        self._count_from: CountFrom = count_from
        self._adaptive = adaptive
        self._clock = clock
        self._sleep = sleep
        self._retry_after_scale = retry_after_scale
        self._limit = float(self._auto.cap if self._auto else concurrency)
        self._rate = self._max_rate
        self._in_flight = 0
        self._turns = 0
        self._waiting = 0  # workers waiting for a turn, requests for a slot: the cap holds them back
        # fast_acquire: an uncontended lock is taken without yielding. Otherwise anyio
        # yields while holding it, and with hundreds of streams finishing together the
        # tasks queue behind each other one event-loop pass each (measured: 100 ms
        # mean wait for a slot at 256 streams, 4 ms at 64).
        lock = anyio.Lock(fast_acquire=True)
        self._changed = anyio.Condition(lock)
        self._turn_free = anyio.Condition(lock)
        self._pace_lock = anyio.Lock(fast_acquire=True)
        self._next_start = 0.0
        self._paused_until = 0.0
        self._last_decrease = -math.inf
        self._recent_starts: deque[float] = deque(maxlen=4096)
        self._rate_at_cut = self._max_rate or 1.0
        self._rate_before_cut = self._rate_at_cut
        self._sending = 0
        self._streams: set[Start] = set()  # granted and not over: their requests are out
        self._streams_at_429 = concurrency + 1
        self.rate_limited = 0

    @property
    def auto(self) -> AutoConcurrency | None:
        """The auto cap's state (``--concurrency auto``), None for a fixed cap."""
        return self._auto

    @property
    def counts_sends(self) -> bool:
        """Whether the client should mark each :class:`Start` sent and answered (the window guard's input)."""
        return self._window_starts > 0

    @property
    def count_from(self) -> CountFrom:
        """Where the window guard counts each start now: ``send`` until a 429 shows the API counts later."""
        return self._count_from

    @property
    def state(self) -> ThrottleState:
        return ThrottleState(
            concurrency=int(self._limit),
            rate_per_second=self._rate,
            in_flight=self._sending,
            rate_limited=self.rate_limited,
            auto=self._auto is not None,
            max_concurrency=self._max_concurrency,
        )

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """A worker's turn to take a row and make it: no more turns than the stream cap.

        A worker waits here, not with a row in hand, so a row starts when one of
        its requests could go (a deadline, a signal or ``--limit`` is checked then)
        and a job never has more rows under way than streams. A row waiting out a
        backoff lends its turn (:meth:`rest`).
        """
        await self._take_turn()
        held = _Turn()
        token = _current_turn.set(held)
        try:
            yield
        finally:
            _current_turn.reset(token)
            if held.held:
                held.held = False
                await self._give_turn()

    async def rest(self, seconds: float) -> None:
        """Wait ``seconds`` (a retry's backoff, a Retry-After) without holding the row's turn.

        Another row may start meanwhile: on a 1-stream account, a request refused
        with ``Retry-After: 1`` would otherwise leave the account idle for that
        second. The row takes a turn again (waiting for one if need be) before its
        next attempt.
        """
        held = _current_turn.get()
        if held is None or not held.held:
            await self._sleep(seconds)
            return
        held.held = False  # cancelled from here on, the row ends without a turn to give back
        await self._give_turn()
        await self._sleep(seconds)
        await self._take_turn()
        held.held = True

    async def _take_turn(self) -> None:
        async with self._turn_free:
            while self._turns >= int(self._limit):
                self._waiting += 1
                try:
                    await self._turn_free.wait()
                finally:
                    self._waiting -= 1
            self._turns += 1

    async def _give_turn(self) -> None:
        # Shielded: a row cancelled (the job stopping, a sibling part failing) must still give
        # its turn back, and taking the lock in a cancelled scope would raise before it did.
        with anyio.CancelScope(shield=True):
            async with self._turn_free:
                self._turns -= 1
                self._notify_turns()

    def _notify_turns(self) -> None:
        """Wake as many waiting workers as may take a turn now (not all: 64 workers, 1 stream)."""
        free = int(self._limit) - self._turns
        if free > 0:
            self._turn_free.notify(free)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[Start]:
        """Hold one stream for the body; yields the :class:`Start` (clock units)."""
        async with self._changed:
            while self._in_flight >= int(self._limit):
                self._waiting += 1
                try:
                    await self._changed.wait()
                finally:
                    self._waiting -= 1
            self._in_flight += 1
        sending = False
        start: Start | None = None
        try:
            start = await self._wait_for_start()
            self._sending += 1
            self._streams.add(start)
            sending = True
            yield start
        finally:
            self._sending -= sending
            if start is not None:
                self._streams.discard(start)
                # Unanswered (failed before an answer, or no client marks): the attempt is
                # over, so whatever the API made of it has happened by now.
                start.mark_answered()
            with anyio.CancelScope(shield=True):  # given back even when the request was cancelled
                async with self._changed:
                    self._in_flight -= 1
                    self._changed.notify_all()
                    self._notify_turns()  # the cap may have grown with this stream's success

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

        That is one window after the API counted it (:meth:`Start.counted_by`);
        while that time is not known (the request is still on its way), look again shortly.
        """
        counted = self._window_guard[0].counted_by(now, self._count_from, self._send_allowance)
        if counted is None:
            return now + GUARD_POLL
        return counted + self._window + WINDOW_EPSILON

    def on_success(self) -> None:
        """A stream ended well: the auto cap grows, or AIMD's additive increase (+1 stream a round, pace up)."""
        if self._auto is not None:
            # The cap was the limit: work waited for it, and no stream it allowed was
            # waiting for the pace, the window guard or a pause instead.
            saturated = self._waiting > 0 and self._in_flight == self._sending
            self._auto.succeeded(self._clock(), saturated=saturated)
            self._limit = float(self._auto.cap)  # waiters re-check when this slot is released, right after
        if not self._adaptive:
            return
        if self._auto is None and self._limit < self._max_concurrency:
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

    def on_rate_limited(self, start: Start, retry_after: float | None, *, kind: RefusalKind | None = None) -> None:
        """A 429 for ``start`` (called while its stream is held); ``kind`` when its message says.

        - Not known to be a concurrency refusal, while the window guard counts from
          the sends: the API counts later than that estimate, so from now on the guard
          counts from the answers (causal: no start can then overfill a window).
        - ``--concurrency auto`` and a concurrency refusal (said so, or unsaid while
          other streams of the job were in flight): the cap settles just below the
          streams in flight (this one's refusal says the account took no more). No
          pause and no slower pace: the streams that run go on, and this request's
          own retry waits for its Retry-After.
        - Otherwise: pause new starts for Retry-After, and (``--adaptive``) cut the
          pace, and a fixed cap whose streams were all busy, once per round trip.
        """
        self.rate_limited += 1
        now = self._clock()
        if kind != "concurrency" and self._window_starts and self._count_from == "send":
            self._count_from = "answer"
            log.info("429: the API counts requests later than they are sent; pacing now counts from the answers")
        # The job's other streams in flight: the most the account can have admitted.
        others = sum(1 for stream in self._streams if stream is not start)
        if self._auto is not None and (kind == "concurrency" or (kind is None and others > 0)):
            before = int(self._limit)
            self._auto.refused(now, others)
            self._limit = float(self._auto.cap)
            if int(self._limit) < before:
                log.info(
                    "429 at %d streams: concurrency auto settles at %d, probes %d again in %gs",
                    others + 1,
                    int(self._limit),
                    int(self._limit) + 1,
                    self._auto.next_probe_in,
                )
            return
        if retry_after:
            self._paused_until = max(self._paused_until, now + retry_after * self._retry_after_scale)
        if not self._adaptive or start.granted_at < self._last_decrease:
            return  # this request left before the last cut took effect
        self._last_decrease = now
        if self._auto is None and self._sending >= int(self._limit):
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
