"""Encoding of int16 mono PCM into each ``output_format``'s bytes.

libsndfile (through soundfile) writes every container, so the bytes are what
real tools expect: a RIFF header for wav, real MPEG layer III frames for mp3,
headerless G.711 for ulaw/alaw, raw s16le for pcm.
"""

from __future__ import annotations

import io

import numpy as np

#: Media type of each format's sync (``POST /waves/v1/tts``) response.
MEDIA_TYPES: dict[str, str] = {
    "pcm": "audio/pcm",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "ulaw": "audio/basic",
    "alaw": "audio/x-alaw-basic",
}

#: Bytes per sample where a format has a fixed size (mp3 has none).
BYTES_PER_SAMPLE: dict[str, int] = {"pcm": 2, "wav": 2, "ulaw": 1, "alaw": 1}

# soundfile (format, subtype) of each container.
_SOUNDFILE_FORMATS: dict[str, tuple[str, str]] = {
    "wav": ("WAV", "PCM_16"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "ulaw": ("RAW", "ULAW"),
    "alaw": ("RAW", "ALAW"),
}


def encode_view(samples: np.ndarray, sample_rate: int, output_format: str) -> bytes | memoryview:
    """Like :func:`encode`, but pcm is a zero-copy view of ``samples``: half the memory for long texts."""
    if output_format == "pcm":
        return np.ascontiguousarray(samples, dtype="<i2").data.cast("B")
    return encode(samples, sample_rate, output_format)


def encode(samples: np.ndarray, sample_rate: int, output_format: str) -> bytes:
    """The whole audio as ``output_format`` bytes (mono, at ``sample_rate``)."""
    pcm = np.ascontiguousarray(samples, dtype="<i2")
    if output_format == "pcm":
        return pcm.tobytes()
    if output_format not in _SOUNDFILE_FORMATS:
        raise ValueError(f"unknown output format {output_format!r}")
    import soundfile

    container, subtype = _SOUNDFILE_FORMATS[output_format]
    buffer = io.BytesIO()
    with soundfile.SoundFile(
        buffer, mode="w", samplerate=sample_rate, channels=1, format=container, subtype=subtype
    ) as sink:
        sink.write(pcm)
    return buffer.getvalue()
