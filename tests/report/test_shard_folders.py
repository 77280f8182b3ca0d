"""Which shard parts a report reads, and in which state, from the folders `run --shard` leaves.

The e2e tests (tests/e2e/test_report_shards.py) make these folders with real shard runs; here the
edge cases that real runs only reach by killing or re-splitting: a killed shard's stale lock record,
parts of two splits, a part written again after the merge.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from batchtts.report.folder import open_job_folder
from batchtts.report.page import write_report
from batchtts.storage.names import JOURNAL_NAME, LOCK_NAME, SHARDS_DIR, SUMMARY_NAME, shard_part_name
from tests.report_support import journal_entries, result_rows, write_job, write_journal


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_killed_shard_is_not_running_and_the_folder_says_to_merge(tmp_path):
    out = tmp_path / "out"
    rows = result_rows(8)
    part = out / SHARDS_DIR / shard_part_name(0, 2)
    write_journal(part / JOURNAL_NAME, journal_entries(rows[:5]))
    write_journal(out / SHARDS_DIR / shard_part_name(1, 2) / JOURNAL_NAME, journal_entries(rows[5:]))
    (part / LOCK_NAME).write_text(json.dumps({"pid": dead_pid(), "host": os.uname().nodename}), encoding="utf-8")
    folder = open_job_folder(out)
    assert folder.state == "sharded"
    assert [p.state for p in folder.parts] == ["interrupted", "interrupted"]
    page, figures = write_report(out)
    assert figures.rows == 8
    text = page.read_text(encoding="utf-8")
    assert f"0 of 2 shards finished, not merged: run batchtts merge {out}" in text
    for name, count in ((shard_part_name(0, 2), 5), (shard_part_name(1, 2), 3)):  # each part's rows, counted
        line = re.search(f'data-shard="{name}">(.*?)</tr>', text)
        assert line is not None and f'<td data-key="rows">{count}</td>' in line[1]


def test_the_split_written_last_is_read(tmp_path):
    out = tmp_path / "out"
    rows = result_rows(9)
    write_journal(out / SHARDS_DIR / shard_part_name(0, 2) / JOURNAL_NAME, journal_entries(rows))
    for k in range(3):
        path = out / SHARDS_DIR / shard_part_name(k, 3) / JOURNAL_NAME
        write_journal(path, journal_entries(rows[k::3]))
        os.utime(path, (os.path.getmtime(path) + 10, os.path.getmtime(path) + 10))
    folder = open_job_folder(out)
    assert [(p.index, p.count) for p in folder.parts] == [(0, 3), (1, 3), (2, 3)]
    _page, figures = write_report(out)
    assert figures.rows == 9


def test_a_part_written_after_the_merge_makes_the_folder_unmerged_again(tmp_path):
    out = tmp_path / "out"
    rows = result_rows(6)
    write_job(out, rows)
    summary = json.loads((out / SUMMARY_NAME).read_text(encoding="utf-8"))
    parts = [shard_part_name(k, 2) for k in range(2)]
    (out / SUMMARY_NAME).write_text(json.dumps({**summary, "shards": {"count": 2, "parts": parts}}), encoding="utf-8")
    journals = [out / SHARDS_DIR / name / JOURNAL_NAME for name in parts]
    for journal, share in zip(journals, (rows[:3], rows[3:]), strict=True):
        write_journal(journal, journal_entries(share))
        os.utime(journal, (os.path.getmtime(journal) - 60, os.path.getmtime(journal) - 60))
    assert open_job_folder(out).state == "finished"  # merged: the merged results are read
    assert open_job_folder(out).from_parts is False
    later = os.path.getmtime(out / "results.parquet") + 60
    os.utime(journals[1], (later, later))  # shard 1/2 ran again after the merge
    folder = open_job_folder(out)
    assert (folder.state, folder.from_parts) == ("sharded", True)
