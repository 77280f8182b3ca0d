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

Audio faults: the stream is whole and ends with its done frame, but the audio is bad
(what the client's audio checks, ``batchtts run --qa``, must notice):

- ``truncate``: only the first 10 to 40 % of the audio is sent;
- ``silence``: digital silence of the right length;
- ``clip``: the audio eight times too loud, clipped at full scale.

With ``fault_first`` (``--fault-first N``) faults strike only the first N requests of
each distinct request: the next one is clean, so a retry can be checked byte for byte.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from batchtts.server.config import FAULT_KINDS

if TYPE_CHECKING:
    import numpy as np

STATUS_FAULTS: dict[str, tuple[int, str, float | None]] = {
    # kind: (status, TtsError "error", Retry-After seconds)
    "500": (500, "internal_server_error", None),
    "502": (502, "bad_gateway", None),
    "503": (503, "service_unavailable", 1.0),
    "429": (429, "rate_limit_exceeded", 1.0),
}
STREAM_FAULTS: tuple[str, ...] = ("drop", "nodone", "error-event", "bad-frame", "error-frame")
AUDIO_FAULTS: tuple[str, ...] = ("truncate", "silence", "clip")
#: ``clip``: the gain applied before the samples are clipped to 16 bits.
CLIP_GAIN = 8


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


def apply_audio_fault(samples: np.ndarray, plan: FaultPlan) -> np.ndarray:
    """The int16 samples an audio fault sends instead of ``samples`` (``samples`` when it is none)."""
    import numpy as np

    if plan.kind == "truncate":
        keep = max(1, int(len(samples) * (0.1 + 0.3 * plan.position)))
        return samples[:keep]
    if plan.kind == "silence":
        return np.zeros_like(samples)
    if plan.kind == "clip":
        louder = samples.astype(np.int32) * CLIP_GAIN
        return np.clip(louder, -32768, 32767).astype(np.int16)
    return samples


class FirstRequests:
    """Counts requests by what they ask for, so faults strike only the first N of each (``fault_first``)."""

    def __init__(self, first: int) -> None:
        self.first = first
        self._seen: dict[str, int] = {}

    def may_strike(self, fingerprint: str) -> bool:
        count = self._seen[fingerprint] = self._seen.get(fingerprint, 0) + 1
        return count <= self.first
