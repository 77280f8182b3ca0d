"""ML-ready indexes of a job's ok files: Hugging Face AudioFolder and LJSpeech.

Written once at the end of a job (``--metadata``), from the results (the
journal's latest entry per row) joined with the manifest, which is read again
in the same row order: memory stays flat, and the journal does not have to
carry every text. Each file lists exactly the rows whose status is ``ok``,
and appears whole or not at all (temp file + rename).

- ``audiofolder`` -> ``DIR/metadata.csv``, ``audiofolder-jsonl`` ->
  ``DIR/metadata.jsonl``: the Hugging Face AudioFolder layout, loadable with
  ``datasets.load_dataset("audiofolder", data_dir=DIR)``. Columns:
  ``file_name`` (relative to DIR), ``id``, ``text``, the request fields
  (``voice_id``, ``model``, ``sample_rate``, ``speed``, ``language``,
  ``output_format``, ``pronunciation_dicts``, ``session_id``, ``number_pronunciation_language``,
  ``math_notation``, ``word_timestamps``),
  ``audio_seconds``, then the manifest's carried columns (a carried column
  named like one of these gets an ``input_`` prefix).
- ``ljspeech`` -> ``DIR/metadata.csv`` without a header, one
  ``<id>|<text>|<normalized text>`` line per file in ``DIR/wavs/<id>.wav``.
  The text is put on one line (whitespace runs become one space, ``|``
  becomes a space); the normalized text is that in Unicode NFKC. batchtts does
  not spell out numbers or abbreviations. A row whose ``output_format`` cell
  asked for another format than 16-bit PCM is left out, with a warning.
"""

from __future__ import annotations

import csv
import json
import logging
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, TextIO

from batchtts.api.request import OVERRIDABLE_FIELDS, TtsRequest
from batchtts.manifest.planner import RowPlanner
from batchtts.manifest.readers import Manifest, Row
from batchtts.storage import LJSPEECH_AUDIO_DIR, atomic_file

log = logging.getLogger("batchtts")

METADATA_KINDS: tuple[str, ...] = ("audiofolder", "audiofolder-jsonl", "ljspeech")
#: The file each kind writes, relative to DIR.
METADATA_FILES: dict[str, str] = {
    "audiofolder": "metadata.csv",
    "audiofolder-jsonl": "metadata.jsonl",
    "ljspeech": "metadata.csv",
}
#: AudioFolder columns before the carried ones.
AUDIOFOLDER_COLUMNS: tuple[str, ...] = ("file_name", "id", "text", *OVERRIDABLE_FIELDS, "audio_seconds")
_CLASH_PREFIX = "input_"


def write_metadata(
    kind: str,
    out_dir: Path,
    entries: Iterable[Mapping[str, Any]],
    manifest: Manifest,
    defaults: Mapping[str, Any],
) -> tuple[Path, int]:
    """Write ``kind``'s index of the ok entries into ``out_dir``; return (its path, the files listed).

    ``entries`` are results entries ordered by row (:func:`batchtts.ledger.journal.final_entries`);
    ``defaults`` are the job's request defaults, to recover each row's request fields.
    """
    if kind not in METADATA_KINDS:
        raise ValueError(f"unknown metadata kind {kind!r}; choose one of {', '.join(METADATA_KINDS)}")
    path = Path(out_dir) / METADATA_FILES[kind]
    records = _ok_records(entries, manifest, RowPlanner(defaults, track_duplicates=False))
    with atomic_file(path, newline="") as handle:
        if kind == "ljspeech":
            count = _write_ljspeech(handle, records)
        else:
            count = _write_audiofolder(handle, records, manifest.carried_columns, jsonl=kind.endswith("jsonl"))
    return path, count


def _ok_records(
    entries: Iterable[Mapping[str, Any]], manifest: Manifest, planner: RowPlanner
) -> Iterator[tuple[Mapping[str, Any], Row, TtsRequest]]:
    """(entry, manifest row, its request) for every ok entry: a merge join on the row number."""
    rows = iter(manifest)
    current: Row | None = None
    for entry in entries:
        number = entry.get("row")
        if entry.get("status") != "ok" or not entry.get("path") or not isinstance(number, int):
            continue
        while current is None or current.number < number:
            current = next(rows, None)
            if current is None:
                return
        if current.number != number:
            continue
        request = planner.plan(current).request
        if request is not None:
            yield entry, current, request


def _write_audiofolder(
    handle: TextIO,
    records: Iterator[tuple[Mapping[str, Any], Row, TtsRequest]],
    carried_columns: list[str],
    *,
    jsonl: bool,
) -> int:
    carried = [(name, _CLASH_PREFIX + name if name in AUDIOFOLDER_COLUMNS else name) for name in carried_columns]
    columns = [*AUDIOFOLDER_COLUMNS, *(out for _, out in carried)]
    writer = None if jsonl else csv.writer(handle, lineterminator="\n")
    if writer is not None:
        writer.writerow(columns)
    count = 0
    for entry, row, request in records:
        record: dict[str, Any] = {
            "file_name": entry["path"],
            "id": row.id,
            "text": request.text,
            "voice_id": entry.get("voice_id") or request.voice_id,
            "model": request.model,
            "sample_rate": entry.get("sample_rate") or request.sample_rate,
            "speed": request.speed,
            "language": request.language,
            "output_format": request.output_format,
            "pronunciation_dicts": list(request.pronunciation_dicts),
            "session_id": request.session_id,
            "number_pronunciation_language": request.number_pronunciation_language,
            "math_notation": request.math_notation,
            "word_timestamps": request.word_timestamps,
            "audio_seconds": entry.get("audio_seconds"),
        }
        for source, out in carried:
            record[out] = row.carried.get(source)
        if writer is None:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            writer.writerow([_csv_cell(record[name]) for name in columns])
        count += 1
    return count


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return value


def _write_ljspeech(handle: TextIO, records: Iterator[tuple[Mapping[str, Any], Row, TtsRequest]]) -> int:
    count = skipped = 0
    for entry, _row, request in records:
        path = PurePosixPath(entry["path"])
        if path.parent != LJSPEECH_AUDIO_DIR or path.suffix != ".wav" or request.output_format not in ("pcm", "wav"):
            skipped += 1  # e.g. a row whose output_format cell asked for mp3
            continue
        text = one_line(request.text)
        handle.write(f"{path.stem}|{text}|{unicodedata.normalize('NFKC', text)}\n")
        count += 1
    if skipped:
        log.warning("--metadata ljspeech: %d ok file(s) are not 16-bit wavs/<id>.wav and are not listed", skipped)
    return count


def one_line(text: str) -> str:
    """``text`` on one line with no ``|``: what a pipe-separated line can hold."""
    return " ".join(text.replace("|", " ").split())
