"""Per-key usage limits and keys of another workspace: the local server's 403s.

The Waves API answers 403 when a valid key may not do what it asks: the
account's trial or workspace usage limit is reached, or the key belongs to
another workspace or product (page ``troubleshooting/error-reference``). The
body is not documented; the local server answers TtsError JSON,
``{"error": "Forbidden", "message": "trial or workspace usage limit reached ..."}``.

Usage is counted per key (the bearer token) over the server's life: each
request the limits admitted counts once, with its text's characters. A request
that would go past ``--quota-requests`` or ``--quota-characters`` is refused
and counts nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QuotaRefusal:
    message: str


class Quotas:
    """Requests and characters used per key; None limits mean no limit."""

    def __init__(self, max_requests: int | None, max_characters: int | None) -> None:
        self.max_requests = max_requests
        self.max_characters = max_characters
        self._requests: Counter[str] = Counter()
        self._characters: Counter[str] = Counter()

    @property
    def active(self) -> bool:
        return self.max_requests is not None or self.max_characters is not None

    def charge(self, key: str, characters: int) -> QuotaRefusal | None:
        """Count one request of ``characters`` against ``key``, or say why it may not be made."""
        if self.max_requests is not None and self._requests[key] + 1 > self.max_requests:
            return QuotaRefusal(
                f"trial or workspace usage limit reached: {self.max_requests} requests per key on this server"
            )
        if self.max_characters is not None and self._characters[key] + characters > self.max_characters:
            return QuotaRefusal(
                f"trial or workspace usage limit reached: {self.max_characters} characters per key on this server "
                f"({self._characters[key]} used, this request has {characters})"
            )
        self._requests[key] += 1
        self._characters[key] += characters
        return None

    def used(self, key: str) -> tuple[int, int]:
        """(requests, characters) charged to ``key`` so far."""
        return self._requests[key], self._characters[key]


FORBIDDEN_KEY_MESSAGE = "this key belongs to another workspace or product and may not use this API"
