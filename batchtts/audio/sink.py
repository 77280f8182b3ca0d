"""One row's audio file, written as chunks arrive and renamed into place only when whole.

The runner opens an :class:`AudioSink` per attempt, feeds it every decoded
chunk, and calls :meth:`AudioSink.commit` only after the stream's done frame;
any failure calls :meth:`AudioSink.abort` (or leaves the ``with`` block), so a
partial file never appears under the final name. Memory stays flat in the
length of the audio: chunks go straight to a temporary file.

What is stored, by ``output_format`` and ``--file-format``:

========  ============================  ==========================  ===================
format    ``wav`` (default)             ``flac``                    ``raw``
========  ============================  ==========================  ===================
pcm       16-bit WAV at the rate        16-bit FLAC                 ``.pcm``: s16le as sent
wav       16-bit WAV (server header     16-bit FLAC                 ``.pcm``: s16le, headers
          stripped, its rate kept)                                  stripped
ulaw      ``.wav`` G.711 mu-law         16-bit FLAC (decoded)       ``.ulaw``: bytes as sent
alaw      ``.wav`` G.711 A-law          16-bit FLAC (decoded)       ``.alaw``: bytes as sent
mp3       ``.mp3``: the frames as sent, whatever ``--file-format``
========  ==================================================================================
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO

from batchtts.errors import StreamIncomplete
from batchtts.storage.names import TEMP_NAME, create_temp_file, fsync_folder

if TYPE_CHECKING:
    import numpy as np

FILE_FORMATS: tuple[str, ...] = ("wav", "flac", "raw")
#: Bytes buffered before a write to the file. SSE frames carry ~5 KB of audio (100 ms at
#: 24 kHz): with Python's default 8 KiB, nearly every frame cost a write() system call;
#: 32 KiB makes it one per six frames, for 32 KiB of memory per stream.
WRITE_BUFFER = 1 << 15
#: A server's WAV header (all chunks before ``data``) larger than this is refused.
MAX_WAV_HEADER = 1 << 20

_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_ALAW = 6
_WAVE_FORMAT_MULAW = 7
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_G711_TAGS = {"ulaw": _WAVE_FORMAT_MULAW, "alaw": _WAVE_FORMAT_ALAW}
_G711_HEADER_SIZE = 58  # RIFF/WAVE + fmt (18) + fact (4) + data header
_SOUNDFILE_CONTAINERS = {"wav": "WAV", "flac": "FLAC"}


class MalformedAudio(StreamIncomplete):
    """The decoded audio cannot be what its format says (odd PCM length, bad WAV header).

    A :class:`StreamIncomplete`, so the runner treats it like an undecodable frame.
    """


@dataclass(frozen=True, slots=True)
class SinkResult:
    audio_bytes: int  # decoded payload bytes received (server WAV headers included)
    audio_seconds: float | None  # None only for an mp3 soundfile cannot measure
    path: Path  # the final path
    sample_rate: int  # the rate of the stored audio (a server WAV header's rate wins)


class AudioSink:
    """Streams one row's audio to ``.<name>.<random>.part`` and renames it on :meth:`commit`.

    ``sample_rate`` is the requested rate; for ``output_format="wav"`` the rate
    in the server's first WAV header is used instead. Not thread-safe: one
    attempt, one sink.
    """

    def __init__(
        self,
        final_path: Path,
        *,
        output_format: str,
        sample_rate: int,
        file_format: str = "wav",
    ) -> None:
        self.extension = self.extension_for(output_format, file_format)
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ValueError(f"bad sample rate {sample_rate!r}")
        self.final_path = Path(final_path)
        self.output_format = output_format
        self.file_format = "raw" if output_format == "mp3" else file_format
        self.sample_rate = sample_rate
        self._received = 0  # bytes given to write()
        self._payload = 0  # PCM or G.711 bytes after any header was stripped
        self._carry = b""  # an odd byte of PCM waiting for its other half
        self._wav_header: _WavHeaderStripper | None = _WavHeaderStripper() if output_format == "wav" else None
        self._mp3_framing: _Mp3Framing | None = _Mp3Framing() if output_format == "mp3" else None
        self._soundfile: Any = None  # soundfile.SoundFile, opened at the first sample
        self._state = "open"  # then "finished", and "committed" or "aborted"
        self._seconds: float | None = None
        self._rate = sample_rate
        self._exact_mp3_header = False
        fd, self.temp_path = create_temp_file(self.final_path)
        self._file: BinaryIO = os.fdopen(fd, "w+b", buffering=WRITE_BUFFER)
        if self._g711_container():
            try:
                self._file.write(_g711_wav_header(output_format, sample_rate, 0))
            except BaseException:
                self.abort()
                raise

    @staticmethod
    def extension_for(output_format: str, file_format: str = "wav") -> str:
        """The file extension a row gets, so the runner can name the file before opening it."""
        if file_format not in FILE_FORMATS:
            raise ValueError(f"unknown file format {file_format!r}; choose one of {', '.join(FILE_FORMATS)}")
        if output_format == "mp3":
            return "mp3"
        if output_format in ("pcm", "wav"):
            return "pcm" if file_format == "raw" else file_format
        if output_format in _G711_TAGS:
            return output_format if file_format == "raw" else file_format
        raise ValueError(f"unknown output format {output_format!r}")

    # --- writing -----------------------------------------------------------

    def write(self, chunk: bytes) -> None:
        """Store one decoded chunk; it may split a sample or a WAV header anywhere."""
        if self._state != "open":
            raise RuntimeError(f"write() on a {self._state} sink")
        if not chunk:
            return
        self._received += len(chunk)
        if self._wav_header is not None:
            chunk = self._wav_header.feed(chunk)
            if not chunk:
                return
        if self.output_format in ("pcm", "wav"):
            self._write_pcm(chunk)
        elif self.output_format in _G711_TAGS:
            self._payload += len(chunk)
            if self.file_format == "flac":
                self._write_samples(_g711_table(self.output_format)[_bytes_array(chunk)])
            else:
                self._file.write(chunk)
        else:
            assert self._mp3_framing is not None
            self._file.write(self._mp3_framing.feed(chunk))

    def _write_pcm(self, data: bytes) -> None:
        if self.file_format == "raw":
            self._payload += len(data)
            self._file.write(data)
            return
        if self._carry:
            data = self._carry + data
        whole = len(data) & ~1
        self._carry = data[whole:]
        if whole:
            self._payload += whole
            self._write_pcm16(data[:whole] if whole != len(data) else data)

    def _write_pcm16(self, data: bytes) -> None:
        sink = self._open_soundfile()
        if sys.byteorder == "little":
            sink.buffer_write(data, dtype="int16")
        else:  # pragma: no cover - big-endian hosts
            import numpy as np

            sink.write(np.frombuffer(data, dtype="<i2").astype(np.int16))

    def _write_samples(self, samples: np.ndarray) -> None:
        self._open_soundfile().write(samples)

    def _open_soundfile(self) -> Any:
        if self._soundfile is None:
            import soundfile

            self._soundfile = soundfile.SoundFile(
                self._file.fileno(),
                mode="w",
                samplerate=self._stored_rate(),
                channels=1,
                format=_SOUNDFILE_CONTAINERS[self.file_format],
                subtype="PCM_16",
                closefd=False,
            )
        return self._soundfile

    def _stored_rate(self) -> int:
        if self._wav_header is not None and self._wav_header.sample_rate is not None:
            return self._wav_header.sample_rate
        return self.sample_rate

    def _g711_container(self) -> bool:
        return self.output_format in _G711_TAGS and self.file_format == "wav"

    # --- finishing ---------------------------------------------------------

    def commit(self) -> SinkResult:
        """Finish the file, fsync it, rename it into place and fsync its folder; on any error, abort.

        The three steps in one call, for a single file (a joined row). The runner
        calls them apart: :meth:`finish` in the attempt, then
        :class:`batchtts.audio.commit.GroupCommit` makes many files durable at once and
        calls :meth:`publish` for each.
        """
        self.finish()
        try:
            os.fsync(self._file.fileno())
        except BaseException:
            self.abort()
            raise
        result = self.publish()
        fsync_folder(self.final_path.parent)  # the rename too survives a power cut
        return result

    def finish(self) -> None:
        """Complete the container and hand every byte to the OS; the file stays open and unnamed.

        Raises :class:`MalformedAudio` when the stream cannot be what its format
        says (an attempt error: the attempt is tried again). On any error, aborts.
        """
        if self._state != "open":
            raise RuntimeError(f"finish() on a {self._state} sink")
        try:
            self._seconds, self._rate = self._finish()
            self._exact_mp3_header = (
                self._mp3_framing.finish(self._file) if self._mp3_framing is not None else False
            )
            self._file.flush()
        except BaseException:
            self.abort()
            raise
        self._state = "finished"

    def fileno(self) -> int:
        """The temporary file's descriptor, open until :meth:`publish` (to fsync it)."""
        return self._file.fileno()

    def publish(self) -> SinkResult:
        """Rename a finished file into place: call it only once its data is durable. On error, aborts.

        Blocking (an mp3 without a Xing header is decoded to count its frames):
        the runner calls it off the event loop.
        """
        if self._state != "finished":
            raise RuntimeError(f"publish() on a {self._state} sink")
        seconds, rate = self._seconds, self._rate
        try:
            self._file.close()
            if self.output_format == "mp3":
                seconds, rate = _mp3_duration(self.temp_path, self.sample_rate, exact_header=self._exact_mp3_header)
            os.replace(self.temp_path, self.final_path)
        except BaseException:
            self.abort()
            raise
        self._state = "committed"
        return SinkResult(
            audio_bytes=self._received, audio_seconds=seconds, path=self.final_path, sample_rate=rate
        )

    def _finish(self) -> tuple[float | None, int]:
        """Complete the container; return (seconds, rate) where the byte count tells them."""
        if self._wav_header is not None:
            self._wav_header.finish()
        rate = self._stored_rate()
        if self.output_format in ("pcm", "wav"):
            if self._carry or self._payload % 2:
                raise MalformedAudio(
                    f"16-bit PCM stream ended mid-sample ({self._payload + len(self._carry)} bytes)"
                )
            if self.file_format != "raw":
                self._open_soundfile()  # an empty stream still makes a valid, empty file
            self._close_soundfile()
            return self._payload / 2 / rate, rate
        if self.output_format in _G711_TAGS:
            if self.file_format == "flac":
                self._open_soundfile()
                self._close_soundfile()
            elif self._g711_container():
                self._patch_g711_header()
            return self._payload / rate, rate
        return None, rate

    def _close_soundfile(self) -> None:
        if self._soundfile is not None:
            sink, self._soundfile = self._soundfile, None
            sink.close()

    def _patch_g711_header(self) -> None:
        if self._payload % 2:
            self._file.write(b"\0")  # RIFF chunks are padded to an even size
        self._file.seek(0)
        self._file.write(_g711_wav_header(self.output_format, self.sample_rate, self._payload))
        self._file.seek(0, os.SEEK_END)

    def abort(self) -> None:
        """Drop the temporary file; nothing appears under the final name. Safe to repeat."""
        if self._state == "committed":
            return
        self._state = "aborted"
        with contextlib.suppress(Exception):  # the file is deleted anyway
            self._close_soundfile()
        self._soundfile = None
        with contextlib.suppress(OSError):
            self._file.close()
        self.temp_path.unlink(missing_ok=True)

    def __enter__(self) -> AudioSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._state != "committed":
            self.abort()


def remove_stale_temp_files(out_dir: Path) -> int:
    """Delete the ``.<name>.<random>.part`` files a crashed run left under ``out_dir``; return how many.

    Only names :data:`batchtts.storage.names.TEMP_NAME` matches are touched. Call it
    only when no other job writes to ``out_dir``.
    """
    removed = 0
    for folder, _dirs, files in os.walk(out_dir):
        for name in files:
            if TEMP_NAME.fullmatch(name):
                try:
                    os.unlink(os.path.join(folder, name))
                except FileNotFoundError:
                    continue
                removed += 1
    return removed


# --- WAV headers sent by the server --------------------------------------------


class _WavHeaderStripper:
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
            parsed = _parse_wav_header(self._pending)
            if parsed is None:
                return b""
            self.sample_rate, offset = parsed
            rest, self._pending = self._pending[offset:], b""
            return rest
        if chunk[:4] == b"RIFF" and chunk[8:12] == b"WAVE":
            parsed = _parse_wav_header(chunk)
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


def _parse_wav_header(buf: bytes) -> tuple[int, int] | None:
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


# --- G.711 ---------------------------------------------------------------------


def _g711_wav_header(output_format: str, sample_rate: int, data_bytes: int) -> bytes:
    """A 58-byte WAV header declaring 8-bit mono G.711 (format tag 7 mu-law, 6 A-law)."""
    pad = data_bytes & 1
    return b"".join(
        (
            b"RIFF",
            struct.pack("<I", _G711_HEADER_SIZE - 8 + data_bytes + pad),
            b"WAVE",
            b"fmt ",
            struct.pack("<IHHIIHHH", 18, _G711_TAGS[output_format], 1, sample_rate, sample_rate, 1, 8, 0),
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

    wav = _g711_wav_header(output_format, 8000, 256) + bytes(range(256))
    samples, _ = soundfile.read(io.BytesIO(wav), dtype="int16")
    table = np.asarray(samples, dtype=np.int16)
    table.setflags(write=False)
    return table


def _bytes_array(chunk: bytes) -> np.ndarray:
    import numpy as np

    return np.frombuffer(chunk, dtype=np.uint8)


# --- mp3 -------------------------------------------------------------------------


class _Mp3Framing:
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


def _mp3_duration(path: Path, fallback_rate: int, *, exact_header: bool) -> tuple[float | None, int]:
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
