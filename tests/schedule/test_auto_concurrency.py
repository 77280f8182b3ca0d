"""`--concurrency auto` and pacing against a late-answering API, in virtual time.

A small simulated account (a stream cap that may change, a rate counted when
requests arrive, answers that come late) meets the real :class:`Throttle`,
driven as the runner drives it: one worker per possible stream, rows taken only
in a turn, each attempt in a slot, the retry after a 429 waiting out its
Retry-After outside the slot. Virtual time (``tests/virtual_time.py``) makes
minutes of traffic take milliseconds and every run the same; the end-to-end
tests against the local server are in ``tests/e2e/test_run_limits.py``.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import pytest

from batchtts.schedule.throttle import (
    MAX_PROBE_QUIET,
    PROBE_QUIET,
    AutoConcurrency,
    RefusalKind,
    Start,
    Throttle,
    refusal_kind,
)
from batchtts.units import Rate
from tests.schedule.test_throttle import max_in_window
from tests.virtual_time import run_virtual


class Refused(Exception):
    def __init__(self, kind: RefusalKind | None, retry_after: float) -> None:
        super().__init__(kind)
        self.kind = kind
        self.retry_after = retry_after


@dataclass
class Account:
    """What the API does with a request: its limits, and how fast it answers and streams."""

    #: Streams at once (None: no cap), or a function of the time for a limit that changes.
    streams: int | Callable[[float], int] | None = None
    #: Starts per window, counted when a request arrives (refusals do not count).
    rate: Rate | None = None
    #: Seconds from the client's send to the API's count (the trip).
    trip: float = 0.0005
    #: Seconds more before the limiter counts a request (a queue before it, as a busy gateway).
    count_delay: Callable[[random.Random], float] = lambda rng: 0.0
    #: Seconds from the arrival to the answer (status line and headers): the TTFB.
    answer_after: Callable[[random.Random], float] = lambda rng: 0.01
    #: Seconds of streaming after the answer.
    stream_seconds: float = 0.3
    retry_after: float = 1.0
    #: Whether a 429's message says which limit it hit (the local server's do).
    says_why: bool = True
    seed: int = 0
    active: int = 0
    max_active: int = 0
    admitted: list[float] = field(default_factory=list)
    refused: list[tuple[float, RefusalKind]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._window: deque[float] = deque()

    def limit(self, now: float) -> int | None:
        return self.streams(now) if callable(self.streams) else self.streams

    async def request(self, start: Start) -> None:
        """One request through the API; raises Refused for a 429."""
        await anyio.sleep(0.001)  # the client builds and sends it
        start.mark_sent()
        await anyio.sleep(self.trip + self.count_delay(self._rng))
        now = anyio.current_time()
        cap = self.limit(now)
        kind: RefusalKind | None = None
        if cap is not None and self.active >= cap:
            kind = "concurrency"
        elif self.rate is not None:
            window = self.rate.period
            while self._window and self._window[0] <= now - window:
                self._window.popleft()
            if len(self._window) >= self.rate.count:
                kind = "rate"
        if kind is not None:
            self.refused.append((now, kind))
            await anyio.sleep(self.trip)
            start.mark_answered()
            raise Refused(kind if self.says_why else None, self.retry_after)
        self._window.append(now)
        self.admitted.append(now)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await anyio.sleep(self.answer_after(self._rng))
            start.mark_answered()
            await anyio.sleep(self.stream_seconds)
        finally:
            self.active -= 1


@dataclass
class Run:
    finished: list[float]
    caps: list[tuple[float, int]]
    throttle: Throttle
    account: Account

    @property
    def wall(self) -> float:
        return max(self.finished)

    def cap_at(self, t: float) -> int:
        cap = 1
        for when, value in self.caps:
            if when > t:
                break
            cap = value
        return cap


def simulate(
    throttle: Throttle, account: Account, rows: int, workers: int, max_attempts: int = 10, lend_turns: bool = True
) -> Run:
    """``rows`` rows through ``throttle`` against ``account``, by ``workers`` workers as the runner has them
    (``lend_turns``: a row waits out a Retry-After in :meth:`Throttle.rest`, as job/attempts.py does)."""
    finished: list[float] = []
    caps: list[tuple[float, int]] = [(0.0, throttle.state.concurrency)]
    left = [rows]

    async def make_row() -> None:
        for _ in range(max_attempts):
            wait = 0.0
            async with throttle.slot() as start:
                try:
                    await account.request(start)
                except Refused as refusal:
                    throttle.on_rate_limited(start, refusal.retry_after, kind=refusal.kind)
                    wait = refusal.retry_after
                else:
                    throttle.on_success()
                    finished.append(anyio.current_time())
                    return
                finally:
                    if caps[-1][1] != throttle.state.concurrency:
                        caps.append((anyio.current_time(), throttle.state.concurrency))
            await (throttle.rest(wait) if lend_turns else anyio.sleep(wait))
        raise AssertionError("a row ran out of attempts")

    async def worker() -> None:
        while True:
            async with throttle.turn():
                if left[0] == 0:
                    return
                left[0] -= 1
                await make_row()

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(workers):
                tg.start_soon(worker)

    run_virtual(main)
    assert len(finished) == rows
    return Run(sorted(finished), caps, throttle, account)


def auto(max_concurrency: int = 64, rate: Rate | None = None, **options: object) -> Throttle:
    return Throttle("auto", rate, max_concurrency=max_concurrency, clock=anyio.current_time, **options)  # type: ignore[arg-type]


# --- the cap itself ------------------------------------------------------------------------


def test_slow_start_doubles_the_cap_each_round_of_successes() -> None:
    cap = AutoConcurrency(64)
    rounds = []
    for _ in range(7):
        for _ in range(cap.cap):  # a round: every allowed stream succeeds while all are busy
            cap.succeeded(0.0, saturated=True)
        rounds.append(cap.cap)
    assert rounds == [2, 4, 8, 16, 32, 64, 64]


def test_successes_while_the_cap_was_not_the_limit_do_not_raise_it() -> None:
    cap = AutoConcurrency(64)
    for _ in range(100):
        cap.succeeded(0.0, saturated=False)
    assert cap.cap == 1


def test_a_refusal_settles_the_cap_and_probes_come_later_and_later() -> None:
    cap = AutoConcurrency(64)
    cap.succeeded(0.0, saturated=True)
    assert cap.cap == 2
    cap.refused(1.0, level=1)  # the second stream refused with one admitted
    assert (cap.cap, cap.refused_at) == (1, 2)
    cap.succeeded(1.0 + PROBE_QUIET - 0.1, saturated=True)
    assert cap.cap == 1  # quiet: no probe yet
    cap.succeeded(1.0 + PROBE_QUIET, saturated=True)
    assert cap.cap == 2  # the probe
    probed = 1.0 + PROBE_QUIET + 0.5
    cap.refused(probed, level=1)
    assert cap.cap == 1 and cap.next_probe_in == 2 * PROBE_QUIET
    cap.succeeded(probed + 2 * PROBE_QUIET - 0.1, saturated=True)
    assert cap.cap == 1
    for refusal in range(10):  # the wait doubles up to its ceiling
        now = 1000.0 * (refusal + 1)
        cap.succeeded(now, saturated=True)
        cap.refused(now + 0.1, level=1)
    assert cap.next_probe_in == MAX_PROBE_QUIET


def test_refusals_of_one_overshoot_double_the_wait_once() -> None:
    cap = AutoConcurrency(64)
    for _ in range(7):
        cap.succeeded(0.0, saturated=True)
    assert cap.cap == 8
    for level in (5, 5, 6):  # three streams of the same round refused
        cap.refused(0.5, level=level)
    assert cap.cap == 5 and cap.next_probe_in == PROBE_QUIET


@pytest.mark.parametrize(
    "message,kind",
    [
        ("HTTP 429: too many concurrent requests: the limit is 1 at once", "concurrency"),
        ("HTTP 429: too many requests: the rate limit is 10/s", "rate"),
        ("HTTP 429: Rate limit exceeded", "rate"),
        ("HTTP 429: Too Many Requests", None),
        ("HTTP 429: no message", None),
    ],
)
def test_a_429_says_which_limit_it_hit_when_its_message_does(message: str, kind: str | None) -> None:
    assert refusal_kind(message) == kind


# --- accounts ------------------------------------------------------------------------------


def test_on_a_1_stream_account_auto_costs_nothing_and_refuses_rarely() -> None:
    """The documented default account: one stream. Auto must do as well as --concurrency 1."""
    rows = 240  # ~100 s: a slow-start refusal, then probes at +30 s and +90 s
    account = Account(streams=1, answer_after=lambda rng: 0.1, stream_seconds=0.3)
    run = simulate(auto(), account, rows, workers=64)
    fixed = simulate(Throttle(1, clock=anyio.current_time), Account(streams=1, answer_after=lambda rng: 0.1,
                                                                    stream_seconds=0.3), rows, workers=1)  # fmt: skip
    assert account.max_active == 1
    assert len(account.refused) <= 0.02 * (rows + len(account.refused)), account.refused
    assert [kind for _, kind in account.refused] == ["concurrency"] * len(account.refused)
    assert run.wall <= 1.05 * fixed.wall
    assert run.throttle.state.concurrency == 1 and run.throttle.auto is not None
    assert run.throttle.auto.refused_at == 2


@pytest.mark.parametrize("lend_turns", [True, False])
def test_a_row_waiting_out_its_retry_after_lends_its_turn(lend_turns: bool) -> None:
    """The refused second stream waits 5 s before its retry; meanwhile the other rows keep the one stream busy."""
    account = Account(streams=1, answer_after=lambda rng: 0.1, stream_seconds=0.3, retry_after=5.0)
    run = simulate(auto(), account, rows=40, workers=64, lend_turns=lend_turns)
    busy = 40 * 0.4015  # each row: 1 ms to send, 0.5 ms each way, 0.1 s to answer, 0.3 s of audio
    assert len(account.refused) == 1
    if lend_turns:
        assert run.wall <= busy + 0.1
    else:  # the control: holding the turn leaves the account idle for most of the 5 s
        assert run.wall > busy + 4


@pytest.mark.parametrize("says_why", [True, False])
def test_on_a_3_stream_account_auto_settles_at_3(says_why: bool) -> None:
    """Unsaid, a 429 while other streams run is read as a concurrency refusal (the Waves API's body is undocumented)."""
    account = Account(streams=3, answer_after=lambda rng: 0.05, stream_seconds=0.2, says_why=says_why)
    run = simulate(auto(), account, rows=300, workers=64)
    assert run.throttle.state.concurrency == 3
    assert account.max_active == 3
    assert len(account.refused) <= 6
    # No pause for a concurrency refusal: the three streams kept the account busy.
    busy = 300 * 0.25 / 3
    assert run.wall <= 1.1 * busy


def test_on_a_64_stream_account_auto_reaches_c_over_l_within_10_seconds() -> None:
    """Latency-bound (L = 1 s): slow start needs six rounds to reach 64 streams."""
    account = Account(streams=64, answer_after=lambda rng: 0.99, stream_seconds=0.01)
    run = simulate(auto(), account, rows=1024, workers=64)
    assert not account.refused
    reached = next(t for t, cap in run.caps if cap == 64)
    assert reached <= 10.0
    after = [t for t in run.finished if t >= 10.0]
    rate = (len(after) - 1) / (after[-1] - after[0])
    assert rate >= 0.95 * 64 / 1.0


def test_a_limit_that_rises_is_found_by_the_probes() -> None:
    account = Account(streams=lambda now: 2 if now < 40 else 5, answer_after=lambda rng: 0.05, stream_seconds=0.15)
    run = simulate(auto(), account, rows=2400, workers=64)
    assert run.cap_at(39.0) == 2
    assert run.throttle.state.concurrency in (5, 6)  # 5, or probing 6 when the rows ran out
    assert account.max_active == 5 and 5 in [cap for _, cap in run.caps]


def test_a_limit_that_falls_is_followed_down() -> None:
    account = Account(streams=lambda now: 6 if now < 10 else 2, answer_after=lambda rng: 0.05, stream_seconds=0.15)
    run = simulate(auto(), account, rows=800, workers=64)
    assert run.cap_at(9.0) == 6
    assert run.throttle.state.concurrency == 2


def test_the_cap_stops_at_max_concurrency() -> None:
    account = Account(answer_after=lambda rng: 0.05, stream_seconds=0.1)
    run = simulate(auto(max_concurrency=8), account, rows=200, workers=8)
    assert account.max_active == 8 and run.throttle.state.concurrency == 8 and not account.refused


def test_a_fixed_cap_never_grows() -> None:
    account = Account(answer_after=lambda rng: 0.05, stream_seconds=0.1)
    run = simulate(Throttle(3, clock=anyio.current_time), account, rows=100, workers=3)
    assert account.max_active == 3 and run.throttle.state.concurrency == 3


def test_no_more_turns_than_streams() -> None:
    """64 workers on a 1-stream account: one takes a row at a time, so a row starts when its request can."""
    throttle = auto()
    seen: list[int] = []
    active = [0]

    async def worker() -> None:
        for _ in range(5):
            async with throttle.turn():
                active[0] += 1
                seen.append(active[0])
                await anyio.sleep(0.1)
                active[0] -= 1

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(64):
                tg.start_soon(worker)

    run_virtual(main)
    assert max(seen) == 1 and len(seen) == 320


# --- pacing against an API that answers late --------------------------------------------------


def _late(rng: random.Random) -> float:
    return rng.uniform(0.05, 0.3)  # headers come with the first audio, 50 to 300 ms after the request


def paced_rate(admitted: list[float], rate: Rate, skip_windows: int = 2) -> float:
    """Starts per second over whole windows of N starts, after the first ones (the cap's slow start)."""
    n = int(rate.count)
    first = skip_windows * n
    windows = (len(admitted) - 1 - first) // n
    assert windows >= 1
    return windows * n / (admitted[first + windows * n] - admitted[first])


@pytest.mark.parametrize("rate", [Rate(10, 1.0), Rate(600, 60.0)])
def test_pacing_reaches_the_rate_when_the_api_answers_late(rate: Rate) -> None:
    """Counted when they arrive, answered 50-300 ms later: >= 0.98 of the rate, no 429."""
    rows = int(rate.count * 5) + 1
    account = Account(rate=rate, answer_after=_late, stream_seconds=0.4)
    run = simulate(auto(rate=rate), account, rows=rows, workers=64)
    assert not account.refused
    assert max_in_window(account.admitted, rate.period) <= rate.count
    assert paced_rate(account.admitted, rate) >= 0.98 * rate.per_second
    assert run.throttle.count_from == "send"


def test_counting_from_the_answers_costs_a_ttfb_per_window() -> None:
    """The control for the test above: the answer guard (the fallback after a 429) is below 0.98 of 10/s."""
    rate = Rate(10, 1.0)
    account = Account(rate=rate, answer_after=_late, stream_seconds=0.4)
    simulate(auto(rate=rate, count_from="answer"), account, rows=61, workers=64)
    assert paced_rate(account.admitted, rate) < 0.95 * rate.per_second  # ~175 ms of each second lost
    assert not account.refused


def _counted_late(seed: int) -> int:
    """Counted 0-80 ms after arrival (a queue before its limiter): the send guard draws a 429 at most
    once; from then on the answers are the guard's clock and no row is lost (simulate checks every row)."""
    rate = Rate(10, 1.0)
    account = Account(rate=rate, count_delay=lambda rng: rng.uniform(0.0, 0.08), stream_seconds=0.2, seed=seed)
    run = simulate(auto(rate=rate), account, rows=80, workers=64)
    assert len(account.refused) <= 1
    assert run.throttle.count_from == ("answer" if account.refused else "send")
    assert max_in_window(account.admitted, 1.0) <= 10
    return len(account.refused)


def test_an_api_that_counts_late_costs_one_429_then_the_guard_counts_from_the_answers() -> None:
    refused = [_counted_late(seed) for seed in range(6)]
    assert max(refused) == 1  # it happens (the guard's estimate is not causal), once a run at most


def test_a_concurrency_refusal_leaves_the_guard_counting_from_the_sends() -> None:
    rate = Rate(20, 1.0)
    account = Account(streams=2, rate=rate, answer_after=lambda rng: 0.05, stream_seconds=0.2)
    run = simulate(auto(rate=rate), account, rows=60, workers=64)
    assert account.refused and all(kind == "concurrency" for _, kind in account.refused)
    assert run.throttle.count_from == "send"


def test_a_per_minute_rate_takes_a_late_count_without_a_429() -> None:
    """Counted up to 80 ms after arrival, at 600/min: the allowance is 0.5% of the minute (300 ms), so no
    429, and the guard still counts from the sends (the answers when they come sooner): >= 0.98 of the rate."""
    rate = Rate(600, 60.0)
    account = Account(rate=rate, count_delay=lambda rng: rng.uniform(0.0, 0.08), answer_after=_late, seed=3)
    run = simulate(auto(rate=rate), account, rows=1801, workers=64)
    assert not account.refused
    assert run.throttle.count_from == "send"
    assert max_in_window(account.admitted, rate.period) <= rate.count
    assert paced_rate(account.admitted, rate) >= 0.98 * rate.per_second
