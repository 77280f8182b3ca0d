"""The local server's account limits: request starts per window, and streams at once.

They exist so clients can be tested against a service that pushes back: over a
limit the answer is 429 with a ``Retry-After`` a client can honour. Both are
checked and taken on the event loop thread, so they need no lock.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from batchtts.units import Rate


def retry_after_header(seconds: float) -> str:
    """Retry-After as the header carries it: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds - 1e-9)))


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request was refused, and when trying again makes sense."""

    reason: str
    message: str
    retry_after: float


class SlidingWindowRate:
    """At most ``capacity`` admitted starts in any window of ``window`` seconds.

    A fractional rate keeps its average: 2.5/s becomes 2 starts per 0.8 s,
    0.5/s one start per 2 s. Refused requests do not count as starts.
    """

    def __init__(self, rate: Rate) -> None:
        self.rate = rate
        self.capacity = max(1, math.floor(rate.count))
        self.window = self.capacity / rate.per_second
        self._starts: deque[float] = deque()

    def _forget_before(self, now: float) -> None:
        while self._starts and self._starts[0] <= now - self.window:
            self._starts.popleft()

    def wait_time(self, now: float) -> float:
        """Seconds until a start would be admitted (0 = now)."""
        self._forget_before(now)
        if len(self._starts) < self.capacity:
            return 0.0
        return self._starts[0] + self.window - now

    def record(self, now: float) -> None:
        self._starts.append(now)


class Slot:
    """One admitted stream; :meth:`release` frees it exactly once."""

    def __init__(self, on_release: Callable[[], None]) -> None:
        self._on_release: Callable[[], None] | None = on_release

    def release(self) -> None:
        if self._on_release is not None:
            on_release, self._on_release = self._on_release, None
            on_release()


class AccountLimits:
    """Both limits together; :meth:`admit` takes a slot or says why not.

    The concurrency cap is checked first so a refused request never uses up
    part of the rate window.
    """

    def __init__(self, rate: Rate | None, concurrency: int | None) -> None:
        self.rate = SlidingWindowRate(rate) if rate is not None else None
        #: At most this many streams open at once; None = no cap.
        self.concurrency = concurrency
        self.active = 0

    def admit(self, now: float) -> Slot | Refusal:
        if self.concurrency is not None and self.active >= self.concurrency:
            return Refusal(
                "concurrency_limit_exceeded",
                f"too many concurrent requests: the limit is {self.concurrency} at once",
                retry_after=1.0,
            )
        if self.rate is not None:
            wait = self.rate.wait_time(now)
            if wait > 0:
                return Refusal(
                    "rate_limit_exceeded",
                    f"too many requests: the rate limit is {self.rate.rate}",
                    retry_after=wait,
                )
            self.rate.record(now)
        self.active += 1
        return Slot(self._release)

    def _release(self) -> None:
        self.active -= 1
