"""Late answers: the local server holds a stream's status line and headers until its first audio.

The Waves API may send its answer (status line and headers) only with the
first audio, a time-to-first-byte after the request arrived, although it
counted the request against the account's limits when it arrived. A client
that paces from the answers then loses that time once per window; one that
paces from its sends does not (``batchtts/schedule/throttle.py``). With
``answer_delay=(low, high)`` the local server behaves so: each synthesis
request's answer, and everything after it, is held until a delay drawn
uniformly from ``[low, high]`` (seeded) after the request arrived. Refusals
(429 and other errors) are answered at once, as an API decides them before any audio.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class LateAnswers:
    """ASGI middleware: a ``200`` answer to a ``POST`` waits until its drawn delay after the request arrived."""

    def __init__(
        self,
        app: ASGIApp,
        delay: tuple[float, float],
        *,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        low, high = delay
        if not 0 <= low <= high:
            raise ValueError(f"answer delay: {low:g}-{high:g} is not a range of seconds")
        self.app = app
        self.low, self.high = low, high
        self._draws = random.Random(seed)
        self._clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        answer_at = self._clock() + self._draws.uniform(self.low, self.high)

        async def held(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                delay = answer_at - self._clock()
                if delay > 0:
                    await anyio.sleep(delay)
            await send(message)

        await self.app(scope, receive, held)
