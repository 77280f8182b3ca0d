"""The throttle of a job whose limits are shared over Redis: the local throttle's interface, Redis' decisions.

The runner and its attempts see a :class:`~batchtts.schedule.throttle.Throttle`:
workers take turns (up to the job's own streams, kept locally), and every
request start takes a shared stream lease and then a shared start grant (the
pace, the window guard and any Retry-After pause, decided in Redis on Redis'
clock). What a stream's answer says (it ended well, a 429, the answer's time)
goes to Redis in the background, in order, so no stream waits for it; a 429
one process sees slows every process of the account.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from batchtts.schedule.shared.address import limits_namespace
from batchtts.schedule.shared.store import RENEW_EVERY, SharedLimits
from batchtts.schedule.throttle import (
    ANSWER_WAIT_LIMIT,
    MAX_PROBE_QUIET,
    PROBE_QUIET,
    WINDOW_EPSILON,
    RefusalKind,
    Start,
    Throttle,
    ThrottleState,
)
from batchtts.units import AUTO, DEFAULT_MAX_CONCURRENCY, Rate

log = logging.getLogger("batchtts")

#: How far behind its schedule the shared pace may catch up after a late grant: one whole interval
#: (the script takes the smaller), twice the local throttle's MAX_CATCH_UP at 10/s. A grant waits
#: for a wake-up and a round trip to Redis, later than a local one; the window guard, not the
#: schedule, keeps any window from overfilling.
SHARED_CATCH_UP = 3600.0
#: At the end of a job, how long the reports still queued (and the leases held) have to reach Redis.
CLOSING_TIME = 5.0
#: A report for Redis: the script's name and its arguments.
_Report = tuple[str, list[str], list[Any]]


class SharedStart(Start):
    """A start granted by Redis: its id in the window guard and its grant on Redis' clock."""

    __slots__ = ("_on_answered", "asked_at", "shared_granted_at", "shared_id")

    def __init__(
        self,
        granted_at: float,
        clock: Callable[[], float],
        shared_id: str,
        shared_granted_at: float,
        asked_at: float,
        on_answered: Callable[[SharedStart], None],
    ) -> None:
        super().__init__(granted_at, clock)
        self.shared_id = shared_id
        self.shared_granted_at = shared_granted_at
        #: The local clock just before the call that granted it: at most the local time of the grant.
        self.asked_at = asked_at
        self._on_answered = on_answered

    @property
    def answered_on_redis(self) -> float:
        """When the answer came, on Redis' clock, never too early: the grant plus the local time from
        asking to the answer (the grant happened after the asking)."""
        answered = self.answered_at if self.answered_at is not None else self._clock()
        return self.shared_granted_at + (answered - self.asked_at)

    def mark_answered(self) -> None:
        first = self.answered_at is None
        super().mark_answered()
        if first:
            self._on_answered(self)


class SharedThrottle(Throttle):
    """Stream leases + GCRA pace + window guard + AIMD + Retry-After pauses, shared by all of an account's jobs."""

    def __init__(
        self,
        limits: SharedLimits,
        concurrency: int | Literal["auto"],
        rate: Rate | None = None,
        *,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        adaptive: bool = True,
        retry_after_scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        streams = max_concurrency if concurrency == AUTO else int(concurrency)
        # Locally, only the turns: no more rows under way than this job's streams.
        super().__init__(streams, None, adaptive=False, clock=clock)
        self._limits = limits
        self._shared_auto = concurrency == AUTO
        self._most_streams = streams
        self._shared_adaptive = adaptive
        self._shared_scale = retry_after_scale
        self._most_rate = rate.per_second if rate else 0.0
        self._guard_starts = max(1, math.floor(rate.count)) if rate else 0
        self._guard_window = self._guard_starts / rate.per_second if rate else 0.0
        self._shared_cap = 1 if self._shared_auto else streams
        self._shared_rate: float | None = rate.per_second if rate else None
        self._held: set[str] = set()
        self._asking = anyio.Lock()
        self._pace = [self._most_rate, self._guard_starts, self._guard_window, ANSWER_WAIT_LIMIT, WINDOW_EPSILON,
                      SHARED_CATCH_UP]  # fmt: skip
        send, receive = anyio.create_memory_object_stream[_Report](math.inf)
        self._reports: MemoryObjectSendStream[_Report] = send
        self._report_queue: MemoryObjectReceiveStream[_Report] = receive

    @property
    def auto(self) -> None:
        """The shared auto cap lives in Redis, not in this process."""
        return None

    @property
    def counts_sends(self) -> bool:
        return self._guard_starts > 0

    @property
    def state(self) -> ThrottleState:
        return ThrottleState(
            concurrency=self._shared_cap,
            rate_per_second=self._shared_rate,
            in_flight=self._sending,
            rate_limited=self.rate_limited,
            auto=self._shared_auto,
            max_concurrency=self._most_streams,
        )

    async def run(self) -> None:
        """Renew the leases held and send the reports, in order, until cancelled."""
        async with anyio.create_task_group() as group:
            group.start_soon(self._renew_forever)
            async with self._report_queue:
                async for name, keys, args in self._report_queue:
                    reply = await self._limits.report(name, keys, args)
                    self._take_reply(name, reply)
            group.cancel_scope.cancel()

    async def _renew_forever(self) -> None:
        while True:
            await anyio.sleep(RENEW_EVERY)
            await self._limits.renew(sorted(self._held))

    def _take_reply(self, name: str, reply: Any) -> None:
        if reply is None:
            return
        if name == "ON_SUCCESS":
            self._shared_cap = max(1, int(float(reply[0])))
            self._shared_rate = float(reply[1]) if self._most_rate else None
        elif name == "ON_RATE_LIMITED":
            what = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
            before = self._shared_cap
            self._shared_cap = max(1, int(float(reply[1])))
            if what == "settled" and self._shared_cap < before:
                log.info("429: concurrency auto settles at %d stream(s) for every job sharing the limits",
                         self._shared_cap)  # fmt: skip
            elif what == "slowed":
                self._shared_rate = float(reply[2]) if self._most_rate else None
                rate = f", {self._shared_rate:.2f} starts/s" if self._shared_rate else ""
                log.info("429: every job sharing the limits slows down to %d stream(s)%s", self._shared_cap, rate)

    def _report(self, name: str, keys: list[str], args: list[Any]) -> None:
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._reports.send_nowait((name, keys, args))

    def close(self) -> None:
        """No more reports: :meth:`run` sends those queued, then ends."""
        self._reports.close()

    async def give_back_all(self) -> None:
        """At the end: the leases still held go back now rather than when they expire."""
        for lease in sorted(self._held):
            await self._limits.report("GIVE_LEASE", [self._limits.leases_key], [lease])
        self._held.clear()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[Start]:
        """A shared stream lease and a shared start grant, taken together; the lease goes back when the body ends."""
        limits = self._limits
        lease, start_id = limits.new_id(), limits.new_id()
        async with self._asking:  # one asker per process: the others queue here, not in Redis
            granted, cap, asked = await limits.take_slot(lease, start_id, self._most_streams,
                                                         auto=self._shared_auto, pace=self._pace,
                                                         clock=self._clock)  # fmt: skip
        self._held.add(lease)  # renewed from now on (cancelled just before: it expires by itself)
        self._shared_cap = cap
        start = SharedStart(self._clock(), self._clock, start_id, granted, asked, self._answered)
        self._sending += 1
        self._streams.add(start)
        try:
            yield start
        finally:
            self._sending -= 1
            self._streams.discard(start)
            start.mark_answered()
            self._held.discard(lease)
            self._report("GIVE_LEASE", [limits.leases_key], [lease])

    def _answered(self, start: SharedStart) -> None:
        if self._guard_starts:
            self._report("NOTE_ANSWERED", [self._limits.window_key], [start.shared_id, start.answered_on_redis])

    def on_success(self) -> None:
        self._report(
            "ON_SUCCESS",
            [self._limits.state_key, self._limits.leases_key],
            [int(self._shared_adaptive), self._most_rate, self._most_streams, int(self._shared_auto), PROBE_QUIET,
             MAX_PROBE_QUIET],
        )  # fmt: skip

    def on_rate_limited(self, start: Start, retry_after: float | None, *, kind: RefusalKind | None = None) -> None:
        self.rate_limited += 1
        granted = start.shared_granted_at if isinstance(start, SharedStart) else 0.0
        pause = (retry_after or 0.0) * self._shared_scale
        self._report(
            "ON_RATE_LIMITED",
            [self._limits.state_key, self._limits.leases_key],
            [pause, granted, int(self._shared_adaptive), self._most_rate, self._most_streams, int(self._shared_auto),
             kind or "", PROBE_QUIET, MAX_PROBE_QUIET],
        )  # fmt: skip


@contextlib.asynccontextmanager
async def shared_throttle(
    url: str,
    *,
    api_key: str | None,
    namespace: str | None,
    concurrency: int | Literal["auto"],
    rate: Rate | None,
    max_concurrency: int,
    adaptive: bool,
    retry_after_scale: float,
) -> AsyncIterator[SharedThrottle]:
    """A :class:`SharedThrottle` connected to ``url`` (``LimitsUnreachable`` when it cannot be), running
    its renewals and reports for the body; its leases go back at the end.

    ``api_key`` None: the bundled local server's account.
    """
    limits = await SharedLimits.connect(url, limits_namespace(api_key, namespace))
    throttle = SharedThrottle(
        limits,
        concurrency,
        rate,
        max_concurrency=max_concurrency,
        adaptive=adaptive,
        retry_after_scale=retry_after_scale,
    )
    log.info("shared limits: %s, namespace %s", limits.url, limits.namespace)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(throttle.run)
            try:
                yield throttle
            finally:
                throttle.close()  # the reports queued still go, for at most CLOSING_TIME
                group.cancel_scope.deadline = anyio.current_time() + CLOSING_TIME
                with anyio.move_on_after(CLOSING_TIME, shield=True):
                    await throttle.give_back_all()
    finally:
        with anyio.CancelScope(shield=True):
            await limits.aclose()
