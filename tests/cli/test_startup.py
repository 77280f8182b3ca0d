"""`batchtts --help` stays fast: the command line imports no heavy module until a command runs.

No wall-clock assertion (BENCHMARKS.md measures the time); this checks the cause instead.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("numpy", "pyarrow", "httpx", "anyio", "rich", "soundfile", "starlette", "uvicorn", "tenacity", "orjson")


def test_the_command_line_imports_no_heavy_module():
    code = (
        "import json, sys\n"
        "from click.testing import CliRunner\n"
        "from batchtts.cli import main\n"
        "for args in (['--help'], ['run', '--help'], ['validate', '--help'], ['serve', '--help']):\n"
        "    assert CliRunner().invoke(main, args).exit_code == 0, args\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
