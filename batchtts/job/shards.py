"""``--shard K/N``: which rows one of N processes does, and what it records for ``batchtts merge``.

A row belongs to shard ``blake2b(key) mod N``, where the key is the row's id
(its ``--group-by`` value when the job groups rows, so a chapter's rows stay
together). The hash is of the key alone, not of the row's place, so adding,
removing or reordering rows never moves another row to another shard, and any
host computes the same split. ``K`` is 0-based, like Kubernetes'
``JOB_COMPLETION_INDEX`` (``--shard auto/N`` reads it).

Each shard keeps its own state under ``DIR/.batchtts/shards/K-of-N/``
(:mod:`batchtts.storage.names`); ``part.json`` there says what the merge needs
to put the parts back in manifest order: the manifest (path and a digest of its
bytes, to refuse parts made from another manifest), how it is read, and the
results' columns.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from batchtts.errors import UsageError
from batchtts.storage import atomic_file
from batchtts.storage.names import PART_RECORD_NAME, SHARDS_DIR, STATE_DIR, parse_shard_part_name, shard_part_name

#: Kubernetes Indexed Jobs give each pod its index in this variable (``--shard auto/N``).
INDEX_ENV = "JOB_COMPLETION_INDEX"
#: Most shards a job may be split into.
MAX_SHARDS = 100_000
#: Bumped if part.json ever changes meaning.
PART_VERSION = 1


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise UsageError(f"--shard: N must be 1 to {MAX_SHARDS}, not {self.count}")
        if not 0 <= self.index < self.count:
            raise UsageError(f"--shard {self.index}/{self.count}: K is 0-based and must be 0 to {self.count - 1}")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def name(self) -> str:
        """Its part folder's name: ``2-of-8``."""
        return shard_part_name(self.index, self.count)

    def owns(self, key: str) -> bool:
        """Whether the row keyed ``key`` (its id, or its group) is this shard's."""
        return shard_of(key, self.count) == self.index

    def state_dir(self, out_dir: Path) -> Path:
        return Path(out_dir) / SHARDS_DIR / self.name


def shard_of(key: str, count: int) -> int:
    """The shard of ``key`` among ``count``: the first 8 bytes of BLAKE2b of its UTF-8, mod ``count``.

    Reproducible outside batchtts (Python):
    ``int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % count``.
    """
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def parse_shard(text: str, environ: Mapping[str, str] | None = None) -> Shard:
    """``K/N`` or ``auto/N`` (K from ``JOB_COMPLETION_INDEX``); a UsageError saying what is wrong."""
    environ = os.environ if environ is None else environ
    index_text, slash, count_text = text.strip().partition("/")
    if not slash or not count_text.strip().isdigit():
        raise UsageError(f"--shard {text!r}: give K/N (e.g. 0/4, K counted from 0) or auto/N")
    count = int(count_text)
    index_text = index_text.strip()
    if index_text == "auto":
        value = environ.get(INDEX_ENV)
        if value is None or not value.strip():
            raise UsageError(
                f"--shard auto/{count}: {INDEX_ENV} is not set; it is set by a Kubernetes Indexed Job, "
                f"or give the shard as K/{count}"
            )
        if not value.strip().isdigit():
            raise UsageError(f"--shard auto/{count}: {INDEX_ENV}={value!r} is not a whole number")
        index_text = value.strip()
    elif not index_text.isdigit():
        raise UsageError(f"--shard {text!r}: K must be a whole number (0-based) or auto")
    return Shard(int(index_text), count)


# --- the part record (part.json) -----------------------------------------------------------


def manifest_digest(files: tuple[Path, ...]) -> str:
    """BLAKE2b of the manifest's bytes (every file of a folder, in order): the same manifest on every host."""
    from batchtts.storage.objects import object_url, open_object

    digest = hashlib.blake2b(digest_size=16)
    for path in files:
        digest.update(path.name.encode("utf-8", "surrogatepass") + b"\0")
        # An s3:// manifest is streamed from the store as it is for reading (never downloaded whole).
        with open_object(path) if object_url(path) is not None else open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def manifest_location(path: Path) -> str:
    """How part.json names the manifest: its URL (``s3://...``), else its absolute path."""
    from batchtts.storage.objects import object_url

    return object_url(path) or str(Path(path).resolve())


@dataclass(frozen=True, slots=True)
class PartRecord:
    """What one shard part says about its job (``part.json``), for the merge."""

    index: int
    count: int
    manifest: str  # absolute path, as the shard saw it
    manifest_digest: str
    text_column: str
    id_column: str | None
    dialect: dict[str, Any]
    carried_columns: list[str]
    extra_columns: list[str]
    voices: list[str]
    defaults: dict[str, Any]
    metadata: str | None
    #: The results manifest the job asked for, the merge's default: relative to DIR when inside it.
    results: str
    #: ``--group-by``: rows are sharded by this column's value (a group stays in one shard).
    group_by: str | None = None
    version: int = PART_VERSION

    @property
    def name(self) -> str:
        return shard_part_name(self.index, self.count)


def write_part_record(state_dir: Path, record: PartRecord) -> None:
    with atomic_file(state_dir / PART_RECORD_NAME) as handle:
        json.dump(asdict(record), handle, indent=2, ensure_ascii=False, default=str)
        handle.write("\n")


def find_parts(out_dir: Path) -> list[Path]:
    """The shard part folders under ``DIR/.batchtts/shards/``, in (N, K) order."""
    root = Path(out_dir) / SHARDS_DIR
    if not root.is_dir():
        return []
    named = [(parse_shard_part_name(p.name), p) for p in root.iterdir() if p.is_dir()]
    found = [(key[1], key[0], path) for key, path in named if key is not None]
    return [path for _count, _index, path in sorted(found)]


def read_part_record(part_dir: Path) -> PartRecord | None:
    """The part's record, or None when it has none (a shard killed before it wrote it); UsageError if unreadable."""
    path = part_dir / PART_RECORD_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return PartRecord(**data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"{path}: not a part record batchtts can read ({exc}); run that shard again") from None


def shard_key(row_id: str, group: Any) -> str:
    """What a row is sharded by: its ``--group-by`` value (as :func:`cell_text` reads it), else its id."""
    from batchtts.job.shaping.cells import cell_text, is_empty

    return row_id if group is None or is_empty(group) else cell_text(group)


def main_state_dir(out_dir: Path) -> Path:
    return Path(out_dir) / STATE_DIR


def resume_sources(out_dir: Path, shard: Shard | None) -> tuple[list[Path], list[Path]]:
    """(journals to read too, part folders to take in) for a run's resume index (see ``EarlierRuns``).

    A shard reads the folder's journals and the other parts' (a row done by an
    unsharded run, or under another split, is not sent again), oldest first,
    changing none of them. An unsharded run takes every part into its own
    journal, so after it the folder has one journal again.
    """
    from batchtts.ledger.resume import journal_files

    parts = find_parts(out_dir)
    if shard is None:
        return [], sorted(parts, key=_newest_write)
    others = [main_state_dir(out_dir), *(p for p in parts if p.name != shard.name)]
    journals = [journal for folder in others for journal in journal_files(folder)]
    return sorted(journals, key=_mtime), []


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def _newest_write(folder: Path) -> int:
    from batchtts.ledger.resume import journal_files

    return max((_mtime(p) for p in journal_files(folder)), default=0)
