"""Speech engines behind the local server, and how one is chosen.

An engine turns a validated request into 16-bit mono PCM at the requested
sample rate. It must be deterministic: the same request gives the same samples,
so clients can check what they received byte for byte.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # numpy costs ~45 ms to import; `batchtts --help` reaches this module
    import numpy as np

    from batchtts.api.request import TtsRequest

#: ``--engine`` choices: ``auto`` is espeak when installed, else synthetic.
ENGINES: tuple[str, ...] = ("auto", "synthetic", "espeak")


class Engine(Protocol):
    #: Short name shown at start-up ("synthetic", "espeak").
    name: str

    def synthesize(self, request: TtsRequest) -> np.ndarray:
        """Return int16 mono samples at ``request.sample_rate``, speed applied."""
        ...


def get_engine(name: str = "auto") -> Engine:
    """Build the engine called ``name``; ``auto`` prefers espeak when installed."""
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    if name in ("auto", "espeak"):
        try:
            from batchtts.server.espeak import EspeakEngine, espeak_available
        except ImportError:
            espeak_available = None  # type: ignore[assignment]
        if espeak_available is not None and espeak_available():
            return EspeakEngine()
        if name == "espeak":
            raise ValueError("the espeak engine needs the speech extra: pip install 'batchtts[speech]'")
    from batchtts.server.synthetic import SyntheticEngine

    return SyntheticEngine()
