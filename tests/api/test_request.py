"""The request schema as documented in 2026: languages, the newer fields, their coercion and fingerprints."""

from __future__ import annotations

import numpy as np
import pytest

from batchtts.api.request import (
    LANGUAGE_CODES,
    LANGUAGES,
    InvalidRequest,
    TtsRequest,
    coerce_field,
    parse_request,
)
from batchtts.job.shaping.parts import request_fingerprint
from batchtts.ledger.resume import row_fingerprint

BASE = {"text": "Hello.", "voice_id": "magnus"}
#: The 31 codes of the page, in its order (English and the 10 Indic codes first).
DOCUMENTED_CODES = [
    *("en", "hi", "mr", "kn", "ta", "bn", "gu", "te", "ml", "pa", "or"),
    *("es", "de", "fr", "it", "nl", "sv", "pt", "ru", "el", "fi", "no", "pl"),
    *("ar", "zh", "id", "ja", "ko", "ms", "tr", "vi"),
]


def test_language_takes_auto_and_every_documented_code() -> None:
    assert sorted(LANGUAGE_CODES) == sorted(DOCUMENTED_CODES) and len(LANGUAGE_CODES) == 31
    assert set(LANGUAGES) == {"auto", *DOCUMENTED_CODES}
    for code in LANGUAGES:
        assert parse_request({**BASE, "language": code}).language == code
        assert parse_request({**BASE, "number_pronunciation_language": code}).number_pronunciation_language == code
    for bad in ("EN", "xx", "english", 7):
        with pytest.raises(InvalidRequest) as refused:
            parse_request({**BASE, "language": bad})
        assert refused.value.field == "language"
        with pytest.raises(InvalidRequest) as refused:
            parse_request({**BASE, "number_pronunciation_language": bad})
        assert refused.value.field == "number_pronunciation_language"


@pytest.mark.parametrize("name", ["math_notation", "word_timestamps"])
def test_boolean_fields_are_parsed_and_refused_when_not_booleans(name: str) -> None:
    assert getattr(parse_request({**BASE, name: True}), name) is True
    assert getattr(parse_request({**BASE, name: False}), name) is False
    assert getattr(parse_request(BASE), name) is None
    for bad in ("yes", 1, [True]):
        with pytest.raises(InvalidRequest) as refused:
            parse_request({**BASE, name: bad})
        assert refused.value.field == name and "boolean" in refused.value.message


def test_the_newer_fields_are_sent_only_when_set() -> None:
    plain = TtsRequest(text="Hi.").to_body()
    assert not {"number_pronunciation_language", "math_notation", "word_timestamps"} & set(plain)
    request = TtsRequest(text="Hi.", number_pronunciation_language="de", math_notation=True, word_timestamps=False)
    body = request.to_body()
    assert (body["number_pronunciation_language"], body["math_notation"], body["word_timestamps"]) == (
        "de",
        True,
        False,
    )
    assert parse_request(body) == TtsRequest(
        text="Hi.", number_pronunciation_language="de", math_notation=True, word_timestamps=False
    )


def test_unset_or_false_newer_fields_keep_the_fingerprint_and_set_ones_change_it() -> None:
    """Journals and part stores of earlier versions stay valid: unset fields are not in the digest."""
    base = TtsRequest(text="Hello.")
    same = [
        TtsRequest(text="Hello.", math_notation=False),
        TtsRequest(text="Hello.", word_timestamps=False),
        TtsRequest(text="Hello.", math_notation=False, word_timestamps=False),
    ]
    assert base.fingerprint_fields() == TtsRequest(text="Hello.").fingerprint_fields()
    for request in same:
        assert row_fingerprint(request, "wav") == row_fingerprint(base, "wav")
        assert request_fingerprint(request) == request_fingerprint(base)
    changed = [
        TtsRequest(text="Hello.", number_pronunciation_language="hi"),
        TtsRequest(text="Hello.", number_pronunciation_language="en"),
        TtsRequest(text="Hello.", math_notation=True),
        TtsRequest(text="Hello.", word_timestamps=True),
    ]
    prints = {row_fingerprint(request, "wav") for request in changed}
    assert len(prints) == len(changed) and row_fingerprint(base, "wav") not in prints
    assert len({request_fingerprint(request) for request in changed}) == len(changed)


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        (" yes ", True),
        ("1", True),
        (1, True),
        (1.0, True),
        (np.bool_(True), True),
        ("false", False),
        ("No", False),
        ("0", False),
        (0, False),
        (np.bool_(False), False),
        (True, True),
        ("", None),
        (None, None),
        (float("nan"), None),
        ("maybe", "maybe"),  # left for the schema to refuse, naming the field
        (2, 2),
    ],
)
def test_boolean_cells_become_booleans(cell: object, expected: object) -> None:
    for name in ("math_notation", "word_timestamps"):
        coerced = coerce_field(name, cell)
        assert coerced == expected and type(coerced) is type(expected)


def test_an_unreadable_boolean_cell_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidRequest, match=r"^math_notation: 'maybe' is not a boolean"):
        parse_request({**BASE, "math_notation": coerce_field("math_notation", "maybe")})
