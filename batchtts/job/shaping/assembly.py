"""From work items to files: one file per row, or parts joined, or rows joined into chapters.

Every item of a job comes here from the runner's workers; every request still
goes through :class:`~batchtts.job.attempts.Attempts` (one throttle, one retry
policy) and every result through :class:`~batchtts.job.recorder.Recorder`.

- A plain row (or a (row, voice) of ``--voices a,b``, :mod:`~batchtts.job.shaping.fanout`):
  straight into its own file; the worker goes on while the file is committed.
- ``--max-chars N``: a longer text is split (:func:`~batchtts.job.shaping.textsplit.split_text`);
  its parts are synthesized concurrently into the part store
  (:mod:`~batchtts.job.shaping.parts`), then joined in order into the row's one file
  (:mod:`batchtts.audio.join`), ``--join-gap-ms`` of silence between them.
- ``--group-by COL``: every row's audio goes to the part store; when all rows
  are done, each group's rows are joined in ``--order-by`` order into one
  file named after the group, with a chapters file beside it
  (:mod:`~batchtts.job.shaping.chapters`). A failed row fails its whole group: no file
  with holes. Rows of a group are recorded when the group is written (or fails),
  with the group's file as their ``path``.

Parts are deleted once the file they went into is written (``--keep-parts``
keeps them), and kept when it fails, so a rerun sends only the parts that
failed. Memory: a few hundred bytes per row of an unfinished group (its
result is written only when the group is), nothing per finished plain row.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio

from batchtts.api.request import TtsRequest
from batchtts.audio import AudioSink, Joined, JoinError, join_files
from batchtts.errors import UsageError
from batchtts.job.attempts import Attempts, Synthesized
from batchtts.job.items import WorkItem
from batchtts.job.recorder import Recorder
from batchtts.job.shaping.cells import cell, cell_text, is_empty
from batchtts.job.shaping.chapters import EXTENSION as CHAPTERS_EXTENSION
from batchtts.job.shaping.chapters import chapters_from_spans, loudness_notes, write_ffmetadata
from batchtts.job.shaping.fanout import fan_out, request_key
from batchtts.job.shaping.groups import Group, GroupKey, order_is_numeric, order_key, row_spans
from batchtts.job.shaping.options import JOINABLE_FORMATS, ShapeOptions
from batchtts.job.shaping.parts import PARTS_DIR, PartInfo, PartStore, request_fingerprint
from batchtts.job.shaping.textsplit import split_text
from batchtts.job.shaping.work import Made, Part, RowWork, made_result, result_extra
from batchtts.job.stopping import StopControl
from batchtts.ledger import group_fingerprint, row_fingerprint, utc_now_iso
from batchtts.manifest.planner import PlannedRow
from batchtts.manifest.readers import Manifest, Row
from batchtts.storage import resolve_inside

log = logging.getLogger("batchtts")
#: Distinct unknown voices warned about (each row says so in its results either way).
_UNKNOWN_VOICES_LOGGED = 20


class Assembly:
    """Makes every work item of one job into its file (or its group's) and records it."""

    def __init__(
        self,
        shape: ShapeOptions,
        manifest: Manifest,
        *,
        out_dir: Path,
        file_format: str,
        concurrency: int,
        defaults: Mapping[str, Any],
        attempts: Attempts,
        recorder: Recorder,
        stops: StopControl,
        redact: Callable[[str], str],
        voices: frozenset[str] | None = None,
    ) -> None:
        if shape.loudness is not None:
            _require_loudness()
        self.shape = shape
        #: The account's voice catalog (None: not checked; see :meth:`unknown_voice`).
        self._voices = voices
        self._unknown_voices: set[str] = set()
        self._out_dir = Path(out_dir).resolve()
        self._file_format = file_format
        self._concurrency = max(1, concurrency)
        self._default_voice = defaults.get("voice_id")
        self._id_column, self._text_column = manifest.id_column, manifest.text_column
        self._attempts = attempts
        self._recorder = recorder
        self._stops = stops
        self._redact = redact
        self._store = PartStore(resolve_inside(self._out_dir, PARTS_DIR))
        self._groups: dict[GroupKey, Group] = {}
        self._users: Counter[str] = Counter()  # parts in use by unfinished rows or groups
        self._pinned: set[str] = set()  # parts of failed rows or groups: kept for the rerun

    # --- producer side ------------------------------------------------------------

    def items(self, planned: PlannedRow) -> list[WorkItem]:
        """The items a planned row makes: itself, or one per ``--voices`` voice; each with its problem."""
        fanned: list[tuple[int | None, str | None, PlannedRow]]
        if self.shape.voices:
            fanned = [*fan_out(planned, self.shape.voices)]
        else:
            fanned = [(None, planned.request.voice_id if planned.request else None, planned)]
        return [
            WorkItem(item, variant, voice if self.shape.voices else None, item.error or self._problem(item))
            for variant, voice, item in fanned
        ]

    def _problem(self, planned: PlannedRow) -> str | None:
        """Why a valid request still cannot be made into this job's files."""
        assert planned.request is not None
        if self.shape.joins and planned.request.output_format not in JOINABLE_FORMATS:
            return (
                f"output_format: {planned.request.output_format!r} cannot be joined; "
                f"--max-chars and --group-by need {' or '.join(JOINABLE_FORMATS)}"
            )
        for option, column in (("--group-by", self.shape.group_by), ("--order-by", self.shape.order_by)):
            if column is not None and is_empty(self._cell(planned.row, column)):
                return f"{option}: the {column!r} cell is empty"
        return None

    def unknown_voice(self, item: WorkItem) -> str | None:
        """Why an item cannot be sent when its voice is not in the account's catalog (None: it is, or unchecked).

        Asked for the items that need a request (after an earlier result that
        stands has been kept): the row fails with no request, as a bad row.
        """
        voice = item.request.voice_id
        if self._voices is None or voice in self._voices:
            return None
        if voice not in self._unknown_voices and len(self._unknown_voices) < _UNKNOWN_VOICES_LOGGED:
            log.warning("voice %r is not in the account's voice catalog: its rows fail without a request", voice)
            self._unknown_voices.add(voice)
        return f"voice_id: unknown voice {voice!r} (not in the account's voice catalog)"

    def record_bad(self, item: WorkItem, reason: str) -> None:
        """An item that cannot be made: failed without a request (its group fails too)."""
        row = item.row
        voice = item.voice or _text(row.fields.get("voice_id")) or _text(self._default_voice)
        group = self.group_key(row, item.variant)
        if group is not None:
            self._group_for(group, voice).break_on(row.id, reason)
        self._recorder.record_bad(
            item, reason, voice=voice, extra=result_extra(item.variant, None, split=bool(self.shape.max_chars))
        )

    # --- what resume (batchtts.ledger.resume) needs to know ---------------------------

    def group_key(self, row: Row, variant: int | None) -> GroupKey | None:
        """The ``--group-by`` group of a row (per fan-out variant); None without --group-by or an empty cell."""
        if self.shape.group_by is None:
            return None
        value = self._cell(row, self.shape.group_by)
        return None if is_empty(value) else (cell_text(value), variant)

    def row_fingerprint(self, row: Row, request: TtsRequest) -> str:
        """What shapes this row's file: its request, the file format, how texts are split and joined,
        and in a group, its id, order and title (they shape the group's file and chapters)."""
        extra: dict[str, Any] = {}
        if self.shape.joins:
            extra.update(max_chars=self.shape.max_chars, join_gap_ms=self.shape.join_gap_ms)
            extra.update(self.shape.file_options())
        if self.shape.group_by is not None:
            extra["id"] = row.id
            for name, column in (("order", self.shape.order_by), ("title", self.shape.title_column)):
                value = self._cell(row, column) if column is not None else None
                extra[name] = None if is_empty(value) else cell_text(value)
        return row_fingerprint(request, self._file_format, extra or None)

    def expected_path(self, item: WorkItem) -> str:
        """Where this run writes the item's file (its group's, with --group-by), relative to DIR."""
        group = self.group_key(item.row, None)
        name = group[0] if group is not None else item.row.id
        return self._final_path(name, item.request, item.voice).relative_to(self._out_dir).as_posix()

    # --- worker side ----------------------------------------------------------------

    async def make(self, item: WorkItem) -> None:
        """Make one item: its file, or its parts for its group."""
        request, row, voice = item.request, item.row, item.voice
        texts = self._texts(request.text)
        started_at, clock = utc_now_iso(), time.monotonic()
        if self.shape.group_by is None and len(texts) == 1 and not self.shape.finishes_files:
            final = self._final_path(row.id, request, voice)

            def landed(done: Synthesized) -> None:
                work = RowWork(item, request, [Part.of(done, None, self._redact)], started_at, None)
                if done.ok and done.sink is not None:
                    self._record(work, Made(final, audio_seconds=done.sink.audio_seconds,
                                            sample_rate=done.sink.sample_rate))  # fmt: skip
                else:
                    self._record(work, Made(error=work.error))

            key = request_key(row.id, voice=voice)
            await self._attempts.submit_file(request, key, final, self._file_format, landed)
            return
        parts = await self._make_parts(row, request, texts, voice)
        work = RowWork(item, request, parts, started_at, (time.monotonic() - clock) * 1000.0)
        if self.shape.group_by is not None:
            self._hold_for_group(work)
        else:
            await self._join_row(work)

    def _texts(self, text: str) -> list[str]:
        max_chars = self.shape.max_chars
        if max_chars is None or len(text) <= max_chars:
            return [text]
        return split_text(text, max_chars) or [text]

    async def _make_parts(self, row: Row, request: TtsRequest, texts: list[str], voice: str | None) -> list[Part]:
        """Every part of a text, concurrently (at most --concurrency at a time per row)."""
        results: list[Part | None] = [None] * len(texts)
        pending = iter(range(len(texts)))

        async def worker() -> None:
            for index in pending:
                results[index] = await self._make_part(row, request, texts, index, voice)

        async with anyio.create_task_group() as group:
            for _ in range(min(len(texts), self._concurrency)):
                group.start_soon(worker)
        done = [part for part in results if part is not None]
        if len(done) != len(texts):  # pragma: no cover - the task group would have raised
            raise RuntimeError("a part was never synthesized")
        return done

    async def _make_part(self, row: Row, request: TtsRequest, texts: list[str], index: int, voice: str | None) -> Part:
        part_request = replace(request, text=texts[index])
        fingerprint = request_fingerprint(part_request)
        self._users[fingerprint] += 1
        stored = self._store.find(fingerprint)
        if stored is not None:
            return Part(
                fingerprint,
                request_id=stored.request_id,
                server_request_id=stored.server_request_id,
                server_session_id=stored.server_session_id,
                content_expiry=stored.content_expiry,
                audio_bytes=stored.audio_bytes,
                cached=True,
            )
        key = request_key(row.id, voice=voice, part=index + 1 if len(texts) > 1 else None)
        done = await self._attempts.make_file(part_request, key, self._store.audio_path(fingerprint), "wav")
        part = Part.of(done, fingerprint, self._redact)
        if part.error is not None and len(texts) > 1:
            part.error = f"part {index + 1}/{len(texts)}: {part.error}"
        if done.ok:
            info = PartInfo(
                done.request_id, part.server_request_id, part.audio_bytes, part.server_session_id, part.content_expiry
            )
            await anyio.to_thread.run_sync(self._store.save_info, fingerprint, info)
        return part

    async def _join_row(self, work: RowWork) -> None:
        """A split row: its parts, joined in order, become its file."""
        fingerprints = work.fingerprints
        if work.error is not None:
            self._release(fingerprints, ok=False)
            self._record(work, Made(error=work.error))
            return
        final = self._final_path(work.item.row.id, work.request, work.item.voice)
        try:
            joined, figures = await self._join([self._store.audio_path(fp) for fp in fingerprints], final)
        except (JoinError, OSError) as exc:
            self._release(fingerprints, ok=False)
            self._record(work, Made(error=f"cannot join the parts: {exc}"))
            return
        self._release(fingerprints, ok=True)
        made = Made(final, audio_seconds=joined.sink.audio_seconds, sample_rate=joined.sample_rate, loudness=figures)
        self._record(work, made)

    async def _join(self, sources: list[Path], final: Path) -> tuple[Joined, dict[str, Any] | None]:
        """Join ``sources`` into ``final``: with ``--loudness``, normalised as it is written (once)."""
        shape = self.shape
        room_tone = shape.room_tone or (0.0, 0.0)
        if shape.loudness is None:
            joined = await anyio.to_thread.run_sync(
                lambda: join_files(
                    sources, final, file_format=self._file_format, gap_ms=shape.join_gap_ms, room_tone=room_tone
                )
            )
            return joined, None
        from batchtts.audio.loudness import MAX_LIMITING_DB, normalise_join

        target, ceiling = shape.loudness, shape.peak
        joined, figures = await anyio.to_thread.run_sync(
            lambda: normalise_join(
                sources,
                final,
                target_lufs=target,
                ceiling_dbtp=ceiling,
                file_format=self._file_format,
                gap_ms=shape.join_gap_ms,
                room_tone=room_tone,
                limiter=shape.limiter,
            )
        )
        if figures.limited_by_peak:
            log.warning(
                "%s: %s LUFS, not %s: the gain was reduced to keep the true peak at %s dBTP%s",
                final.name,
                figures.after_lufs,
                target,
                ceiling,
                f" (the limiter takes at most {MAX_LIMITING_DB:g} dB off a peak)" if shape.limiter else "",
            )
        return joined, figures.to_dict()

    # --- groups -----------------------------------------------------------------------

    def _group_for(self, key: GroupKey, voice: str | None) -> Group:
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = Group(key[0], voice, key[1])
        return group

    def _hold_for_group(self, work: RowWork) -> None:
        row, voice = work.item.row, work.item.voice
        key = self.group_key(row, work.item.variant)
        assert key is not None  # an empty group cell is the item's problem: it never gets here
        group = self._group_for(key, voice)
        if work.error is not None:
            group.break_on(row.id, work.error)
            self._release(work.fingerprints, ok=False)
            self._record(work, Made(error=work.error))
            return
        if self.shape.order_by is not None:
            work.order_value = self._cell(row, self.shape.order_by)
        if self.shape.title_column is not None:
            title = self._cell(row, self.shape.title_column)
            work.title = None if is_empty(title) else cell_text(title)
        group.rows.append(work)

    async def finish(self) -> None:
        """Write every group's file (all rows are done); a no-op without --group-by."""
        if self.shape.group_by is None:
            return
        numeric = self.shape.order_by is not None and order_is_numeric(list(self._groups.values()))
        for group in self._groups.values():
            if self._stops.stopping:
                return
            await self._finish_group(group, numeric)
        await anyio.to_thread.run_sync(self._store.prune_empty_folders)

    async def _finish_group(self, group: Group, numeric: bool) -> None:
        group.done = True
        rows = sorted(group.rows, key=lambda work: order_key(work, numeric))
        fingerprints = [fp for work in rows for fp in work.fingerprints]
        if group.broken is not None:
            failed_id, _reason = group.broken
            self._release(fingerprints, ok=False)
            for work in rows:
                self._record(work, Made(error=f"group {group.name!r} not written: row {failed_id!r} failed"))
            return
        if not rows:
            return
        final = self._final_path(group.name, rows[0].request, group.voice)
        try:
            joined, figures = await self._join([self._store.audio_path(fp) for fp in fingerprints], final)
            spans = row_spans(rows, joined.spans)
            titles = [work.title or work.item.row.id for work in rows]
            chapters = chapters_from_spans(titles, spans, joined.sample_rate)
            chapters_path = final.with_suffix(f".{CHAPTERS_EXTENSION}")
            notes = loudness_notes(figures) if figures is not None else ()
            await anyio.to_thread.run_sync(
                lambda: write_ffmetadata(chapters_path, chapters, title=group.name, notes=notes)
            )
        except (JoinError, OSError) as exc:
            self._release(fingerprints, ok=False)
            for work in rows:
                self._record(work, Made(error=f"group {group.name!r} not written: cannot join: {exc}"))
            return
        self._release(fingerprints, ok=True)
        self._recorder.group_written()
        in_manifest_order = sorted(rows, key=lambda work: work.item.row.number)
        whole = group_fingerprint(self.row_fingerprint(w.item.row, w.request) for w in in_manifest_order)
        for work, (start, end) in zip(rows, spans, strict=True):
            seconds = (end - start) / joined.sample_rate
            made = Made(final, None, seconds, joined.sample_rate, group_fingerprint=whole, loudness=figures)
            self._record(work, made)

    def record_unfinished(self) -> None:
        """Record the rows of groups never written (the job was stopped); their parts stay."""
        for group in self._groups.values():
            if group.done:
                continue
            group.done = True
            for work in group.rows:
                self._record(work, Made(error=f"group {group.name!r} not written: the job stopped first"))

    # --- files, parts, results ----------------------------------------------------------

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
        return cell(row, column, id_column=self._id_column, text_column=self._text_column)

    def _record(self, work: RowWork, made: Made) -> None:
        fingerprint = self.row_fingerprint(work.item.row, work.request)
        split = bool(self.shape.max_chars)
        self._recorder.record(made_result(work, made, out_dir=self._out_dir, fingerprint=fingerprint, split=split))


def _require_loudness() -> None:
    """--loudness without pyloudnorm and scipy: a usage error naming the install, before any request."""
    from batchtts.audio.loudness import MissingExtra, require_book_extra

    try:
        require_book_extra("loudness")
    except MissingExtra as exc:
        raise UsageError(str(exc)) from None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
