"""One account's limits in Redis: the calls the shared throttle makes, and what happens when Redis goes away.

Taking a stream or a start waits while Redis is unreachable (no new start
without the shared limits' word), trying again every RECONNECT_EVERY seconds;
the reports (a stream's end, an answer, a 429) are best effort: a lease not
given back expires, a start not noted counts as answered ANSWER_WAIT_LIMIT
after it was granted. One log line when Redis is lost, one when it is back.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from batchtts.errors import UsageError
from batchtts.schedule.shared import scripts
from batchtts.schedule.shared.address import masked_url

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

log = logging.getLogger("batchtts")

#: A lease lives this long unless renewed: a SIGKILLed process's streams are free again within it.
LEASE_TTL = 6.0
#: Leases are renewed this often (a third of their life: two renewals may be lost).
RENEW_EVERY = LEASE_TTL / 3
#: While Redis is unreachable, a start tries again this often.
RECONNECT_EVERY = 0.5
#: How often a start waiting for a stream asks again (one asker per process).
LEASE_POLL = 0.01
#: How often a start waiting on the window guard asks again while the oldest start's answer is not noted.
WINDOW_POLL = 0.005
#: A start due this soon (by the pace or a pause) is granted ahead, for its time (see TAKE_SLOT).
LOOKAHEAD = 0.1
#: Why TAKE_SLOT said wait: the oldest start in the window guard is not answered yet; no stream is free.
UNANSWERED, NO_STREAM = 1, 2
#: The keys of an account nobody uses vanish after this long.
IDLE_EXPIRY = 3600.0
#: Seconds Redis has to answer a call (and to accept a connection).
SOCKET_TIMEOUT = 2.0


class LimitsUnreachable(UsageError):
    """Redis cannot be reached when the job starts (exit 2, before any request)."""


class SharedLimits:
    """The Redis side of :class:`~batchtts.schedule.shared.throttle.SharedThrottle`."""

    def __init__(self, redis: Redis, url: str, namespace: str) -> None:
        self._redis = redis
        self.url = masked_url(url)
        self.namespace = namespace
        self.leases_key = f"{namespace}:leases"
        self.state_key = f"{namespace}:state"
        self.window_key = f"{namespace}:window"
        self._token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._serial = 0
        self._lost = False
        self._losses = 0  # outages so far: a call that began before the last one cannot say Redis is back
        self._readd = False
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(getattr(scripts, name))
            for name in ("TAKE_SLOT", "RENEW_LEASES", "GIVE_LEASE", "NOTE_ANSWERED", "ON_SUCCESS", "ON_RATE_LIMITED")
        }  # fmt: skip

    @classmethod
    async def connect(cls, url: str, namespace: str) -> SharedLimits:
        """Connected and answering, or :class:`LimitsUnreachable` naming the URL (password masked)."""
        from redis.asyncio import Redis
        from redis.exceptions import AuthenticationError, RedisError, ResponseError

        shown = masked_url(url)
        try:
            redis = Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT)
        except ValueError as exc:
            raise LimitsUnreachable(f"--limits-url {shown}: {exc}") from None
        try:
            await redis.ping()
        except (AuthenticationError, ResponseError) as exc:
            await redis.aclose()
            detail = str(exc).replace(url, shown)
            raise LimitsUnreachable(
                f"--limits-url {shown}: Redis refused the connection ({detail}); check the password in the URL"
            ) from None
        except (RedisError, OSError) as exc:
            await redis.aclose()
            raise LimitsUnreachable(
                f"--limits-url {shown}: cannot reach Redis ({type(exc).__name__}); check that the server runs, "
                "that the host and port are right and reachable from here, or run without --limits-url"
            ) from None
        return cls(redis, url, namespace)

    async def aclose(self) -> None:
        await self._redis.aclose()

    def new_id(self) -> str:
        self._serial += 1
        return f"{self._token}-{self._serial}"

    # --- calls that wait for Redis ---------------------------------------------------------

    async def take_slot(
        self,
        lease: str,
        start: str,
        most: int,
        *,
        auto: bool,
        pace: Sequence[Any],
        clock: Callable[[], float] = time.monotonic,
    ) -> tuple[float, int, float]:
        """Hold ``lease`` and count ``start`` once a stream is free and the pace, the window guard and any
        pause allow, and return when the start may go: (the grant on Redis' clock, the shared cap, a
        ``clock()`` reading at or before the grant). ``pace``: most starts/s, window starts, window s,
        answer wait limit s, epsilon s, max catch-up s."""
        keys = [self.leases_key, self.state_key, self.window_key]
        args = [lease, start, LEASE_TTL, most, int(auto), *pace, IDLE_EXPIRY, LOOKAHEAD]
        while True:
            asked = clock()
            reply = await self._call_until_answered("TAKE_SLOT", keys, args)
            if int(reply[0]) == 1:
                ahead = float(reply[3])
                if ahead > 0:
                    # Granted for a moment `ahead` after Redis answered: sleeping that long from the
                    # answer's arrival never starts early.
                    await anyio.sleep(ahead)
                return float(reply[1]), int(reply[2]), asked + ahead
            why = int(reply[2])
            if why == NO_STREAM:
                await anyio.sleep(LEASE_POLL)
            else:
                wait = float(reply[1])
                await anyio.sleep(min(wait, WINDOW_POLL) if why == UNANSWERED else wait)

    async def _call_until_answered(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """The script's answer; while Redis is unreachable, wait (said once) and try again."""
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        while True:
            losses = self._losses
            try:
                reply = await self._run(name, keys, args)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                self._note_lost(exc)
                await anyio.sleep(RECONNECT_EVERY)
                continue
            self._note_back(losses)
            return reply

    async def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """The script's answer; a connection that broke while idle in the pool (Redis restarted) is
        replaced and the call made once more before it counts as Redis lost."""
        from redis.exceptions import ConnectionError as RedisConnectionError

        try:
            return await self._scripts[name](keys=keys, args=args)
        except RedisConnectionError:
            # The pool's idle connections died with the same server: drop them all, not one per call.
            await self._redis.connection_pool.disconnect(inuse_connections=False)
            return await self._scripts[name](keys=keys, args=args)

    # --- reports: best effort ----------------------------------------------------------

    async def report(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run a script whose effect may be lost with Redis (a lease expires, a count lapses): None then."""
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        losses = self._losses
        try:
            reply = await self._run(name, keys, args)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            self._note_lost(exc)
            return None
        self._note_back(losses)
        return reply

    async def renew(self, leases: list[str]) -> None:
        """Keep the leases held alive; after an outage, put them back (a restarted Redis forgot them)."""
        if not leases:
            return
        readd = self._readd
        if await self.report("RENEW_LEASES", [self.leases_key], [LEASE_TTL, int(readd), *leases]) is not None:
            self._readd = self._readd and not readd

    # --- outage ------------------------------------------------------------------------------

    @property
    def lost(self) -> bool:
        return self._lost

    def _note_lost(self, exc: BaseException) -> None:
        if not self._lost:
            self._lost = True
            self._losses += 1
            log.warning(
                "shared limits: lost Redis at %s (%s); no new request starts until it is back, streams in flight go on",
                self.url,
                type(exc).__name__,
            )

    def _note_back(self, losses: int) -> None:
        """A call that began at ``losses`` outages was answered: Redis is back if it began after the last loss."""
        if self._lost and losses == self._losses:
            self._lost = False
            self._readd = True
            log.warning("shared limits: Redis at %s is back; request starts go on", self.url)
