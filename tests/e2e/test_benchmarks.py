"""The benchmark suite still runs: `benchmarks/run.py --quick` writes its Markdown with every section.

Only that it runs and reports; its figures are not checked (no test asserts a time).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytest.importorskip("psutil", reason="the bench extra is not installed")


@pytest.mark.slow
def test_quick_benchmark_writes_every_section(tmp_path):
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    markdown = (out / "results.md").read_text(encoding="utf-8")
    for heading in (
        "## Machine",
        "## Command",
        "## Start-up",
        "## Client CPU against the floor",
        "## Throughput at the limit",
        "## Memory",
        "## Loudness of joined chapters",
        "## Report page",
        "## Concurrency found at run time",
        "## The gap between streams",
        "## Pacing against a late-answering API",
        "## Shards and merge",
        "## Shared limits over Redis",
        "## Audio checks",
        "## Object storage",
    ):
        assert heading in markdown, heading
    for figure in (
        "`batchtts --help`",
        "runner ÷ floor",
        "rows/s ÷ R",
        "rows/s ÷ (C/L)",
        "client CPU per row at",
        "`batchtts validate`",
        "`--limit",
        "streamed to disk: peak RSS",
        "cost of `--loudness` (flac)",
        "`batchtts report`",
        "wall time, defaults (auto) ÷ `--concurrency 1`",
        "refused requests (429 ÷ requests)",
        "streams open (0.95 C)",
        "gap from a stream's end to the next request's arrival",
        "start rate at the server ÷ rate",
        "`--shard K/",
        "`batchtts merge` of 4 parts",
        "`batchtts merge` of those",
        "checks ÷ off",
        "against a local folder",
        "from s3:// against the local file",
    ):
        assert figure in markdown, figure
    report = json.loads((out / "results.json").read_text(encoding="utf-8"))
    values = {f["name"]: f["value"] for f in report["figures"]}
    # Every figure has a value, and the limit figure is either measured or says what it needs.
    assert all(values.values())
    limit = next(v for n, v in values.items() if "--limit" in n)
    assert "MB" in limit or "needs `--limit`" in limit
