"""Counters of what the local server saw, for clients' tests and benchmarks.

Served as JSON at ``GET /_batchtts/stats`` and kept in-process as
``app.state.stats``. Written on the server's event loop, read from any thread,
hence the lock.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Any

#: Request start times kept (the newest); enough for any test or benchmark window.
MAX_START_TIMES = 100_000


class ServerStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._requests: Counter[str] = Counter()
            self._statuses: Counter[int] = Counter()
            self._faults: Counter[str] = Counter()
            self._starts: deque[float] = deque(maxlen=MAX_START_TIMES)
            self._starts_total = 0
            self._ends: deque[float] = deque(maxlen=MAX_START_TIMES)
            self._active = 0
            self._max_active = 0
            self._completed = 0
            self._abandoned = 0

    def count_request(self, route: str) -> None:
        with self._lock:
            self._requests[route] += 1

    def count_status(self, status: int) -> None:
        with self._lock:
            self._statuses[status] += 1

    def count_fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    def record_start(self, started_at: float) -> None:
        """A request the limits admitted (``time.monotonic()`` when it arrived)."""
        with self._lock:
            self._starts.append(started_at)
            self._starts_total += 1

    def stream_opened(self) -> None:
        """A synthesis response (either route) is under way and holds a concurrency slot."""
        with self._lock:
            self._active += 1
            self._max_active = max(self._max_active, self._active)

    def stream_closed(self, completed: bool) -> None:
        """``completed``: the whole audio (and done frame) went out; its end time is kept."""
        ended_at = time.monotonic()
        with self._lock:
            self._active -= 1
            self._ends.append(ended_at)
            if completed:
                self._completed += 1
            else:
                self._abandoned += 1

    @property
    def max_concurrent_streams(self) -> int:
        with self._lock:
            return self._max_active

    @property
    def start_times(self) -> list[float]:
        with self._lock:
            return list(self._starts)

    @property
    def end_times(self) -> list[float]:
        """When each stream ended (its slot was freed), in order: with one stream at a time, the gap
        between a stream's end and the next start is all the time the client left the account idle."""
        with self._lock:
            return list(self._ends)

    def snapshot(self) -> dict[str, Any]:
        """Everything, as JSON-ready values."""
        with self._lock:
            statuses = self._statuses
            return {
                "requests": dict(self._requests),
                "responses": {str(status): n for status, n in sorted(statuses.items())},
                "ok": statuses[200],
                "client_errors": sum(n for s, n in statuses.items() if 400 <= s < 500),
                "rate_limited": statuses[429],
                "server_errors": sum(n for s, n in statuses.items() if s >= 500),
                "faults": dict(self._faults),
                "active_streams": self._active,
                "max_concurrent_streams": self._max_active,
                "streams_completed": self._completed,
                "streams_incomplete": self._abandoned,
                "starts_total": self._starts_total,
                "start_times": list(self._starts),
                "end_times": list(self._ends),
            }
