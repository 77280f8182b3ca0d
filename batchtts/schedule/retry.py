"""Which failed attempts are tried again, and how long to wait before each.

Retried: every :class:`~batchtts.errors.TransientError` (408, 409, 429, 5xx,
network errors, idle timeouts, incomplete streams). A 429 says the account is
busy, not that the row is broken: 429s count against their own, larger budget
(``max_rate_limited``), so a rate limit alone never uses up a row's attempts. Waits are exponential with
full jitter (tenacity's ``wait_random_exponential``), capped at ``max_backoff``;
a server's Retry-After replaces the jittered wait when present (also capped).
``time_scale`` shrinks every wait without changing which attempts happen, so
tests exercise real retries in milliseconds (the idea of stamina's test mode).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type
from tenacity.stop import stop_base
from tenacity.wait import wait_base, wait_random_exponential

from batchtts.errors import AttemptError, RateLimited, TransientError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    #: Answers of 429 a row may get before it fails; they do not count against ``max_attempts``.
    max_rate_limited: int = 50
    max_backoff: float = 60.0
    initial_backoff: float = 0.5
    time_scale: float = 1.0


class _BackoffOrRetryAfter(wait_base):
    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._jitter = wait_random_exponential(multiplier=policy.initial_backoff, max=policy.max_backoff)

    def __call__(self, retry_state: RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = error.retry_after if isinstance(error, AttemptError) else None
        seconds = min(retry_after, self._policy.max_backoff) if retry_after is not None else self._jitter(retry_state)
        return seconds * self._policy.time_scale


class _AttemptBudgets(stop_base):
    """Stop after ``max_attempts`` failures of any kind but 429, or ``max_rate_limited`` 429s.

    One instance per row (its counts are the row's own), so it is made for each :func:`retrying`.
    """

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._failed = 0
        self._rate_limited = 0

    def __call__(self, retry_state: RetryCallState) -> bool:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(error, RateLimited):
            self._rate_limited += 1
        else:
            self._failed += 1
        return self._failed >= self._policy.max_attempts or self._rate_limited >= self._policy.max_rate_limited


def retrying(policy: RetryPolicy, sleep: Callable[[float], Awaitable[None]] = anyio.sleep) -> AsyncRetrying:
    """An ``async for attempt in retrying(p): with attempt: ...`` loop; ``sleep`` waits between attempts."""
    return AsyncRetrying(
        stop=_AttemptBudgets(policy),
        wait=_BackoffOrRetryAfter(policy),
        retry=retry_if_exception_type(TransientError),
        sleep=sleep,
        reraise=True,
    )
