"""``--out s3://bucket/prefix/``: a job whose outputs live in an object store, with the promises of a folder.

The job runs as it does locally, in a scratch folder that mirrors the prefix
(the same relative paths, :mod:`batchtts.storage.names`), and this module
moves what is finished to the store:

- each audio file, once complete, is uploaded whole (:meth:`ObjectStore.upload`:
  one PUT, or a multipart upload invisible until complete), created only if
  absent (``If-None-Match: *``) or replacing the object of a row that changed,
  with the row's id, fingerprint and journal entry in the object's metadata;
  then its local copy is removed;
- the journal goes to ``.batchtts/journal/`` as small immutable segments (one
  per :data:`SEGMENT_ROWS` rows or :data:`SEGMENT_SECONDS`), and an ok row goes
  into a segment only once its object is there, so no segment lists a missing
  object;
- results, summary.json, chapters and the dataset index are uploaded whole at the end;
- one run per prefix: a lock object created conditionally, with a lease renewed
  as the job runs (:class:`StoreLock`); a lease that ran out may be taken over.

A rerun rebuilds the resume index from the segments and from the objects
themselves (listing, then the metadata of any object no segment lists), so an
object uploaded whole is kept even when its segment was lost: a SIGKILL costs
at most the rows in flight.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import shutil
import socket
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import orjson

from batchtts.errors import UsageError
from batchtts.job.lock import JobLocked, describe_holder
from batchtts.ledger import utc_now_iso
from batchtts.ledger.entry import json_default
from batchtts.ledger.journal import Journal
from batchtts.outcomes import RowStatus
from batchtts.storage.names import PART_RECORD_NAME, TEMP_NAME
from batchtts.storage.objects import ObjectStore, PreconditionFailed

log = logging.getLogger("batchtts")

#: A journal segment is written after this many rows, or this many seconds after its first row.
SEGMENT_ROWS = 256
SEGMENT_SECONDS = 2.0
#: The lock's lease; renewed every third of it.
LEASE_SECONDS = 60.0
#: Threads uploading audio at once (a file's path always goes to the same one).
UPLOADERS = 4
#: Metadata names on every audio object (S3 keeps them as ``x-amz-meta-<name>``).
META_ID, META_FINGERPRINT, META_ENTRY = "batchtts-id", "batchtts-fingerprint", "batchtts-entry"
#: S3 allows 2 KB of user metadata: the entry goes only when it fits.
MAX_ENTRY_METADATA = 1500
#: Top-level files of the output that are not audio (results, summary...): never read back as rows.
JOURNAL_FOLDER = "journal"
#: The top folder of batchtts's own state under the prefix (a shard's state is below it too).
STATE_ROOT = ".batchtts"
#: The shard parts' state (``--shard K/N``): ``.batchtts/shards/K-of-N/``.
SHARDS_ROOT = f"{STATE_ROOT}/shards"
LOCK_NAME = "lock"


class StoreLock:
    """One run per prefix: ``<state>/lock`` created only if absent, its lease renewed (``If-Match``)."""

    def __init__(self, store: ObjectStore, relative: str, *, lease: float = LEASE_SECONDS) -> None:
        self.store, self.relative, self.lease = store, relative, lease
        self._etag: str | None = None
        self._record = {"run": uuid.uuid4().hex, "pid": os.getpid(), "host": socket.gethostname(),
                        "started_at": utc_now_iso()}  # fmt: skip
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def _body(self) -> bytes:
        return json.dumps({**self._record, "expires_at": time.time() + self.lease}).encode()

    def acquire(self) -> None:
        try:
            self._etag = self.store.write(self.relative, self._body(), create=True)
        except PreconditionFailed:
            self._take_over()
        self._thread = threading.Thread(target=self._renew, name="batchtts-lease", daemon=True)
        self._thread.start()

    def _take_over(self) -> None:
        found = self.store.read(self.relative)
        if found is None:  # released in between
            self._etag = self.store.write(self.relative, self._body(), create=True)
            return
        data, etag = found
        try:
            holder = json.loads(data)
        except ValueError:
            holder = {}
        holder = holder if isinstance(holder, dict) else {}
        expires = holder.get("expires_at")
        expired = isinstance(expires, (int, float)) and expires < time.time()
        if expired or _died_here(holder):
            why = "its lease ran out" if expired else "its holder died on this machine"
            log.warning("taking over the lock of %s: %s (%s)", self.store.url, why, describe_holder(holder))
            try:
                self._etag = self.store.write(self.relative, self._body(), if_match=etag)
                return
            except PreconditionFailed:
                pass  # another run took it first
        raise JobLocked(
            f"{self.store.url} is in use by {describe_holder(holder)}; wait for it to finish or stop it "
            f"(lock: {self.store.url}{self.relative}, its lease runs out {LEASE_SECONDS:.0f} s after its holder stops)",
            holder,
        )

    def _renew(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                self._etag = self.store.write(self.relative, self._body(), if_match=self._etag)
            except PreconditionFailed:
                self.lost = True
                log.error("%s: the lock was taken by another run; this run's outputs may clash", self.store.url)
                return
            except OSError as exc:
                log.warning("%s: could not renew the lock's lease (%s); trying again", self.store.url, exc)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if not self.lost:
            with contextlib.suppress(OSError):
                self.store.delete(self.relative)


def live_holder(store: ObjectStore, relative: str) -> dict[str, Any] | None:
    """The holder of the lock object ``relative`` while its lease runs and its holder lives, else None."""
    found = store.read(relative)
    if found is None:
        return None
    try:
        holder = json.loads(found[0])
    except ValueError:
        holder = {}
    holder = holder if isinstance(holder, dict) else {}
    expires = holder.get("expires_at")
    if (isinstance(expires, (int, float)) and expires < time.time()) or _died_here(holder):
        return None
    return holder


def _shard_locks(store: ObjectStore) -> list[str]:
    """The lock objects of the shard parts under the prefix (held or left by a killed shard)."""
    folder = f"{SHARDS_ROOT}/"
    return [
        listed.path
        for listed in store.list(folder)
        if listed.path.endswith(f"/{LOCK_NAME}") and listed.path.count("/") == folder.count("/") + 1
    ]


def check_prefix_locks(store: ObjectStore, *, sharded: bool) -> None:
    """After taking its own lock: a shard refuses to run beside an unsharded run or a merge (the prefix's
    lock held), and they refuse to run beside a live shard. Each writes its own lock first, then looks at
    the other's, so of two that start at once at least one sees the other (S3 reads after writes are strong)."""
    if sharded:
        holder = live_holder(store, f"{STATE_ROOT}/{LOCK_NAME}")
        if holder is not None:
            raise JobLocked(
                f"{store.url} is in use by {describe_holder(holder)} (a run without --shard, or a merge); "
                f"wait for it to finish or stop it (lock: {store.url}{STATE_ROOT}/{LOCK_NAME})",
                holder,
            )
        return
    for relative in _shard_locks(store):
        holder = live_holder(store, relative)
        if holder is not None:
            raise JobLocked(
                f"{store.url} is in use by shard runs (--shard: {describe_holder(holder)}, "
                f"lock: {store.url}{relative}); wait for them to finish or stop them",
                holder,
            )


def _one_line(exc: BaseException) -> str:
    return (" ".join(str(exc).split()) or type(exc).__name__)[:300]


def _died_here(holder: Mapping[str, Any]) -> bool:
    """The holder ran on this host and its process is gone (a SIGKILL here need not wait for the lease)."""
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


class Segments:
    """This run's journal lines, written to the store as small immutable objects, in name order."""

    def __init__(self, store: ObjectStore, folder: str) -> None:
        self.store, self.folder = store, folder
        self._run = uuid.uuid4().hex[:8]
        self._lines: list[bytes] = []
        self._first_at = 0.0
        self._count = 0
        self._lock = threading.Lock()
        self.written: list[str] = []

    def name(self) -> str:
        """Segment names sort in the order written: UTC time first."""
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"{time.time() % 1:.6f}"[1:]
        self._count += 1
        return f"{self.folder}/{stamp}-{self._run}-{self._count:06d}.jsonl"

    def add(self, line: bytes) -> None:
        with self._lock:
            if not self._lines:
                self._first_at = time.monotonic()
            self._lines.append(line)
            if len(self._lines) >= SEGMENT_ROWS:
                self._flush()

    def tick(self) -> None:
        """A segment whose first row waited :data:`SEGMENT_SECONDS` is written now."""
        with self._lock:
            if self._lines and time.monotonic() - self._first_at >= SEGMENT_SECONDS:
                self._flush()

    def flush(self) -> None:
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        if not self._lines:
            return
        name = self.name()
        self.store.write(name, b"".join(self._lines), create=True)
        self.written.append(name)
        self._lines = []


class ObjectOutput:
    """The job's side of an object store output: see the module's doc.

    ``scratch`` is the local folder the job writes (as its ``--out``); it is
    removed by :meth:`cleanup`.
    """

    def __init__(self, store: ObjectStore, scratch: Path, *, keep_local: bool = False) -> None:
        self.store = store
        self.scratch = scratch
        self.keep_local = keep_local
        self.state = ".batchtts"
        self._lock: StoreLock | None = None
        self._segments: Segments | None = None
        #: Relative path -> size, of the objects there at the start (what a rerun may keep).
        self._sizes: dict[str, int] = {}
        self._uploaded: set[str] = set()
        #: Journal segments this run's state folder had at the start (replaced when the run is complete).
        self._old_segments: list[str] = []
        #: Every other batchtts object of the shard parts (an unsharded run that completes takes them in).
        self._part_objects: list[str] = []
        self._ticker_stop = threading.Event()
        self._ticker: threading.Thread | None = None

    @classmethod
    def for_url(cls, url: str, *, keep_local: bool = False) -> ObjectOutput:
        store = ObjectStore(url)
        scratch = Path(tempfile.mkdtemp(prefix="batchtts-scratch-"))
        return cls(store, scratch, keep_local=keep_local)

    @property
    def url(self) -> str:
        return self.store.url

    @property
    def sharded(self) -> bool:
        """This run is a shard's (``--shard K/N``): its state is under ``.batchtts/shards/K-of-N/``."""
        return self.state.startswith(f"{SHARDS_ROOT}/")

    def check(self) -> None:
        self.store.check()

    def start(self, state_dir: Path) -> None:
        """Lock the prefix, then rebuild what earlier runs left: ``journal.prev.jsonl`` in the scratch's
        state folder, from the segments and the objects no segment lists."""
        self.state = state_dir.relative_to(self.scratch).as_posix()
        self._lock = StoreLock(self.store, f"{self.state}/{LOCK_NAME}")
        try:
            self._lock.acquire()
        except PreconditionFailed as exc:
            raise UsageError(f"--out {self.url}: {exc}") from None
        except (UsageError, JobLocked):
            raise
        except Exception as exc:  # the store refused the lock object (permissions, a dropped connection)
            raise UsageError(f"--out {self.url}: cannot create the lock object: {_one_line(exc)}") from None
        try:
            check_prefix_locks(self.store, sharded=self.sharded)
            record = state_dir / PART_RECORD_NAME
            if self.sharded and record.exists():  # at the start, as locally: a killed shard's part is merged too
                self.store.write(f"{self.state}/{PART_RECORD_NAME}", record.read_bytes())
        except OSError as exc:
            self._lock.release()
            raise UsageError(f"--out {self.url}: cannot write this shard's part.json: {_one_line(exc)}") from None
        except BaseException:
            self._lock.release()
            raise
        try:
            self._read_earlier_runs(state_dir)
        except Exception as exc:
            self._lock.release()
            raise UsageError(f"--out {self.url}: cannot read what earlier runs left: {_one_line(exc)}") from None
        self._ticker = threading.Thread(target=self._tick, name="batchtts-segments", daemon=True)
        self._ticker.start()

    def _read_earlier_runs(self, state_dir: Path) -> None:
        """Every journal segment under the prefix, oldest first (their names start with the UTC time): the
        unsharded run's and every shard part's, as a local run reads the folder's and the parts' journals."""
        self._segments = Segments(self.store, f"{self.state}/{JOURNAL_FOLDER}")
        own_prefix = f"{self.state}/{JOURNAL_FOLDER}/"
        segments: list[str] = []
        for listed in self.store.list():
            if listed.path.startswith(f"{STATE_ROOT}/"):
                if _is_segment(listed.path):
                    segments.append(listed.path)
                    if listed.path.startswith(own_prefix):
                        self._old_segments.append(listed.path)
                if listed.path.startswith(f"{SHARDS_ROOT}/"):
                    self._part_objects.append(listed.path)  # locks too: none is live (checked at start)
            elif "/" in listed.path:
                self._sizes[listed.path] = listed.size  # an output file (top-level ones are results, summary)
        state_dir.mkdir(parents=True, exist_ok=True)
        from batchtts.ledger.resume import PREVIOUS_JOURNAL_NAME

        covered: set[str] = set()
        with (state_dir / PREVIOUS_JOURNAL_NAME).open("wb") as previous:
            for name in sorted(segments, key=lambda path: path.rsplit("/", 1)[-1]):
                found = self.store.read(name)
                if found is None:
                    continue
                data = found[0]
                if data and not data.endswith(b"\n"):
                    data += b"\n"
                previous.write(data)
                for line in data.splitlines():
                    with contextlib.suppress(ValueError):
                        entry = json.loads(line)
                        if isinstance(entry, dict) and entry.get("status") == RowStatus.OK:
                            path = str(entry.get("path"))
                            if entry.get("file_size") == self._sizes.get(path):
                                covered.add(path)  # else replaced since: its metadata tells
            recovered = 0
            for path in sorted(set(self._sizes) - covered):
                entry = self._entry_from_metadata(path)
                if entry is not None:
                    previous.write(json.dumps(entry, ensure_ascii=False).encode() + b"\n")
                    recovered += 1
            if recovered:
                log.info("%d object(s) no journal segment listed were found whole and are kept", recovered)
            previous.flush()

    def _entry_from_metadata(self, path: str) -> dict[str, Any] | None:
        try:
            meta = self.store.metadata(path)
        except OSError:
            return None
        fingerprint, row_id = meta.get(META_FINGERPRINT), meta.get(META_ID)
        if not fingerprint or row_id is None:
            return None  # not written by batchtts: redone (and replaced) if a row needs its name
        entry: dict[str, Any] = {}
        with contextlib.suppress(ValueError):
            loaded = json.loads(unquote(meta.get(META_ENTRY, "")) or "{}")
            entry = loaded if isinstance(loaded, dict) else {}
        entry.update(id=unquote(row_id), status=RowStatus.OK, path=path, fingerprint=fingerprint,
                     file_size=self._sizes[path])  # fmt: skip
        return entry

    def _tick(self) -> None:
        while not self._ticker_stop.wait(0.5):
            if self._segments is not None:
                try:
                    self._segments.tick()
                except OSError as exc:
                    log.warning("%s: could not write a journal segment (%s); trying again", self.url, exc)

    # --- what a rerun keeps ------------------------------------------------------------

    def stands(self, entry: Mapping[str, Any], relative: str) -> bool:
        """The object of an earlier ok entry is still the one it wrote (same size as the file it uploaded)."""
        size = self._sizes.get(relative)
        return size is not None and size == entry.get("file_size")

    # --- the journal ---------------------------------------------------------------------

    def journal(self, path: Path) -> StoreJournal:
        assert self._segments is not None
        return StoreJournal(path, self)

    def upload_row(self, entry: Mapping[str, Any]) -> None:
        """An ok row's file to its object (once per path in a run), with its metadata; then its local copy goes."""
        relative = str(entry["path"])
        if relative in self._uploaded:
            return
        local = self.scratch / relative
        metadata = {META_ID: quote(str(entry["id"]), safe=""), META_FINGERPRINT: str(entry.get("fingerprint", ""))}
        compact = {k: v for k, v in entry.items() if k not in ("carried", "reused")}
        encoded = quote(orjson.dumps(compact, default=str), safe="")
        if len(encoded) + sum(len(v) for v in metadata.values()) <= MAX_ENTRY_METADATA:
            metadata[META_ENTRY] = encoded
        size = self.store.upload(local, relative, create=relative not in self._sizes, metadata=metadata)
        self._uploaded.add(relative)
        self._sizes[relative] = size
        if not self.keep_local:
            local.unlink(missing_ok=True)

    def segment_line(self, line: bytes) -> None:
        assert self._segments is not None
        self._segments.add(line)

    # --- the end -------------------------------------------------------------------------

    def finish(self, journal_path: Path, *, complete: bool, summary_name: str, shown_out: str) -> None:
        """Whole files up (results, summary, chapters, index); a complete run's journal replaces the segments;
        then the lock goes."""
        try:
            self._ticker_stop.set()
            if self._ticker is not None:
                self._ticker.join()
            if self._segments is not None:
                self._segments.flush()
            self._upload_whole_files(summary_name, shown_out)
            if complete and self._segments is not None and journal_path.exists():
                final = self._segments.name()
                kept = _without_pending(journal_path)
                try:
                    self.store.upload(kept, final, create=True)  # from the file: never the whole journal in memory
                finally:
                    kept.unlink(missing_ok=True)
                # An unsharded run that went over the whole manifest took the shard parts in (as locally).
                absorbed = [] if self.sharded else self._part_objects
                for name in [*self._old_segments, *self._segments.written, *absorbed]:
                    with contextlib.suppress(OSError):
                        self.store.delete(name)
        finally:
            if self._lock is not None:
                self._lock.release()

    def _upload_whole_files(self, summary_name: str, shown_out: str) -> None:
        """Every file the job wrote that is not uploaded yet, but the state it keeps locally (journal, lock, parts)."""
        state = self.scratch / self.state
        for folder, dirs, files in os.walk(self.scratch):
            here = Path(folder)
            if here == state:
                dirs[:] = [d for d in dirs if d != "parts"]  # --max-chars parts: a local cache only
            for name in files:
                local = here / name
                relative = local.relative_to(self.scratch).as_posix()
                if TEMP_NAME.fullmatch(name) or relative in self._uploaded:
                    continue
                if here == state and (name.startswith("journal") or name == LOCK_NAME):
                    continue
                if relative.startswith(f"{STATE_ROOT}/") and here != state:
                    continue  # a shard's scratch also has the folder's local lock file: not the prefix's
                if relative.split("/", 1)[0] in ("audio", "wavs") and not self.keep_local:
                    continue  # audio whose row was not journaled ok: the next run makes it
                data = local.read_bytes()
                if relative == summary_name:
                    data = shown_summary(data, str(self.scratch), shown_out)
                self.store.write(relative, data)

    def cleanup(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


def _without_pending(journal: Path) -> Path:
    """The journal's lines but pending rows', streamed to a file beside it: a rerun redoes pending rows
    anyway (the resume index skips them), so a ``--limit`` run over a huge manifest uploads only what it did."""
    kept = journal.with_name(journal.name + ".upload")
    marker = b'"status":"' + RowStatus.PENDING.value.encode() + b'"'
    with journal.open("rb") as source, kept.open("wb") as target:
        for line in source:
            if marker not in line or not _is_pending(line):
                target.write(line)
    return kept


def _is_pending(line: bytes) -> bool:
    try:
        entry = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return isinstance(entry, dict) and entry.get("status") == RowStatus.PENDING


def shown_summary(data: bytes, scratch: str, url: str) -> bytes:
    """summary.json names the prefix, not the scratch folder it was written in."""
    try:
        document = json.loads(data)
    except ValueError:
        return data
    text = json.dumps(document, indent=2, ensure_ascii=False)
    return text.replace(scratch.rstrip("/") + "/", url).replace(scratch.rstrip("/"), url.rstrip("/")).encode()


class StoreJournal(Journal):
    """The local journal, plus: ok rows' files uploaded (off the event loop), and every line of this run
    into the store's segments once its object is there. An upload that fails fails its row."""

    def __init__(self, path: Path, output: ObjectOutput) -> None:
        # The local journal is scratch: the segments in the store are what a rerun reads, so no fsync.
        super().__init__(path, fsync_every=1 << 62, fsync_seconds=float("inf"))
        self._output = output
        self._queues: list[queue.Queue[dict[str, Any] | None]] = [queue.Queue() for _ in range(UPLOADERS)]
        self._threads = [
            threading.Thread(target=self._upload_loop, args=(q,), name=f"batchtts-upload-{i}", daemon=True)
            for i, q in enumerate(self._queues)
        ]
        for thread in self._threads:
            thread.start()
        #: Rows whose upload failed: (entry, reason); the runner counts them failed at the end.
        self.lost: list[tuple[dict[str, Any], str]] = []
        self.uploads = 0

    def append_entry(self, entry: Mapping[str, Any], *, durable: bool = True) -> None:
        super().append_entry(entry, durable=durable)
        if not durable:  # an earlier run's result copied over: its segment still has it, but
            if self._output.sharded:  # a shard's part must list it itself (the merge reads the parts alone)
                self._output.segment_line(_line(entry))
            return
        if entry.get("status") == RowStatus.OK and entry.get("path"):
            slot = zlib.crc32(str(entry["path"]).encode()) % len(self._queues)
            self._queues[slot].put(dict(entry))
        else:
            self._output.segment_line(_line(entry))

    def _upload_loop(self, jobs: queue.Queue[dict[str, Any] | None]) -> None:
        while (entry := jobs.get()) is not None:
            try:
                self._output.upload_row(entry)
            except (OSError, ValueError) as exc:
                reason = f"upload to {self._output.url} failed: {exc}"
                failed = {**entry, "status": RowStatus.FAILED, "error": reason, "path": None}
                super().append_entry(failed)
                self._output.segment_line(_line(failed))
                self.lost.append((entry, reason))
                continue
            self.uploads += 1
            try:
                self._output.segment_line(_line(entry))
            except OSError as exc:  # the object is there with its metadata: a rerun finds it anyway
                log.warning("%s: could not write a journal segment (%s)", self._output.url, exc)

    def close(self) -> None:
        """Waits for every upload queued, then closes the local journal."""
        for q in self._queues:
            q.put(None)
        for thread in self._threads:
            thread.join()
        super().close()


def _is_segment(path: str) -> bool:
    """A journal segment of the prefix's state or of a shard part's: ``<state>/journal/<name>.jsonl``."""
    folder, _, name = path.rpartition("/")
    return folder.rsplit("/", 1)[-1] == JOURNAL_FOLDER and name.endswith(".jsonl")


def _line(entry: Mapping[str, Any]) -> bytes:
    return orjson.dumps(entry, default=json_default) + b"\n"
