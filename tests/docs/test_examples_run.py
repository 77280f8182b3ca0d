"""The README's and ``--help``'s examples run as written from the repository root, and succeed.

Each ``batchtts run`` or ``validate`` example runs in a copy of the repository's
``jobs/`` folder. An example written for the real API (no ``--local``) is pointed at
the local server with ``--base-url``, the one change made to it; ``serve`` examples
run forever by design and are left to tests/server/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib

import click
import pytest

from batchtts.cli import main
from tests.docs.test_examples_parse import ROOT, Example, examples_in


def help_examples() -> list[Example]:
    found = []
    for name in ("run", "validate"):
        command = main.commands[name]
        assert isinstance(command, click.Command) and command.help
        for line in command.help.splitlines():
            words = line.split("#", 1)[0].split()
            if words[:1] == ["batchtts"]:
                found.append(Example(f"batchtts {name} --help", words[1:]))
    return found


EXAMPLES = [e for e in examples_in(ROOT / "README.md") + help_examples() if e.words and e.words[0] != "serve"]


def test_there_are_examples_from_both_places():
    assert {e.where.split(":")[0] for e in EXAMPLES} >= {"README.md", "batchtts run --help", "batchtts validate --help"}


def runs_locally(words: list[str], root) -> bool:
    """``--local`` on the line, or ``local = true`` in its job file's [api] table."""
    if "--local" in words:
        return True
    if "--job" not in words:
        return False
    job = tomllib.loads((root / words[words.index("--job") + 1]).read_text(encoding="utf-8"))
    return bool(job.get("api", {}).get("local", job.get("local", False)))


@pytest.mark.parametrize("example", EXAMPLES, ids=str)
def test_the_example_runs_as_written(example, tmp_path, local_server):
    shutil.copytree(ROOT / "jobs", tmp_path / "jobs")
    words = list(example.words)
    if words[0] == "run":
        if not runs_locally(words, tmp_path):
            words += ["--base-url", local_server().base_url]  # the real API's place, on loopback
        words += ["--progress", "off"]
    environ = {**os.environ, "SMALLEST_API_KEY": "sk-example-key", "BATCHTTS_BASE_URL": ""}
    done = subprocess.run(
        [sys.executable, "-m", "batchtts", *words], cwd=tmp_path, env=environ, capture_output=True, text=True,
        timeout=240,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{example}\n{output}"
    assert "Traceback" not in output
