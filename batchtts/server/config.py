"""Everything that shapes one local server: auth, engine, limits, faults, pacing, SSE layout.

One frozen object, checked once, so the app, the in-process :class:`LocalServer`
and the ``batchtts serve`` command all agree on what a setting means.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from batchtts.api.request import MODELS
from batchtts.server.engines import ENGINES
from batchtts.units import Rate

#: Fault kinds, in the order they are drawn for each request.
FAULT_KINDS: tuple[str, ...] = (
    "500", "502", "503", "429", "drop", "nodone", "error-event", "bad-frame", "error-frame",
    "truncate", "silence", "clip",
)  # fmt: skip

#: Ways of laying out the SSE stream that the HTML standard allows (see ``sse.py``).
SSE_STYLES: tuple[str, ...] = ("crlf", "cr", "comments", "ids", "nospace", "multiline", "split", "odd", "seed")

#: What the server answers in ``x-content-expiry`` to a request with ``x-expire-content: true``.
CONTENT_EXPIRY_VERDICTS: tuple[str, ...] = ("applied", "not-entitled", "unavailable")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The local server's settings; invalid values raise ValueError naming the setting."""

    #: With a key, only ``Bearer <api_key>`` is accepted; without one, any non-empty token.
    #: Kept out of repr() so logging a config never shows it.
    api_key: str | None = field(default=None, repr=False)
    #: ``auto`` (espeak when installed, else synthetic), ``synthetic`` or ``espeak``.
    engine: str = "auto"
    #: At most this many request starts per sliding window; None = unlimited.
    rate: Rate | None = None
    #: At most this many streams at once; None = unlimited.
    concurrency: int | None = None
    #: Seconds between receiving a request and its first audio.
    latency: float = 0.1
    #: Milliseconds of audio per SSE chunk.
    chunk_ms: float = 100.0
    #: Chunks are sent this many times faster than real time; 0 = as fast as possible.
    realtime_factor: float = 10.0
    #: Up to this many seconds (uniform, drawn from ``seed``) between a request
    #: arriving and the limits counting it, as a busy gateway's queue would: the
    #: account's window then sees starts later, and bunched, than clients sent them.
    admission_delay: float = 0.0
    #: (low, high) seconds: each stream's answer (status line and headers) waits until a delay
    #: drawn uniformly from this range after the request arrived, and goes with the first audio
    #: (``batchtts/server/answers.py``); the limits still count the request when it arrived.
    #: (0, 0) = answer at once, the audio following after ``latency``.
    answer_delay: tuple[float, float] = (0.0, 0.0)
    #: Fault kind -> probability per request (0..1).
    faults: dict[str, float] = field(default_factory=dict)
    #: Seed of the fault draws; None = a fresh seed each start.
    seed: int | None = None
    #: Faults strike only the first N requests of each distinct request (same text, voice and
    #: every field that shapes the audio); later ones are clean, so a client's retry can be
    #: checked byte for byte. None = every request may be struck.
    fault_first: int | None = None
    #: SSE layout flags (``SSE_STYLES``); empty = the API's exact layout (``seed``: the older seed page's frames).
    sse_style: frozenset[str] = frozenset()
    #: The ``x-content-expiry`` answer to ``x-expire-content: true`` (``CONTENT_EXPIRY_VERDICTS``).
    content_expiry: str = "applied"
    #: Per key, over the server's life: at most this many synthesis requests / characters of text;
    #: past it, 403 "trial or workspace usage limit reached". None = unlimited.
    quota_requests: int | None = None
    quota_characters: int | None = None
    #: Bearer tokens answered 403 as keys of another workspace or product (kept out of repr()).
    forbidden_keys: frozenset[str] = field(default=frozenset(), repr=False)
    #: Models the account's plan lacks: a request for one gets the plan-gated 400,
    #: ``{"status": false, "errors": ["... please upgrade to a higher plan"]}``.
    plan_gated_models: frozenset[str] = frozenset()
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine: {self.engine!r} is not one of {', '.join(ENGINES)}")
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("api_key: must not be empty")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError(f"concurrency: {self.concurrency} must be at least 1")
        if self.latency < 0:
            raise ValueError(f"latency: {self.latency} must not be negative")
        if self.admission_delay < 0:
            raise ValueError(f"admission_delay: {self.admission_delay} must not be negative")
        low, high = self.answer_delay
        if not 0 <= low <= high:
            raise ValueError(f"answer_delay: {low:g} to {high:g} is not a range of seconds (0 <= low <= high)")
        object.__setattr__(self, "answer_delay", (float(low), float(high)))
        if self.chunk_ms <= 0:
            raise ValueError(f"chunk_ms: {self.chunk_ms} must be positive")
        if self.realtime_factor < 0:
            raise ValueError(f"realtime_factor: {self.realtime_factor} must not be negative")
        for kind, probability in self.faults.items():
            if kind not in FAULT_KINDS:
                raise ValueError(f"faults: unknown kind {kind!r}; choose from {', '.join(FAULT_KINDS)}")
            if not 0.0 <= probability <= 1.0:
                raise ValueError(f"faults: probability {probability} of {kind} is not within 0..1")
        if self.fault_first is not None and self.fault_first < 1:
            raise ValueError(f"fault_first: {self.fault_first} must be at least 1")
        style = frozenset(self.sse_style)
        unknown = sorted(style - set(SSE_STYLES))
        if unknown:
            raise ValueError(f"sse_style: unknown {', '.join(unknown)}; choose from {', '.join(SSE_STYLES)}")
        if {"cr", "crlf"} <= style:
            raise ValueError("sse_style: cr and crlf are exclusive (one line ending per stream)")
        for name in ("quota_requests", "quota_characters"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name}: {value} must not be negative")
        unknown_models = sorted(set(self.plan_gated_models) - set(MODELS))
        if unknown_models:
            raise ValueError(f"plan_gated_models: unknown {', '.join(unknown_models)}; choose from {', '.join(MODELS)}")
        if any(not key.strip() for key in self.forbidden_keys):
            raise ValueError("forbidden_keys: a key must not be empty")
        if self.content_expiry not in CONTENT_EXPIRY_VERDICTS:
            raise ValueError(
                f"content_expiry: {self.content_expiry!r} is not one of {', '.join(CONTENT_EXPIRY_VERDICTS)}"
            )
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port: {self.port} is not within 0..65535")
        # Own copies, so a caller's later edits cannot change a running server.
        object.__setattr__(self, "faults", dict(self.faults))
        object.__setattr__(self, "sse_style", style)
        object.__setattr__(self, "forbidden_keys", frozenset(self.forbidden_keys))
        object.__setattr__(self, "plan_gated_models", frozenset(self.plan_gated_models))

    @property
    def answers_late(self) -> bool:
        return self.answer_delay != (0.0, 0.0)

    def describe_limits(self) -> str:
        """Limits, faults and layout in one human line (never the key)."""
        parts = [
            f"auth: {'key required' if self.api_key else 'any bearer token'}",
            f"rate: {self.rate or 'unlimited'}",
            f"concurrency: {self.concurrency or 'unlimited'}",
            f"latency: {self.latency:g}s",
            f"chunks: {self.chunk_ms:g}ms at {self.realtime_factor:g}x real time"
            if self.realtime_factor
            else f"chunks: {self.chunk_ms:g}ms unpaced",
        ]
        if self.admission_delay:
            parts.append(f"admission delay: up to {self.admission_delay:g}s")
        if self.answers_late:
            low, high = self.answer_delay
            parts.append(f"answers with the first audio after {low:g}s" + (f" to {high:g}s" if high != low else ""))
        active = {k: p for k, p in self.faults.items() if p > 0}
        if active:
            listed = ", ".join(f"{k}:{p:g}" for k, p in active.items())
            first = f", first {self.fault_first} of each request" if self.fault_first is not None else ""
            parts.append(f"faults: {listed} (seed {self.seed if self.seed is not None else 'random'}{first})")
        if self.sse_style:
            parts.append(f"sse style: {'+'.join(s for s in SSE_STYLES if s in self.sse_style)}")
        if self.content_expiry != "applied":
            parts.append(f"content expiry: {self.content_expiry}")
        quotas = [
            f"{limit} {unit}"
            for limit, unit in ((self.quota_requests, "requests"), (self.quota_characters, "characters"))
            if limit is not None
        ]
        if quotas:
            parts.append(f"quota: {' and '.join(quotas)} per key")
        if self.forbidden_keys:
            parts.append(f"forbidden keys: {len(self.forbidden_keys)}")
        if self.plan_gated_models:
            parts.append(f"not on the plan: {', '.join(sorted(self.plan_gated_models))}")
        return "; ".join(parts)
