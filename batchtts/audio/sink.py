"""One row's audio file, written as chunks arrive and renamed into place only when whole.

The runner opens an :class:`AudioSink` per attempt, feeds it every decoded
chunk, and calls :meth:`AudioSink.commit` only after the stream's done frame;
any failure calls :meth:`AudioSink.abort` (or leaves the ``with`` block), so a
partial file never appears under the final name. Memory stays flat in the
length of the audio: chunks go straight to a temporary file. This module is
that life cycle (temporary file, finish, publish, abort); what the bytes of
each format mean is :mod:`batchtts.audio.codecs`.

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
import errno
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO

from batchtts.audio.codecs import (
    G711_TAGS,
    PCM16_WAV_HEADER_SIZE,
    MalformedAudio,
    Mp3Framing,
    WavHeaderStripper,
    decode_g711,
    g711_wav_header,
    mp3_duration,
    pcm16_wav_header,
)
from batchtts.audio.meter import AudioLevels, AudioMeter
from batchtts.storage.files import create_temp_file, fsync_folder
from batchtts.storage.names import FILE_FORMATS

if TYPE_CHECKING:
    import numpy as np

#: Bytes buffered before a write to the file. SSE frames carry ~5 KB of audio (100 ms at
#: 24 kHz): with Python's default 8 KiB, nearly every frame cost a write() system call;
#: 32 KiB makes it one per six frames, for 32 KiB of memory per stream.
WRITE_BUFFER = 1 << 15


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
        measure_floor: float | None = None,
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
        self._wav_header: WavHeaderStripper | None = WavHeaderStripper() if output_format == "wav" else None
        self._mp3_framing: Mp3Framing | None = Mp3Framing() if output_format == "mp3" else None
        self._soundfile: Any = None  # soundfile.SoundFile (FLAC), opened at the first sample
        self._wav_started = False  # a 16-bit WAV's header placeholder is written
        self._state = "open"  # then "finished", and "committed" or "aborted"
        self._seconds: float | None = None
        self._rate = sample_rate
        self._exact_mp3_header = False
        self._handle: BinaryIO | None = None
        self._temp_path: Path | None = None
        #: With ``measure_floor`` (dBFS): the levels of the samples as they pass (not for mp3).
        self._measure_floor = measure_floor if output_format != "mp3" else None
        self._meter: AudioMeter | None = None

    @property
    def _file(self) -> BinaryIO:
        """The temporary file, created at its first use: the first audio, not the attempt's start.

        Creating a file waits for the file system's journal, which a commit of
        other files (or another program's fsync) may hold for tens of
        milliseconds; made before the request, that wait delayed the request
        (measured: up to 108 ms on a 1-stream account). Made at the first audio,
        it overlaps the stream.
        """
        if self._handle is None:
            if self._state != "open":
                raise RuntimeError(f"no file for a {self._state} sink")
            fd, self._temp_path = create_temp_file(self.final_path)
            self._handle = os.fdopen(fd, "w+b", buffering=WRITE_BUFFER)
            if self._g711_container():
                try:
                    self._handle.write(g711_wav_header(self.output_format, self.sample_rate, 0))
                except BaseException:
                    self.abort()
                    raise
        return self._handle

    @property
    def temp_path(self) -> Path:
        """Where the audio goes until it is published (the file is created if it was not yet)."""
        self._file  # noqa: B018  (creates it)
        assert self._temp_path is not None
        return self._temp_path

    @staticmethod
    def extension_for(output_format: str, file_format: str = "wav") -> str:
        """The file extension a row gets, so the runner can name the file before opening it."""
        if file_format not in FILE_FORMATS:
            raise ValueError(f"unknown file format {file_format!r}; choose one of {', '.join(FILE_FORMATS)}")
        if output_format == "mp3":
            return "mp3"
        if output_format in ("pcm", "wav"):
            return "pcm" if file_format == "raw" else file_format
        if output_format in G711_TAGS:
            return output_format if file_format == "raw" else file_format
        raise ValueError(f"unknown output format {output_format!r}")

    @property
    def seconds_so_far(self) -> float:
        """Audio received so far, for progress (0 for mp3, which is measured only when whole)."""
        if self.output_format in ("pcm", "wav"):
            return self._payload / 2 / self._rate
        if self.output_format in G711_TAGS:
            return self._payload / self._rate
        return 0.0

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
        elif self.output_format in G711_TAGS:
            self._payload += len(chunk)
            samples = decode_g711(self.output_format, chunk) if self._wants_samples() else None
            if samples is not None and self._measure_floor is not None:
                self._metered().feed(samples)
            if self.file_format == "flac":
                assert samples is not None
                self._write_samples(samples)
            else:
                self._file.write(chunk)
        else:
            assert self._mp3_framing is not None
            self._file.write(self._mp3_framing.feed(chunk))

    @property
    def levels(self) -> AudioLevels | None:
        """The measured levels of the samples written so far (None: not measured, or mp3)."""
        if self._measure_floor is None:
            return None
        return self._metered().levels()

    def _metered(self) -> AudioMeter:
        if self._meter is None:
            assert self._measure_floor is not None
            self._meter = AudioMeter(self._stored_rate(), floor_dbfs=self._measure_floor)
        return self._meter

    def _write_pcm(self, data: bytes) -> None:
        if self._measure_floor is not None:
            (self._meter or self._metered()).feed_pcm16(data)
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
        if self.file_format == "wav":
            # Written here, not by libsndfile: through the 32 KiB buffer (libsndfile makes a
            # write() per chunk), and finished without the fsync its close() does (see _finish).
            if not self._wav_started:
                self._file.write(bytes(PCM16_WAV_HEADER_SIZE))  # the header, once the sizes are known
                self._wav_started = True
            self._file.write(data)  # little-endian samples, as the API sends them
            return
        sink = self._open_soundfile()
        if sys.byteorder == "little":
            sink.buffer_write(data, dtype="int16")
        else:  # pragma: no cover - big-endian hosts
            import numpy as np

            sink.write(np.frombuffer(data, dtype="<i2").astype(np.int16))

    def _wants_samples(self) -> bool:
        return self.file_format == "flac" or self._measure_floor is not None

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
                format="FLAC",
                subtype="PCM_16",
                closefd=False,
            )
        return self._soundfile

    def _stored_rate(self) -> int:
        if self._wav_header is not None and self._wav_header.sample_rate is not None:
            return self._wav_header.sample_rate
        return self.sample_rate

    def _g711_container(self) -> bool:
        return self.output_format in G711_TAGS and self.file_format == "wav"

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
            self._exact_mp3_header = self._mp3_framing.finish(self._file) if self._mp3_framing is not None else False
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
                seconds, rate = mp3_duration(self.temp_path, self.sample_rate, exact_header=self._exact_mp3_header)
            os.replace(self.temp_path, self.final_path)
        except BaseException:
            self.abort()
            raise
        self._state = "committed"
        return SinkResult(audio_bytes=self._received, audio_seconds=seconds, path=self.final_path, sample_rate=rate)

    def _finish(self) -> tuple[float | None, int]:
        """Complete the container; return (seconds, rate) where the byte count tells them."""
        if self._wav_header is not None:
            self._wav_header.finish()
        rate = self._stored_rate()
        if self.output_format in ("pcm", "wav"):
            if self._carry or self._payload % 2:
                raise MalformedAudio(f"16-bit PCM stream ended mid-sample ({self._payload + len(self._carry)} bytes)")
            if self.file_format == "wav":
                self._patch_pcm16_header(rate)
            elif self.file_format == "flac":
                self._open_soundfile()  # an empty stream still makes a valid, empty file
                self._close_soundfile()
            return self._payload / 2 / rate, rate
        if self.output_format in G711_TAGS:
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
            _close_without_sync(sink)

    def _patch_pcm16_header(self, rate: int) -> None:
        if not self._wav_started:  # an empty stream still makes a valid, empty file
            self._file.write(bytes(PCM16_WAV_HEADER_SIZE))
            self._wav_started = True
        self._file.seek(0)
        self._file.write(pcm16_wav_header(rate, self._payload))
        self._file.seek(0, os.SEEK_END)

    def _patch_g711_header(self) -> None:
        if self._payload % 2:
            self._file.write(b"\0")  # RIFF chunks are padded to an even size
        self._file.seek(0)
        self._file.write(g711_wav_header(self.output_format, self.sample_rate, self._payload))
        self._file.seek(0, os.SEEK_END)

    def abort(self) -> None:
        """Drop the temporary file; nothing appears under the final name. Safe to repeat."""
        if self._state == "committed":
            return
        self._state = "aborted"
        with contextlib.suppress(Exception):  # the file is deleted anyway
            self._close_soundfile()
        self._soundfile = None
        handle, self._handle = self._handle, None
        if handle is None or self._temp_path is None:
            return  # no file was made
        with contextlib.suppress(OSError):
            handle.close()
        self._temp_path.unlink(missing_ok=True)

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


def _close_without_sync(sound: Any) -> None:
    """Close a libsndfile writer without the fsync ``SoundFile.close()`` does first (``sf_write_sync``).

    The sink runs on the event loop, inside the stream slot: that fsync held the
    next request back by up to 200 ms (measured on a 1-stream account), and the
    group commit makes the data durable anyway. Falls back to ``close()`` when
    soundfile's internals are not the ones this was written for.
    """
    import soundfile

    library, handle = getattr(soundfile, "_snd", None), getattr(sound, "_file", None)
    if library is None or handle is None or not hasattr(library, "sf_close"):
        sound.close()
        return
    sound._file = None  # closed from here on, for soundfile too
    error = library.sf_close(handle)
    if error:
        raise OSError(errno.EIO, f"libsndfile could not finish the file (error {error})")
