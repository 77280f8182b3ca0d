"""The report page rendered from job folders written by hand: every source, the QA columns, caps, escaping.

The browser test (tests/e2e/test_report_page.py) opens pages of real runs, audio-check flags included;
these check what the page says for folders a run makes rarely or slowly (hundreds of flagged rows past
--max-listed, markup in ids and errors, shard journals written by hand, results made before the checks).
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from batchtts.cli import main
from batchtts.report.charts import timeline_svg
from batchtts.report.page import ReportOptions, write_report
from batchtts.storage.names import SHARDS_DIR, shard_part_name
from tests.report_support import journal_entries, result_rows, write_job, write_journal, write_wav


def rows_in(html: str, section: str) -> list[str]:
    """The table rows of one section of the page."""
    match = re.search(rf'<section id="{section}">(.*?)</section>', html, re.S)
    assert match is not None, f"no section {section}"
    return re.findall(r'<tr class="row">(.*?)</tr>', match.group(1), re.S)


def audio_sources(html: str) -> list[str]:
    return re.findall(r'<audio controls preload="none" src="([^"]+)">', html)


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_flagged_rows_are_listed_with_their_flags_figures_and_players(tmp_path, fmt):
    rows = result_rows(40, flagged_every=3)
    write_job(tmp_path / "out", rows, fmt=fmt)
    page, figures = write_report(tmp_path / "out")
    html = page.read_text(encoding="utf-8")
    flagged = [row for row in rows if row["qa"]]
    assert figures.flagged_count == len(flagged) > 0
    listed = rows_in(html, "flagged")
    assert len(listed) == len(flagged)
    for row, cell in zip(flagged, listed):
        assert f'<span class="flag">{row["qa"][0]}</span>' in cell
        assert "-3.0" in cell and "-20.0" in cell  # peak and RMS dBFS
        assert f'src="audio/r{row["row"]}.wav"' in cell
    counts = {flag: sum(row["qa"] == [flag] for row in rows) for flag in {f for row in flagged for f in row["qa"]}}
    for flag, count in counts.items():
        assert f'<span class="flag">{flag}</span> {count}' in html
    for source in audio_sources(html):
        assert (page.parent / source).is_file()


def test_user_text_is_escaped_everywhere(tmp_path):
    rows = result_rows(12, flagged_every=2)
    write_job(tmp_path / "out", rows)
    html = write_report(tmp_path / "out")[0].read_text(encoding="utf-8")
    assert "<script" not in html and "<img" not in html and "<b>boom" not in html
    assert "r2&lt;script&gt;" in html
    assert "Line 2 &lt;img src=x onerror=alert(1)&gt; &amp; more" in html
    assert "HTTP 500: &lt;b&gt;boom&lt;/b&gt;" in html


def test_flagged_rows_are_capped_and_the_rest_counted(tmp_path):
    rows = result_rows(300, flagged_every=2)
    write_job(tmp_path / "out", rows)
    options = ReportOptions(max_listed=25, sample_size=5)
    page, _figures = write_report(tmp_path / "out", options=options)
    html = page.read_text(encoding="utf-8")
    flagged = sum(bool(row["qa"]) for row in rows)
    assert len(rows_in(html, "flagged")) == 25
    assert f"and {flagged - 25} more" in html
    assert len(rows_in(html, "sample")) == 5


def test_the_sample_is_seeded_bounded_and_only_unflagged_ok_rows(tmp_path):
    rows = result_rows(200, flagged_every=4)
    write_job(tmp_path / "out", rows)

    def sample(seed: int) -> list[int]:
        figures = write_report(tmp_path / "out", options=ReportOptions(sample_size=8, seed=seed))[1]
        return [row["row"] for row in figures.sample]

    first = sample(1)
    assert first == sample(1) and len(first) == 8
    assert sample(2) != first  # another seed, another draw (fixed seeds: this holds, checked once)
    by_row = {row["row"]: row for row in rows}
    assert all(by_row[n]["status"] == "ok" and not by_row[n]["qa"] for n in first)


def test_a_job_without_qa_columns_reports_the_same_without_them(tmp_path):
    rows = result_rows(20, qa=False)
    write_job(tmp_path / "out", rows)
    page, figures = write_report(tmp_path / "out")
    html = page.read_text(encoding="utf-8")
    assert not figures.has_qa
    assert "No row of this job was checked by the audio checks" in html
    assert len(rows_in(html, "sample")) == 12
    assert "s/char" not in html  # no QA figures in the sample's table


def test_summary_json_figures_and_counted_figures(tmp_path):
    rows = result_rows(30, flagged_every=3)
    write_job(tmp_path / "out", rows)
    html = write_report(tmp_path / "out")[0].read_text(encoding="utf-8")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    shown = dict(re.findall(r'<td data-key="([a-z_]+)">([^<]*)</td>', html.split('id="counted"')[0]))
    for key in ("rows", "ok", "failed", "pending", "attempts", "wall_seconds", "exit_status"):
        assert shown[key] == str(summary[key])
    counted = dict(re.findall(r'<td data-key="([a-z_]+)">([^<]*)</td>', html.split('id="counted"')[1]))
    assert counted["retried_rows"] == str(sum(row["attempts"] > 1 for row in rows))
    assert counted["failed"] == str(sum(row["status"] == "failed" for row in rows))
    assert "HTTP 500: &lt;b&gt;boom&lt;/b&gt; 0" in html and "HTTP 500: &lt;b&gt;boom&lt;/b&gt; 1" in html


def test_an_interrupted_folder_is_read_from_its_journal(tmp_path):
    out = tmp_path / "out"
    rows = result_rows(10, flagged_every=3)
    write_job(out, rows[:4], summary=False)  # an earlier run's results
    os.utime(out / "results.parquet", (1_000_000, 1_000_000))
    entries = journal_entries(rows)
    entries[2] = {**entries[2], "status": "pending", "path": None}  # an earlier line for row 3 ...
    entries.append(journal_entries(rows)[2])  # ... replaced by a later one: the latest counts
    entries[4]["rate_limited"] = 2
    write_journal(out / ".batchtts" / "journal.jsonl", entries)
    page, figures = write_report(out)
    html = page.read_text(encoding="utf-8")
    assert 'data-state="interrupted"' in html
    assert figures.rows == 10 and figures.statuses["ok"] == 8 and figures.statuses["failed"] == 2
    assert figures.rate_limited_rows == 1
    assert "Line 3 &lt;img" in html  # a flagged row's text, from the journal's carried values
    assert len(rows_in(html, "flagged")) == figures.flagged_count == 3


def test_a_sharded_folder_not_merged_reads_every_shard_journal(tmp_path):
    out = tmp_path / "out"
    rows = result_rows(12, flagged_every=4)
    for row in rows:
        if row["path"]:
            write_wav(out / row["path"])
    shards = out / SHARDS_DIR  # parts are named 0-of-2, 1-of-2 (K is 0-based)
    write_journal(shards / shard_part_name(0, 2) / "journal.jsonl", journal_entries(rows[:6]))
    write_journal(shards / shard_part_name(1, 2) / "journal.jsonl", journal_entries(rows[6:]))
    page, figures = write_report(out)
    assert 'data-state="sharded"' in page.read_text(encoding="utf-8")
    assert figures.rows == 12 and figures.flagged_count == sum(bool(row["qa"]) for row in rows)


def test_the_report_writes_nothing_but_the_page(tmp_path):
    out = tmp_path / "out"
    write_job(out, result_rows(20, flagged_every=3))
    write_journal(out / ".batchtts" / "journal.jsonl", [])

    def files() -> dict[str, tuple[int, int]]:
        return {
            str(p.relative_to(out)): (p.stat().st_size, p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()
        }

    before = files()
    write_report(out)
    after = files()
    assert set(after) - set(before) == {"report.html"}
    assert {k: v for k, v in after.items() if k != "report.html"} == before


def test_report_out_elsewhere_points_players_back_at_the_folder(tmp_path):
    out = tmp_path / "jobs" / "out"
    write_job(out, result_rows(10, flagged_every=2))
    target = tmp_path / "pages" / "r.html"
    target.parent.mkdir()
    result = CliRunner().invoke(main, ["report", str(out), "--out", str(target)])
    assert result.exit_code == 0, result.output
    sources = audio_sources(target.read_text(encoding="utf-8"))
    assert sources and all(s.startswith("../jobs/out/audio/") for s in sources)
    assert all((target.parent / s).is_file() for s in sources)
    assert not (out / "report.html").exists()


def test_missing_audio_files_get_no_player(tmp_path):
    out = tmp_path / "out"
    rows = result_rows(6, flagged_every=1)
    write_job(out, rows)
    (out / "audio" / "r1.wav").unlink()
    html = write_report(out)[0].read_text(encoding="utf-8")
    assert "missing: audio/r1.wav" in html
    assert 'audio/r1.wav"' not in html


@pytest.mark.parametrize(
    ("setup", "said"),
    [
        (lambda out: None, "no such job folder"),
        (lambda out: out.mkdir(), "not a job folder"),
    ],
)
def test_bad_folders_are_one_line_errors(tmp_path, setup, said):
    out = tmp_path / "out"
    setup(out)
    result = CliRunner().invoke(main, ["report", str(out)])
    assert result.exit_code == 2
    assert said in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_an_unwritable_page_is_a_one_line_error(tmp_path):
    """(The tests run as root: a folder that is a file is what refuses the page.)"""
    out = tmp_path / "out"
    write_job(out, result_rows(5))
    result = CliRunner().invoke(main, ["report", str(out), "--out", str(out / "summary.json" / "r.html")])
    assert result.exit_code == 2
    assert "cannot write the report" in result.output and "Traceback" not in result.output


def test_a_job_of_many_days_keeps_a_bounded_time_tally(monkeypatch):
    from batchtts.report import figures as figures_module

    monkeypatch.setattr(figures_module, "MAX_TIME_SLOTS", 100)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {"status": "ok", "attempts": 1, "finished_at": (start + timedelta(seconds=n)).isoformat(), "qa": []}
        for n in range(0, 5 * 86400, 997)
    ]
    rows += [{"status": "failed", "attempts": 2, "finished_at": f"2026-01-01T00:{n:02d}:07Z"} for n in range(60)]
    figures = figures_module.collect_figures(rows)
    assert len(figures.seconds) <= 100 and figures.resolution > 1
    assert sum(s.ok for s in figures.seconds.values()) == len(rows) - 60
    assert sum(s.failed + s.retried for s in figures.seconds.values()) == 120
    assert 'class="bar"' in timeline_svg(figures)
