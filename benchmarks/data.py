"""Data chores of the benchmark suite that need pyarrow, run in their own process.

Linux reports a child's peak RSS as at least its parent's RSS when it was
started (the high-water mark survives fork and exec), so the harness
(``run.py``) keeps itself small and never imports pyarrow: it calls this
script instead.

    python benchmarks/data.py parquet PATH ROWS [TEXT]   # write an id/text/speaker manifest
    python benchmarks/data.py span RESULTS [WARMUP]     # print the run's throughput figures as JSON
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


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "parquet":
        write_parquet(Path(args[0]), int(args[1]), args[2] if len(args) > 2 else None)
    elif command == "span":
        print(json.dumps(span(Path(args[0]), *(int(arg) for arg in args[1:3]))))
    else:
        sys.exit(f"unknown command {command!r}")
