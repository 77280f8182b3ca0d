"""Helpers for the nightly-job tests: a real ``batchtts run`` process, journals, summaries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from batchtts.ledger.journal import read_journal_file
from batchtts.server.running import LocalServer
from tests.runner_support import TEST_KEY, expected_samples, read_int16

REPO = Path(__file__).resolve().parent.parent


def spawn_run(manifest: Path, out: Path, base_url: str, *args: str, logs: Path) -> subprocess.Popen[bytes]:
    """``python -m batchtts run`` in its own process (so it can be killed), output to ``logs``.*."""
    argv = [sys.executable, "-m", "batchtts", "run", str(manifest), "--out", str(out), "--progress", "off",
            "--base-url", base_url, *args]  # fmt: skip
    env = {**os.environ, "SMALLEST_API_KEY": TEST_KEY, "BATCHTTS_BASE_URL": ""}
    return subprocess.Popen(
        argv,
        cwd=REPO,
        env=env,
        stdout=open(f"{logs}.out", "wb"),
        stderr=open(f"{logs}.err", "wb"),
    )


def wait_until(predicate: Callable[[], bool], *, timeout: float = 20.0, what: str = "condition") -> None:
    """Poll ``predicate`` every 10 ms; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def settle(server: Any, quiet: float = 0.2) -> None:
    """Wait until a killed client's last requests are done with at the server.

    A request that left just before SIGKILL may be counted by the server a moment
    later; resetting the stats before then would count it for the next run.
    """

    def counts() -> tuple[Any, ...]:
        snapshot = server.stats.snapshot()
        return snapshot["active_streams"], snapshot["requests"], snapshot["starts_total"]

    wait_until(lambda: counts()[0] == 0, what="the server's streams to end")
    last, since = counts(), time.monotonic()
    deadline = since + 20.0
    while time.monotonic() - since < quiet:
        if time.monotonic() > deadline:
            raise AssertionError("the server's counters never settled")
        time.sleep(0.02)
        now = counts()
        if now != last:
            last, since = now, time.monotonic()


def finish(process: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise


def journal_state(out: Path) -> dict[str, dict[str, Any]]:
    """Row id -> its latest entry across the journal files (previous first, then current)."""
    state: dict[str, dict[str, Any]] = {}
    for name in ("journal.prev.jsonl", "journal.jsonl"):
        for _offset, entry in read_journal_file(out / ".batchtts" / name):
            if entry.get("status") in ("ok", "failed"):
                state[entry["id"]] = entry
    return state


def summary(out: Path) -> dict[str, Any]:
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


def starts(server: LocalServer) -> int:
    """Synthesis requests the server received (refused ones included)."""
    return int(server.stats.snapshot()["requests"].get("live", 0))


def temp_files(*folders: Path) -> list[Path]:
    """Every temporary (``.part``) file under the folders, hidden state folder included."""
    found: list[Path] = []
    for folder in folders:
        if folder.exists():
            found += [p for p in folder.rglob("*") if p.is_file() and p.name.endswith(".part")]
    return found


def assert_file_exact(out: Path, record: dict[str, Any], text: str, **fields: Any) -> None:
    data, _rate = read_int16(out / record["path"])
    assert np.array_equal(data, expected_samples(text=text, **fields)), record["id"]
