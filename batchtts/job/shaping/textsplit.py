"""Split a long text into parts of at most ``max_chars`` for separate requests.

A TTS request speaks one part; the parts are joined back in order, so a cut
must fall where a speaker would pause anyway. Cuts are tried in order of
strength, and a weaker kind is used only inside a piece the stronger kinds
cannot bring under the limit:

1. sentence ends: ``.`` ``!`` ``?`` (followed by a space or the end), a paragraph
   break (a blank line), the Devanagari danda ``।`` and double danda ``॥``, the
   CJK full stops ``。！？``, the Arabic question mark ``؟`` and the Urdu full
   stop ``۔``;
2. clause ends: ``,`` ``;`` ``:`` ``!`` ``?`` ``...`` ``…`` and dashes followed by a
   space (where they do not end a sentence), a line break, CJK ``，、；：`` and
   Arabic ``،؛``;
3. word boundaries (whitespace).

Never inside a word: a word (a run of non-space characters) longer than
``max_chars`` becomes a part of its own, longer than the limit. The only cuts
without whitespace are right after the no-space punctuation above (CJK, danda,
Arabic), since those scripts need no space after them.

What is *not* a sentence end: any stop followed by a lower-case word
(``"Stop!" he said``, ``at 9 a.m. sharp``, ``etc. and``, ``Wait... what``: these
are clause ends); a period after a title or an abbreviation that precedes what
it qualifies (``Dr.``, ``Mr.``, ``St.``, ``e.g.``, ``i.e.``, ``vs.``), after an
abbreviation that precedes a number when a number follows (``No. 5``,
``Fig. 3``, ``Jan. 2020``), after an initial (``J. R. R. Tolkien``); a period
inside a number (``3.14``) or between the dots of an ellipsis (no space
follows). So ``at 5 p.m. The`` and ``in the U.S. Then`` do end sentences. A
closing quote or bracket after the stop stays with its sentence. Case is the
main hint, so in caseless scripts (Devanagari, CJK, Arabic) every Latin stop
before a space counts.

Consecutive pieces are packed greedily into parts up to ``max_chars`` (fewer
requests). Each part is a slice of the text with its outer whitespace
stripped, so joining the parts with single spaces says the whole text in order.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

__all__ = ["split_text"]

_SENTENCE, _CLAUSE, _WORD = 0, 1, 2

#: Stops that end a sentence only before whitespace (or the end).
_LATIN_STOPS = ".!?…"
#: Stops (sentence level) and clause marks that need no space after them.
_NOSPACE_STOPS = "।॥。！？؟۔"
_NOSPACE_CLAUSE = "，、；：،؛"
#: Characters that may follow a stop and belong to its sentence.
_CLOSERS = "\"'”’»›)]}」』】》〉）"

_SENTENCE_CANDIDATE = re.compile(
    rf"(?P<latin>[{_LATIN_STOPS}]+)(?P<close1>[{re.escape(_CLOSERS)}]*)(?=\s|$)"
    rf"|(?P<nospace>[{_NOSPACE_STOPS}]+)(?P<close2>[{re.escape(_CLOSERS)}]*)"
    r"|(?P<paragraph>\n[^\S\n]*\n)"
)
_CLAUSE_CANDIDATE = re.compile(
    rf"(?P<mark>[,;:—–!?]|\.\.\.|…)[{re.escape(_CLOSERS)}]*(?=\s)"
    rf"|[{_NOSPACE_CLAUSE}][{re.escape(_CLOSERS)}]*"
    r"|(?P<newline>\n)"
)
_WHITESPACE = re.compile(r"\s+")

#: Never the last word of a sentence: titles and abbreviations that precede
#: what they qualify (lower case, without their dots).
_NEVER_FINAL = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "mx",
        "dr",
        "prof",
        "st",
        "mt",
        "ft",
        "rev",
        "fr",
        "hon",
        "gen",
        "col",
        "capt",
        "cpt",
        "lt",
        "sgt",
        "maj",
        "cmdr",
        "adm",
        "gov",
        "pres",
        "sen",
        "rep",
        "eg",
        "ie",
        "cf",
        "vs",
        "viz",
        "approx",
        "dept",
        "univ",
    ]
)
#: Abbreviations that precede a number ("No. 5", "Fig. 3", "Jan. 2020"): no
#: stop before a digit, a stop otherwise ("The answer is no. Then ...").
_BEFORE_NUMBER = frozenset(
    [
        "no",
        "nos",
        "nr",
        "fig",
        "figs",
        "vol",
        "vols",
        "ch",
        "chap",
        "sec",
        "pp",
        "pg",
        "p",
        "op",
        "ca",
        "art",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
    ]
)


def split_text(text: str, max_chars: int) -> list[str]:
    """``text`` cut into parts of at most ``max_chars`` characters, in order.

    A single word longer than ``max_chars`` is kept whole (a part longer than
    the limit): cutting a word would make the voice spell half-words. Blank
    text gives ``[]``. See the module docstring for where cuts fall.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, not {max_chars}")
    start, end = _strip(text, 0, len(text))
    if start == end:
        return []
    if end - start <= max_chars:
        return [text[start:end]]
    atoms = list(_atoms(text, start, end, _SENTENCE, max_chars))
    return [text[s:e] for s, e in _pack(atoms, max_chars)]


def _atoms(text: str, start: int, end: int, level: int, max_chars: int) -> Iterator[tuple[int, int]]:
    """The smallest pieces needed: whole sentences when they fit, else clauses, else words."""
    for piece_start, piece_end in _pieces(text, start, end, level):
        if piece_end - piece_start <= max_chars or level == _WORD:
            yield piece_start, piece_end
        else:
            yield from _atoms(text, piece_start, piece_end, level + 1, max_chars)


def _pack(atoms: list[tuple[int, int]], max_chars: int) -> Iterator[tuple[int, int]]:
    """Greedily merge consecutive atoms while the merged slice fits."""
    current: tuple[int, int] | None = None
    for atom in atoms:
        if current is not None and atom[1] - current[0] <= max_chars:
            current = (current[0], atom[1])
            continue
        if current is not None:
            yield current
        current = atom
    if current is not None:
        yield current


def _pieces(text: str, start: int, end: int, level: int) -> Iterator[tuple[int, int]]:
    """``text[start:end]`` cut at every boundary of ``level``, each piece stripped, none empty."""
    previous = start
    for cut in _cuts(text, start, end, level):
        piece = _strip(text, previous, cut)
        if piece[0] < piece[1]:
            yield piece
        previous = cut
    piece = _strip(text, previous, end)
    if piece[0] < piece[1]:
        yield piece


def _cuts(text: str, start: int, end: int, level: int) -> Iterator[int]:
    if level == _WORD:
        for match in _WHITESPACE.finditer(text, start, end):
            yield match.start()
        return
    pattern = _SENTENCE_CANDIDATE if level == _SENTENCE else _CLAUSE_CANDIDATE
    # endpos: the piece's end counts as the end of the text for the lookaheads.
    for match in pattern.finditer(text, start, end):
        if level == _SENTENCE and match.group("latin") and not _ends_sentence(text, match):
            continue
        yield match.end()


def _ends_sentence(text: str, match: re.Match[str]) -> bool:
    """Whether a Latin stop (``.`` ``!`` ``?`` ``…`` runs) followed by whitespace ends a sentence."""
    stops = match.group("latin")
    following = _next_word(text, match.end())
    if following is None:
        return True
    if not _starts_capitalised(following):
        return False  # '"Stop!" he said', 'etc. and so on', 'Wait... what'
    if stops != ".":
        return True  # "!", "?", "?!", an ellipsis before a capital
    word = _word_before(text, match.start("latin"))
    return _period_ends_sentence(word, following)


def _period_ends_sentence(word: str, following: str) -> bool:
    """Whether ``word`` + ``.`` ends a sentence, ``following`` (capitalised) being the next word."""
    bare = word.lstrip("\"'“‘«‹([{")
    if not bare:
        return True
    key = bare.lower().replace(".", "")
    if key in _NEVER_FINAL:
        return False  # "Dr. Smith", "e.g. Paris"
    if key in _BEFORE_NUMBER:
        return not following.lstrip("\"'“‘«‹([{#").startswith(tuple("0123456789"))
    if len(bare) == 1 and bare.isalpha() and bare != "I":  # noqa: SIM103 (one reason per branch)
        return False  # an initial: "J. R. R. Tolkien"
    return True  # incl. "at 5 p.m. The", "in the U.S. Then", "etc. But"


def _word_before(text: str, stop: int) -> str:
    """The run of non-space characters that ends at ``stop``."""
    begin = stop
    while begin > 0 and not text[begin - 1].isspace():
        begin -= 1
    return text[begin:stop]


def _next_word(text: str, position: int) -> str | None:
    match = _WHITESPACE.match(text, position)
    begin = match.end() if match else position
    if begin >= len(text):
        return None
    stop = begin
    while stop < len(text) and not text[stop].isspace():
        stop += 1
    return text[begin:stop]


def _starts_capitalised(word: str) -> bool:
    """True when the first letter (after quotes, brackets, dashes) is upper case or caseless.

    Caseless scripts (Devanagari, CJK, Arabic) and digits give no hint, so they
    count as a new sentence.
    """
    for char in word:
        category = unicodedata.category(char)
        if category.startswith(("P", "S")):
            continue
        return not char.islower()
    return True


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
