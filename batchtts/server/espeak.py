"""The espeak-ng engine: real, intelligible speech offline, in every API language.

Why each piece is here:

- espeak-ng is reached through its C API with ctypes on the shared library that
  the ``espeakng-loader`` wheel ships with its data, so ``pip install
  'batchtts[speech]'`` is the whole install: no system package, no download.
- It runs in ``AUDIO_OUTPUT_SYNCHRONOUS`` mode with a synth callback that
  collects the samples: no audio device, and ``espeak_Synth`` returns only once
  the whole text is spoken, so one call gives one complete clip.
- Each synthesis runs in a child forked from a helper process that has
  initialised espeak and never spoken. espeak keeps state between utterances
  that no API call resets (pitch-flutter phase, gain control, cycle counters in
  wavegen.c), so in one process the same request drifts by a few samples from
  one call to the next; a child starting from the pristine state, with espeak's
  random generators reseeded, gives the same samples every time. Forking also
  contains the C library: a crash or leak ends with the child, not the server.
- espeak-ng is a global, non-thread-safe C library and the helper serves one
  request at a time, while the server calls engines from worker threads: one
  module-level lock guards starting the helper and every synthesis.
- espeak speaks at one native rate (``espeak_Initialize`` returns it, 22050 Hz);
  soxr, a well-kept band-limited resampler, converts it to the requested rate.
- ``speed`` goes through espeak's own rate (words per minute), so faster speech
  is shorter without a pitch shift.

Module-level imports are light (no numpy, no espeak): the helper process
imports this module too, and importing it never fails without the ``speech``
extra; :func:`espeak_available` says whether the engine can run.
"""

from __future__ import annotations

import ctypes
import json
import os
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING

from batchtts.api.request import DEFAULT_VOICE, TtsRequest
from batchtts.server.voices import CATALOG, Voice

if TYPE_CHECKING:
    import numpy as np

#: API language code -> espeak-ng voice; each one is present in espeakng-loader's data.
ESPEAK_LANGUAGES: dict[str, str] = {
    "en": "en-us",
    "hi": "hi",
    "mr": "mr",
    "kn": "kn",
    "ta": "ta",
    "bn": "bn",
    "gu": "gu",
    "te": "te",
    "ml": "ml",
    "pa": "pa",
    "or": "or",
    "es": "es",
    "de": "de",
    "fr": "fr-fr",
    "it": "it",
    "nl": "nl",
    "sv": "sv",
    "pt": "pt",
    "ru": "ru",
    "el": "el",
    "fi": "fi",
    "no": "nb",
    "pl": "pl",
    "ar": "ar",
    "zh": "cmn",
    "id": "id",
    "ja": "ja",
    "ko": "ko",
    "ms": "ms",
    "tr": "tr",
    "vi": "vi",
}
#: The API speaks English for a code it has no voice for; so do we.
FALLBACK_LANGUAGE = "en"

#: Catalog language tag -> API code, for requests that give no language.
CATALOG_LANGUAGE_CODES: dict[str, str] = {"english": "en", "hindi": "hi", "spanish": "es"}

#: Catalog voice -> espeak variant (formants, gender, pitch range): a distinct timbre each.
ESPEAK_VARIANTS: dict[str, str] = {
    "magnus": "m3",
    "emily": "f4",
    "arjun": "m1",
    "priya": "f1",
    "lucia": "f2",
}
#: Typical speaking pitch per gender; a voice's ``pitch_hz`` relative to it moves espeak's pitch.
REFERENCE_PITCH_HZ: dict[str, float] = {"male": 120.0, "female": 200.0}

DEFAULT_WPM = 175
RATE_MIN_WPM, RATE_MAX_WPM = 80, 450  # espeakRATE_MINIMUM / espeakRATE_MAXIMUM

# speak_lib.h constants.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # report data errors instead of calling exit()
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EE_OK = 0
_PARAM_RATE = 1
_PARAM_PITCH = 3
_RANDOM_SEED = 1

#: int SynthCallback(short *wav, int numsamples, espeak_EVENT *events); returns 0 to continue.
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

#: Helper -> server frame header: status (0 ok, 1 error), native rate, payload length.
_FRAME = struct.Struct("<BIQ")

_LOCK = threading.Lock()


# ---------------------------------------------------------------- voice choice


def espeak_language(request: TtsRequest, voice: Voice) -> str:
    """The espeak voice for the request: its language, else its number language (the API makes that the
    synthesis language when ``language`` is omitted), else the voice's first catalog language."""
    code = next(
        (c for c in (request.language, request.number_pronunciation_language) if c is not None and c != "auto"),
        CATALOG_LANGUAGE_CODES.get(voice.languages[0], FALLBACK_LANGUAGE),
    )
    return ESPEAK_LANGUAGES.get(code, ESPEAK_LANGUAGES[FALLBACK_LANGUAGE])


def espeak_pitch(voice: Voice) -> int:
    """espeak's pitch parameter (0-100, default 50), scaled by the voice's base pitch."""
    reference = REFERENCE_PITCH_HZ.get(voice.gender, voice.pitch_hz)
    return max(0, min(100, round(50 * voice.pitch_hz / reference)))


def espeak_rate(speed: float) -> int:
    """espeak's rate in words per minute for the request's ``speed``, within espeak's range."""
    return max(RATE_MIN_WPM, min(RATE_MAX_WPM, round(DEFAULT_WPM * speed)))


# ------------------------------------------------ the C library (helper side)


def _declare(lib: ctypes.CDLL) -> None:
    """Spell out every C signature, so ctypes never guesses an int for a pointer."""
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p,  # const void *text
        ctypes.c_size_t,  # size_t size
        ctypes.c_uint,  # unsigned int position
        ctypes.c_int,  # espeak_POSITION_TYPE position_type
        ctypes.c_uint,  # unsigned int end_position
        ctypes.c_uint,  # unsigned int flags
        ctypes.POINTER(ctypes.c_uint),  # unsigned int *unique_identifier
        ctypes.c_void_p,  # void *user_data
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.argtypes = []
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_ng_SetRandSeed.restype = ctypes.c_int


def _load_library() -> ctypes.CDLL:
    """Open the library espeakng-loader ships, with its C signatures declared."""
    import espeakng_loader

    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    _declare(lib)
    return lib


def _initialize(lib: ctypes.CDLL) -> int:
    """Start espeak in synchronous mode on the shipped data; returns its native rate."""
    import espeakng_loader

    data_path = espeakng_loader.get_data_path()
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), _INITIALIZE_DONT_EXIT)
    if rate <= 0:
        raise RuntimeError(f"espeak_Initialize failed with the data at {data_path}")
    return rate


def _speak_once(lib: ctypes.CDLL, text: str, voice: str, rate: int, pitch: int) -> bytes:
    """Speak ``text`` and return espeak's 16-bit samples; runs in a fresh child."""
    chunks: list[bytes] = []

    @_SYNTH_CALLBACK
    def collect(wav: ctypes._Pointer, count: int, _events: int | None) -> int:
        # espeak calls this with each block of samples, and with NULL at the end.
        if wav and count > 0:
            chunks.append(ctypes.string_at(wav, count * ctypes.sizeof(ctypes.c_short)))
        return 0

    lib.espeak_SetSynthCallback(collect)
    if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
        # A language the data lacks is spoken in English, as the API does.
        variant = voice.partition("+")[2]
        fallback = f"{ESPEAK_LANGUAGES[FALLBACK_LANGUAGE]}+{variant}"
        if lib.espeak_SetVoiceByName(fallback.encode()) != _EE_OK:
            raise RuntimeError(f"espeak-ng has no voice {voice!r} nor {fallback!r}")
    lib.espeak_SetParameter(_PARAM_RATE, rate, 0)
    lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0)
    # espeak draws breath and aspiration noise from its own generator and from libc
    # rand(); fixed seeds make it the same noise on every run of the server.
    lib.espeak_ng_SetRandSeed(_RANDOM_SEED)
    libc = ctypes.CDLL(None)  # the process's libc, whose rand() espeak calls
    libc.srand.argtypes = [ctypes.c_uint]
    libc.srand.restype = None
    libc.srand(_RANDOM_SEED)
    encoded = text.encode("utf-8")
    status = lib.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
    lib.espeak_Synchronize()
    if status != _EE_OK:
        raise RuntimeError(f"espeak_Synth failed with status {status}")
    return b"".join(chunks)


def serve_forks() -> None:
    """The helper process: initialise espeak once, then fork a child per request.

    Reads one JSON job per line on stdin and answers each with a frame
    (:data:`_FRAME` header, then the samples or an error message) on stdout.
    The helper never speaks itself, so every child starts from the same state.
    """
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints from C go to stderr, never into the frames
    lib = _load_library()
    native_rate = _initialize(lib)
    for line in sys.stdin.buffer:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            try:
                status, payload = 0, _speak_once(lib, **job)
            except Exception as exc:  # reported to the server, which raises it
                status, payload = 1, repr(exc).encode()
            out.write(_FRAME.pack(status, native_rate, len(payload)) + payload)
            out.flush()
            os._exit(0)
        _, wait_status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(wait_status) != 0:
            message = f"espeak child died ({os.waitstatus_to_exitcode(wait_status)})".encode()
            out.write(_FRAME.pack(1, native_rate, len(message)) + message)
            out.flush()


# ------------------------------------------------------------- server side


class _Helper:
    """The server's handle on the helper process; restarted if it dies."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        # Same interpreter, environment and working directory as the server; this
        # package's root is appended in case it was importable only from sys.path.
        package_root = str(Path(__file__).resolve().parents[2])
        code = (
            f"import sys; sys.path.append({package_root!r}); "
            "from batchtts.server.espeak import serve_forks; serve_forks()"
        )
        return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def ensure_running(self) -> subprocess.Popen[bytes]:
        """Start the helper unless it runs; callers hold :data:`_LOCK`."""
        if self._process is None or self._process.poll() is not None:
            self._process = self._start()
        return self._process

    def speak(self, text: str, voice: str, rate: int, pitch: int) -> tuple[int, bytes]:
        """Return (native rate, 16-bit samples); callers hold :data:`_LOCK`."""
        process = self.ensure_running()
        stdin, stdout = process.stdin, process.stdout
        assert stdin is not None and stdout is not None
        job = {"text": text, "voice": voice, "rate": rate, "pitch": pitch}
        try:
            stdin.write(json.dumps(job).encode() + b"\n")
            stdin.flush()
            status, native_rate, length = _FRAME.unpack(_read_exactly(stdout, _FRAME.size))
            payload = _read_exactly(stdout, length)
        except (OSError, EOFError) as exc:
            process.kill()
            process.wait()
            self._process = None
            raise RuntimeError(f"the espeak helper process failed: {exc}") from exc
        if status != 0:
            raise RuntimeError(f"espeak-ng: {payload.decode(errors='replace')}")
        return native_rate, payload


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise EOFError(f"helper closed its output after {len(data)} of {size} bytes")
    return data


_HELPER = _Helper()


def espeak_available() -> bool:
    """Whether the ``speech`` extra is installed and espeak-ng loads; never raises."""
    try:
        import soxr  # noqa: F401

        _load_library()
    except Exception:
        return False
    return hasattr(os, "fork")


class EspeakEngine:
    """Speaks with espeak-ng; one instance per server, safe to call from any thread."""

    name = "espeak"

    def __init__(self) -> None:
        # Start the helper now, so the first request does not wait for it.
        with _LOCK:
            _HELPER.ensure_running()

    def synthesize(self, request: TtsRequest) -> np.ndarray:
        import numpy as np

        voice = CATALOG.get(request.voice_id, CATALOG[DEFAULT_VOICE])
        variant = ESPEAK_VARIANTS.get(voice.voice_id, ESPEAK_VARIANTS[DEFAULT_VOICE])
        with _LOCK:
            native_rate, audio = _HELPER.speak(
                request.text,
                f"{espeak_language(request, voice)}+{variant}",
                rate=espeak_rate(request.speed),
                pitch=espeak_pitch(voice),
            )
        samples = np.frombuffer(audio, dtype=np.int16)
        return _resample(samples, native_rate, request.sample_rate)


def _resample(samples: np.ndarray, native_rate: int, rate: int) -> np.ndarray:
    """Convert espeak's native rate to the requested one with soxr's band-limited filter.

    Float in, rounding ourselves: soxr's int16 output would add random dither.
    """
    import numpy as np
    import soxr

    if rate == native_rate or samples.size == 0:
        return samples.copy()
    resampled = soxr.resample(samples.astype(np.float32), native_rate, rate)
    return np.clip(np.round(resampled), -32768, 32767).astype(np.int16)
