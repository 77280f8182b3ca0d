"""Job folders written by hand for the report's unit tests: results with or without the audio check columns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile

FLAGS = ("silent", "truncated", "overlong", "clipped", "long_silence")


def write_wav(path: Path, seconds: float = 0.2, rate: int = 8000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = (np.sin(np.arange(int(seconds * rate)) / 5.0) * 8000).astype(np.int16)
    soundfile.write(path, samples, rate, subtype="PCM_16")


def result_rows(count: int, *, flagged_every: int = 0, qa: bool = True) -> list[dict[str, Any]]:
    """``count`` results, every 5th failed, every ``flagged_every``-th ok row flagged; texts carry markup."""
    rows = []
    for n in range(1, count + 1):
        failed = n % 5 == 0
        flags = [FLAGS[n % len(FLAGS)]] if qa and flagged_every and not failed and n % flagged_every == 0 else []
        row: dict[str, Any] = {
            "id": f"r{n}<script>",
            "row": n,
            "status": "failed" if failed else "ok",
            "path": None if failed else f"audio/r{n}.wav",
            "attempts": 2 if n % 7 == 0 else 1,
            "http_status": 500 if failed else 200,
            "error": f"HTTP 500: <b>boom</b> {n % 2}" if failed else None,
            "ttfb_ms": 50.0 + n,
            "total_ms": 200.0 + 3 * n,
            "audio_seconds": None if failed else 0.2,
            "voice_id": "emily" if n % 2 else "magnus",
            "started_at": f"2026-01-01T00:00:{n % 60:02d}.000Z",
            "finished_at": f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}.500Z",
            "reused": False,
            "text": f"Line {n} <img src=x onerror=alert(1)> & more",
        }
        if qa:
            row.update(
                seconds_per_char=0.06,
                leading_silence_s=0.1,
                trailing_silence_s=0.2,
                peak_dbfs=-3.0,
                rms_dbfs=-20.0,
                clipped_share=0.0,
                qa=flags,
            )
        rows.append(row)
    return rows


def write_job(out: Path, rows: list[dict[str, Any]], *, fmt: str = "parquet", summary: bool = True) -> Path:
    """A finished job folder: the audio of its ok rows, its results and summary.json."""
    out.mkdir(parents=True, exist_ok=True)
    for row in rows:
        if row["path"]:
            write_wav(out / row["path"])
    results = out / f"results.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), results)
    elif fmt == "csv":
        import csv

        with results.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            for row in rows:
                flat = {k: (";".join(v) if isinstance(v, list) else v) for k, v in row.items()}
                writer.writerow(flat)
    else:
        results.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    if summary:
        ok = sum(row["status"] == "ok" for row in rows)
        document = {
            "exit_status": 1,
            "rows": len(rows),
            "ok": ok,
            "failed": len(rows) - ok,
            "pending": 0,
            "attempts": sum(row["attempts"] for row in rows),
            "wall_seconds": 12.345678,
            "results": str(results),
        }
        (out / "summary.json").write_text(json.dumps(document), encoding="utf-8")
    return results


def journal_entries(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows as journal entries: fixed columns at the top, texts among the carried values."""
    entries = []
    for row in rows:
        entry = {k: v for k, v in row.items() if k != "text"}
        entry["carried"] = {"text": row["text"]}
        entries.append(entry)
    return entries


def write_journal(path: Path, entries: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(entry) + "\n" for entry in entries), encoding="utf-8")
