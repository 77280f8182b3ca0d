"""`batchtts report DIR` on a sharded job folder: shards not merged yet, a shard still running, and merged.

Real ``batchtts run --shard K/N`` processes against the real local server; each page is opened in
Debian's chromium through Playwright (see tests/e2e/test_report_page.py): no console error, players
point at existing files, counts are the parts' and the merge's. The report never takes a lock and
writes nothing but its page, so a running shard finishes undisturbed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from batchtts.cli import main
from batchtts.job.shards import shard_of
from batchtts.storage.names import SHARDS_DIR, SUMMARY_NAME, shard_part_name
from tests.e2e.test_report_page import SLOW, Opened, browser, report  # noqa: F401 - browser is a fixture
from tests.nightly_support import finish, spawn_run, wait_until
from tests.runner_support import FAST_BACKOFF, write_csv

VOICES = ("magnus", "emily", "arnav")  # arnav is not in the local server's catalog: its rows fail
ROWS = [{"id": f"s{n:02d}", "text": f"Shard line {n} & <i>more</i>.", "voice_id": VOICES[n % 3]} for n in range(24)]
TEXTS = {row["text"] for row in ROWS}


def part_dir(out: Path, index: int, count: int) -> Path:
    return out / SHARDS_DIR / shard_part_name(index, count)


def part_results(out: Path, index: int, count: int = 2) -> list[dict]:
    return pq.read_table(part_dir(out, index, count) / "results.parquet").to_pylist()


def snapshot(out: Path) -> dict[str, tuple[int, int]]:
    """Every file but the report, with its size and modification time: what a report must leave alone."""
    return {
        str(path.relative_to(out)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in out.rglob("*")
        if path.is_file() and path.name != "report.html"
    }


def shard_lines(opened: Opened) -> dict[str, dict[str, str]]:
    lines = opened.page.eval_on_selector_all(
        "#shards tr.shard",
        "rows => rows.map(r => [r.dataset.shard,"
        " Object.fromEntries([...r.querySelectorAll('td[data-key]')].map(c => [c.dataset.key, c.textContent]))])",
    )
    return dict(lines)


@pytest.fixture(scope="module")
def sharded_job(tmp_path_factory) -> Path:
    """Two finished shard runs of one job, side by side, not merged."""
    from batchtts.server.config import ServerConfig
    from batchtts.server.running import LocalServer
    from tests.conftest import TEST_SERVER_DEFAULTS

    folder = tmp_path_factory.mktemp("sharded")
    manifest = write_csv(folder / "m.csv", ROWS)
    with LocalServer(ServerConfig(**TEST_SERVER_DEFAULTS)) as server:
        processes = [
            spawn_run(
                manifest, folder / "out", server.base_url, "--shard", f"{k}/2", *FAST_BACKOFF, logs=folder / f"s{k}"
            )
            for k in range(2)
        ]
        codes = [finish(process) for process in processes]
    for k, code in enumerate(codes):
        fails = any(row["voice_id"] == "arnav" and shard_of(row["id"], 2) == k for row in ROWS)
        assert code == (1 if fails else 0), (folder / f"s{k}.err").read_text()
    return folder / "out"


def test_finished_shards_not_merged_are_read_part_by_part(browser, sharded_job, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    shutil.copytree(sharded_job, out)
    before = snapshot(out)
    opened = Opened(browser, report(out))
    assert snapshot(out) == before  # nothing written but the page
    assert opened.page.get_attribute("#state", "data-state") == "sharded"
    assert f"2 of 2 shards finished, not merged: run batchtts merge {out}" in opened.page.inner_text("#state")
    parts = [part_results(out, k) for k in range(2)]
    every = [row for part in parts for row in part]
    counted = opened.figures("counted")
    assert counted["rows"] == str(len(ROWS)) == str(len(every))
    assert counted["ok"] == str(sum(row["status"] == "ok" for row in every))
    assert counted["failed"] == str(sum(row["status"] == "failed" for row in every)) != "0"
    lines = shard_lines(opened)
    for k, part in enumerate(parts):
        line = lines[shard_part_name(k, 2)]
        assert line["state"] == "finished"
        assert (line["rows"], line["ok"]) == (str(len(part)), str(sum(r["status"] == "ok" for r in part)))
    # The results do not carry texts: they come from the manifest part.json names.
    texts = opened.page.eval_on_selector_all("#sample td.text", "cells => cells.map(c => c.textContent)")
    assert texts and all(text in TEXTS for text in texts)
    opened.check_clean()


def test_a_merged_sharded_job_shows_the_merge_and_each_shard(browser, sharded_job, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    shutil.copytree(sharded_job, out)
    merged = CliRunner().invoke(main, ["merge", str(out)], catch_exceptions=False)
    assert merged.exit_code == 1, merged.output  # the unknown voice's rows failed
    opened = Opened(browser, report(out))
    assert opened.page.get_attribute("#state", "data-state") == "finished"
    assert "not merged" not in opened.page.inner_text("#state")
    summary = json.loads((out / SUMMARY_NAME).read_text(encoding="utf-8"))
    shown = opened.figures("summary-json")
    for key in ("rows", "ok", "failed", "exit_status"):
        assert shown[key] == str(summary[key]), key
    results = pq.read_table(out / "results.parquet").to_pylist()
    assert opened.figures("counted")["rows"] == str(len(results)) == str(len(ROWS))
    lines = shard_lines(opened)
    assert sorted(lines) == sorted(summary["shards"]["parts"])
    for name, line in lines.items():
        part = json.loads((out / SHARDS_DIR / name / SUMMARY_NAME).read_text(encoding="utf-8"))
        assert (line["rows"], line["ok"], line["failed"]) == (str(part["rows"]), str(part["ok"]), str(part["failed"]))
    assert sum(int(line["rows"]) for line in lines.values()) == summary["rows"]
    texts = opened.page.eval_on_selector_all("#sample td.text", "cells => cells.map(c => c.textContent)")
    assert texts and all(text in TEXTS for text in texts)
    opened.check_clean()


def test_a_running_shard_is_reported_without_being_disturbed(browser, tmp_path, local_server):  # noqa: F811
    server = local_server(**SLOW)
    manifest = write_csv(tmp_path / "m.csv", [{**row, "voice_id": "magnus"} for row in ROWS])
    out = tmp_path / "out"
    slow = spawn_run(manifest, out, server.base_url, "--shard", "0/2", "--concurrency", "1", logs=tmp_path / "s0")
    fast = spawn_run(manifest, out, server.base_url, "--shard", "1/2", "--concurrency", "8", logs=tmp_path / "s1")
    assert finish(fast, timeout=60) == 0, (tmp_path / "s1.err").read_text()
    journal = part_dir(out, 0, 2) / "journal.jsonl"

    def started() -> bool:
        return (journal.exists() and journal.read_bytes().count(b"\n") >= 1) or slow.poll() is not None

    wait_until(started, what="the slow shard's first row")
    assert slow.poll() is None, "the slow shard ended before the report could be made"
    page_path = report(out)
    still_running = slow.poll() is None
    opened = Opened(browser, page_path)
    lines = shard_lines(opened)
    assert lines[shard_part_name(1, 2)]["state"] == "finished"
    assert lines[shard_part_name(1, 2)]["rows"] == str(len(part_results(out, 1)))
    if still_running:
        assert opened.page.get_attribute("#state", "data-state") == "running"
        assert "1 of 2 shards finished, 1 running, not merged" in opened.page.inner_text("#state")
        assert lines[shard_part_name(0, 2)]["state"] == "running"
    assert int(opened.figures("counted")["rows"]) < len(ROWS)
    opened.check_clean()
    assert finish(slow, timeout=60) == 0, (tmp_path / "s0.err").read_text()  # the run was never blocked
    part = part_results(out, 0)
    assert [row["id"] for row in part] == [row["id"] for row in ROWS if shard_of(row["id"], 2) == 0]
    assert all(row["status"] == "ok" for row in part)
