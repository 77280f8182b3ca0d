"""Which attempts are retried, and the waits between them."""

from __future__ import annotations

from datetime import UTC

import anyio
import pytest
from tenacity import RetryCallState

from batchtts.api.answers import parse_retry_after
from batchtts.errors import (
    AuthRejected,
    NetworkError,
    RateLimited,
    RequestRejected,
    StreamIncomplete,
    UsageLimitReached,
)
from batchtts.schedule.retry import RetryPolicy, _BackoffOrRetryAfter, retrying


def attempts_until(errors: list[Exception], policy: RetryPolicy) -> tuple[int, BaseException | None]:
    count = 0

    async def main() -> None:
        nonlocal count
        async for attempt in retrying(policy):
            with attempt:
                count += 1
                if count <= len(errors):
                    raise errors[count - 1]

    try:
        anyio.run(main)
    except Exception as exc:  # the last error is re-raised
        return count, exc
    return count, None


FAST = RetryPolicy(max_attempts=5, time_scale=0.0)


def test_transient_errors_are_retried_until_success() -> None:
    errors = [StreamIncomplete("cut"), RateLimited("429", retry_after=1), NetworkError("reset")]
    assert attempts_until(errors, FAST) == (4, None)


def test_attempts_stop_at_max_attempts_with_the_last_error() -> None:
    count, error = attempts_until([StreamIncomplete(f"cut {i}") for i in range(10)], FAST)
    assert count == 5
    assert str(error) == "cut 4"


@pytest.mark.parametrize("error", [RequestRejected("400"), AuthRejected("401"), UsageLimitReached("403")])
def test_client_errors_are_tried_once(error: Exception) -> None:
    assert attempts_until([error], FAST) == (1, error)


def wait_for(error: Exception, attempt: int, policy: RetryPolicy) -> float:
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    state.set_exception((type(error), error, None))
    return _BackoffOrRetryAfter(policy)(state)


def test_retry_after_replaces_the_backoff_and_is_capped_and_scaled() -> None:
    policy = RetryPolicy(max_backoff=60)
    assert wait_for(RateLimited("429", retry_after=7), 1, policy) == 7
    assert wait_for(RateLimited("429", retry_after=600), 1, policy) == 60
    assert wait_for(RateLimited("429", retry_after=7), 1, RetryPolicy(time_scale=0.01)) == pytest.approx(0.07)


def test_backoff_is_jittered_exponential_and_capped() -> None:
    policy = RetryPolicy(max_backoff=4, initial_backoff=0.5)
    waits = [wait_for(NetworkError("x"), 10, policy) for _ in range(200)]
    assert all(0 <= w <= 4 for w in waits)
    assert len(set(waits)) > 50  # jitter, not a fixed schedule


def test_parse_retry_after_seconds_and_http_date() -> None:
    from datetime import datetime

    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None


def test_429s_have_their_own_budget_and_do_not_use_up_the_attempts():
    from batchtts.errors import RateLimited, ServerError
    from batchtts.schedule.retry import RetryPolicy, retrying

    policy = RetryPolicy(max_attempts=2, max_rate_limited=4, time_scale=0.0)
    answers = [RateLimited("429"), RateLimited("429"), RateLimited("429"), ServerError("503"), None]
    calls = 0

    async def main() -> None:
        nonlocal calls
        async for attempt in retrying(policy):
            with attempt:
                calls += 1
                error = answers[calls - 1]
                if error is not None:
                    raise error

    anyio.run(main)
    assert calls == 5  # three 429s and one 503 before the success: max_attempts=2 alone would stop at 2

    stopped = 0

    async def only_429s() -> None:
        nonlocal stopped
        async for attempt in retrying(policy):
            with attempt:
                stopped += 1
                raise RateLimited("429")

    with pytest.raises(RateLimited):
        anyio.run(only_429s)
    assert stopped == 4
