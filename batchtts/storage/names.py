"""Where a job's files go inside its output folder, and how ids become file names.

Layout of ``DIR`` (the ``--out`` folder)::

    DIR/
      audio/<name>.<ext>        one file per ok row
      audio/<voice>/<name>.<ext>
                                with --voices: one folder per voice
      audio/<ab>/<cd>/<name>.<ext>
                                with --shard-dirs 2: hashed subfolders
      wavs/<name>.wav           with --metadata ljspeech, instead of audio/
      audio/.<name>.<ext>.<random>.part
                                a file being written (renamed into place when complete)
      results.parquet           the results manifest (``--results`` may put it elsewhere)
      summary.json              counts and exit status for schedulers (:mod:`batchtts.ledger.summary`)
      .batchtts/journal.jsonl   one JSON line per finished row, appended as rows finish
      .batchtts/journal.prev.jsonl  earlier runs' journal while a run uses it (:mod:`batchtts.ledger.resume`)
      .batchtts/lock            held by the running job (:mod:`batchtts.job.lock`); shared by shard runs
      .batchtts/shards/<K>-of-<N>/
                                one shard's own state (``--shard K/N``, :mod:`batchtts.job.shards`):
                                lock, journal.jsonl, journal.prev.jsonl, results.<ext> (its part),
                                summary.json and part.json (what ``batchtts merge`` needs)

This module only names things; creating, syncing and removing files is
:mod:`batchtts.storage.files`.

A row id is arbitrary text from the manifest, so it is never used as a path
directly. Ids that are already safe keep their name; every other id gets a
readable, sanitised prefix plus a hash of the original id (see
:func:`audio_file_stem`). No id can reach outside ``audio/``, and two distinct
ids never share a file, even on a case-insensitive file system.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from pathlib import Path, PurePosixPath

#: ``--file-format`` choices: how a row's PCM audio is stored (:class:`batchtts.audio.AudioSink`).
FILE_FORMATS: tuple[str, ...] = ("wav", "flac", "raw")
#: Folder (relative to DIR) that holds the audio files.
AUDIO_DIR = PurePosixPath("audio")
#: The audio folder of the LJSpeech layout (``--metadata ljspeech``).
LJSPEECH_AUDIO_DIR = PurePosixPath("wavs")
#: Most levels of hashed subfolders (``--shard-dirs``): 256**4 folders is plenty.
MAX_SHARD_LEVELS = 4
#: Default results manifest name, relative to DIR.
DEFAULT_RESULTS_NAME = "results.parquet"
#: The journal, relative to DIR.
JOURNAL_PATH = PurePosixPath(".batchtts/journal.jsonl")
#: A job's own state (journal, lock), relative to DIR.
STATE_DIR = PurePosixPath(".batchtts")
#: The shard parts (``--shard K/N``), relative to DIR: one folder each, named by :func:`shard_part_name`.
SHARDS_DIR = STATE_DIR / "shards"
#: What a shard records for ``batchtts merge`` (manifest, columns, options), inside its part folder.
PART_RECORD_NAME = "part.json"
#: A shard's results part inside its folder: ``results`` + the results manifest's extension.
PART_RESULTS_STEM = "results"
#: Inside a state folder (DIR/.batchtts or a shard part's): the journal, the previous runs' journal and the lock.
JOURNAL_NAME = JOURNAL_PATH.name
PREVIOUS_JOURNAL_NAME = "journal.prev.jsonl"
LOCK_NAME = "lock"
#: Counts and exit status for schedulers, in DIR (and in each shard part's folder).
SUMMARY_NAME = "summary.json"
#: The results manifest's extensions, one per format.
RESULTS_SUFFIXES: tuple[str, ...] = (".parquet", ".csv", ".jsonl")
_SHARD_PART = re.compile(r"(0|[1-9][0-9]{0,5})-of-([1-9][0-9]{0,5})")

#: Ids kept as they are: lower-case ASCII letters, digits, ``_``, ``-`` and ``.``,
#: not starting with ``.`` (hidden files, ``.`` and ``..``), not ending with ``.``
#: (Windows drops a trailing dot), at most 100 characters.
SAFE_ID = re.compile(r"[a-z0-9_-](?:[a-z0-9._-]{0,98}[a-z0-9_-])?")
#: Joins a mangled name's prefix and hash. Safe ids never contain it, so a
#: mangled name can never equal a safe id's name.
HASH_SEPARATOR = "~"
#: Hex digits of SHA-256 kept in a mangled name (64 bits).
HASH_LENGTH = 16
#: Longest readable prefix kept in a mangled name.
PREFIX_LENGTH = 40
#: Device names Windows reserves whatever the extension (``con.wav`` cannot be created).
_WINDOWS_RESERVED = re.compile(r"(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?")
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._-]+")
_EXTENSION = re.compile(r"[a-z0-9]{1,10}")

#: Temporary names made by :func:`batchtts.storage.files.create_temp_file`: ``.<final name>.<8 random>.part``.
TEMP_SUFFIX = ".part"
TEMP_NAME = re.compile(r"\.(?P<final>.+)\.[a-z0-9_]{8}\.part")


def is_safe_id(row_id: str) -> bool:
    """Whether ``row_id`` is used as its own file name (see :data:`SAFE_ID`)."""
    return SAFE_ID.fullmatch(row_id) is not None and _WINDOWS_RESERVED.fullmatch(row_id) is None


def id_hash(row_id: str) -> str:
    """The first 16 hex digits of SHA-256 of the id's UTF-8 bytes.

    Reproducible outside batchtts: ``printf '%s' "$ID" | sha256sum | cut -c1-16``.
    """
    data = row_id.encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()[:HASH_LENGTH]


def audio_file_stem(row_id: str) -> str:
    """The file name (without extension) for ``row_id``.

    A safe id (:func:`is_safe_id`) is its own name: ``take-01`` -> ``take-01``.
    Any other id becomes ``<prefix>~<hash>``: the prefix is the id folded to
    ASCII (``é`` -> ``e``), with every run of other characters replaced by
    ``_``, leading and trailing ``.``/``_`` removed, cut to 40 characters (``_``
    if nothing is left); the hash is :func:`id_hash` of the original id. So
    ``../etc/passwd`` -> ``etc_passwd~<hash>`` and ``Take 1`` -> ``Take_1~<hash>``.

    Case-insensitive file systems (macOS, Windows) are handled, not just
    documented: safe ids are lower-case only, and an id with an upper-case
    letter is mangled, so its name ends in a lower-case hash of the exact id.
    Two distinct ids therefore get names that differ even when compared
    case-insensitively (up to a 64-bit hash collision, about 1 in 10^8 for a
    billion mangled ids). Windows device names (``con``, ``nul``, ``com1`` ...)
    are mangled too.
    """
    if is_safe_id(row_id):
        return row_id
    ascii_text = unicodedata.normalize("NFKD", row_id).encode("ascii", "ignore").decode("ascii")
    prefix = _UNSAFE_RUN.sub("_", ascii_text).strip("._")[:PREFIX_LENGTH].rstrip("._") or "_"
    if _WINDOWS_RESERVED.fullmatch(prefix.split(".")[0].lower()):
        prefix = f"_{prefix}"  # "lpt1.txt~..." would still name the device on Windows
    return f"{prefix}{HASH_SEPARATOR}{id_hash(row_id)}"


def relative_audio_path(
    row_id: str,
    extension: str,
    *,
    folder: PurePosixPath = AUDIO_DIR,
    voice: str | None = None,
    shard_levels: int = 0,
) -> PurePosixPath:
    """``audio/[<voice>/][<shards>/]<name>.<extension>``, relative to the output folder.

    ``<name>`` is :func:`audio_file_stem` of ``row_id`` (a row id, or a group
    name with ``--group-by``); ``<voice>`` is the voice's own safe name, so the
    files of a voice fan-out never collide; ``<shards>`` is
    :func:`shard_folders` of ``row_id``.
    """
    if _EXTENSION.fullmatch(extension) is None:
        raise ValueError(f"bad file extension {extension!r}")
    path = folder
    if voice is not None:
        path /= audio_file_stem(voice)
    path = path.joinpath(*shard_folders(row_id, shard_levels))
    return path / f"{audio_file_stem(row_id)}.{extension}"


def shard_folders(row_id: str, levels: int) -> tuple[str, ...]:
    """``levels`` folder names of two hex digits each, taken from :func:`id_hash` of ``row_id``.

    With 256 folders per level, a million files spread to about 4,000 per
    folder at one level and 15 at two. Reproducible outside batchtts: the
    first ``2 * levels`` hex digits of ``printf '%s' "$ID" | sha256sum``.
    """
    if not 0 <= levels <= MAX_SHARD_LEVELS:
        raise ValueError(f"shard levels must be 0 to {MAX_SHARD_LEVELS}, not {levels}")
    digest = id_hash(row_id)
    return tuple(digest[2 * level : 2 * level + 2] for level in range(levels))


def shard_part_name(index: int, count: int) -> str:
    """The folder of shard ``index`` of ``count`` under :data:`SHARDS_DIR`: ``2-of-8``."""
    return f"{index}-of-{count}"


def parse_shard_part_name(name: str) -> tuple[int, int] | None:
    """(index, count) of a shard part folder's name, or None when it is not one."""
    match = _SHARD_PART.fullmatch(name)
    if match is None:
        return None
    index, count = int(match[1]), int(match[2])
    return (index, count) if index < count else None


def resolve_inside(out_dir: Path, relative: PurePosixPath | str) -> Path:
    """``out_dir / relative``, refusing any path that would land outside ``out_dir``.

    The check is on the path's text (absolute paths and ``..`` are refused), not
    on where symlinks inside ``out_dir`` point: a user may well make ``audio``
    a link to another disk. Replacing a file never follows a link at its name.
    """
    rel = PurePosixPath(relative)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts or "\\" in str(rel) or "\0" in str(rel):
        raise ValueError(f"{str(relative)!r} is not a path inside the output folder")
    base = Path(os.path.abspath(out_dir))
    target = Path(os.path.normpath(base.joinpath(*rel.parts)))
    if target == base or not target.is_relative_to(base):
        raise ValueError(f"{str(relative)!r} is not a path inside the output folder")
    return target
