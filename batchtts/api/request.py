"""The Waves TtsRequest: fields, defaults, enums, ranges and validation.

This module is the single source of the API schema (the API as documented in
2026-08: ``waves-api-2026.md``, which is newer than the seed page
``waves-tts-sse.md``). The local server validates request bodies with
:func:`parse_request`; the runner builds requests from manifest rows with
:func:`coerce_field` + :func:`parse_request`, so a row the server would refuse
is refused locally, before any request is sent.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

#: The streaming (SSE) synthesis route, relative to the base URL: the client posts here, the local server serves it.
LIVE_PATH = "/waves/v1/tts/live"
#: The voice catalog route (standard and Pro voices): the runner asks it once before the first request.
VOICES_PATH = "/waves/v1/lightning-v3.1/get_voices"
MODELS: tuple[str, ...] = ("lightning_v3.1", "lightning_v3.1_pro")
SAMPLE_RATES: tuple[int, ...] = (8000, 16000, 24000, 44100)
#: The 31 documented language codes: 10 Indic, then the rest (``lightning_v3.1`` speaks 20 of them, the Pro
#: model all; a code a voice was not trained on is accepted and spoken with English pronunciation).
LANGUAGE_CODES: tuple[str, ...] = (
    "en", "hi", "mr", "kn", "ta", "bn", "gu", "te", "ml", "pa", "or",
    "es", "de", "fr", "it", "nl", "sv", "pt", "ru", "el", "fi", "no", "pl",
    "ar", "zh", "id", "ja", "ko", "ms", "tr", "vi",
)  # fmt: skip
#: What ``language`` and ``number_pronunciation_language`` accept: ``auto`` or one of the codes.
LANGUAGES: tuple[str, ...] = ("auto", *LANGUAGE_CODES)
OUTPUT_FORMATS: tuple[str, ...] = ("pcm", "wav", "mp3", "ulaw", "alaw")
SPEED_MIN, SPEED_MAX = 0.5, 2.0
ID_MAX_LENGTH = 128
ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,128}")
#: The model card's recommended longest text per request, in characters (about 140 is optimal); the API
#: documents no hard maximum. ``validate`` counts longer rows and ``run`` suggests ``--max-chars`` once.
RECOMMENDED_MAX_CHARS = 250

DEFAULT_VOICE = "magnus"
DEFAULT_MODEL = "lightning_v3.1"
DEFAULT_SAMPLE_RATE = 44100
DEFAULT_SPEED = 1.0
DEFAULT_OUTPUT_FORMAT = "pcm"

#: Request fields a manifest column or a command-line default may set.
#: ``text`` and ``request_id`` are not here: the runner owns both.
OVERRIDABLE_FIELDS: tuple[str, ...] = (
    "voice_id",
    "model",
    "sample_rate",
    "speed",
    "language",
    "output_format",
    "pronunciation_dicts",
    "session_id",
    "number_pronunciation_language",
    "math_notation",
    "word_timestamps",
)
#: Boolean request fields: a manifest cell or an option value becomes True or False (:func:`coerce_field`).
BOOLEAN_FIELDS: tuple[str, ...] = ("math_notation", "word_timestamps")
#: Spellings of a boolean cell (CSV cells are text), case-insensitive.
_TRUE_WORDS = frozenset({"true", "1", "yes", "y", "on"})
_FALSE_WORDS = frozenset({"false", "0", "no", "n", "off"})


class InvalidRequest(ValueError):
    """A request field the API schema rejects; ``field`` names it.

    ``code`` and ``details`` are what the API's Zod-style 400 says of it
    (``invalid_enum_value`` with ``received`` and ``options``, ``invalid_type``,
    ``too_small``, ``too_big``, ``invalid_string``, ``custom``): the local server
    answers with them (:meth:`issue`).
    """

    def __init__(self, field_name: str, message: str, code: str = "custom", **details: Any) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message
        self.code = code
        self.details = details

    def issue(self) -> dict[str, Any]:
        """The Zod-style issue of this error: ``{"code", ..., "path": [field], "message"}``."""
        return {"code": self.code, **self.details, "path": [self.field], "message": self.message}


@dataclass(frozen=True, slots=True)
class TtsRequest:
    """One validated synthesis request, with the API's defaults filled in."""

    text: str
    voice_id: str = DEFAULT_VOICE
    model: str = DEFAULT_MODEL
    sample_rate: int = DEFAULT_SAMPLE_RATE
    speed: float = DEFAULT_SPEED
    language: str | None = None
    output_format: str = DEFAULT_OUTPUT_FORMAT
    pronunciation_dicts: tuple[str, ...] = field(default=())
    session_id: str | None = None
    request_id: str | None = None
    #: The language numbers, currency, times and dates are read in (None: not sent).
    number_pronunciation_language: str | None = None
    #: Read digit-flanked operators (``5 x 3``) as words (None: not sent; the API's default is false).
    math_notation: bool | None = None
    #: Accepted by the SSE route and ignored there (word timestamps are a WebSocket feature).
    word_timestamps: bool | None = None

    def to_body(self) -> dict[str, Any]:
        """The JSON body to send: every set field, nothing left as null."""
        body: dict[str, Any] = {
            "text": self.text,
            "voice_id": self.voice_id,
            "model": self.model,
            "sample_rate": self.sample_rate,
            "speed": self.speed,
            "output_format": self.output_format,
        }
        if self.language is not None:
            body["language"] = self.language
        if self.pronunciation_dicts:
            body["pronunciation_dicts"] = list(self.pronunciation_dicts)
        if self.session_id is not None:
            body["session_id"] = self.session_id
        if self.request_id is not None:
            body["request_id"] = self.request_id
        if self.number_pronunciation_language is not None:
            body["number_pronunciation_language"] = self.number_pronunciation_language
        if self.math_notation is not None:
            body["math_notation"] = self.math_notation
        if self.word_timestamps is not None:
            body["word_timestamps"] = self.word_timestamps
        return body

    def with_request_id(self, request_id: str) -> TtsRequest:
        return replace(self, request_id=request_id)

    def fingerprint_fields(self) -> dict[str, Any]:
        """Every field that shapes the result (not the correlation ids); see :func:`canonical_digest`.

        The fields added in 2026 (:data:`_LATER_FIELDS`) appear only when set
        to something other than the API's default, so a request that does not
        set them keeps the fingerprint earlier versions wrote in their journals
        and part stores, and setting one redoes the row.
        """
        values: dict[str, Any] = {}
        for f in fields(self):
            name = f.name
            if name in ("session_id", "request_id"):
                continue
            value = getattr(self, name)
            if name in _LATER_FIELDS and value in (None, False):
                continue
            values[name] = value
        return values


#: Fields left out of a fingerprint when unset (None) or false: see :meth:`TtsRequest.fingerprint_fields`.
_LATER_FIELDS = frozenset({"number_pronunciation_language", "math_notation", "word_timestamps"})


def canonical_digest(value: Any) -> str:
    """32 hex digits of BLAKE2b over ``value`` as canonical JSON (sorted keys, no spaces, UTF-8).

    The fingerprints that tell whether a request or a row's file is the same
    as in an earlier run (``batchtts.ledger.resume.row_fingerprint``,
    ``batchtts.job.shaping.parts.request_fingerprint``) are this digest, so the
    same value gives the same digest in every run, on every machine, and in
    every version: journals and part stores keep them. ``value`` must be made
    of JSON types (tuples count as lists); anything else raises TypeError.
    """
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def is_valid_id(value: str) -> bool:
    """Whether ``value`` fits the API's session_id / request_id pattern."""
    return ID_PATTERN.fullmatch(value) is not None


def _validate_text(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidRequest("text", "must be a string", "invalid_type")
    if not value.strip():
        raise InvalidRequest("text", "must not be empty", "too_small")
    return value


def _validate_voice(value: Any, voices: Collection[str] | None) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequest("voice_id", "must be a non-empty string", "invalid_type")
    if voices is not None and value not in voices:
        raise InvalidRequest("voice_id", f"unknown voice {value!r} (known: {', '.join(sorted(voices))})")
    return value


def _validate_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise InvalidRequest(
            name,
            f"{value!r} is not one of {', '.join(choices)}",
            "invalid_enum_value",
            received=value,
            options=list(choices),
        )
    return value


def _validate_sample_rate(value: Any) -> int:
    rate: int | None = None
    if isinstance(value, bool):
        rate = None
    elif isinstance(value, int):
        rate = value
    elif isinstance(value, float) and value.is_integer():
        rate = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        rate = int(value.strip())
    if rate not in SAMPLE_RATES:
        allowed = ", ".join(str(r) for r in SAMPLE_RATES)
        raise InvalidRequest(
            "sample_rate",
            f"{value!r} is not one of {allowed}",
            "invalid_enum_value",
            received=value,
            options=list(SAMPLE_RATES),
        )
    return rate


def _validate_speed(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequest("speed", f"{value!r} is not a number", "invalid_type")
    speed = float(value)
    if not math.isfinite(speed) or not SPEED_MIN <= speed <= SPEED_MAX:
        raise InvalidRequest(
            "speed",
            f"{value!r} is out of range {SPEED_MIN} to {SPEED_MAX}",
            "too_small" if speed < SPEED_MIN else "too_big",
        )
    return speed


def _validate_dicts(value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise InvalidRequest("pronunciation_dicts", "must be a list of strings", "invalid_type")
    return tuple(value)


def _validate_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidRequest(name, f"{value!r} is not a boolean (true or false)", "invalid_type")
    return value


def _validate_id(name: str, value: Any) -> str:
    if not isinstance(value, str) or not is_valid_id(value):
        raise InvalidRequest(
            name,
            f"{value!r} must be 1 to {ID_MAX_LENGTH} letters, digits, '-', '_' or '.'",
            "invalid_string",
        )
    return value


def parse_request(body: Mapping[str, Any], *, voices: Collection[str] | None = None) -> TtsRequest:
    """Validate a JSON-like body as the API does; unknown fields are ignored.

    ``voices`` restricts ``voice_id`` to a catalog (the local server's); the
    runner passes None because the real API's catalog is larger than ours.
    Absent or null optional fields take the API's defaults.
    """
    if "text" not in body:
        raise InvalidRequest("text", "is required", "invalid_type")
    if "voice_id" not in body:
        raise InvalidRequest("voice_id", "is required", "invalid_type")

    def given(name: str) -> bool:
        return body.get(name) is not None

    text = _validate_text(body["text"])
    voice_id = _validate_voice(body["voice_id"], voices)
    model = _validate_choice("model", body["model"], MODELS) if given("model") else DEFAULT_MODEL
    sample_rate = _validate_sample_rate(body["sample_rate"]) if given("sample_rate") else DEFAULT_SAMPLE_RATE
    speed = _validate_speed(body["speed"]) if given("speed") else DEFAULT_SPEED
    language = _validate_choice("language", body["language"], LANGUAGES) if given("language") else None
    number_language = (
        _validate_choice("number_pronunciation_language", body["number_pronunciation_language"], LANGUAGES)
        if given("number_pronunciation_language")
        else None
    )
    math_notation = _validate_bool("math_notation", body["math_notation"]) if given("math_notation") else None
    output_format = (
        _validate_choice("output_format", body["output_format"], OUTPUT_FORMATS)
        if given("output_format")
        else DEFAULT_OUTPUT_FORMAT
    )
    dicts = _validate_dicts(body["pronunciation_dicts"]) if given("pronunciation_dicts") else ()
    word_timestamps = _validate_bool("word_timestamps", body["word_timestamps"]) if given("word_timestamps") else None
    session_id = _validate_id("session_id", body["session_id"]) if given("session_id") else None
    request_id = _validate_id("request_id", body["request_id"]) if given("request_id") else None
    return TtsRequest(
        text=text,
        voice_id=voice_id,
        model=model,
        sample_rate=sample_rate,
        speed=speed,
        language=language,
        output_format=output_format,
        pronunciation_dicts=dicts,
        session_id=session_id,
        request_id=request_id,
        number_pronunciation_language=number_language,
        math_notation=math_notation,
        word_timestamps=word_timestamps,
    )


def coerce_field(name: str, value: Any) -> Any:
    """Turn a manifest cell or a command-line string into the field's JSON type.

    Returns None for an empty cell ("use the default"). Values that cannot be
    coerced are passed through unchanged so :func:`parse_request` names them.
    """
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str):
        value = value.strip()
        if value == "":
            return None
    if name == "speed" and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if name == "sample_rate" and isinstance(value, float) and value.is_integer():
        return int(value)
    if name in BOOLEAN_FIELDS:
        return _coerce_bool(value)
    if name == "pronunciation_dicts":
        if isinstance(value, str):
            parts = [p.strip() for p in value.replace(";", ",").split(",")]
            return [p for p in parts if p] or None
        if hasattr(value, "tolist"):
            value = value.tolist()
        if isinstance(value, (list, tuple)):
            return list(value) or None
    return value


def _coerce_bool(value: Any) -> Any:
    """A boolean cell: true/false, yes/no, 1/0 (text or number), numpy booleans; anything else unchanged."""
    if isinstance(value, bool):
        return value
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # a numpy scalar from Parquet
        if isinstance(value, bool):
            return value
    if isinstance(value, str):
        word = value.lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    return value
