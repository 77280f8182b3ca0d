"""A work item on its way to a result: its parts (one per request), then one :class:`RowResult`.

Every made item's result is built by :func:`made_result`, whether its file is
its own (a plain row, a fan-out voice), joined from its parts (a split text) or
a span of its group's file (a chapter).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchtts.api.request import TtsRequest
from batchtts.job.attempts import Synthesized
from batchtts.job.items import WorkItem
from batchtts.job.qa import QaCheck, combine
from batchtts.ledger import LOUDNESS_KEY, VARIANT_KEY, RowResult, file_stamp, utc_now_iso
from batchtts.outcomes import RowStatus


@dataclass(slots=True)
class Part:
    """One request's audio: fresh from the server, or found in the part store."""

    fingerprint: str | None  # None for an item written straight to its file
    request_id: str | None = None
    server_request_id: str | None = None
    server_session_id: str | None = None
    content_expiry: str | None = None
    attempts: int = 0
    http_status: int | None = None
    ttfb_ms: float | None = None
    total_ms: float | None = None
    audio_bytes: int | None = None
    error: str | None = None
    cached: bool = False
    finished_at: str | None = None
    rate_limited: int = 0  # answers 429 on the way
    #: The audio checks of its take (None: not checked, or found in the part store).
    qa: QaCheck | None = None

    @classmethod
    def of(cls, done: Synthesized, fingerprint: str | None, redact: Callable[[str], str]) -> Part:
        outcome, error = done.outcome, done.error
        return cls(
            fingerprint,
            request_id=done.request_id,
            server_request_id=outcome.server_request_id if outcome else (error.server_request_id if error else None),
            server_session_id=outcome.server_session_id if outcome else (error.server_session_id if error else None),
            content_expiry=outcome.content_expiry if outcome else None,
            attempts=done.attempts,
            http_status=outcome.http_status if outcome else (error.http_status if error else None),
            ttfb_ms=outcome.ttfb_ms if outcome else None,
            total_ms=outcome.total_ms if outcome else None,
            audio_bytes=done.sink.audio_bytes if done.sink else None,
            error=None if done.ok else redact(error.message if error else "cancelled"),
            finished_at=done.finished_at,
            rate_limited=done.rate_limited,
            qa=done.qa,
        )


@dataclass(slots=True)
class RowWork:
    """An item whose parts are done (or failed), waiting to be recorded."""

    item: WorkItem
    request: TtsRequest
    parts: list[Part]
    started_at: str
    #: Wall time from the item's start to its last part (split texts and chapters).
    wall_ms: float | None
    order_value: Any = None
    title: str | None = None

    @property
    def error(self) -> str | None:
        return next((part.error for part in self.parts if part.error), None)

    @property
    def fingerprints(self) -> list[str]:
        return [part.fingerprint for part in self.parts if part.fingerprint is not None]


@dataclass(slots=True)
class Made:
    """What became of an item's file: where it is (ok), or why there is none."""

    path: Path | None = None
    error: str | None = None
    audio_seconds: float | None = None
    sample_rate: int | None = None
    group_fingerprint: str | None = None
    #: ``--loudness``: what normalising the file did (:class:`batchtts.audio.loudness.LoudnessFigures`).
    loudness: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.path is not None


def result_extra(variant: int | None, parts: list[Part] | None, *, split: bool) -> dict[str, Any]:
    """The optional columns: ``parts`` and ``part_request_ids`` with ``--max-chars``, the fan-out variant."""
    extra: dict[str, Any] = {}
    if split:
        extra["parts"] = len(parts) if parts is not None else None
        extra["part_request_ids"] = [part.request_id for part in parts] if parts is not None else None
    if variant is not None:
        extra[VARIANT_KEY] = variant
    return extra


def made_result(work: RowWork, made: Made, *, out_dir: Path, fingerprint: str, split: bool) -> RowResult:
    """The result of a made item, ok or failed, with what a rerun needs to trust it (fingerprint, file stamp)."""
    row, request, parts = work.item.row, work.request, work.parts
    ok = made.ok
    failing = next((part for part in parts if part.error), None)
    lead = failing or parts[0]
    answered = [part for part in parts if not part.cached and part.http_status is not None]
    http_status = failing.http_status if failing else (answered[-1].http_status if answered else None)
    byte_counts = [part.audio_bytes for part in parts]
    direct = len(parts) == 1 and parts[0].fingerprint is None
    result = RowResult(
        id=row.id,
        row=row.number,
        status=RowStatus.OK if ok else RowStatus.FAILED,
        path=made.path.relative_to(out_dir).as_posix() if ok and made.path is not None else None,
        request_id=lead.request_id,
        server_request_id=lead.server_request_id,
        server_session_id=lead.server_session_id,
        attempts=sum(part.attempts for part in parts),
        http_status=http_status,
        error=None if ok else made.error,
        ttfb_ms=parts[0].ttfb_ms,
        # One request: its own time; several: the wall time from the first to the last.
        total_ms=parts[0].total_ms if direct else work.wall_ms,
        audio_seconds=made.audio_seconds if ok else None,
        audio_bytes=sum(b for b in byte_counts if b) if ok and None not in byte_counts else None,
        sample_rate=made.sample_rate if ok and made.sample_rate else request.sample_rate,
        output_format=request.output_format,
        voice_id=request.voice_id,
        started_at=work.started_at,
        # When its last attempt ended, for a file of its own; else when it was joined.
        finished_at=(parts[0].finished_at if direct else None) or utc_now_iso(),
        reused=False,
        # With --expire-content: what the answers said; several parts that disagree say each verdict once.
        content_expiry=_joined_expiry(parts),
        carried=row.carried,
        extra=result_extra(work.item.variant, parts, split=split),
    )
    _fill_qa(result, work, made)
    # For reruns (batchtts.ledger.resume): what made the file, and the file as written.
    result.extra["fingerprint"] = fingerprint
    rate_limited = sum(part.rate_limited for part in parts)
    if rate_limited:  # journal only, for the report (batchtts.report): the row was answered 429 on the way
        result.extra["rate_limited"] = rate_limited
    if ok and made.path is not None:
        result.extra.update(file_stamp(made.path) or {})
        if made.group_fingerprint is not None:
            result.extra["group_fingerprint"] = made.group_fingerprint
        if made.loudness is not None:
            result.extra[LOUDNESS_KEY] = made.loudness
    return result


def _fill_qa(result: RowResult, work: RowWork, made: Made) -> None:
    """The audio checks' columns: the take's own, or its parts' joined (all of them checked, or none)."""
    checks = [part.qa for part in work.parts if part.qa is not None]
    if not checks or len(checks) != len(work.parts):
        return
    seconds = made.audio_seconds if made.ok else sum(check.levels.seconds for check in checks)
    check = checks[0] if len(checks) == 1 else combine(checks, seconds, len(work.request.text.strip()))
    if check is not None:
        for name, value in check.columns().items():
            setattr(result, name, value)


def _joined_expiry(parts: list[Part]) -> str | None:
    """The parts' ``x-content-expiry`` verdicts: one value when they agree, else each once (``applied,unavailable``)."""
    verdicts = list(dict.fromkeys(part.content_expiry for part in parts if part.content_expiry))
    return ",".join(verdicts) or None
