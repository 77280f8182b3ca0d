"""The throttle: concurrency cap, GCRA pacing, AIMD on 429s, Retry-After pauses."""

from __future__ import annotations

import anyio
import pytest

from batchtts.limits import Throttle
from batchtts.units import Rate, parse_rate


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def test_pacing_never_puts_more_than_n_starts_in_any_window() -> None:
    throttle = Throttle(8, Rate(10, 1.0), adaptive=False)
    starts: list[float] = []

    async def one() -> None:
        async with throttle.slot() as started:
            starts.append(started)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(25):
                tg.start_soon(one)

    anyio.run(main)
    assert len(starts) == 25
    assert max_in_window(starts, 1.0) <= 10


def test_concurrency_cap_holds() -> None:
    throttle = Throttle(3)
    peak = 0

    async def one() -> None:
        nonlocal peak
        async with throttle.slot():
            peak = max(peak, throttle.state.in_flight)
            await anyio.sleep(0.01)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(one)

    anyio.run(main)
    assert peak == 3


def test_a_429_cuts_the_pace_and_successes_restore_it() -> None:
    now = [100.0]
    throttle = Throttle(8, Rate(20, 1.0), clock=lambda: now[0])
    throttle.on_rate_limited(started=99.0, retry_after=None)
    assert throttle.state.rate_per_second == pytest.approx(20 / 1.01 * 0.7)
    # Streams were not all busy, so the pace, not the stream cap, was refused.
    assert throttle.state.concurrency == 8
    # A second 429 from a request that started before the cut does not cut again.
    throttle.on_rate_limited(started=99.5, retry_after=None)
    assert throttle.state.rate_per_second == pytest.approx(20 / 1.01 * 0.7)
    assert throttle.rate_limited == 2
    for _ in range(2000):
        throttle.on_success()
    assert throttle.state.rate_per_second == pytest.approx(20 / 1.01)


def test_a_429_with_every_stream_busy_halves_the_streams_then_they_come_back() -> None:
    throttle = Throttle(8)
    seen: list[int] = []

    async def main() -> None:
        entered = anyio.Event()
        release = anyio.Event()
        count = 0

        async def hold() -> None:
            nonlocal count
            async with throttle.slot():
                count += 1
                if count == 8:
                    entered.set()
                await release.wait()

        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(hold)
            await entered.wait()
            throttle.on_rate_limited(started=anyio.current_time(), retry_after=None)
            seen.append(throttle.state.concurrency)
            release.set()

    anyio.run(main)
    assert seen == [4]
    for _ in range(3000):
        throttle.on_success()
    assert throttle.state.concurrency == 8


def test_without_a_user_rate_a_429_starts_pacing_and_recovery_stops_it() -> None:
    now = [0.0]
    throttle = Throttle(4, clock=lambda: now[0])
    assert throttle.state.rate_per_second is None
    throttle.on_rate_limited(started=0.0, retry_after=None)
    assert throttle.state.rate_per_second is not None
    for _ in range(2000):
        throttle.on_success()
    assert throttle.state.concurrency == 4
    assert throttle.state.rate_per_second is None


def test_no_adaptive_keeps_the_user_limits() -> None:
    throttle = Throttle(8, Rate(20, 1.0), adaptive=False)
    throttle.on_rate_limited(started=0.0, retry_after=None)
    assert throttle.state.concurrency == 8
    assert throttle.rate_limited == 1


def test_retry_after_pauses_new_starts() -> None:
    clock_calls: list[float] = []
    throttle = Throttle(2)

    async def main() -> None:
        throttle.on_rate_limited(started=-1.0, retry_after=0.2)
        before = anyio.current_time()
        async with throttle.slot():
            clock_calls.append(anyio.current_time() - before)

    anyio.run(main)
    assert clock_calls[0] >= 0.19


@pytest.mark.parametrize("text,count,period", [("10/s", 10, 1), ("300/min", 300, 60), ("5000/h", 5000, 3600)])
def test_parse_rate(text: str, count: float, period: float) -> None:
    assert parse_rate(text) == Rate(count, period)


@pytest.mark.parametrize("text", ["10", "10/day", "0/s", "-1/s", "x/s"])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="N/s"):
        parse_rate(text)
