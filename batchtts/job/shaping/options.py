"""How rows map to files: the options of ``--max-chars``, ``--group-by``, ``--voices`` and friends."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import PurePosixPath

from batchtts.errors import ManifestError, UsageError
from batchtts.ledger import OPTIONAL_COLUMNS
from batchtts.manifest.readers import Manifest
from batchtts.storage import AUDIO_DIR, LJSPEECH_AUDIO_DIR, relative_audio_path

log = logging.getLogger("batchtts")

#: ``output_format`` values whose audio can be joined (16-bit PCM).
JOINABLE_FORMATS: tuple[str, ...] = ("pcm", "wav")


@dataclass(frozen=True, slots=True)
class ShapeOptions:
    """How rows map to files: splitting, joining, fan-out, folders, dataset index."""

    max_chars: int | None = None
    #: Silence between joined parts and between the rows of a group. 0: the
    #: audio is exactly what the API sent, in order (see the docs).
    join_gap_ms: int = 0
    group_by: str | None = None
    order_by: str | None = None
    title_column: str | None = None
    voices: tuple[str, ...] = ()
    keep_parts: bool = False
    shard_dirs: int = 0
    metadata: str | None = None  # a batchtts.job.shaping.metadata.METADATA_KINDS value
    #: ``--loudness``: each joined file's integrated loudness (LUFS), under a true-peak
    #: ceiling ``peak`` (dBTP); see :mod:`batchtts.audio.loudness`. None: left as joined.
    loudness: float | None = None
    peak: float = -3.0
    #: ``--room-tone HEAD,TAIL``: seconds of silence opening and closing each joined file.
    room_tone: tuple[float, float] | None = None
    #: ``--limiter``: reach ``loudness`` by limiting the peaks above ``peak``
    #: (:mod:`batchtts.audio.limiter`); False: lower the gain instead.
    limiter: bool = True

    @property
    def joins(self) -> bool:
        """Whether audio may be joined, which needs 16-bit PCM."""
        return bool(self.max_chars or self.group_by)

    def __post_init__(self) -> None:
        for name, value in (("loudness", self.loudness), ("room_tone", self.room_tone)):
            if value is not None and not self.joins:
                raise UsageError(f"{name} is set on joined files: use it with group_by or max_chars")

    @property
    def finishes_files(self) -> bool:
        """Whether every file is joined, even from one part: loudness and room tone are set on joined files."""
        return self.loudness is not None or self.room_tone is not None

    def file_options(self) -> dict[str, object]:
        """The options that shape a joined file beyond its parts (for the rows' fingerprints)."""
        options: dict[str, object] = {}
        if self.loudness is not None:
            options.update(loudness=self.loudness, peak=self.peak)
            if not self.limiter:  # only when off: files made before the limiter keep their fingerprints
                options["limiter"] = False
        if self.room_tone is not None:
            options["room_tone"] = list(self.room_tone)
        return options

    @property
    def extra_columns(self) -> tuple[str, ...]:
        """Optional results columns: ``parts`` and ``part_request_ids`` with ``--max-chars``."""
        return OPTIONAL_COLUMNS if self.max_chars else ()

    @property
    def results_per_row(self) -> int:
        """Results rows one manifest row makes: one, or one per ``--voices`` voice."""
        return len(self.voices) or 1

    def audio_path(self, name: str, extension: str, voice: str | None = None) -> PurePosixPath:
        """Where the file named after ``name`` (a row id, or a group) goes, relative to DIR."""
        folder = LJSPEECH_AUDIO_DIR if self.metadata == "ljspeech" else AUDIO_DIR
        voice_folder = voice if self.voices else None
        return relative_audio_path(name, extension, folder=folder, voice=voice_folder, shard_levels=self.shard_dirs)

    def check_columns(self, manifest: Manifest) -> None:
        """Refuse a job whose --group-by, --order-by or --title-column names no column (before any request)."""
        found = ", ".join(repr(c) for c in manifest.columns)
        for option, column in (
            ("--group-by", self.group_by),
            ("--order-by", self.order_by),
            ("--title-column", self.title_column),
        ):
            if column is not None and column not in manifest.columns:
                raise ManifestError(f"{manifest.path}: no column {column!r} for {option}; columns found: {found}")
        if self.voices and "voice_id" in manifest.columns:
            log.warning("--voices: the manifest's voice_id column is ignored; every row is made in every voice")
