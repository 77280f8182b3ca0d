"""Virtual time for the schedule's tests: an asyncio loop whose clock jumps to the next timer.

``run_virtual(main)`` runs ``main`` under anyio on an event loop that never
waits: whenever no task is ready, its clock jumps to the next timer. Sleeps,
timeouts and ``anyio.current_time()`` all use that clock, so minutes of
simulated traffic (many concurrent streams, 429s, Retry-After pauses) take
milliseconds and give the same result every time. Give the code under test
``clock=anyio.current_time`` (the throttle's default clock is the real one).
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):
    """Polls the real selector without waiting, and moves the loop's clock by the wait it was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if not events and timeout is not None and timeout > 0 and self.loop is not None:
            self.loop.now += timeout
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        selector = _JumpingSelector()
        super().__init__(selector)
        selector.loop = self
        self.now = 0.0

    def time(self) -> float:
        return self.now


def run_virtual(main: Callable[[], Awaitable[T]]) -> T:
    """``anyio.run(main)`` in virtual time (see the module's doc)."""
    result: list[Any] = []

    async def wrapper() -> None:
        result.append(await main())

    anyio.run(wrapper, backend="asyncio", backend_options={"loop_factory": VirtualTimeLoop})
    return result[0]
