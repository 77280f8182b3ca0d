"""docs/python-api.md's examples run as written (against the bundled local server)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "python-api.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_the_python_api_page_runs_as_written(tmp_path):
    blocks = python_blocks(PAGE.read_text(encoding="utf-8"))
    assert len(blocks) >= 4
    script = tmp_path / "example.py"
    script.write_text("\n".join(blocks), encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "2 ok" in done.stdout and "not started: " in done.stdout
    assert (tmp_path / "out" / "results.parquet").is_file() and (tmp_path / "out" / "summary.json").is_file()
    assert len(list((tmp_path / "out" / "audio").glob("*.wav"))) == 2
    assert "Traceback" not in done.stderr
