"""Fault injection: the failures a real streaming service shows, on demand and reproducibly.

Each admitted request draws once per configured kind, independently, from one
``random.Random`` seeded by ``--seed``; the same flags, seed and request order
give the same faults. When several kinds hit one request, an HTTP status fault
wins over a stream fault, and within each group the order of ``FAULT_KINDS``
decides.

- ``500`` / ``502`` / ``503`` / ``429``: the answer is that status with TtsError
  JSON (503 and 429 carry Retry-After).
- ``drop``: the connection is cut mid-body (the client sees a protocol error).
- ``nodone``: the stream ends cleanly part way, without the done frame.
- ``error-event``: an ``event: error`` frame mid-stream, then the stream ends.
- ``bad-frame``: one extra frame mid-stream whose data is not JSON, or whose
  audio is not base64; the stream then goes on to its done frame.
- ``error-frame``: the older routes' error frame mid-stream, ``data:
  {"status": "error", "message": ...}`` with no event line, then the stream ends.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from batchtts.server.config import FAULT_KINDS

STATUS_FAULTS: dict[str, tuple[int, str, float | None]] = {
    # kind: (status, TtsError "error", Retry-After seconds)
    "500": (500, "internal_server_error", None),
    "502": (502, "bad_gateway", None),
    "503": (503, "service_unavailable", 1.0),
    "429": (429, "rate_limit_exceeded", 1.0),
}
STREAM_FAULTS: tuple[str, ...] = ("drop", "nodone", "error-event", "bad-frame", "error-frame")


class ConnectionDropped(Exception):
    """Raised inside a response body so the server aborts the connection (the ``drop`` fault)."""


def parse_fault(text: str) -> tuple[str, float]:
    """Parse ``KIND:PROBABILITY`` (e.g. ``503:0.1``); ValueError says what is wrong."""
    kind, sep, probability_text = text.strip().rpartition(":")
    if not sep or not kind:
        raise ValueError(f"{text!r} is not KIND:PROBABILITY (e.g. 503:0.1)")
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; choose from {', '.join(FAULT_KINDS)}")
    try:
        probability = float(probability_text)
    except ValueError:
        raise ValueError(f"{probability_text!r} is not a probability (0..1)") from None
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"probability {probability_text} is not within 0..1")
    return kind, probability


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What goes wrong with one request, if anything."""

    kind: str | None = None
    #: Where a stream fault strikes, as a fraction of the audio chunks (0..1).
    position: float = 0.0
    #: For bad-frame: True = data that is not JSON, False = audio that is not base64.
    broken_json: bool = False

    @property
    def status(self) -> tuple[int, str, float | None] | None:
        return STATUS_FAULTS.get(self.kind) if self.kind is not None else None

    def strike_index(self, chunk_count: int) -> int:
        """How many audio chunks go out before a stream fault: at least one, never all if avoidable."""
        if chunk_count <= 1:
            return 1
        return 1 + min(chunk_count - 2, int(self.position * (chunk_count - 1)))


NO_FAULT = FaultPlan()


class FaultInjector:
    """Draws a :class:`FaultPlan` per request from the configured probabilities."""

    def __init__(self, probabilities: Mapping[str, float], seed: int | None) -> None:
        self.probabilities = {k: probabilities[k] for k in FAULT_KINDS if probabilities.get(k, 0) > 0}
        self._random = random.Random(seed)

    def draw(self) -> FaultPlan:
        """One independent draw per configured kind, then the winner's details."""
        if not self.probabilities:
            return NO_FAULT
        hits = [kind for kind, p in self.probabilities.items() if self._random.random() < p]
        position, broken_json = self._random.random(), self._random.random() < 0.5
        if not hits:
            return NO_FAULT
        status_hits = [k for k in hits if k in STATUS_FAULTS]
        return FaultPlan(kind=(status_hits or hits)[0], position=position, broken_json=broken_json)
