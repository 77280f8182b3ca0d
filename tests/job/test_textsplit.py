"""split_text: where long texts are cut, and that no text is ever lost, reordered or cut mid-word."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from batchtts.job.shaping.textsplit import split_text

#: Cuts without whitespace are allowed only right after these (scripts that need no space).
NOSPACE_BREAKS = set("।॥。！？؟۔，、；：،؛") | set("\"'”’»›)]}」』】》〉）")


def assert_faithful(text: str, parts: list[str], max_chars: int) -> None:
    """No text lost or reordered; every part within the limit unless it is one unbreakable word."""
    assert all(part and part == part.strip() for part in parts)
    assert "".join("".join(p.split()) for p in parts) == "".join(text.split())
    for part in parts:
        assert len(part) <= max_chars or len(part.split()) == 1, part
    # Each part is a slice of the text, in order, with only whitespace between slices.
    position = 0
    for part in parts:
        found = text.index(part, position)
        assert text[position:found].strip() == ""
        if position and found == position:  # a cut with no whitespace: only after no-space punctuation
            assert text[found - 1] in NOSPACE_BREAKS, (text, parts)
        position = found + len(part)
    assert text[position:].strip() == ""


# --- sentence ends, abbreviations, quotes -------------------------------------------------


@pytest.mark.parametrize(
    "text,max_chars,expected",
    [
        ("Hello there. How are you? I am fine!", 15, ["Hello there.", "How are you?", "I am fine!"]),
        # Sentences that fit together are packed into one part (fewer requests).
        ("One. Two. Three. Four.", 10, ["One. Two.", "Three.", "Four."]),
        # A closing quote after the stop stays with its sentence.
        ('He said "stop." Then he left.', 16, ['He said "stop."', "Then he left."]),
        ("She asked “why?” Nobody knew.", 18, ["She asked “why?”", "Nobody knew."]),
        # Titles, Latin abbreviations and initials are not sentence ends.
        ("Dr. Smith met Mr. Jones today. They talked.", 30, ["Dr. Smith met Mr. Jones today.", "They talked."]),
        (
            "We saw e.g. Paris and i.e. Rome here. Then home.",
            37,
            ["We saw e.g. Paris and i.e. Rome here.", "Then home."],
        ),
        ("J. R. R. Tolkien wrote it. It sold.", 26, ["J. R. R. Tolkien wrote it.", "It sold."]),
        # "a.m." before a lower-case word is not an end; before a capital it is.
        ("We met at 9 a.m. sharp today. Fine.", 29, ["We met at 9 a.m. sharp today.", "Fine."]),
        ("We met at 9 a.m. The rest came later.", 20, ["We met at 9 a.m.", "The rest came later."]),
        # Decimals and ellipses are not cut.
        ("Pi is 3.14159 today. Yes.", 20, ["Pi is 3.14159 today.", "Yes."]),
        ("Wait... what happened here? Oh.", 27, ["Wait... what happened here?", "Oh."]),
        ("He paused... Then he spoke again.", 13, ["He paused...", "Then he spoke", "again."]),
        # "No. 5" is not an end; "no." before a capital is.
        (
            "Room No. 5 is free. Is it? The answer is no. We left.",
            24,
            ["Room No. 5 is free.", "Is it? The answer is no.", "We left."],
        ),
        # '"Stop!" he said' is one sentence.
        ('"Stop!" he said loudly. Go.', 23, ['"Stop!" he said loudly.', "Go."]),
    ],
)
def test_sentence_ends(text, max_chars, expected):
    parts = split_text(text, max_chars)
    assert parts == expected
    assert_faithful(text, parts, max_chars)


def test_devanagari_danda_and_other_scripts_full_stops():
    hindi = "नमस्ते दुनिया। आप कैसे हैं? मैं ठीक हूँ॥ धन्यवाद।"
    assert split_text(hindi, 20) == ["नमस्ते दुनिया।", "आप कैसे हैं?", "मैं ठीक हूँ॥", "धन्यवाद।"]
    # A danda with no space after it is still a sentence end.
    assert split_text("पहला वाक्य।दूसरा वाक्य।", 12) == ["पहला वाक्य।", "दूसरा वाक्य।"]
    japanese = "今日は晴れです。明日は雨でしょう。そうですか？"
    assert split_text(japanese, 10) == ["今日は晴れです。", "明日は雨でしょう。", "そうですか？"]
    arabic = "كيف حالك؟ أنا بخير. شكرا"
    assert split_text(arabic, 12) == ["كيف حالك؟", "أنا بخير.", "شكرا"]
    for text, limit in ((hindi, 20), (japanese, 10), (arabic, 12)):
        assert_faithful(text, split_text(text, limit), limit)


def test_a_paragraph_break_is_a_sentence_end():
    text = "A heading\n\nThe body starts here"
    assert split_text(text, 25) == ["A heading", "The body starts here"]


# --- clauses, words ------------------------------------------------------------------------


def test_a_long_sentence_is_cut_at_clause_ends_before_words():
    text = "First we read the manifest, then we synthesize every row; finally we write results."
    parts = split_text(text, 40)
    assert parts == ["First we read the manifest,", "then we synthesize every row;", "finally we write results."]
    assert_faithful(text, parts, 40)


def test_a_clause_longer_than_the_limit_is_cut_at_words():
    text = "one two three four five six seven eight nine ten"
    assert split_text(text, 12) == ["one two", "three four", "five six", "seven eight", "nine ten"]


def test_a_word_longer_than_the_limit_stays_whole():
    text = "a supercalifragilisticexpialidocious word"
    assert split_text(text, 10) == ["a", "supercalifragilisticexpialidocious", "word"]
    assert split_text("x" * 50, 10) == ["x" * 50]


def test_commas_inside_numbers_are_not_clause_ends():
    text = "It cost 1,249.99 dollars, or so they said"
    assert split_text(text, 25) == ["It cost 1,249.99 dollars,", "or so they said"]


def test_short_and_blank_texts():
    assert split_text("  Hello.  ", 100) == ["Hello."]
    assert split_text("   ", 10) == []
    assert split_text("", 10) == []
    with pytest.raises(ValueError):
        split_text("x", 0)


def test_a_long_text_splits_in_linear_work():
    text = "This is sentence number one, with a clause. " * 5000  # 220 kB
    parts = split_text(text, 500)
    assert 400 < len(parts) < 500
    assert_faithful(text, parts, 500)


# --- properties ----------------------------------------------------------------------------

WORDS = st.sampled_from(
    [
        "Dr.",
        "Mr.",
        "e.g.",
        "a.m.",
        "J.",
        "3.14",
        "1,000",
        "hello",
        "World",
        "the",
        "quick",
        "...",
        "…",
        "नमस्ते",
        "दुनिया।",
        "॥",
        "今日は。",
        "晴れ",
        "؟",
        "كيف",
        '"Stop!"',
        "“quoted.”",
        "(aside)",
        "x" * 30,
        "end.",
        "why?",
        "wow!",
        "and,",
        "so;",
        "—",
        "Yes.",
        "no.",
        "No.",
        "5",
    ]
)
SPACES = st.sampled_from([" ", " ", " ", "  ", "\n", "\n\n", "\t", ""])


@st.composite
def texts(draw: st.DrawFn) -> str:
    pieces = draw(st.lists(st.tuples(WORDS, SPACES), max_size=60))
    return "".join(word + space for word, space in pieces)


@settings(max_examples=300, deadline=None)
@given(text=texts(), max_chars=st.integers(1, 80))
@example(text="a" * 10 + " b", max_chars=1)
def test_no_text_lost_none_reordered_no_word_cut(text, max_chars):
    parts = split_text(text, max_chars)
    assert_faithful(text, parts, max_chars)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300), max_chars=st.integers(1, 60))
def test_any_unicode_text_is_kept_whole_and_in_order(text, max_chars):
    assert_faithful(text, split_text(text, max_chars), max_chars)


@settings(max_examples=200, deadline=None)
@given(
    text=st.lists(st.text(alphabet="abcdefg .,;!?'\"\n", min_size=1, max_size=12), max_size=40).map(" ".join),
    max_chars=st.integers(1, 60),
)
def test_latin_text_joined_with_spaces_says_the_same_words(text, max_chars):
    parts = split_text(text, max_chars)
    assert " ".join(parts).split() == text.split()
    # Greedy packing: no two neighbours would have fitted in one part.
    position = 0
    spans = []
    for part in parts:
        start = text.index(part, position)
        spans.append((start, start + len(part)))
        position = start + len(part)
    for (start, _), (_, end) in itertools.pairwise(spans):
        assert end - start > max_chars
