"""`batchtts report DIR` opened in a real headless browser: Debian's chromium, driven through Playwright.

Each page comes from a real job folder: a real `batchtts run` against the real local server (with
429s, 500s and a voice the catalog lacks, or with silent, truncated and clipped takes that the audio
checks flag), finished, still running in its own process, or killed.
The page must load from file:// with no console error, no failed request and no request that is
not a local file; every player must point at an existing file that the browser can load; the
figures must be summary.json's and the results'.

chromium is installed by `make test` when missing (Makefile); Playwright never downloads a browser
here. Without /usr/bin/chromium these tests fail: they are not skipped.
"""

from __future__ import annotations

import csv
import json
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from batchtts.cli import main
from batchtts.report.page import QA_FIGURES
from tests.e2e.test_audio_checks import TEXTS
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
#: The audio checks' rows: one voice, the median trusted after 3 takes; two texts with long pauses
#: (4 slots of silence per '.': about 1 s for '....') get long_silence under --qa-max-silence 0.5.
PAUSED = ["Wait.... for it.... here it comes, now.", "Stop.... look.... and then listen, please."]
QA_ROWS = [
    {"id": f"q{n:02d}", "text": text}
    for n, text in enumerate([*TEXTS[:3], PAUSED[0], *TEXTS[3:9], PAUSED[1], *TEXTS[9:]])
]
QA_ARGS = ("--concurrency", "1", "--qa-min-rows", "3", "--sample-rate", "8000", "--voice-id", "magnus",
           "--qa-max-silence", "0.5")  # fmt: skip
#: Seed 0 strikes takes with silence, truncation and clipping after the median is trusted, and clips
#: a paused row (two flags): the tests check it.
QA_FAULTS = {"silence": 0.15, "truncate": 0.15, "clip": 0.15}
QA_SEED = 0
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

    def listed(self, section: str) -> list[dict[str, Any]]:
        """The rows a section lists: id, flags, text, the QA figures by column name, the player's file."""
        return self.page.eval_on_selector_all(
            f"#{section} tr.row",
            """rows => rows.map(r => Object.assign(
                Object.fromEntries([...r.querySelectorAll('td[data-key]')].map(c => [c.dataset.key, c.textContent])),
                {id: r.querySelector('td.id').textContent,
                 flags: [...r.querySelectorAll('td.flags .flag')].map(f => f.textContent),
                 text: r.querySelector('td.text').textContent,
                 audio: r.querySelector('audio') ? decodeURIComponent(new URL(r.querySelector('audio').src).pathname)
                                                : null}))""",
        )

    def durations(self, scope: str) -> list[float]:
        """Load each player of ``scope`` in turn (preload is none) and read its duration (-1: it failed)."""
        return self.page.evaluate(
            """async scope => {
                const found = [];
                for (const player of document.querySelectorAll(scope + ' audio')) {
                    found.push(await new Promise(done => {
                        player.addEventListener('loadedmetadata', () => done(player.duration), {once: true});
                        player.addEventListener('error', () => done(-1), {once: true});
                        player.preload = 'auto';
                        player.load();
                    }));
                }
                return found;
            }""",
            scope,
        )

    def flag_counts(self) -> dict[str, int]:
        """The summary's "Audio check flags" line: each flag and its rows."""
        text = self.page.eval_on_selector("#summary p.flags", "p => p.textContent")
        pairs = [item.strip().rsplit(" ", 1) for item in text.split(":", 1)[1].split(",")]
        return {flag: int(count) for flag, count in pairs}

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
    # The audio checks (--qa retry, the default) found nothing wrong: summary.json's qa block says so.
    assert opened.figures("summary-qa") == {"checked": str(summary["ok"]), "flagged": "0", "retakes": "0"}
    assert opened.page.locator("#flagged p.none").text_content() == "No row was flagged."

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


def flagged_job_run(folder: Path, mode: str, *args: str) -> tuple[Path, dict[str, int]]:
    """A real run of QA_ROWS against a local server that sends silent, truncated and clipped takes."""
    from batchtts.server.config import ServerConfig
    from batchtts.server.running import LocalServer
    from tests.conftest import TEST_SERVER_DEFAULTS

    manifest = write_csv(folder / "m.csv", QA_ROWS)
    config = {**TEST_SERVER_DEFAULTS, "faults": QA_FAULTS, "seed": QA_SEED, "fault_first": 1}
    with LocalServer(ServerConfig(**config)) as server:
        # In its own process: Playwright's sync API keeps an event loop running in this one.
        process = spawn_run(
            manifest, folder / "out", server.base_url, *QA_ARGS, "--qa", mode, *args, logs=folder / "run"
        )
        assert finish(process) == 0, (folder / "run.err").read_text()
        faults = server.stats.snapshot()["faults"]
    return folder / "out", faults


def results_of(out: Path) -> list[dict[str, Any]]:
    """The results as the run wrote them: Parquet (``qa`` a list) or CSV (``qa`` joined with ``;``)."""
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    path = out / Path(summary["results"]).name
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["qa"] = row["qa"].split(";") if row["qa"] else []
        for name, _label, _digits in QA_FIGURES:
            row[name] = float(row[name]) if row[name] else None
        row["audio_seconds"] = float(row["audio_seconds"]) if row["audio_seconds"] else None
    return rows


@pytest.fixture(scope="module", params=["results.parquet", "results.csv"])
def flagged_job(request, tmp_path_factory) -> tuple[Path, dict[str, int]]:
    """A finished real run under ``--qa flag``: the flagged takes are kept, in Parquet or CSV results."""
    folder = tmp_path_factory.mktemp("flagged")
    return flagged_job_run(folder, "flag", "--results", str(folder / "out" / request.param))


def test_flagged_rows_of_a_real_run_appear_with_flags_figures_text_and_a_player(browser, flagged_job):
    out, faults = flagged_job
    results = results_of(out)
    flagged = [row for row in results if row["qa"]]
    # The server's faults, and the long pauses, really made each kind of flag.
    assert faults.get("silence", 0) and faults.get("truncate", 0) and faults.get("clip", 0), faults
    assert {"silent", "truncated", "clipped", "long_silence"} <= {flag for row in flagged for flag in row["qa"]}
    assert any(len(row["qa"]) > 1 for row in flagged)  # several flags on one row (";"-joined in CSV)

    opened = Opened(browser, report(out))
    opened.check_clean()
    listed = opened.listed("flagged")
    assert [row["id"] for row in listed] == [row["id"] for row in flagged]
    texts = {row["id"]: row["text"] for row in QA_ROWS}
    for shown, row in zip(listed, flagged, strict=True):
        assert shown["flags"] == row["qa"], row["id"]
        assert shown["text"] == texts[row["id"]]  # from the manifest summary.json names
        for name, _label, digits in QA_FIGURES:  # longest_silence_s among them
            assert row[name] is not None, name
            assert float(shown[name]) == pytest.approx(row[name], abs=0.51 * 10**-digits), (row["id"], name)
        assert Path(shown["audio"]).resolve() == (out / row["path"]).resolve()
    durations = opened.durations("#flagged")
    assert len(durations) == len(flagged)
    for duration, row in zip(durations, flagged, strict=True):
        assert duration > 0 and duration == pytest.approx(row["audio_seconds"], abs=0.02), row["id"]
    assert opened.errors == []

    # The counts: from the rows, and summary.json's qa block.
    counted = opened.figures("counted")
    assert counted["flagged"] == str(len(flagged))
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))["qa"]
    assert summary["checked"] == len(results) and summary["flagged"] == len(flagged) and summary["retakes"] == 0
    assert opened.figures("summary-qa") == {
        "checked": str(summary["checked"]),
        "flagged": str(summary["flagged"]),
        "retakes": "0",
        **{f"flags.{flag}": str(count) for flag, count in summary["flags"].items()},
    }
    tally = Counter(flag for row in flagged for flag in row["qa"])
    assert opened.flag_counts() == dict(tally) == summary["flags"]


def test_retry_shows_the_retakes_and_the_rows_no_retake_could_mend(browser, tmp_path):
    out, faults = flagged_job_run(tmp_path, "retry")
    results = results_of(out)
    flagged = [row for row in results if row["qa"]]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))["qa"]
    # The faulted takes were made again (clean: the server faults the first request of each text);
    # the long pauses are in every take, so those rows stay flagged.
    assert all(row["qa"] == ["long_silence"] for row in flagged) and flagged
    assert summary["retakes"] == sum(int(row["attempts"]) for row in results) - len(results)
    # Each faulted take once, each paused row once (its retake was no better, so the first take stands).
    assert summary["retakes"] == sum(faults.values()) + len(flagged) > len(flagged)
    opened = Opened(browser, report(out))
    opened.check_clean()
    shown = opened.figures("summary-qa")
    assert shown["retakes"] == str(summary["retakes"])
    assert shown["flagged"] == str(len(flagged)) and shown["checked"] == str(len(results))
    assert [row["id"] for row in opened.listed("flagged")] == [row["id"] for row in flagged]
    assert opened.figures("counted")["attempts"] == str(sum(int(row["attempts"]) for row in results))


def test_a_run_with_the_checks_off_says_so(browser, tmp_path, local_server):
    server = local_server(faults={"silence": 1.0}, seed=1)  # every take silent: nothing checks it
    manifest = write_csv(tmp_path / "m.csv", QA_ROWS[:4])
    process = spawn_run(manifest, tmp_path / "out", server.base_url, *QA_ARGS, "--qa", "off", logs=tmp_path / "run")
    assert finish(process) == 0, (tmp_path / "run.err").read_text()
    opened = Opened(browser, report(tmp_path / "out"))
    opened.check_clean()
    assert opened.figures("summary-qa") == {"checked": "0", "flagged": "0", "retakes": "0"}
    assert "was checked by the audio checks" in opened.page.locator("#flagged p.none").text_content()
    assert "flagged" not in opened.figures("counted")
    assert opened.page.locator("#sample td[data-key]").count() == 0  # no QA figures in the sample
    assert len(opened.listed("sample")) == 4


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
    server = local_server(**SLOW, faults={"silence": 0.3}, seed=1)  # some takes silent: flagged, kept
    manifest = write_csv(tmp_path / "m.csv", [{**r, "voice_id": "magnus"} for r in ROWS[:20]])
    out = tmp_path / "out"
    process = spawn_run(manifest, out, server.base_url, "--concurrency", "1", "--qa", "flag", logs=tmp_path / "run")
    journal = out / ".batchtts" / "journal.jsonl"

    def journaled() -> bytes:
        return journal.read_bytes() if journal.exists() else b""

    wait_until(lambda: journaled().count(b"\n") >= 3 and b"silent" in journaled(), what="rows journaled, one flagged")
    process.kill()
    assert finish(process) == -signal.SIGKILL
    time.sleep(0.05)
    lines = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines() if line.endswith("}")]
    assert not (out / "results.parquet").exists()
    opened = Opened(browser, report(out))
    assert opened.page.get_attribute("#state", "data-state") == "interrupted"
    assert opened.figures("counted")["rows"] == str(len({(e["row"], e["id"]) for e in lines}))
    opened.check_clean()
    # The flagged rows journaled so far, with their flags and a player that loads.
    last = {entry["id"]: entry for entry in lines}
    flagged = [entry for entry in last.values() if entry.get("qa")]
    listed = opened.listed("flagged")
    assert flagged and [row["id"] for row in listed] == [entry["id"] for entry in flagged]
    assert [row["flags"] for row in listed] == [entry["qa"] for entry in flagged] == [["silent"]] * len(flagged)
    assert all(duration > 0 for duration in opened.durations("#flagged"))
    assert opened.errors == []
