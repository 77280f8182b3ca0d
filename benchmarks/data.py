"""Data chores of the benchmark suite that need pyarrow, run in their own process.

Linux reports a child's peak RSS as at least its parent's RSS when it was
started (the high-water mark survives fork and exec), so the harness
(``run.py``) keeps itself small and never imports pyarrow: it calls this
script instead.

    python benchmarks/data.py parquet PATH ROWS [TEXT]   # write an id/text/speaker manifest
    python benchmarks/data.py span RESULTS [WARMUP]     # print the run's throughput figures as JSON
    python benchmarks/data.py job DIR ROWS               # a finished job folder for `batchtts report`
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

SENTENCES = (
    "The quick brown fox jumps over the lazy dog, then rests a while.",
    "Please keep your ticket until the end of the journey.",
    "Rain is expected this evening, clearing by the morning.",
    "She read the letter twice before putting it away.",
)


def text_of(i: int, short: bool = False) -> str:
    """Row ``i``'s text (1-based): about 60 characters (~4 s of synthetic speech), or 20 when ``short``."""
    return f"Line {i}. Hello there." if short else f"Line {i}. {SENTENCES[i % len(SENTENCES)]}"


def write_parquet(path: Path, n: int, text: str | None = None) -> None:
    """An ``n``-row Parquet manifest (id, text, speaker), written 100,000 rows at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("speaker", pa.string())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, n, 100_000):
            stop = min(n, start + 100_000)
            ids = [f"row-{i:07d}" for i in range(start + 1, stop + 1)]
            body = [text or text_of(i) for i in range(start + 1, stop + 1)]
            speakers = [("ana", "ben", "chloe")[i % 3] for i in range(start, stop)]
            writer.write_table(pa.table({"id": ids, "text": body, "speaker": speakers}, schema=schema))


def span(results: Path, warmup: int = 0, tail: int = 0) -> dict[str, float]:
    """Throughput of a run, from its results manifest.

    ``rows_per_second``: ok rows over the time from the first request sent to
    the last row finished (start-up and the last rows' tail included).
    ``steady_rows_per_second``: the rows that finished after the first
    ``warmup`` rows and before the last ``tail``, over the time between those
    finishes: the pace once every stream is busy, without the ramp-up of the
    first wave or the drain of the last (with ``tail`` 0, up to the last finish).
    """
    import pyarrow.parquet as pq

    columns = ["status", "started_at", "finished_at", "audio_seconds"]
    rows = pq.read_table(results, columns=columns).to_pylist()
    ok = [r for r in rows if r["status"] == "ok"]
    figures = {
        "ok": len(ok),
        "rows_per_second": 0.0,
        "steady_rows_per_second": 0.0,
        "audio_seconds": sum(r["audio_seconds"] or 0 for r in ok) / max(1, len(ok)),
    }
    if len(ok) < 2:
        return figures

    def seconds(stamp: str) -> float:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()

    first = min(seconds(r["started_at"]) for r in ok)
    finishes = sorted(seconds(r["finished_at"]) for r in ok)
    if finishes[-1] > first:
        figures["rows_per_second"] = len(ok) / (finishes[-1] - first)
    last = len(ok) - 1 - tail
    if 0 < warmup <= last and finishes[last] > finishes[warmup - 1]:
        figures["steady_rows_per_second"] = (last + 1 - warmup) / (finishes[last] - finishes[warmup - 1])
    return figures


def write_job(out: Path, n: int) -> None:
    """A finished job folder of ``n`` rows for ``batchtts report``: results.parquet with the audio check
    columns (1 row in 20 failed, 1 in 25 flagged), summary.json, and 100 short WAV files the rows share."""
    import wave

    import pyarrow as pa
    import pyarrow.parquet as pq

    (out / "audio").mkdir(parents=True, exist_ok=True)
    for k in range(100):
        with wave.open(str(out / "audio" / f"a{k:03d}.wav"), "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(8000)
            handle.writeframes(bytes(1600))
    flags = ("silent", "truncated", "overlong", "clipped", "long_silence")
    writer = None
    for start in range(0, n, 100_000):
        numbers = range(start + 1, min(n, start + 100_000) + 1)
        failed = [i % 20 == 0 for i in numbers]
        seconds = [
            f"2026-01-01T{(i // 36000) % 24:02d}:{(i // 600) % 60:02d}:{(i // 10) % 60:02d}.000Z" for i in numbers
        ]
        table = pa.table(
            {
                "id": [f"row-{i:07d}" for i in numbers],
                "row": list(numbers),
                "status": ["failed" if f else "ok" for f in failed],
                "path": [None if f else f"audio/a{i % 100:03d}.wav" for i, f in zip(numbers, failed, strict=True)],
                "attempts": [1 + (i % 13 == 0) for i in numbers],
                "http_status": [500 if f else 200 for f in failed],
                "error": [f"HTTP 500: fault {i % 3}" if f else None for i, f in zip(numbers, failed, strict=True)],
                "ttfb_ms": [80.0 + i % 400 for i in numbers],
                "total_ms": [900.0 + (i * 7) % 4000 for i in numbers],
                "audio_seconds": [None if f else 4.0 for f in failed],
                "voice_id": [("emily", "magnus", "arnav")[i % 3] for i in numbers],
                "started_at": seconds,
                "finished_at": seconds,
                "reused": [False] * len(numbers),
                "text": [text_of(i) for i in numbers],
                "seconds_per_char": [0.06] * len(numbers),
                "peak_dbfs": [-3.0] * len(numbers),
                "rms_dbfs": [-20.0] * len(numbers),
                "qa": [[flags[i % 5]] if i % 25 == 0 and not f else [] for i, f in zip(numbers, failed, strict=True)],
            }
        )
        if writer is None:
            writer = pq.ParquetWriter(out / "results.parquet", table.schema)
        writer.write_table(table, row_group_size=4096)  # as the runner writes results (ledger/writers.py)
    if writer is not None:
        writer.close()
    ok = n - n // 20
    summary = {"rows": n, "ok": ok, "failed": n - ok, "pending": 0, "results": "results.parquet"}
    (out / "summary.json").write_text(json.dumps(summary), encoding="utf-8")


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "parquet":
        write_parquet(Path(args[0]), int(args[1]), args[2] if len(args) > 2 else None)
    elif command == "job":
        write_job(Path(args[0]), int(args[1]))
    elif command == "span":
        print(json.dumps(span(Path(args[0]), *(int(arg) for arg in args[1:3]))))
    else:
        sys.exit(f"unknown command {command!r}")
