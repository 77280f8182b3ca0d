"""The byte-level formats the audio arrives in: WAV headers, G.711, MP3 framing.

:class:`batchtts.audio.sink.AudioSink` streams a row's audio to disk and
decides what is stored; this module knows what the bytes mean. It strips and
checks the WAV headers a server sends (``output_format=wav``), writes the
G.711 WAV header and decodes G.711 samples, keeps per-chunk MP3 files playable
as one file and measures an MP3's duration. Kept apart so the sink reads as
the file's life cycle, and each format can be tested and extended alone.
"""

from __future__ import annotations

import os
import struct
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from batchtts.errors import StreamIncomplete

if TYPE_CHECKING:
    import numpy as np

#: A server's WAV header (all chunks before ``data``) larger than this is refused.
MAX_WAV_HEADER = 1 << 20

_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_ALAW = 6
_WAVE_FORMAT_MULAW = 7
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
#: The WAV format tag of each G.711 ``output_format``.
G711_TAGS = {"ulaw": _WAVE_FORMAT_MULAW, "alaw": _WAVE_FORMAT_ALAW}
_G711_HEADER_SIZE = 58  # RIFF/WAVE + fmt (18) + fact (4) + data header
#: The canonical 16-bit PCM WAV header (RIFF/WAVE + fmt (16) + data header), as libsndfile writes it.
PCM16_WAV_HEADER_SIZE = 44
#: The largest data chunk a RIFF size field can declare.
_MAX_RIFF_DATA = 0xFFFFFFFF - (PCM16_WAV_HEADER_SIZE - 8)


class MalformedAudio(StreamIncomplete):
    """The decoded audio cannot be what its format says (odd PCM length, bad WAV header).

    A :class:`StreamIncomplete`, so the runner treats it like an undecodable frame.
    """


# --- WAV headers sent by the server --------------------------------------------


class WavHeaderStripper:
    """Removes RIFF/WAVE headers from a ``output_format=wav`` stream, keeping the PCM.

    The server may send one WAV cut into chunks, or a whole header at the start
    of every chunk. The first header may be split across chunks; a later chunk
    is taken as starting a header when it begins with ``RIFF....WAVE``. The
    first header's rate is kept; later headers must agree with it. Everything
    after a ``data`` chunk header is PCM (its declared size is not trusted:
    streaming servers write 0 or 0xFFFFFFFF there).
    """

    def __init__(self) -> None:
        self.sample_rate: int | None = None
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        if self.sample_rate is None:
            self._pending += chunk
            parsed = parse_wav_header(self._pending)
            if parsed is None:
                return b""
            self.sample_rate, offset = parsed
            rest, self._pending = self._pending[offset:], b""
            return rest
        if chunk[:4] == b"RIFF" and chunk[8:12] == b"WAVE":
            parsed = parse_wav_header(chunk)
            if parsed is None:
                raise MalformedAudio("a chunk starts a WAV header but does not finish it")
            rate, offset = parsed
            if rate != self.sample_rate:
                raise MalformedAudio(f"WAV headers disagree on the rate: {self.sample_rate} then {rate}")
            return chunk[offset:]
        return chunk

    def finish(self) -> None:
        if self._pending:
            raise MalformedAudio(f"the stream ended inside its WAV header ({len(self._pending)} bytes)")


def parse_wav_header(buf: bytes) -> tuple[int, int] | None:
    """(sample rate, offset of the first PCM byte), or None while the header is incomplete."""
    if buf[:4] != b"RIFF"[: len(buf)] or buf[8:12] != b"WAVE"[: max(0, len(buf) - 8)]:
        raise MalformedAudio("output_format wav: the audio does not start with a RIFF/WAVE header")
    rate: int | None = None
    pos = 12
    while len(buf) >= pos + 8:
        chunk_id, size = buf[pos : pos + 4], struct.unpack_from("<I", buf, pos + 4)[0]
        if chunk_id == b"data":
            if rate is None:
                raise MalformedAudio("WAV data chunk before its fmt chunk")
            return rate, pos + 8
        if chunk_id == b"fmt ":
            if len(buf) < pos + 8 + min(size, 40):
                return None
            rate = _check_wav_fmt(buf[pos + 8 : pos + 8 + size])
        pos += 8 + size + (size & 1)
        if pos > MAX_WAV_HEADER:
            raise MalformedAudio("WAV header too large (no data chunk in the first MiB)")
    return None


def _check_wav_fmt(body: bytes) -> int:
    """The rate in a fmt chunk, which must describe 16-bit mono PCM."""
    if len(body) < 16:
        raise MalformedAudio("WAV fmt chunk too short")
    tag, channels, rate, _byte_rate, _align, bits = struct.unpack_from("<HHIIHH", body)
    if tag == _WAVE_FORMAT_EXTENSIBLE and len(body) >= 26:
        tag = struct.unpack_from("<H", body, 24)[0]  # first two bytes of the sub-format GUID
    if tag != _WAVE_FORMAT_PCM or channels != 1 or bits != 16 or rate == 0:
        raise MalformedAudio(
            f"WAV header is not 16-bit mono PCM (format {tag}, {channels} channels, {bits} bits, {rate} Hz)"
        )
    return rate


# --- the WAV files the sink writes -------------------------------------------------


def pcm16_wav_header(sample_rate: int, data_bytes: int) -> bytes:
    """The 44-byte header of a 16-bit mono PCM WAV holding ``data_bytes`` of samples.

    Byte for byte what libsndfile writes for the same file. A stream longer than a
    RIFF size can say (over 4 GiB) declares the largest size, as streaming tools do.
    """
    data_bytes = min(data_bytes, _MAX_RIFF_DATA)
    return b"".join(
        (
            b"RIFF",
            struct.pack("<I", PCM16_WAV_HEADER_SIZE - 8 + data_bytes),
            b"WAVE",
            b"fmt ",
            struct.pack("<IHHIIHH", 16, _WAVE_FORMAT_PCM, 1, sample_rate, sample_rate * 2, 2, 16),
            b"data",
            struct.pack("<I", data_bytes),
        )
    )


# --- G.711 ---------------------------------------------------------------------


def g711_wav_header(output_format: str, sample_rate: int, data_bytes: int) -> bytes:
    """A 58-byte WAV header declaring 8-bit mono G.711 (format tag 7 mu-law, 6 A-law)."""
    pad = data_bytes & 1
    return b"".join(
        (
            b"RIFF",
            struct.pack("<I", _G711_HEADER_SIZE - 8 + data_bytes + pad),
            b"WAVE",
            b"fmt ",
            struct.pack("<IHHIIHHH", 18, G711_TAGS[output_format], 1, sample_rate, sample_rate, 1, 8, 0),
            b"fact",
            struct.pack("<II", 4, data_bytes),
            b"data",
            struct.pack("<I", data_bytes),
        )
    )


@cache
def _g711_table(output_format: str) -> np.ndarray:
    """The 256 int16 values of each G.711 byte, decoded by libsndfile itself."""
    import io

    import numpy as np
    import soundfile

    wav = g711_wav_header(output_format, 8000, 256) + bytes(range(256))
    samples, _ = soundfile.read(io.BytesIO(wav), dtype="int16")
    table = np.asarray(samples, dtype=np.int16)
    table.setflags(write=False)
    return table


def decode_g711(output_format: str, chunk: bytes) -> np.ndarray:
    """The int16 samples of G.711 bytes (``output_format`` ``ulaw`` or ``alaw``)."""
    import numpy as np

    return _g711_table(output_format)[np.frombuffer(chunk, dtype=np.uint8)]


# --- mp3 -------------------------------------------------------------------------


class Mp3Framing:
    """Keeps a stream of per-chunk MP3 files playable as one file.

    A server may send one MP3 cut into chunks (stored as is) or a complete MP3
    per chunk, each with its own ID3v2 tag and Xing/Info frame. Decoders trust
    the first Xing frame's frame count and would stop after the first chunk's
    audio, so once a later chunk starts with such metadata, it is dropped from
    every later chunk and the first chunk's Xing/Info tag is blanked at the end
    (its frame then decodes as one frame of silence).
    """

    def __init__(self) -> None:
        self._first = True
        self.per_chunk = False

    def feed(self, chunk: bytes) -> bytes:
        if self._first:
            self._first = False
            return chunk
        skip = _mp3_leading_metadata(chunk)
        if skip is None:
            return chunk
        self.per_chunk = True
        return chunk[skip:]

    def finish(self, file: BinaryIO) -> bool:
        """Blank the first Xing tag if needed; return whether a Xing/Info frame count now heads the file."""
        file.flush()
        file.seek(0)
        head = file.read(_MP3_HEAD_SCAN)
        tag_at = _mp3_xing_tag_offset(head, _id3v2_length(head))
        if tag_at is not None and self.per_chunk:
            file.seek(tag_at)
            file.write(b"\0\0\0\0")
        file.seek(0, os.SEEK_END)
        return tag_at is not None and not self.per_chunk


_MP3_HEAD_SCAN = 1 << 17
_MP3_BITRATES_V1 = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_MP3_BITRATES_V2 = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
_MP3_RATES_V1 = (44100, 48000, 32000)


def _id3v2_length(buf: bytes) -> int:
    """Bytes of an ID3v2 tag at the start of ``buf`` (0 when there is none)."""
    if len(buf) < 10 or buf[:3] != b"ID3":
        return 0
    size = (buf[6] & 0x7F) << 21 | (buf[7] & 0x7F) << 14 | (buf[8] & 0x7F) << 7 | (buf[9] & 0x7F)
    return 10 + size + (10 if buf[5] & 0x10 else 0)


def _mp3_frame(buf: bytes, pos: int) -> tuple[int, int] | None:
    """(frame length, offset of a Xing tag) of an MPEG layer III frame header at ``pos``."""
    if len(buf) < pos + 4:
        return None
    b1, b2, b3 = buf[pos + 1], buf[pos + 2], buf[pos + 3]
    version, layer = (b1 >> 3) & 3, (b1 >> 1) & 3  # version 3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5
    bitrate_index, rate_index = b2 >> 4, (b2 >> 2) & 3
    if buf[pos] != 0xFF or b1 & 0xE0 != 0xE0 or version == 1 or layer != 1:
        return None
    if bitrate_index in (0, 15) or rate_index == 3:
        return None
    mpeg1, mono = version == 3, b3 >> 6 == 3
    bitrate = (_MP3_BITRATES_V1 if mpeg1 else _MP3_BITRATES_V2)[bitrate_index] * 1000
    rate = _MP3_RATES_V1[rate_index] >> (0 if mpeg1 else 1 if version == 2 else 2)
    length = (144 if mpeg1 else 72) * bitrate // rate + ((b2 >> 1) & 1)
    side_info = (17 if mono else 32) if mpeg1 else (9 if mono else 17)
    crc = 0 if b1 & 1 else 2
    return length, pos + 4 + crc + side_info


def _mp3_xing_tag_offset(buf: bytes, pos: int) -> int | None:
    """Where the ``Xing``/``Info`` (or ``VBRI``) tag of the frame at ``pos`` is, if it has one."""
    frame = _mp3_frame(buf, pos)
    if frame is None:
        return None
    _, tag_at = frame
    if buf[tag_at : tag_at + 4] in (b"Xing", b"Info"):
        return tag_at
    if buf[pos + 36 : pos + 40] == b"VBRI":
        return pos + 36
    return None


def _mp3_leading_metadata(chunk: bytes) -> int | None:
    """Bytes of ID3v2 tag and Xing/Info frame starting ``chunk``, or None when it starts with neither."""
    pos = _id3v2_length(chunk)
    if _mp3_xing_tag_offset(chunk, pos) is not None:
        frame = _mp3_frame(chunk, pos)
        assert frame is not None
        pos += frame[0]
    return pos or None


def mp3_duration(path: Path, fallback_rate: int, *, exact_header: bool) -> tuple[float | None, int]:
    """(seconds, rate) of a stored mp3, or (None, fallback_rate) if soundfile cannot read it.

    With a Xing/Info header the frame count is exact and free; without one,
    libsndfile only estimates it, so the file is decoded (in blocks) to count.
    """
    import soundfile

    try:
        with soundfile.SoundFile(str(path)) as audio:
            rate = audio.samplerate
            frames = audio.frames
            if not exact_header:
                frames = 0
                while block := len(audio.read(_MP3_COUNT_BLOCK, dtype="int16")):
                    frames += block
    except (RuntimeError, OSError):  # soundfile.LibsndfileError is a RuntimeError
        return None, fallback_rate
    if rate <= 0:
        return None, fallback_rate
    return frames / rate, rate


_MP3_COUNT_BLOCK = 1 << 16
