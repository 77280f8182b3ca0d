"""Resume and idempotence: what earlier runs over the same output folder already did.

A nightly job is killed, restarted and rerun on the same folder with a
manifest that changed a little. It must never pay twice for a row. So every
journal entry of a synthesized row carries a *fingerprint* of its request (the
text and every field that shapes the audio, plus the stored file format) and a
*stamp* of the file it wrote (size and modification time). At start the runner
indexes the previous journal, and for each manifest row:

- ok before, same fingerprint, and the file is still there with the same stamp:
  the earlier result stands (copied into the new journal, ``reused = true``);
- failed before with the same fingerprint: tried again, unless
  ``--no-retry-failed`` keeps the failure (also copied, ``reused = true``);
- anything else (new, changed, file gone or replaced): synthesized.

Files in ``DIR/.batchtts/`` (one writer at a time: see :mod:`batchtts.job.lock`):

- ``journal.jsonl``: the running job's journal;
- ``journal.prev.jsonl``: what earlier runs left, while a run uses it.

At start the old ``journal.jsonl`` becomes ``journal.prev.jsonl`` (a rename;
when both exist because a run died, they are first merged into a compact new
``journal.prev.jsonl``: one entry per row id, the latest). A run that goes
over the whole manifest leaves a ``journal.jsonl`` with exactly one entry per
manifest row and deletes ``journal.prev.jsonl``, so the journal never grows
across nightly reruns. Every step is a rename or a write to a new file, so a
crash at any moment leaves files the next start understands.

Memory: the index keeps 25 bytes per distinct row id (numpy arrays of a 64-bit
id digest, 64 bits of the fingerprint, the status and the entry's byte offset),
about 25 MB for a million rows. Entries are read back by offset only for rows
whose fingerprint matches, and checked against the full id and fingerprint
there, so a digest collision can cost a request but never reuse a wrong file.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchtts.api.request import TtsRequest, canonical_digest
from batchtts.ledger.entry import VARIANT_KEY
from batchtts.ledger.journal import Journal, parse_line, read_journal_file
from batchtts.manifest.idtable import id_key
from batchtts.outcomes import RowStatus
from batchtts.storage.files import atomic_file, fsync_folder
from batchtts.storage.names import JOURNAL_NAME, PREVIOUS_JOURNAL_NAME

log = logging.getLogger(__name__)

#: Bumped if what goes into a fingerprint ever changes meaning.
FINGERPRINT_VERSION = 1

_STATUS_CODES = {RowStatus.OK: 1, RowStatus.FAILED: 2}


def row_fingerprint(request: TtsRequest, file_format: str, extra: Mapping[str, Any] | None = None) -> str:
    """A digest of everything that shapes a row's file: the request's audio fields and the file format.

    ``extra`` adds job options that shape the file too (how long texts are
    split and joined, a chapter's place in its group), so changing one of them
    redoes the rows it affects. Correlation ids (``request_id``, ``session_id``)
    are left out on purpose. (:func:`batchtts.job.shaping.parts.request_fingerprint` is the
    digest of one request, for the part store; this one is of a row's file.)
    """
    payload = {"v": FINGERPRINT_VERSION, **request.fingerprint_fields(), "file_format": file_format}
    if extra:
        payload["extra"] = dict(extra)
    return canonical_digest(payload)


def file_stamp(path: Path) -> dict[str, int] | None:
    """What the journal remembers of a written file, to notice later that it was replaced or removed."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return {"file_size": info.st_size, "file_mtime_ns": info.st_mtime_ns}


def _same_stamp(entry: Mapping[str, Any], path: Path) -> bool:
    """The file is still the one the entry wrote: same size, same modification second.

    Seconds, not nanoseconds, so a copy of the folder that keeps times to the
    second (``cp -p``, ``rsync -a``, tar) still resumes.
    """
    size, mtime_ns = entry.get("file_size"), entry.get("file_mtime_ns")
    if not isinstance(size, int) or not isinstance(mtime_ns, int):
        return False
    try:
        info = os.stat(path)
    except OSError:
        return False
    return info.st_size == size and info.st_mtime_ns // 1_000_000_000 == mtime_ns // 1_000_000_000


def resume_key(row_id: str, voice: str | None = None) -> int:
    """The index key of a row: its id, and its voice for a ``--voices`` fan-out (voices may be reordered)."""
    return id_key(row_id if voice is None else f"{row_id}\x1f{voice}")


def _entry_voice(entry: Mapping[str, Any]) -> str | None:
    """The voice that keys a fan-out entry (one with a variant), else None."""
    voice = entry.get("voice_id")
    return voice if entry.get(VARIANT_KEY) is not None and isinstance(voice, str) else None


def _fingerprint_bits(fingerprint: str) -> int:
    return int(fingerprint[:16], 16) if len(fingerprint) >= 16 else int(fingerprint or "0", 16)


@dataclass(frozen=True, slots=True)
class IndexHit:
    status: str
    fingerprint_bits: int  # the first 64 bits of the fingerprint
    position: int  # where the entry starts, across the indexed files


class ResumeIndex:
    """Row id -> (status, fingerprint, where its entry is), for the latest ok/failed entry of each id.

    Only entries that carry a fingerprint are indexed: bad rows (never sent)
    are planned again each run, and pending rows have nothing to reuse.
    Several files may be indexed together (the later file wins); positions
    then run across them as if they were concatenated.
    """

    def __init__(self, paths: Sequence[Path] = ()) -> None:
        import numpy as np

        self.paths = [Path(p) for p in paths]
        self._bases: list[int] = []
        #: Each file is held open from the start: another run (a shard) may rename or remove a journal
        #: this index read; the open file keeps what was indexed readable at the positions noted.
        self._handles: dict[int, Any] = {}
        keys, fps, statuses, positions = [], [], [], []
        base = 0
        for number, path in enumerate(self.paths):
            self._bases.append(base)
            try:
                handle = self._handles[number] = open(path, "rb")  # noqa: SIM115 - closed by close()
            except FileNotFoundError:
                handle = None
            k, f, s, p = _scan(path, base)
            keys.append(k)
            fps.append(f)
            statuses.append(s)
            positions.append(p)
            size = os.fstat(handle.fileno()).st_size if handle is not None else 0
            base += max(size, (max(p) + 1 - base) if len(p) else 0)

        def joined(parts: list[Any], dtype: Any) -> Any:
            return np.concatenate([np.frombuffer(part, dtype=dtype) for part in parts]) if parts else np.empty(0, dtype)

        key_a, fp_a = joined(keys, np.int64), joined(fps, np.uint64)
        st_a, pos_a = joined(statuses, np.uint8), joined(positions, np.int64)
        order = np.lexsort((pos_a, key_a))  # by id digest, then position: the last of each group is the latest
        key_s = key_a[order]
        last = np.ones(len(order), dtype=bool)
        last[:-1] = key_s[1:] != key_s[:-1]
        keep = order[last]
        self._keys = key_a[keep]  # sorted
        self._fps = fp_a[keep]
        self._statuses = st_a[keep]
        self._positions = pos_a[keep]

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def nbytes(self) -> int:
        """Bytes the index holds (its arrays), for the memory budget."""
        return int(self._keys.nbytes + self._fps.nbytes + self._statuses.nbytes + self._positions.nbytes)

    def lookup(self, row_id: str, voice: str | None = None) -> IndexHit | None:
        if not len(self._keys):
            return None
        key = resume_key(row_id, voice)
        slot = int(self._keys.searchsorted(key))
        if slot >= len(self._keys) or int(self._keys[slot]) != key:
            return None
        status = RowStatus.OK if int(self._statuses[slot]) == 1 else RowStatus.FAILED
        return IndexHit(status, int(self._fps[slot]), int(self._positions[slot]))

    def line_at(self, position: int) -> bytes:
        """The raw journal line (with its newline) that starts at ``position``."""
        index = max(i for i, base in enumerate(self._bases) if base <= position)
        handle = self._handles.get(index)
        if handle is None:  # not there when indexed: it holds no position
            return b""
        handle.seek(position - self._bases[index])
        return handle.readline()

    def entry_at(self, position: int) -> dict[str, Any] | None:
        """The journal entry that starts at ``position``, read back from its file."""
        line = self.line_at(position)
        try:
            entry = parse_line(line)
        except ValueError:
            return None
        return entry if isinstance(entry, dict) else None

    def positions_in_file_order(self) -> list[int]:
        import numpy as np

        return np.sort(self._positions).tolist()

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()


def _scan(path: Path, base: int) -> tuple[Any, Any, Any, Any]:
    """The index columns of one journal file, as compact arrays."""
    from array import array

    keys, fps, statuses, positions = array("q"), array("Q"), array("B"), array("q")
    for offset, entry in read_journal_file(path):
        fingerprint = entry.get("fingerprint")
        code = _STATUS_CODES.get(entry.get("status"))  # type: ignore[arg-type]
        if not isinstance(fingerprint, str) or code is None:
            continue
        try:
            bits = _fingerprint_bits(fingerprint)
        except ValueError:
            continue
        keys.append(resume_key(str(entry["id"]), _entry_voice(entry)))
        fps.append(bits)
        statuses.append(code)
        positions.append(base + offset)
    return keys, fps, statuses, positions


class EarlierRuns:
    """The runner's memory of earlier runs over one output folder (see the module docstring).

    ``open()`` rotates the journal files and returns the journal this run
    appends to; ``earlier_result()`` says, per planned row, whether an earlier
    result stands; ``finish()`` drops the previous journal once this run's
    journal describes the whole manifest.
    """

    def __init__(
        self,
        state_dir: Path,
        out_dir: Path,
        *,
        force: bool = False,
        retry_failed: bool = True,
        also_read: Sequence[Path] = (),
        absorb: Sequence[Path] = (),
        stands: Callable[[Mapping[str, Any], str], bool] | None = None,
    ) -> None:
        """``also_read``: other runs' journals (oldest first) indexed too, never changed (a shard reads
        the folder's and the other shards'). ``absorb``: folders whose journals this run takes into its
        own (oldest first), then removes (an unsharded run takes the shard parts in)."""
        self.state_dir = Path(state_dir)
        #: Whether an ok entry's file is still the one it wrote (entry, relative path); default: the
        #: local file's stamp. An object store output asks the store (:mod:`batchtts.job.objectout`).
        self._stands = stands or (lambda entry, relative: _same_stamp(entry, self.out_dir / relative))
        self.out_dir = Path(out_dir)
        self.force = force
        self.retry_failed = retry_failed
        self.journal_path = self.state_dir / JOURNAL_NAME
        self.previous_path = self.state_dir / PREVIOUS_JOURNAL_NAME
        self.also_read = [Path(p) for p in also_read]
        self.absorb = [Path(p) for p in absorb]
        self.index = ResumeIndex()

    def open(self) -> Journal:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.absorb:
            self._absorb()
        if self.journal_path.exists():
            if self.previous_path.exists():
                compact_journals([self.previous_path, self.journal_path], self.previous_path)
                self.journal_path.unlink()
            else:
                os.replace(self.journal_path, self.previous_path)
            with contextlib.suppress(OSError):  # best effort: the next start understands either state
                fsync_folder(self.state_dir)
        own = [self.previous_path] if self.previous_path.exists() else []
        if own or self.also_read:
            self.index = ResumeIndex([*(p for p in self.also_read if p.exists()), *own])
            if len(self.index):
                log.debug("%d row(s) known from earlier runs (index: %d bytes)", len(self.index), self.index.nbytes)
        return Journal(self.journal_path)

    def _absorb(self) -> None:
        """Take the journals of ``absorb``'s folders into this run's previous journal, then remove the folders.

        Crash-safe: the compacted journal lands whole before anything is removed,
        and taking the same entries in again gives the same journal.
        """
        import shutil

        own = [p for p in (self.previous_path, self.journal_path) if p.exists()]
        taken = [p for folder in self.absorb for p in journal_files(folder)]
        if taken:
            compact_journals([*own, *taken], self.previous_path)
            self.journal_path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                fsync_folder(self.state_dir)
        for folder in self.absorb:
            shutil.rmtree(folder, ignore_errors=True)
        log.info("took %d shard part(s) into this run's journal", len(self.absorb))

    def may_know(self, row_id: str, voice: str | None = None) -> bool:
        """False when no earlier result can stand for this row (a quick check before fingerprinting it)."""
        return not self.force and self.index.lookup(row_id, voice) is not None

    def earlier_result(
        self, row_id: str, voice: str | None, fingerprint: str, expected_path: str
    ) -> dict[str, Any] | None:
        """The earlier entry that stands for this row (to record as is), or None to synthesize it.

        ``voice`` is the fan-out voice (``--voices``), else None.
        ``expected_path`` is where this run would write the row's file,
        relative to the output folder with ``/`` separators.
        """
        if self.force:
            return None
        hit = self.index.lookup(row_id, voice)
        if hit is None or hit.fingerprint_bits != _fingerprint_bits(fingerprint):
            return None
        if hit.status == RowStatus.FAILED and self.retry_failed:
            return None
        entry = self.index.entry_at(hit.position)
        if entry is None or entry.get("id") != row_id or entry.get("fingerprint") != fingerprint:
            return None
        if _entry_voice(entry) != voice:
            return None
        if hit.status == RowStatus.OK:
            if entry.get("path") != expected_path:
                return None
            if not self._stands(entry, expected_path):
                return None
        return entry

    def finish(self, *, complete: bool) -> None:
        """After the results are written: a complete pass makes the previous journal redundant."""
        self.index.close()
        if complete and self.previous_path.exists():
            self.previous_path.unlink()
            with contextlib.suppress(OSError):
                fsync_folder(self.state_dir)


def journal_files(state_dir: Path) -> list[Path]:
    """A state folder's journals that exist, the previous one first (the order they were written)."""
    folder = Path(state_dir)
    return [p for p in (folder / PREVIOUS_JOURNAL_NAME, folder / JOURNAL_NAME) if p.exists()]


def compact_journals(sources: Sequence[Path], dest: Path) -> int:
    """Write the latest ok/failed entry of each row id in ``sources`` (later files win) to ``dest``.

    The new file appears whole (temp file, fsync, rename); ``dest`` may be one
    of the sources. Returns the entries written.
    """
    index = ResumeIndex(sources)
    written = 0
    try:
        with atomic_file(dest, "wb") as out:
            for position in index.positions_in_file_order():
                line = index.line_at(position)
                if line.endswith(b"\n"):
                    out.write(line)
                    written += 1
    finally:
        index.close()
    log.info("compacted the journals of earlier runs: %d row(s) kept", written)
    return written


def group_fingerprint(row_fingerprints: Iterable[str]) -> str:
    """A digest of a ``--group-by`` group: its rows' fingerprints, in manifest order."""
    digest = hashlib.blake2b(digest_size=16)
    for fingerprint in row_fingerprints:
        digest.update(fingerprint.encode("ascii", "replace") + b"\n")
    return digest.hexdigest()


class GroupCheck:
    """``--group-by`` reruns: a group's file stands only when all of it does.

    A group's rows are joined into one file, so one changed, added or removed
    row means the whole file must be made again; its rows cannot be kept one
    by one. Fed every row of the manifest before the run starts (a first pass:
    groups are known only once every row is read), it says which groups stand:
    every row has an earlier ok result with the same fingerprint and the same,
    unchanged file, and the group's fingerprint (all its rows, in order) is the
    one recorded with them, so no row joined or left it.
    """

    def __init__(self, earlier: EarlierRuns) -> None:
        self._earlier = earlier
        self._digests: dict[Hashable, Any] = {}
        self._recorded: dict[Hashable, str | None] = {}  # the group fingerprint earlier runs recorded

    def add(
        self,
        group: Hashable,
        row_id: str,
        voice: str | None,
        fingerprint: str | None,
        expected_path: str | None,
    ) -> None:
        """One row of ``group``, in manifest order; ``fingerprint`` None: a bad row (the group cannot stand)."""
        digest = self._digests.get(group)
        if digest is None:
            digest = self._digests[group] = hashlib.blake2b(digest_size=16)
        if fingerprint is None or expected_path is None:
            self._recorded[group] = None
            return
        digest.update(fingerprint.encode("ascii", "replace") + b"\n")
        if group in self._recorded and self._recorded[group] is None:
            return
        entry = self._earlier.earlier_result(row_id, voice, fingerprint, expected_path)
        recorded = entry.get("group_fingerprint") if entry and entry.get("status") == RowStatus.OK else None
        if not isinstance(recorded, str) or self._recorded.setdefault(group, recorded) != recorded:
            self._recorded[group] = None

    def standing(self) -> set[Hashable]:
        return {
            group
            for group, digest in self._digests.items()
            if self._recorded.get(group) is not None and digest.hexdigest() == self._recorded[group]
        }
