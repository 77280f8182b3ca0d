"""A user's mistake gets exit 2 and one clear sentence, never a traceback, and no request is sent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CASES: dict[str, tuple[list[str], str]] = {
    # name: (arguments after `batchtts`, a piece of the message that must name the problem)
    "no manifest file": (["run", "missing.csv", "--out", "out"], "missing.csv"),
    "an unknown manifest extension": (["run", "job.toml", "--out", "out"], "unknown manifest extension"),
    "results under a file": (["run", "m.csv", "--out", "out", "--results", "afile/r.parquet"], "afile is a file"),
    "results in a folder that cannot be made": (
        ["run", "m.csv", "--out", "out", "--results", "/proc/x/r.parquet"],
        "--results /proc/x/r.parquet",
    ),
    "results is a folder": (["run", "m.csv", "--out", "out", "--results", "afolder"], "afolder"),
    "results with an unknown extension": (["run", "m.csv", "--out", "out", "--results", "r.xlsx"], "r.xlsx"),
    "out under a file": (["run", "m.csv", "--out", "afile/sub"], "--out afile/sub"),
    "out in a file system that cannot hold it": (["run", "m.csv", "--out", "/proc/nope"], "--out /proc/nope"),
    "out is a file": (["run", "m.csv", "--out", "afile"], "afile"),
    "no out": (["run", "m.csv"], "--out"),
    "a bad rate": (["run", "m.csv", "--out", "out", "--rate", "fast"], "--rate"),
    "a bad deadline": (["run", "m.csv", "--out", "out", "--deadline", "soon"], "--deadline"),
    "a group-by column that is missing": (["run", "m.csv", "--out", "out", "--group-by", "chapter"], "chapter"),
    "an unknown text column": (["run", "m.csv", "--out", "out", "--text-column", "words"], "words"),
    "a missing job file": (["run", "--job", "missing.toml"], "missing.toml"),
    "a broken job file": (["run", "--job", "broken.toml"], "broken.toml"),
    "a missing key file": (["run", "m.csv", "--out", "out", "--api-key-file", "nokey.txt"], "nokey.txt"),
    "no key at all": (["run", "m.csv", "--out", "out"], "SMALLEST_API_KEY"),
    "an unknown option": (["run", "m.csv", "--out", "out", "--speeed", "2"], "--speeed"),
    "validate: no manifest file": (["validate", "missing.csv"], "missing.csv"),
    "serve: a bad rate": (["serve", "--rate", "lots"], "--rate"),
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bad")
    (folder / "m.csv").write_text("id,text\n1,Hello.\n", encoding="utf-8")
    (folder / "afile").write_text("not a folder\n", encoding="utf-8")
    (folder / "afolder").mkdir()
    (folder / "broken.toml").write_text("manifest = [unclosed\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_invocation_exits_2_with_one_clear_message(case, workdir):
    args, named = CASES[case]
    environ = {k: v for k, v in os.environ.items() if k not in ("SMALLEST_API_KEY", "BATCHTTS_BASE_URL")}
    # A base URL nothing listens on: had a request been sent, the run would not have ended with exit 2.
    environ["BATCHTTS_BASE_URL"] = "http://127.0.0.1:9"
    if case != "no key at all":
        environ["SMALLEST_API_KEY"] = "sk-test-secret-key"
    done = subprocess.run(
        [sys.executable, "-m", "batchtts", *args], cwd=workdir, env=environ, capture_output=True, text=True, timeout=60
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output
    assert named in output
    assert "sk-test-secret-key" not in output
    assert not (workdir / "out" / "summary.json").exists()  # stopped before the job began
