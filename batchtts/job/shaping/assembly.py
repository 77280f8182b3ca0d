"""Rows that take more than one request or share a file: long texts, chapters, voice fan-out.

The runner hands each planned row here instead of synthesizing it itself when
``--max-chars``, ``--group-by`` or ``--voices`` is set. Every request still
goes through the runner's :meth:`~batchtts.job.runner.Runner.synthesize_file`, so
the same throttle (concurrency, pacing, 429 back-off) and retry loop apply
to each part.

- ``--voices a,b``: each row becomes one item per voice (:mod:`batchtts.job.shaping.fanout`),
  with its own file under ``audio/<voice>/`` and its own results row.
- ``--max-chars N``: a longer text is split (:func:`~batchtts.job.shaping.textsplit.split_text`);
  its parts are synthesized concurrently into the part store
  (:mod:`batchtts.job.shaping.parts`), then joined in order into the row's one file
  (:mod:`batchtts.audio.join`), ``--join-gap-ms`` of silence between them.
- ``--group-by COL``: every row's audio goes to the part store; when all rows
  are done, each group's rows are joined in ``--order-by`` order into one
  file named after the group, with a chapters file beside it
  (:mod:`batchtts.job.shaping.chapters`). A failed row fails its whole group: no file
  with holes. Rows of a group are recorded in the results when the group is
  written (or fails), with the group's file as their ``path``.

Parts are deleted once the file they went into is written (``--keep-parts``
keeps them), and kept when it fails, so a rerun sends only the parts that
failed. Memory: a few hundred bytes per row of an unfinished group (its
result is written only when the group is), nothing per finished plain row.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import anyio

from batchtts.job.shaping.chapters import EXTENSION as CHAPTERS_EXTENSION
from batchtts.job.shaping.chapters import chapters_from_spans, write_ffmetadata
from batchtts.api.client import AttemptOutcome
from batchtts.errors import AttemptError, ManifestError
from batchtts.job.shaping.fanout import fan_out, request_key
from batchtts.audio.join import JoinError, Joined, join_files
from batchtts.storage.names import AUDIO_DIR, LJSPEECH_AUDIO_DIR, relative_audio_path, resolve_inside
from batchtts.manifest.readers import Manifest, Row
from batchtts.job.shaping.parts import PARTS_DIR, PartInfo, PartStore, request_fingerprint
from batchtts.manifest.planner import PlannedRow
from batchtts.api.request import TtsRequest
from batchtts.ledger import OPTIONAL_COLUMNS, VARIANT_KEY, RowResult, utc_now_iso
from batchtts.ledger.resume import file_stamp, group_fingerprint, row_fingerprint
from batchtts.audio import AudioSink, SinkResult
from batchtts.job.shaping.textsplit import split_text

log = logging.getLogger("batchtts")

#: ``output_format`` values whose audio can be joined (16-bit PCM).
JOINABLE_FORMATS: tuple[str, ...] = ("pcm", "wav")


@dataclass(frozen=True, slots=True)
class ShapeOptions:
    """How rows map to files: splitting, joining, fan-out, folders, dataset index."""

    max_chars: int | None = None
    #: Silence between joined parts and between the rows of a group. 0: the
    #: audio is exactly what the API sent, in order (see the README).
    join_gap_ms: int = 0
    group_by: str | None = None
    order_by: str | None = None
    title_column: str | None = None
    voices: tuple[str, ...] = ()
    keep_parts: bool = False
    shard_dirs: int = 0
    metadata: str | None = None  # a batchtts.job.shaping.metadata.METADATA_KINDS value

    @property
    def assembles(self) -> bool:
        """Whether rows go through :class:`Assembly` (else the runner's plain path)."""
        return bool(self.max_chars or self.group_by or self.voices)

    @property
    def joins(self) -> bool:
        """Whether audio may be joined, which needs 16-bit PCM."""
        return bool(self.max_chars or self.group_by)

    @property
    def extra_columns(self) -> tuple[str, ...]:
        """Optional results columns: ``parts`` and ``part_request_ids`` with ``--max-chars``."""
        return OPTIONAL_COLUMNS if self.max_chars else ()

    def audio_path(self, name: str, extension: str, voice: str | None = None) -> PurePosixPath:
        """Where the file named after ``name`` (a row id, or a group) goes, relative to DIR."""
        folder = LJSPEECH_AUDIO_DIR if self.metadata == "ljspeech" else AUDIO_DIR
        voice_folder = voice if self.voices else None
        return relative_audio_path(
            name, extension, folder=folder, voice=voice_folder, shard_levels=self.shard_dirs
        )


@dataclass(slots=True)
class Synthesized:
    """One file through the throttle and the retry loop: what its last attempt left."""

    request_id: str | None
    attempts: int
    outcome: AttemptOutcome | None
    sink: SinkResult | None
    error: AttemptError | None

    @property
    def ok(self) -> bool:
        return self.error is None and self.sink is not None


class AssemblyHost(Protocol):
    """What the runner lends the assembly."""

    summary: Any

    def stopping(self) -> bool: ...

    async def synthesize_file(self, request: TtsRequest, key: str, path: Path, file_format: str) -> Synthesized: ...

    def append_result(self, result: RowResult) -> None: ...

    def redact(self, text: str) -> str: ...


@dataclass(slots=True)
class _Part:
    """One request's audio: fresh from the server, or found in the part store."""

    fingerprint: str | None  # None for a row written straight to its file
    request_id: str | None = None
    server_request_id: str | None = None
    attempts: int = 0
    http_status: int | None = None
    ttfb_ms: float | None = None
    audio_bytes: int | None = None
    error: str | None = None
    cached: bool = False


@dataclass(slots=True)
class _RowWork:
    """A (row, voice) whose parts are done (or failed), waiting to be recorded."""

    planned: PlannedRow
    request: TtsRequest
    variant: int | None
    parts: list[_Part]
    started_at: str
    wall_ms: float
    order_value: Any = None
    title: str | None = None

    @property
    def error(self) -> str | None:
        return next((part.error for part in self.parts if part.error), None)


@dataclass(slots=True)
class _Group:
    name: str
    voice: str | None
    variant: int | None
    rows: list[_RowWork] = field(default_factory=list)
    #: (row id, reason) of the first row that failed: the group gets no file.
    broken: tuple[str, str] | None = None
    done: bool = False


class Assembly:
    def __init__(
        self,
        shape: ShapeOptions,
        host: AssemblyHost,
        *,
        out_dir: Path,
        file_format: str,
        concurrency: int,
    ) -> None:
        self.shape = shape
        self.host = host
        self._out_dir = Path(out_dir).resolve()
        self._file_format = file_format
        self._concurrency = max(1, concurrency)
        self._store = PartStore(resolve_inside(self._out_dir, PARTS_DIR))
        self._groups: dict[tuple[str, int | None], _Group] = {}
        self._users: Counter[str] = Counter()  # parts in use by unfinished rows or groups
        self._pinned: set[str] = set()  # parts of failed rows or groups: kept for the rerun
        self._id_column: str | None = None
        self._text_column = "text"

    # --- before any request -------------------------------------------------

    def check_columns(self, manifest: Manifest) -> None:
        """Refuse a job whose --group-by, --order-by or --title-column names no column."""
        self._id_column, self._text_column = manifest.id_column, manifest.text_column
        found = ", ".join(repr(c) for c in manifest.columns)
        for option, column in (
            ("--group-by", self.shape.group_by),
            ("--order-by", self.shape.order_by),
            ("--title-column", self.shape.title_column),
        ):
            if column is not None and column not in manifest.columns:
                raise ManifestError(f"{manifest.path}: no column {column!r} for {option}; columns found: {found}")
        if self.shape.voices and "voice_id" in manifest.columns:
            log.warning("--voices: the manifest's voice_id column is ignored; every row is made in every voice")

    # --- producer side --------------------------------------------------------

    def items(self, planned: PlannedRow) -> list[tuple[int | None, str | None, PlannedRow, str | None]]:
        """(variant, voice, item, why it is bad or None) for each (row, voice) the runner handles.

        The runner records the bad ones (:meth:`record_bad`), keeps earlier
        results that stand (:mod:`batchtts.ledger.resume`) and queues the rest for
        :meth:`synthesize`.
        """
        if self.shape.voices:
            items = fan_out(planned, self.shape.voices)
        else:
            voice = planned.request.voice_id if planned.request else None
            items = [(None, voice, planned)]
        return [(variant, voice, item, item.error or self._problem(item)) for variant, voice, item in items]

    # --- what resume (batchtts.ledger.resume) needs to know ------------------------------

    def group_key(self, row: Row, variant: int | None) -> tuple[str, int | None] | None:
        """The ``--group-by`` group of a row (per fan-out variant); None without --group-by or an empty cell."""
        if self.shape.group_by is None:
            return None
        cell = self._cell(row, self.shape.group_by)
        return None if _is_empty(cell) else (_cell_text(cell), variant)

    def row_fingerprint(self, row: Row, request: TtsRequest) -> str:
        """What shapes this row's file: its request, the file format, how texts are split and joined,
        and in a group, its id, order and title (they shape the group's file and chapters)."""
        extra: dict[str, Any] = {}
        if self.shape.joins:
            extra.update(max_chars=self.shape.max_chars, join_gap_ms=self.shape.join_gap_ms)
        if self.shape.group_by is not None:
            extra["id"] = row.id
            for name, column in (("order", self.shape.order_by), ("title", self.shape.title_column)):
                value = self._cell(row, column) if column is not None else None
                extra[name] = None if _is_empty(value) else _cell_text(value)
        return row_fingerprint(request, self._file_format, extra)

    def expected_path(self, row: Row, request: TtsRequest, voice: str | None) -> str:
        """Where this run writes the row's file (its group's, with --group-by), relative to DIR."""
        group = self.group_key(row, None)
        name = group[0] if group is not None else row.id
        return self._final_path(name, request, voice).relative_to(self._out_dir).as_posix()

    def _problem(self, planned: PlannedRow) -> str | None:
        """Why a valid request still cannot be made into this job's files."""
        assert planned.request is not None
        if self.shape.joins and planned.request.output_format not in JOINABLE_FORMATS:
            return (
                f"output_format: {planned.request.output_format!r} cannot be joined; "
                f"--max-chars and --group-by need {' or '.join(JOINABLE_FORMATS)}"
            )
        for option, column in (("--group-by", self.shape.group_by), ("--order-by", self.shape.order_by)):
            if column is not None and _is_empty(self._cell(planned.row, column)):
                return f"{option}: the {column!r} cell is empty"
        return None

    # --- worker side ------------------------------------------------------------

    async def synthesize(self, planned: PlannedRow) -> None:
        """Make one (row, voice): its file, or its parts for its group."""
        request = planned.request
        assert request is not None
        row = planned.row
        variant = self.shape.voices.index(request.voice_id) if self.shape.voices else None
        voice = request.voice_id if self.shape.voices else None
        texts = self._texts(request.text)
        started_at, clock = utc_now_iso(), time.monotonic()
        if self.shape.group_by is None and len(texts) == 1:
            await self._synthesize_direct(planned, request, variant, voice, started_at, clock)
            return
        parts = await self._synthesize_parts(row, request, texts, voice)
        work = _RowWork(planned, request, variant, parts, started_at, (time.monotonic() - clock) * 1000.0)
        if self.shape.group_by is not None:
            self._hold_for_group(work, voice)
        else:
            await self._join_row(work, voice)

    def _texts(self, text: str) -> list[str]:
        max_chars = self.shape.max_chars
        if max_chars is None or len(text) <= max_chars:
            return [text]
        return split_text(text, max_chars) or [text]

    async def _synthesize_direct(
        self,
        planned: PlannedRow,
        request: TtsRequest,
        variant: int | None,
        voice: str | None,
        started_at: str,
        clock: float,
    ) -> None:
        """A row of one part: straight into its file, as the plain runner would."""
        row = planned.row
        final = self._final_path(row.id, request, voice)
        done = await self.host.synthesize_file(request, request_key(row.id, voice=voice), final, self._file_format)
        part = _part_from(done, None, self.host.redact)
        work = _RowWork(planned, request, variant, [part], started_at, (time.monotonic() - clock) * 1000.0)
        if done.ok and done.sink is not None:
            self._record(work, path=final, audio_seconds=done.sink.audio_seconds, sample_rate=done.sink.sample_rate)
        else:
            self._record(work, error=part.error)

    async def _synthesize_parts(
        self, row: Row, request: TtsRequest, texts: list[str], voice: str | None
    ) -> list[_Part]:
        """Every part of a text, concurrently (at most --concurrency at a time per row)."""
        results: list[_Part | None] = [None] * len(texts)
        pending = iter(range(len(texts)))

        async def worker() -> None:
            for index in pending:
                results[index] = await self._synthesize_part(row, request, texts, index, voice)

        async with anyio.create_task_group() as group:
            for _ in range(min(len(texts), self._concurrency)):
                group.start_soon(worker)
        done = [part for part in results if part is not None]
        if len(done) != len(texts):  # pragma: no cover - the task group would have raised
            raise RuntimeError("a part was never synthesized")
        return done

    async def _synthesize_part(
        self, row: Row, request: TtsRequest, texts: list[str], index: int, voice: str | None
    ) -> _Part:
        part_request = replace(request, text=texts[index])
        fingerprint = request_fingerprint(part_request)
        self._users[fingerprint] += 1
        stored = self._store.find(fingerprint)
        if stored is not None:
            return _Part(
                fingerprint,
                request_id=stored.request_id,
                server_request_id=stored.server_request_id,
                audio_bytes=stored.audio_bytes,
                cached=True,
            )
        key = request_key(row.id, voice=voice, part=index + 1 if len(texts) > 1 else None)
        done = await self.host.synthesize_file(part_request, key, self._store.audio_path(fingerprint), "wav")
        part = _part_from(done, fingerprint, self.host.redact)
        if part.error is not None and len(texts) > 1:
            part.error = f"part {index + 1}/{len(texts)}: {part.error}"
        if done.ok:
            info = PartInfo(done.request_id, part.server_request_id, part.audio_bytes)
            await anyio.to_thread.run_sync(self._store.save_info, fingerprint, info)
        return part

    async def _join_row(self, work: _RowWork, voice: str | None) -> None:
        """A split row: its parts, joined in order, become its file."""
        row = work.planned.row
        fingerprints = _fingerprints(work)
        if work.error is not None:
            self._release(fingerprints, ok=False)
            self._record(work, error=work.error)
            return
        final = self._final_path(row.id, work.request, voice)
        try:
            joined = await self._join([self._store.audio_path(fp) for fp in fingerprints], final)
        except (JoinError, OSError) as exc:
            self._release(fingerprints, ok=False)
            self._record(work, error=f"cannot join the parts: {exc}")
            return
        self._release(fingerprints, ok=True)
        self._record(work, path=final, audio_seconds=joined.sink.audio_seconds, sample_rate=joined.sample_rate)

    async def _join(self, sources: list[Path], final: Path) -> Joined:
        return await anyio.to_thread.run_sync(
            lambda: join_files(sources, final, file_format=self._file_format, gap_ms=self.shape.join_gap_ms)
        )

    # --- groups -------------------------------------------------------------------

    def _group_for(self, row: Row, variant: int | None, voice: str | None) -> _Group:
        assert self.shape.group_by is not None
        name = _cell_text(self._cell(row, self.shape.group_by))
        key = (name, variant)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(name, voice, variant)
        return group

    def _hold_for_group(self, work: _RowWork, voice: str | None) -> None:
        row = work.planned.row
        group = self._group_for(row, work.variant, voice)
        if work.error is not None:
            group.broken = group.broken or (row.id, work.error)
            self._release(_fingerprints(work), ok=False)
            self._record(work, error=work.error)
            return
        if self.shape.order_by is not None:
            work.order_value = self._cell(row, self.shape.order_by)
        if self.shape.title_column is not None:
            title = self._cell(row, self.shape.title_column)
            work.title = None if _is_empty(title) else _cell_text(title)
        group.rows.append(work)

    async def finish(self) -> None:
        """Write every group's file (all rows are done); a no-op without --group-by."""
        numeric = self._order_is_numeric()
        for group in self._groups.values():
            if self.host.stopping():
                return
            await self._finish_group(group, numeric)
        await anyio.to_thread.run_sync(self._store.prune_empty_folders)

    async def _finish_group(self, group: _Group, numeric: bool) -> None:
        group.done = True
        rows = sorted(group.rows, key=lambda work: _order_key(work, numeric))
        fingerprints = [fp for work in rows for fp in _fingerprints(work)]
        if group.broken is not None:
            failed_id, _reason = group.broken
            self._release(fingerprints, ok=False)
            for work in rows:
                self._record(work, error=f"group {group.name!r} not written: row {failed_id!r} failed")
            return
        if not rows:
            return
        request = rows[0].request
        final = self._final_path(group.name, request, group.voice)
        try:
            joined = await self._join([self._store.audio_path(fp) for fp in fingerprints], final)
            spans = _row_spans(rows, joined.spans)
            titles = [work.title or work.planned.row.id for work in rows]
            chapters = chapters_from_spans(titles, spans, joined.sample_rate)
            chapters_path = final.with_suffix(f".{CHAPTERS_EXTENSION}")
            await anyio.to_thread.run_sync(lambda: write_ffmetadata(chapters_path, chapters, title=group.name))
        except (JoinError, OSError) as exc:
            self._release(fingerprints, ok=False)
            for work in rows:
                self._record(work, error=f"group {group.name!r} not written: cannot join: {exc}")
            return
        self._release(fingerprints, ok=True)
        in_manifest_order = sorted(rows, key=lambda work: work.planned.row.number)
        whole = group_fingerprint(self.row_fingerprint(w.planned.row, w.request) for w in in_manifest_order)
        for work, (start, end) in zip(rows, spans, strict=True):
            self._record(
                work,
                path=final,
                audio_seconds=(end - start) / joined.sample_rate,
                sample_rate=joined.sample_rate,
                group_fingerprint=whole,
            )

    def record_unfinished(self) -> None:
        """Record the rows of groups never written (the job was stopped); their parts stay."""
        for group in self._groups.values():
            if group.done:
                continue
            group.done = True
            for work in group.rows:
                self._record(work, error=f"group {group.name!r} not written: the job stopped first")

    def _order_is_numeric(self) -> bool:
        """Numeric order when every --order-by value is a number (so 2 comes before 10)."""
        if self.shape.order_by is None:
            return False
        return all(_as_number(work.order_value) is not None for g in self._groups.values() for work in g.rows)

    # --- files, parts, results ------------------------------------------------------

    def _final_path(self, name: str, request: TtsRequest, voice: str | None) -> Path:
        output_format = "pcm" if self.shape.joins else request.output_format
        extension = AudioSink.extension_for(output_format, self._file_format)
        return resolve_inside(self._out_dir, self.shape.audio_path(name, extension, voice))

    def _release(self, fingerprints: Sequence[str], *, ok: bool) -> None:
        """A row or group is finished with its parts: drop them once nothing else needs them."""
        for fingerprint in fingerprints:
            self._users[fingerprint] -= 1
            if not ok:
                self._pinned.add(fingerprint)
            if self._users[fingerprint] <= 0:
                del self._users[fingerprint]
                if ok and not self.shape.keep_parts and fingerprint not in self._pinned:
                    self._store.remove(fingerprint)

    def _cell(self, row: Row, column: str) -> Any:
        if column == self._id_column:
            return row.id
        if column == self._text_column:
            return row.text
        if column in row.fields:
            return row.fields[column]
        return row.carried.get(column)

    def record_bad(self, planned: PlannedRow, variant: int | None, voice: str | None, reason: str) -> None:
        """A (row, voice) that cannot be made: failed without a request (its group fails too)."""
        row = planned.row
        if voice is None:
            cell = row.fields.get("voice_id")
            voice = cell if isinstance(cell, str) else None
        if self.shape.group_by is not None and not _is_empty(self._cell(row, self.shape.group_by)):
            group = self._group_for(row, variant, voice)
            group.broken = group.broken or (row.id, reason)
        now = utc_now_iso()
        self.host.append_result(
            RowResult(
                id=row.id,
                row=row.number,
                status="failed",
                attempts=0,
                error=reason,
                voice_id=voice,
                started_at=now,
                finished_at=now,
                carried=row.carried,
                extra=self._extra(variant, None),
            )
        )

    def _extra(self, variant: int | None, parts: list[_Part] | None) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.shape.max_chars:
            extra["parts"] = len(parts) if parts is not None else None
            extra["part_request_ids"] = [part.request_id for part in parts] if parts is not None else None
        if variant is not None:
            extra[VARIANT_KEY] = variant
        return extra

    def _record(
        self,
        work: _RowWork,
        *,
        path: Path | None = None,
        error: str | None = None,
        audio_seconds: float | None = None,
        sample_rate: int | None = None,
        group_fingerprint: str | None = None,
    ) -> None:
        row, request, parts = work.planned.row, work.request, work.parts
        ok = error is None and path is not None
        failing = next((part for part in parts if part.error), None)
        lead = failing or parts[0]
        answered = [part for part in parts if not part.cached and part.http_status is not None]
        http_status = failing.http_status if failing else (answered[-1].http_status if answered else None)
        byte_counts = [part.audio_bytes for part in parts]
        result = RowResult(
            id=row.id,
            row=row.number,
            status="ok" if ok else "failed",
            path=path.relative_to(self._out_dir).as_posix() if ok and path is not None else None,
            request_id=lead.request_id,
            server_request_id=lead.server_request_id,
            attempts=sum(part.attempts for part in parts),
            http_status=http_status,
            error=None if ok else error,
            ttfb_ms=parts[0].ttfb_ms,
            total_ms=work.wall_ms,
            audio_seconds=audio_seconds if ok else None,
            audio_bytes=sum(b for b in byte_counts if b) if ok and None not in byte_counts else None,
            sample_rate=sample_rate if ok and sample_rate else request.sample_rate,
            output_format=request.output_format,
            voice_id=request.voice_id,
            started_at=work.started_at,
            finished_at=utc_now_iso(),
            carried=row.carried,
            extra=self._extra(work.variant, parts),
        )
        # For reruns (batchtts.ledger.resume): what made the file, and the file as written.
        result.extra["fingerprint"] = self.row_fingerprint(row, request)
        if ok and path is not None:
            result.extra.update(file_stamp(path) or {})
            if group_fingerprint is not None:
                result.extra["group_fingerprint"] = group_fingerprint
        if ok and audio_seconds:
            self.host.summary.audio_seconds += audio_seconds
        self.host.append_result(result)


def _part_from(done: Synthesized, fingerprint: str | None, redact: Any) -> _Part:
    outcome, error = done.outcome, done.error
    return _Part(
        fingerprint,
        request_id=done.request_id,
        server_request_id=outcome.server_request_id if outcome else (error.server_request_id if error else None),
        attempts=done.attempts,
        http_status=outcome.http_status if outcome else (error.http_status if error else None),
        ttfb_ms=outcome.ttfb_ms if outcome else None,
        audio_bytes=done.sink.audio_bytes if done.sink else None,
        error=None if done.ok else redact(error.message if error else "cancelled"),
    )


def _fingerprints(work: _RowWork) -> list[str]:
    return [part.fingerprint for part in work.parts if part.fingerprint is not None]


def _row_spans(rows: list[_RowWork], part_spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Each row's (first, end) frame in the group's file, from its parts' spans."""
    spans = []
    position = 0
    for work in rows:
        count = len(_fingerprints(work))
        first, last = part_spans[position], part_spans[position + count - 1]
        spans.append((first[0], last[1]))
        position += count
    return spans


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _cell_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _order_key(work: _RowWork, numeric: bool) -> tuple[Any, ...]:
    """--order-by value (as a number when the column is numeric), then manifest order."""
    number = work.planned.row.number
    if work.order_value is None:
        return (0, number)
    if numeric:
        return (_as_number(work.order_value), number)
    return (_cell_text(work.order_value), number)


__all__ = ["JOINABLE_FORMATS", "Assembly", "AssemblyHost", "ShapeOptions", "Synthesized"]
