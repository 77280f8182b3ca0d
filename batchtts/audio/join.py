"""Concatenate 16-bit mono PCM files, with silence between them, into one file, streaming.

The parts of a split text and the rows of a chapter are stored as WAV files
(see :mod:`batchtts.job.shaping.parts`); this reads them block by block and writes the
samples, and ``gap_ms`` of zeros between consecutive sources, through an
:class:`~batchtts.audio.sink.AudioSink`, so the result appears whole or not at all
and memory stays at one block whatever the book's length. The samples are
copied exactly: joining is byte-exact against the parts.

The frame span of every source in the joined file is returned, so chapter
times come from the same arithmetic that placed the audio.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchtts.audio.sink import AudioSink, SinkResult

if TYPE_CHECKING:
    import numpy as np

#: Frames read and written at a time (128 KiB of 16-bit audio).
BLOCK_FRAMES = 1 << 16


class JoinError(ValueError):
    """The sources cannot make one file: missing, not 16-bit mono, or at different rates."""


@dataclass(frozen=True, slots=True)
class Joined:
    sink: SinkResult
    sample_rate: int
    #: (first frame, end frame) of each source in the joined file, in order.
    spans: list[tuple[int, int]]


def gap_frames(gap_ms: int, sample_rate: int) -> int:
    """Frames of silence for ``gap_ms`` milliseconds (rounded to the nearest frame)."""
    return (gap_ms * sample_rate + 500) // 1000


def join_files(
    sources: Sequence[Path],
    final_path: Path,
    *,
    file_format: str = "wav",
    gap_ms: int = 0,
    block_frames: int = BLOCK_FRAMES,
    room_tone: tuple[float, float] = (0.0, 0.0),
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    finish: Callable[[], np.ndarray] | None = None,
) -> Joined:
    """Write ``sources`` in order, ``gap_ms`` of silence between each two, to ``final_path``.

    ``file_format`` is how the joined PCM is stored (``wav``, ``flac`` or
    ``raw``), as for a row. ``room_tone`` is (head, tail) seconds of silence
    that open and close the file; ``transform`` changes each int16
    block before it is written (a gain: :mod:`batchtts.audio.loudness`);
    ``finish`` gives the samples a transform held back (a limiter's look-ahead).
    Raises :class:`JoinError` when the sources do not agree, and leaves no
    file behind on any error.
    """
    if not sources:
        raise JoinError("nothing to join")
    rate = source_rate(sources[0])
    sink = AudioSink(final_path, output_format="pcm", sample_rate=rate, file_format=file_format)
    spans: list[tuple[int, int]] = []
    try:
        for block in joined_blocks(
            sources, rate, gap_ms=gap_ms, block_frames=block_frames, room_tone=room_tone, spans=spans
        ):
            sink.write(_le_bytes(transform(block) if transform is not None else block))
        if finish is not None:
            sink.write(_le_bytes(finish()))
        result = sink.commit()
    except BaseException:
        sink.abort()
        raise
    return Joined(sink=result, sample_rate=rate, spans=spans)


def joined_blocks(
    sources: Sequence[Path],
    rate: int,
    *,
    gap_ms: int = 0,
    block_frames: int = BLOCK_FRAMES,
    room_tone: tuple[float, float] = (0.0, 0.0),
    spans: list[tuple[int, int]] | None = None,
) -> Iterator[np.ndarray]:
    """The joined audio as int16 blocks of at most ``block_frames``, read from ``sources`` as it goes.

    The one place the join's arithmetic lives: the file and any measurement
    of it (loudness, before it is written) see the same samples. Appends each
    source's (first frame, end frame) to ``spans`` when given.
    """
    import numpy as np
    import soundfile

    silence = gap_frames(gap_ms, rate)
    head, tail = (round(seconds * rate) for seconds in room_tone)
    position = 0
    if head:
        yield from _silence(head, block_frames)
        position += head
    try:
        for index, source in enumerate(sources):
            if index and silence:
                yield from _silence(silence, block_frames)
                position += silence
            start = position
            with _open(source) as audio:
                if audio.samplerate != rate or audio.channels != 1:
                    raise JoinError(
                        f"{source.name}: {audio.channels} channel(s) at {audio.samplerate} Hz; "
                        f"the first part is mono at {rate} Hz"
                    )
                while True:
                    block = audio.read(block_frames, dtype="int16")
                    if not len(block):
                        break
                    yield np.asarray(block, dtype=np.int16)
                    position += len(block)
            if spans is not None:
                spans.append((start, position))
    except soundfile.LibsndfileError as exc:
        raise JoinError(f"cannot read a part: {exc}") from None
    if tail:
        yield from _silence(tail, block_frames)


def source_rate(path: Path) -> int:
    """The sample rate of a part (the joined file's rate is the first part's)."""
    with _open(path) as audio:
        return int(audio.samplerate)


def _open(path: Path) -> Any:  # a soundfile.SoundFile (soundfile has no type hints)
    import soundfile

    try:
        audio = soundfile.SoundFile(str(path))
    except FileNotFoundError:
        raise JoinError(f"part {path.name} is missing") from None
    except soundfile.LibsndfileError as exc:
        raise JoinError(f"part {path.name} is not readable audio: {exc}") from None
    if audio.subtype != "PCM_16":
        audio.close()
        raise JoinError(f"part {path.name} is {audio.subtype}, not 16-bit PCM")
    return audio


def _silence(frames: int, block_frames: int) -> Iterator[np.ndarray]:
    import numpy as np

    zeros = np.zeros(min(frames, block_frames), dtype=np.int16)
    while frames > 0:
        count = min(frames, block_frames)
        yield zeros if count == len(zeros) else zeros[:count]
        frames -= count


def _le_bytes(block: np.ndarray) -> bytes:
    """int16 samples as little-endian bytes, what the sink takes for PCM."""
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts
        block = block.astype("<i2")
    return block.tobytes()
