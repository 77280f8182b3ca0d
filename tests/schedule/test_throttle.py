"""The throttle: concurrency cap, GCRA pacing, AIMD on 429s, Retry-After pauses."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import anyio
import anyio.lowlevel
import pytest

from batchtts.schedule import throttle as limits
from batchtts.schedule.throttle import Start, Throttle
from batchtts.units import Rate, parse_deadline, parse_rate


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
        async with throttle.slot() as start:
            starts.append(start.granted_at)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(25):
                tg.start_soon(one)

    anyio.run(main)
    assert len(starts) == 25
    assert max_in_window(starts, 1.0) <= 10


def _run_starts(throttle: Throttle, count: int, answer_after: float | None, hold: float = 0.0) -> list[Start]:
    """``count`` starts through ``throttle``; each is sent at once and answered ``answer_after`` later."""
    starts: list[Start] = []

    async def one() -> None:
        async with throttle.slot() as start:
            starts.append(start)
            start.mark_sent()
            if answer_after is not None:
                await anyio.sleep(answer_after)
                start.mark_answered()
            await anyio.sleep(hold)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(count):
                tg.start_soon(one)

    anyio.run(main)
    return sorted(starts, key=lambda start: start.granted_at)


def test_the_window_guard_counts_each_start_from_its_send_plus_an_allowance() -> None:
    # 5 per 0.2 s, answers 80 ms after the send (an API that answers with its first audio):
    # start k+5 waits until start k's send, plus the allowance, is a window old: not its answer.
    starts = _run_starts(Throttle(10, Rate(5, 0.2), adaptive=False), 17, answer_after=0.08)
    for earlier, later in zip(starts, starts[5:]):
        assert earlier.sent_at is not None and earlier.answered_at is not None
        assert later.granted_at >= earlier.sent_at + limits.SEND_ALLOWANCE + 0.2
        assert later.granted_at < earlier.answered_at + 0.2  # one answer's wait per window saved


def test_once_counting_from_the_answers_the_guard_waits_for_each_answer() -> None:
    # What the guard falls back to after a 429 that was not a concurrency refusal.
    throttle = Throttle(10, Rate(5, 0.2), adaptive=False, count_from="answer")
    starts = _run_starts(throttle, 17, answer_after=0.08)
    for earlier, later in zip(starts, starts[5:]):
        assert earlier.answered_at is not None
        assert later.granted_at >= earlier.answered_at + 0.2


def test_late_wake_ups_do_not_slow_the_pace() -> None:
    # Virtual time: every sleep wakes 3 ms late (a busy event loop) and every request
    # is answered 4 ms after its grant. Pacing 50/s must still reach the rate within 2%
    # (a schedule that restarts from each late start would lose 3 ms of every 20: 13%).
    now = [0.0]

    async def late_sleep(seconds: float) -> None:
        now[0] += seconds + 0.003
        await anyio.lowlevel.checkpoint()

    throttle = Throttle(64, Rate(50, 1.0), adaptive=False, clock=lambda: now[0], sleep=late_sleep)
    grants: list[float] = []

    async def main() -> None:
        for _ in range(501):
            async with throttle.slot() as start:
                grants.append(start.granted_at)
                start.sent_at, start.answered_at = now[0] + 0.002, now[0] + 0.004

    anyio.run(main)
    achieved = (len(grants) - 1) / (grants[-1] - grants[0])
    assert achieved >= 50 * 0.98
    assert max_in_window(grants, 1.0) <= 50


def test_an_unanswered_start_holds_the_window_only_so_long(monkeypatch: pytest.MonkeyPatch) -> None:
    # A request that is never answered (hung) counts as counted ANSWER_WAIT_LIMIT after it left.
    monkeypatch.setattr(limits, "ANSWER_WAIT_LIMIT", 0.05)
    throttle = Throttle(10, Rate(2, 0.1), adaptive=False, count_from="answer")
    starts = _run_starts(throttle, 6, answer_after=None, hold=0.3)
    for earlier, later in zip(starts, starts[2:]):
        assert earlier.sent_at is not None
        assert later.granted_at >= earlier.sent_at + 0.05 + 0.1
        # ...and not held until the hung request ended (0.3 s after it started).
        assert later.granted_at < earlier.granted_at + 0.3


def test_a_fractional_rate_keeps_its_average_in_whole_starts() -> None:
    # 2.5/s is 2 starts per 0.8 s, as the API's own limiter counts it.
    starts = _run_starts(Throttle(10, Rate(12.5, 1.0), adaptive=False), 30, answer_after=0.0)
    times = [start.granted_at for start in starts]
    assert max_in_window(times, 12 / 12.5) <= 12


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
    throttle.on_rate_limited(Start(99.0, lambda: now[0]), retry_after=None)
    assert throttle.state.rate_per_second == pytest.approx(20.0 * 0.7)
    # Streams were not all busy, so the pace, not the stream cap, was refused.
    assert throttle.state.concurrency == 8
    # A second 429 from a request that started before the cut does not cut again.
    throttle.on_rate_limited(Start(99.5, lambda: now[0]), retry_after=None)
    assert throttle.state.rate_per_second == pytest.approx(20.0 * 0.7)
    assert throttle.rate_limited == 2
    for _ in range(2000):
        throttle.on_success()
    assert throttle.state.rate_per_second == pytest.approx(20.0)


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
            throttle.on_rate_limited(Start(anyio.current_time(), anyio.current_time), retry_after=None)
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
    throttle.on_rate_limited(Start(0.0, lambda: now[0]), retry_after=None)
    assert throttle.state.rate_per_second is not None
    for _ in range(2000):
        throttle.on_success()
    assert throttle.state.concurrency == 4
    assert throttle.state.rate_per_second is None


def test_no_adaptive_keeps_the_user_limits() -> None:
    throttle = Throttle(8, Rate(20, 1.0), adaptive=False)
    throttle.on_rate_limited(Start(0.0, time.monotonic), retry_after=None)
    assert throttle.state.concurrency == 8
    assert throttle.rate_limited == 1


def test_retry_after_pauses_new_starts() -> None:
    clock_calls: list[float] = []
    throttle = Throttle(2)

    async def main() -> None:
        throttle.on_rate_limited(Start(-1.0, anyio.current_time), retry_after=0.2)
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


def test_a_free_slot_is_taken_without_yielding_to_other_tasks() -> None:
    """No convoy: with hundreds of streams, every yield while taking a slot costs a pass of the event loop."""
    throttle = Throttle(4, Rate(1000, 1.0))
    seen: list[list[str]] = []

    async def main() -> None:
        ran: list[str] = []

        async def other() -> None:
            ran.append("other")

        async with anyio.create_task_group() as tg:
            tg.start_soon(other)  # ready to run at the first yield
            async with throttle.slot():
                seen.append(list(ran))

    anyio.run(main)
    assert seen == [[]]


#: 22:00 on the machine's own clock: naive times in a deadline are local.
NIGHT = datetime(2026, 11, 24, 22, 0).astimezone()


@pytest.mark.parametrize(
    "text,seconds",
    [
        ("5h", 5 * 3600),
        ("1h30m", 5400),
        ("06:00", 8 * 3600),  # at 22:00: tomorrow morning
        ("23:30", 5400),  # later today
        ("22:00", 24 * 3600),  # now: the next one is tomorrow
        ("2026-11-25T06:00", 8 * 3600),  # a local date and time
        ("2026-11-24 21:00:00", -3600),  # past: the run starts nothing
    ],
)
def test_parse_deadline(text: str, seconds: float) -> None:
    assert parse_deadline(text, now=NIGHT).seconds_left(NIGHT) == seconds


def test_a_deadline_with_an_offset_is_that_instant() -> None:
    deadline = parse_deadline("2026-11-25T05:00Z", now=NIGHT)
    assert deadline.at == datetime(2026, 11, 25, 5, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", ["soon", "25:00", "12:75", "2026-13-01T00:00", "", "-5m"])
def test_parse_deadline_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a"):
        parse_deadline(text, now=NIGHT)


class _PartFailed(Exception):
    pass


@pytest.mark.parametrize("how", ["scope cancelled", "sibling failed"])
def test_a_row_cancelled_while_it_holds_a_turn_and_a_stream_gives_both_back(how: str) -> None:
    """A job stopping, or a split text whose other part failed, cancels rows mid-request: on a
    1-stream cap, a turn or stream not given back would leave every later row waiting forever."""
    from tests.virtual_time import run_virtual

    throttle = Throttle(1, clock=anyio.current_time)

    async def hold_until_cancelled() -> None:
        async with throttle.turn(), throttle.slot():
            await anyio.sleep(60)

    async def fail_soon() -> None:
        await anyio.sleep(0.1)
        raise _PartFailed

    async def main() -> bool:
        if how == "scope cancelled":
            with anyio.move_on_after(0.1):
                await hold_until_cancelled()
        else:
            with pytest.raises(ExceptionGroup):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(hold_until_cancelled)
                    tg.start_soon(fail_soon)
        with anyio.move_on_after(5):  # virtual time: instant either way
            async with throttle.turn(), throttle.slot():
                return True
        return False

    assert run_virtual(main), "the next row never got a turn and a stream"
    assert throttle.state.in_flight == 0
