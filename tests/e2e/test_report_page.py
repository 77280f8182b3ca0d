"""`batchtts report DIR` opened in a real headless browser: Debian's chromium, driven through Playwright.

Each page comes from a real job folder: a real `batchtts run` against the real local server (with
429s, 500s and a voice the catalog lacks), finished, still running in its own process, or killed.
The page must load from file:// with no console error, no failed request and no request that is
not a local file; every player must point at an existing file that the browser can load; the
figures must be summary.json's and the results'.

chromium is installed by `make test` when missing (Makefile); Playwright never downloads a browser
here. Without /usr/bin/chromium these tests fail: they are not skipped.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from batchtts.cli import main
from tests.nightly_support import finish, spawn_run, wait_until
from tests.runner_support import FAST_BACKOFF, write_csv

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VOICES = ("magnus", "emily", "arnav")  # arnav is not in the local server's catalog: its rows fail
ROWS = [
    {"id": f"r{n:02d}", "text": f'Line {n}: <b>bold</b> & "quoted" <script>x()</script>', "voice_id": VOICES[n % 3]}
    for n in range(30)
]
#: Streams of ~0.4 s each, so a run is still going when the report is made.
SLOW = {"latency": 0.05, "realtime_factor": 2.0, "chunk_ms": 50.0}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert CHROMIUM.is_file(), f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Opened:
    """A report page loaded in the browser, and what the browser saw while loading it."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.page = browser.new_page()
        self.errors: list[str] = []
        self.failed: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.failed.append(f"{r.url}: {r.failure}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_load_state("load")

    def figures(self, table: str) -> dict[str, str]:
        cells = self.page.eval_on_selector_all(
            f"#{table} td[data-key]", "cells => cells.map(c => [c.dataset.key, c.textContent])"
        )
        return dict(cells)

    def audio_files(self) -> list[Path]:
        sources = self.page.eval_on_selector_all("audio", "players => players.map(p => p.src)")
        return [Path(unquote(urlparse(source).path)) for source in sources]

    def first_player_duration(self) -> float:
        """Load the first player's file in the browser (preload is none) and read its duration."""
        return self.page.evaluate(
            """() => new Promise(done => {
                const player = document.querySelector('audio');
                player.addEventListener('loadedmetadata', () => done(player.duration));
                player.addEventListener('error', () => done(-1));
                player.preload = 'auto';
                player.load();
            })"""
        )

    def check_clean(self) -> None:
        """Loaded with no console error, no failed request, nothing fetched but local files, no script."""
        assert self.errors == []
        assert self.failed == []
        assert self.requests and all(url.startswith("file://") for url in self.requests), self.requests
        assert self.page.locator("script").count() == 0
        files = self.audio_files()
        assert files, "no audio player on the page"
        for path in files:
            assert path.is_file(), path
        assert self.first_player_duration() > 0
        # (Chromium's media loader may abort its own request once it has what it wanted: not a failure.)
        assert self.errors == []


def report(out: Path, *args: str) -> Path:
    result = CliRunner().invoke(main, ["report", str(out), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out / "report.html"


@pytest.fixture(scope="module")
def finished_job(tmp_path_factory) -> Path:
    """A finished real job: 429s and 500s from the server, retried; one voice's rows failed."""
    from batchtts.server.config import ServerConfig
    from batchtts.server.running import LocalServer
    from tests.conftest import TEST_SERVER_DEFAULTS

    folder = tmp_path_factory.mktemp("finished")
    manifest = write_csv(folder / "m.csv", ROWS)
    config = {**TEST_SERVER_DEFAULTS, "faults": {"429": 0.25, "500": 0.1}, "seed": 5}
    with LocalServer(ServerConfig(**config)) as server:
        # In its own process: Playwright's sync API keeps an event loop running in this one.
        args = (*FAST_BACKOFF, "--max-attempts", "2")
        process = spawn_run(manifest, folder / "out", server.base_url, *args, logs=folder / "run")
        assert finish(process) == 1, (folder / "run.err").read_text()  # some rows failed
    return folder / "out"


def test_a_finished_job_page_loads_clean_and_shows_its_figures(browser, finished_job):
    page_path = report(finished_job)
    opened = Opened(browser, page_path)
    opened.check_clean()
    summary = json.loads((finished_job / "summary.json").read_text(encoding="utf-8"))
    shown = opened.figures("summary-json")
    for key in ("rows", "ok", "failed", "attempts", "retries", "rate_limited", "wall_seconds", "exit_status"):
        assert shown[key] == str(summary[key]), key
    assert summary["rate_limited"] > 0 and summary["retries"] > 0  # the faults did happen

    results = pq.read_table(finished_job / "results.parquet").to_pylist()
    counted = opened.figures("counted")
    assert counted["rows"] == str(len(results))
    assert counted["retried_rows"] == str(sum(r["attempts"] > 1 for r in results))
    # Each row's 429 answers are in its journal line; they add up to the run's count, and reach the page.
    journal = [json.loads(line) for line in (finished_job / ".batchtts" / "journal.jsonl").read_text().splitlines()]
    assert sum(entry.get("rate_limited", 0) for entry in journal) == summary["rate_limited"]
    limited_rows = sum(entry.get("rate_limited", 0) > 0 or entry["http_status"] == 429 for entry in journal)
    assert counted["rate_limited_rows"] == str(limited_rows) != "0"
    # Failures by reason: the unknown voice's rows, counted as in the results.
    reasons = dict(
        opened.page.eval_on_selector_all(
            "#reasons tr:not(:first-child)", "rows => rows.map(r => [r.cells[2].textContent, r.cells[0].textContent])"
        )
    )
    failed_reasons: dict[str, int] = {}
    for row in results:
        if row["status"] == "failed":
            failed_reasons[row["error"]] = failed_reasons.get(row["error"], 0) + 1
    assert {reason: int(count) for reason, count in reasons.items()} == failed_reasons
    # Times per voice: one box per voice that sent requests, in both charts.
    for label in ("time to first audio per voice", "total time per voice"):
        assert opened.page.locator(f'svg[aria-label="{label}"] g.box').count() == 2
    assert opened.page.locator('svg[aria-label="rows finished per interval"] g.bar').count() >= 1
    # The sample's texts are the manifest's, shown as text (the markup is not markup).
    texts = opened.page.eval_on_selector_all("#sample td.text", "cells => cells.map(c => c.textContent)")
    by_text = {row["text"] for row in ROWS}
    assert texts and all(text in by_text for text in texts)


def test_flagged_rows_appear_with_their_text_and_a_player(browser, finished_job, tmp_path):
    """The real run's folder with audio-check columns: written here when this version's runs lack them."""
    out = tmp_path / "out"
    shutil.copytree(finished_job, out)
    table = pq.read_table(out / "results.parquet")
    rows = table.to_pylist()
    if "qa" not in table.column_names:
        flagged_ids = [row["id"] for row in rows if row["status"] == "ok"][::3]
        flags = [["silent"] if row["id"] in flagged_ids else [] for row in rows]
        table = table.append_column("qa", pa.array(flags, pa.list_(pa.string())))
        table = table.append_column("peak_dbfs", pa.array([-1.5] * len(rows)))
        pq.write_table(table, out / "results.parquet")
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        (out / "summary.json").write_text(json.dumps({**summary, "results": "results.parquet"}), encoding="utf-8")
    flagged = [row for row in table.to_pylist() if row["qa"]]
    assert flagged
    opened = Opened(browser, report(out, "--manifest", str(finished_job.parent / "m.csv")))
    opened.check_clean()
    listed = opened.page.eval_on_selector_all(
        "#flagged tr.row", "rows => rows.map(r => [r.cells[1].textContent, r.cells[3].textContent])"
    )
    assert [row_id for row_id, _flags in listed] == [row["id"] for row in flagged]
    assert all(flags.strip() == " ".join(row["qa"]) for (_id, flags), row in zip(listed, flagged))
    texts = opened.page.eval_on_selector_all("#flagged td.text", "cells => cells.map(c => c.textContent)")
    by_id = {row["id"]: row["text"] for row in ROWS}
    assert texts == [by_id[row["id"]] for row in flagged]
    players = opened.page.locator("#flagged audio").count()
    assert players == len(flagged)


def test_a_running_job_is_reported_without_being_disturbed(browser, tmp_path, local_server):
    server = local_server(**SLOW)
    manifest = write_csv(tmp_path / "m.csv", ROWS[:24:3] * 1 + [{**r, "voice_id": "emily"} for r in ROWS[1:24:3]])
    out = tmp_path / "out"
    process = spawn_run(manifest, out, server.base_url, "--concurrency", "1", logs=tmp_path / "run")
    journal = out / ".batchtts" / "journal.jsonl"

    def journaled() -> int:
        return journal.read_bytes().count(b"\n") if journal.exists() else 0

    wait_until(lambda: journaled() >= 2 or process.poll() is not None, what="rows journaled")
    assert process.poll() is None, "the run ended before the report could be made"
    page_path = report(out, "--manifest", str(manifest))
    still_running = process.poll() is None
    opened = Opened(browser, page_path)
    if still_running:
        assert opened.page.get_attribute("#state", "data-state") == "running"
    rows_shown = int(opened.figures("counted")["rows"])
    assert 2 <= rows_shown <= 16
    opened.check_clean()
    assert finish(process) == 0  # the run was never blocked: it finished every row
    results = pq.read_table(out / "results.parquet").to_pylist()
    assert len(results) == 16 and all(row["status"] == "ok" for row in results)


def test_an_interrupted_job_is_read_from_its_journal(browser, tmp_path, local_server):
    server = local_server(**SLOW)
    manifest = write_csv(tmp_path / "m.csv", [{**r, "voice_id": "magnus"} for r in ROWS[:20]])
    out = tmp_path / "out"
    process = spawn_run(manifest, out, server.base_url, "--concurrency", "1", logs=tmp_path / "run")
    journal = out / ".batchtts" / "journal.jsonl"
    wait_until(lambda: journal.exists() and journal.read_bytes().count(b"\n") >= 3, what="rows journaled")
    process.kill()
    assert finish(process) == -signal.SIGKILL
    time.sleep(0.05)
    lines = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines() if line.endswith("}")]
    assert not (out / "results.parquet").exists()
    opened = Opened(browser, report(out))
    assert opened.page.get_attribute("#state", "data-state") == "interrupted"
    assert opened.figures("counted")["rows"] == str(len({(e["row"], e["id"]) for e in lines}))
    opened.check_clean()
