"""How a delimited manifest splits into cells: delimiter, quoting, header (``--delimiter``,
``--quote``, ``--no-header``, ``--columns``), checked before anything is read."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple

if TYPE_CHECKING:
    pass

#: The formats pyarrow's CSV reader reads, and each one's (delimiter, quote character) by default.
#: TSV quotes nothing: Common Voice's ``validated.tsv`` holds bare ``"`` inside sentences.
DELIMITED_DEFAULTS: dict[str, tuple[str, str | Literal[False]]] = {"csv": (",", '"'), "tsv": ("\t", False)}
#: Delimiters the "no text column" error suggests when a header is one cell holding one of them.
LIKELY_DELIMITERS = (",", ";", "|", "\t")


@dataclass(frozen=True, slots=True)
class CsvDialect:
    """How a delimited-text manifest (``.csv``, ``.tsv``, compressed or not) splits into rows and cells.

    ``None`` means the extension's default (:data:`DELIMITED_DEFAULTS`): ``,``
    and ``"`` for ``.csv``; a tab and no quoting for ``.tsv``. ``quote=False``
    makes quote characters ordinary text (Common Voice's TSVs, LJSpeech's
    ``metadata.csv``). ``header=False``: the first line is a data row, and
    ``columns`` names the columns (required then, and only then). Raises
    ``ValueError`` for a value no manifest could be read with.
    """

    delimiter: str | None = None
    quote: str | Literal[False] | None = None
    header: bool = True
    columns: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.delimiter is not None:
            check_char(self.delimiter, "--delimiter")
        if self.quote is not None and self.quote is not False:
            check_char(self.quote, "--quote")
        if self.columns is not None:
            object.__setattr__(self, "columns", parse_column_names(self.columns))
            if self.header:
                raise ValueError(
                    "--columns names the columns of a file without a header row: add --no-header "
                    "(to read other columns of a file with a header, use --text-column and --id-column)"
                )

    @property
    def is_default(self) -> bool:
        return self == DEFAULT_DIALECT


DEFAULT_DIALECT = CsvDialect()


def parse_delimiter(text: str) -> str:
    """A ``--delimiter`` value: one ASCII character; ``tab`` or ``\\t`` for a tab. ValueError otherwise."""
    value = "\t" if text.lower() in ("tab", "\\t") else text
    check_char(value)
    return value


def parse_quote(text: str) -> str | Literal[False]:
    """A ``--quote`` value: one ASCII character, or ``none`` (False: quotes are ordinary text)."""
    if text.lower() == "none":
        return False
    try:
        check_char(text)
    except ValueError as exc:
        raise ValueError(f"{exc} (or 'none': quotes are ordinary text)") from None
    return text


def parse_column_names(value: str | Iterable[str]) -> tuple[str, ...]:
    """``id,raw,text`` (or a list of names) -> the names; ValueError for an empty or repeated name."""
    given = value.split(",") if isinstance(value, str) else list(value)
    for name in given:
        if not isinstance(name, str):
            raise ValueError(f"column names must be text, got {name!r}")
    names = tuple(name.strip() for name in given)
    if not names or not all(names):
        raise ValueError(f"column names must be NAME,NAME,... with no empty name, got {','.join(names)!r}")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"column {name!r} is named twice")
        seen.add(name)
    return names


def check_char(value: str, option: str = "") -> None:
    """One ASCII character, not a line break; the ValueError names ``option`` when given."""
    name = f"{option} " if option else ""
    if len(value) != 1:
        raise ValueError(f"{name}must be one character, got {value!r}")
    if not value.isascii() or value in "\r\n":
        raise ValueError(f"{name}must be an ASCII character other than a line break, got {value!r}")


class CsvSettings(NamedTuple):
    """A dialect resolved for one file: what pyarrow's CSV reader is told."""

    delimiter: str
    quote: str | Literal[False]
    header: bool
    column_names: tuple[str, ...] | None  # the names given for a file without a header
