"""ACX's published audio rules, measured on one chapter file (``batchtts check-audiobook``).

ACX (Audible's production platform) asks of every file: RMS between -23 and
-18 dB, peaks no higher than -3 dBFS, a noise floor no higher than -60 dB, and
room tone: 0.5 to 1 s at the head and 1 to 5 s at the tail. This measures them
the way ACX's own check (Audacity's "ACX Check") does, streamed, one block of
the file in memory at a time:

- RMS: of every sample of the file, unweighted; dB relative to full scale as a
  peak (a full-scale sine is -3 dB RMS, Audacity's convention);
- peak: the largest sample, dBFS;
- noise floor: the RMS of the quietest 0.5 s window (windows every 0.25 s);
  digital silence reads as :data:`SILENCE_DB`;
- room tone: how long the file stays below :data:`ROOM_TONE_DB` (in 10 ms
  windows) before its first sound, and after its last.

And 44.1 kHz, which ACX asks of every file too. Values are rounded to 0.01.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: What digital silence reads as, in dB (JSON has no -inf).
SILENCE_DB = -150.0
#: A 10 ms window with its RMS below this is room tone, not sound.
ROOM_TONE_DB = -50.0
RMS_RANGE = (-23.0, -18.0)
PEAK_MAX = -3.0
NOISE_FLOOR_MAX = -60.0
HEAD_RANGE = (0.5, 1.0)
TAIL_RANGE = (1.0, 5.0)
SAMPLE_RATE = 44100
#: Files the check reads (soundfile decodes them all; ACX itself wants MP3).
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")
_NOISE_WINDOW = 0.5
_NOISE_HOP = 0.25
_TONE_WINDOW = 0.01
_BLOCK = 1 << 16


def _db(value: float) -> float:
    return round(max(20.0 * math.log10(value), SILENCE_DB), 2) + 0.0 if value > 0 else SILENCE_DB  # no -0.0


@dataclass(slots=True)
class ChapterCheck:
    """One file's figures and what fails (empty: it passes)."""

    path: str
    seconds: float = 0.0
    sample_rate: int = 0
    rms_db: float = SILENCE_DB
    peak_dbfs: float = SILENCE_DB
    noise_floor_db: float = SILENCE_DB
    head_seconds: float = 0.0
    tail_seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "ok": self.ok,
            "seconds": self.seconds,
            "sample_rate": self.sample_rate,
            "rms_db": self.rms_db,
            "peak_dbfs": self.peak_dbfs,
            "noise_floor_db": self.noise_floor_db,
            "head_seconds": self.head_seconds,
            "tail_seconds": self.tail_seconds,
            "failures": list(self.failures),
        }


def check_file(path: Path, name: str) -> ChapterCheck:
    """Measure ``path`` (shown as ``name``) against ACX's rules; an unreadable file fails with why."""
    import soundfile

    check = ChapterCheck(name)
    try:
        with soundfile.SoundFile(str(path)) as audio:
            check.sample_rate = int(audio.samplerate)
            _measure(audio, check)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as exc:
        check.failures.append(f"not readable audio: {exc}")
        return check
    check.failures.extend(failures_of(check))
    return check


def _measure(audio: Any, check: ChapterCheck) -> None:
    rate = check.sample_rate
    tone = max(1, round(rate * _TONE_WINDOW))
    hop = max(1, round(rate * _NOISE_HOP))
    squares = 0.0
    frames = 0
    peak = 0.0
    tone_energy: list[np.ndarray] = []  # mean square of each 10 ms window
    carry = np.zeros(0)
    for block in audio.blocks(blocksize=_BLOCK, dtype="float64", always_2d=True):
        mono = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]
        frames += len(mono)
        squares += float(np.dot(mono, mono))
        peak = max(peak, float(np.max(np.abs(mono))) if len(mono) else 0.0)
        pending = np.concatenate((carry, mono))
        whole = len(pending) // tone * tone
        windows = pending[:whole].reshape(-1, tone)
        tone_energy.append(np.einsum("ij,ij->i", windows, windows) / tone)
        carry = pending[whole:]
    if len(carry):
        tone_energy.append(np.array([float(np.dot(carry, carry)) / len(carry)]))
    energy = np.concatenate(tone_energy) if tone_energy else np.zeros(0)
    check.seconds = round(frames / rate, 2) if rate else 0.0
    check.rms_db = _db(math.sqrt(squares / frames)) if frames else SILENCE_DB
    check.peak_dbfs = _db(peak)
    check.noise_floor_db = _noise_floor(energy, round(_NOISE_WINDOW / _TONE_WINDOW), max(1, hop // tone))
    loud = np.flatnonzero(energy > 10.0 ** (ROOM_TONE_DB / 10.0))
    if len(loud):
        check.head_seconds = round(int(loud[0]) * tone / rate, 2)
        check.tail_seconds = round(max(0, frames - (int(loud[-1]) + 1) * tone) / rate, 2)
    else:  # no sound at all: all of it is room tone
        check.head_seconds = check.tail_seconds = check.seconds


def _noise_floor(energy: np.ndarray, per_window: int, step: int) -> float:
    """The RMS (dB) of the quietest 0.5 s window, from the 10 ms windows' mean squares."""
    if len(energy) < per_window:
        return _db(math.sqrt(float(np.mean(energy)))) if len(energy) else SILENCE_DB
    cumulative = np.concatenate(([0.0], np.cumsum(energy)))
    means = (cumulative[per_window:] - cumulative[:-per_window])[::step] / per_window
    return _db(math.sqrt(max(float(np.min(means)), 0.0)))


def failures_of(check: ChapterCheck) -> list[str]:
    """Each rule the figures break, said the way a producer fixes it."""
    out: list[str] = []
    low, high = RMS_RANGE
    if check.rms_db < low:
        out.append(f"too quiet: RMS {check.rms_db:g} dB < {low:g}")
    elif check.rms_db > high:
        out.append(f"too loud: RMS {check.rms_db:g} dB > {high:g}")
    if check.peak_dbfs > PEAK_MAX:
        clipped = " (clipped)" if check.peak_dbfs >= -0.01 else ""
        out.append(f"peak {check.peak_dbfs:g} dBFS > {PEAK_MAX:g}{clipped}")
    if check.noise_floor_db > NOISE_FLOOR_MAX:
        out.append(f"noise floor {check.noise_floor_db:g} dB > {NOISE_FLOOR_MAX:g}")
    for where, seconds, (shortest, longest) in (
        ("head", check.head_seconds, HEAD_RANGE),
        ("tail", check.tail_seconds, TAIL_RANGE),
    ):
        if seconds < shortest:
            out.append(f"room tone at {where} {seconds:g} s < {shortest:g} s")
        elif seconds > longest:
            out.append(f"room tone at {where} {seconds:g} s > {longest:g} s")
    if check.sample_rate != SAMPLE_RATE:
        out.append(f"sample rate {check.sample_rate} Hz, not {SAMPLE_RATE}")
    return out


def audio_files(folder: Path) -> list[Path]:
    """The chapter files under ``folder``, sorted, skipping hidden files and folders (``.batchtts/``, temp files)."""
    found = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS:
            found.append(path)
    return found
