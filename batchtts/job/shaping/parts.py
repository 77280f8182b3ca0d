"""Finished parts kept on disk by request fingerprint, so a rerun never pays twice for one.

A split text (``--max-chars``) or a chapter group (``--group-by``) becomes one
file only when all of its pieces are done. Each piece is stored as it
finishes, under ``DIR/.batchtts/parts/<ab>/<fingerprint>.wav``, where the
fingerprint hashes every request field that shapes the audio (text, voice,
model, rate, speed, language, format, dictionaries; not the correlation ids).
If the row or group then fails, its finished parts stay; the next run looks
each part up by fingerprint before sending anything, so it sends only the
parts that failed. A part whose text or settings changed has a new
fingerprint and is synthesized again.

Beside each part, ``<fingerprint>.json`` records the request ids of the
request that produced it (for the results' ``part_request_ids``). The WAV
is the truth: a part whose JSON is missing (a crash between the two renames)
is still reused, with an unknown request id.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from batchtts.api.request import TtsRequest, canonical_digest
from batchtts.storage import atomic_file

#: Where parts live, relative to the output folder.
PARTS_DIR = PurePosixPath(".batchtts/parts")


def request_fingerprint(request: TtsRequest) -> str:
    """32 hex digits of BLAKE2b over the request fields that shape the audio.

    Canonical JSON (sorted keys, no spaces: :func:`batchtts.api.request.canonical_digest`),
    so the same request gives the same fingerprint in every run and on every machine.
    """
    return canonical_digest(request.fingerprint_fields())


@dataclass(frozen=True, slots=True)
class PartInfo:
    """What the request that produced a stored part reported."""

    request_id: str | None = None
    server_request_id: str | None = None
    audio_bytes: int | None = None
    server_session_id: str | None = None
    content_expiry: str | None = None


class PartStore:
    """``root/<ab>/<fingerprint>.wav`` (+ ``.json``); every file appears whole (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def audio_path(self, fingerprint: str) -> Path:
        return self.root / fingerprint[:2] / f"{fingerprint}.wav"

    def _info_path(self, fingerprint: str) -> Path:
        return self.root / fingerprint[:2] / f"{fingerprint}.json"

    def find(self, fingerprint: str) -> PartInfo | None:
        """The stored part's info, or None when its audio is not on disk."""
        if not self.audio_path(fingerprint).is_file():
            return None
        try:
            data = json.loads(self._info_path(fingerprint).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return PartInfo()
        if not isinstance(data, dict):
            return PartInfo()
        return PartInfo(
            request_id=_text_or_none(data.get("request_id")),
            server_request_id=_text_or_none(data.get("server_request_id")),
            server_session_id=_text_or_none(data.get("server_session_id")),
            content_expiry=_text_or_none(data.get("content_expiry")),
            audio_bytes=data.get("audio_bytes") if isinstance(data.get("audio_bytes"), int) else None,
        )

    def save_info(self, fingerprint: str, info: PartInfo) -> None:
        """Write the part's JSON next to its audio (after the audio is in place)."""
        path = self._info_path(fingerprint)
        with atomic_file(path) as handle:
            json.dump(asdict(info), handle)

    def remove(self, fingerprint: str) -> None:
        """Drop a part that is no longer needed (its row or group file is written)."""
        self.audio_path(fingerprint).unlink(missing_ok=True)
        self._info_path(fingerprint).unlink(missing_ok=True)

    def prune_empty_folders(self) -> None:
        """Remove the store's empty folders; call only when no part is being written."""
        if not self.root.is_dir():
            return
        for folder in self.root.iterdir():
            if folder.is_dir():
                with contextlib.suppress(OSError):  # not empty: parts kept for a rerun
                    folder.rmdir()
        with contextlib.suppress(OSError):
            self.root.rmdir()


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
