"""Shards of one job run side by side into one folder, and `batchtts merge` puts them back together.

Real ``batchtts run`` processes (``--shard K/N``) against the real local server,
which counts every request: that is how these tests see that a rerun after the
merge, or a killed shard's rerun, pays for nothing twice.
"""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
from click.testing import CliRunner

from batchtts.cli import main
from batchtts.job.lock import job_lock
from batchtts.job.shards import shard_of
from tests.e2e.test_shutdown import SLOW, completed
from tests.nightly_support import finish, settle, spawn_run, starts, temp_files, wait_until
from tests.runner_support import run_job, write_csv

ROWS = [{"id": f"utt-{n:03d}", "text": f"Sentence number {n}.", "speaker": f"s{n % 4}"} for n in range(30)]
#: Columns that differ between two runs of the same rows (timings, ids), left out of comparisons.
PER_RUN = {"request_id", "server_request_id", "server_session_id", "ttfb_ms", "total_ms", "started_at",
           "finished_at", "reused"}  # fmt: skip


def merge(out, *args: str):
    return CliRunner().invoke(main, ["merge", str(out), *args], catch_exceptions=False)


def results(path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def rows_of(shard: int, count: int) -> list[str]:
    return [row["id"] for row in ROWS if shard_of(row["id"], count) == shard]


def test_three_shards_at_once_merge_to_the_unsharded_results_and_a_rerun_sends_nothing(tmp_path, server):
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    out = tmp_path / "out"
    processes = [
        spawn_run(manifest, out, server.base_url, "--shard", f"{k}/3", "--concurrency", "2", logs=tmp_path / f"s{k}")
        for k in range(3)
    ]
    assert [finish(p) for p in processes] == [0, 0, 0], [(tmp_path / f"s{k}.err").read_text() for k in range(3)]
    assert starts(server) == len(ROWS)  # each row once, across the shards
    for k in range(3):
        part = out / ".batchtts" / "shards" / f"{k}-of-3"
        assert [r["id"] for r in results(part / "results.parquet")] == rows_of(k, 3)
        assert json.loads((part / "summary.json").read_text())["shard"] == f"{k}/3"
    assert not (out / "results.parquet").exists()

    merged = merge(out)
    assert merged.exit_code == 0, merged.output
    sharded = results(out / "results.parquet")
    assert [(r["id"], r["row"]) for r in sharded] == [(row["id"], n) for n, row in enumerate(ROWS, start=1)]
    assert [r["speaker"] for r in sharded] == [row["speaker"] for row in ROWS]
    document = json.loads((out / "summary.json").read_text())
    assert (document["rows"], document["ok"], document["exit_status"]) == (30, 30, 0)
    assert document["attempts"] == 30 and document["shards"]["count"] == 3

    alone = run_job(manifest, tmp_path / "alone", server.base_url, "--concurrency", "2")
    assert alone.exit_code == 0, alone.output
    unsharded = alone.results()
    assert [{k: v for k, v in r.items() if k not in PER_RUN} for r in sharded] == [
        {k: v for k, v in r.items() if k not in PER_RUN} for r in unsharded
    ]
    for record in sharded:  # byte-exact audio
        assert (out / record["path"]).read_bytes() == (tmp_path / "alone" / record["path"]).read_bytes()

    server.stats.reset()
    rerun = run_job(manifest, out, server.base_url)
    assert rerun.exit_code == 0, rerun.output
    assert starts(server) == 0  # the shards' rows were all taken in
    again = rerun.results()
    assert all(r["reused"] and r["status"] == "ok" for r in again)
    assert [r["id"] for r in again] == [row["id"] for row in ROWS]
    assert not list((out / ".batchtts" / "shards").iterdir())  # one journal again: the parts were taken in


def test_a_killed_shard_leaves_pending_rows_and_its_rerun_resumes(tmp_path, local_server):
    server = local_server(**SLOW)
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    out = tmp_path / "out"
    process = spawn_run(manifest, out, server.base_url, "--shard", "0/2", "--concurrency", "2", logs=tmp_path / "k")
    wait_until(lambda: completed(server) >= 3 or process.poll() is not None, what="streams")
    process.kill()
    finish(process)
    settle(server)
    other = run_job(manifest, out, server.base_url, "--shard", "1/2")
    assert other.exit_code == 0, other.output

    partial = merge(out)
    assert partial.exit_code == 4, partial.output  # rows remain to do
    merged = {r["id"]: r for r in results(out / "results.parquet")}
    assert list(merged) == [row["id"] for row in ROWS]
    pending = {row_id for row_id, r in merged.items() if r["status"] == "pending"}
    assert pending and pending <= set(rows_of(0, 2))
    assert all("shard 0/2" in merged[row_id]["error"] for row_id in pending)
    done_before = set(rows_of(0, 2)) - pending

    server.stats.reset()
    rerun = run_job(manifest, out, server.base_url, "--shard", "0/2")
    assert rerun.exit_code == 0, rerun.output
    assert starts(server) == len(pending)  # only what the killed run did not finish
    assert {r["id"] for r in rerun.results(".batchtts/shards/0-of-2/results.parquet") if r["reused"]} == done_before
    final = merge(out)
    assert final.exit_code == 0, final.output
    assert [r["status"] for r in results(out / "results.parquet")] == ["ok"] * len(ROWS)
    assert temp_files(out / ".batchtts") == []


def test_rows_no_part_has_are_pending_and_a_row_in_two_parts_is_an_error(tmp_path, server):
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    out = tmp_path / "out"
    assert run_job(manifest, out, server.base_url, "--shard", "0/3").exit_code == 0
    merged = merge(out, "--results", str(tmp_path / "r.csv"))
    assert merged.exit_code == 4, merged.output
    assert "no part of shard(s) 1, 2 of 3" in merged.output
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(tmp_path / "r.csv").to_pylist()
    assert [r["id"] for r in table] == [row["id"] for row in ROWS]
    assert {r["id"] for r in table if r["status"] == "ok"} == set(rows_of(0, 3))
    assert {r["id"] for r in table if r["status"] == "pending"} == set(rows_of(1, 3) + rows_of(2, 3))

    assert run_job(manifest, out, server.base_url, "--shard", "1/3").exit_code == 0
    part0, part1 = (out / ".batchtts" / "shards" / name / "journal.jsonl" for name in ("0-of-3", "1-of-3"))
    stray = part0.read_text().splitlines()[0]
    with part1.open("a") as handle:  # a row of part 0 lands in part 1 too
        handle.write(stray + "\n")
    (out / "results.parquet").unlink(missing_ok=True)
    duplicate = merge(out)
    assert duplicate.exit_code == 2
    row_id = json.loads(stray)["id"]
    assert f"(id {row_id!r}) is in two shard parts, 0-of-3 and 1-of-3" in duplicate.output
    assert "Traceback" not in duplicate.output
    assert not (out / "results.parquet").exists()  # nothing written


def test_shard_auto_reads_job_completion_index(tmp_path, server):
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    out = tmp_path / "out"
    job = run_job(manifest, out, server.base_url, "--shard", "auto/2", env={"JOB_COMPLETION_INDEX": "1"})
    assert job.exit_code == 0, job.output
    assert [r["id"] for r in job.results(".batchtts/shards/1-of-2/results.parquet")] == rows_of(1, 2)
    unset = run_job(manifest, out, server.base_url, "--shard", "auto/2", env={"JOB_COMPLETION_INDEX": None})
    assert unset.exit_code == 2
    assert "JOB_COMPLETION_INDEX is not set" in unset.output


def test_shards_and_unsharded_runs_and_merges_keep_out_of_each_others_way(tmp_path, server):
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    out = tmp_path / "out"
    assert run_job(manifest, out, server.base_url, "--shard", "0/2").exit_code == 0
    server.stats.reset()
    with job_lock(out / ".batchtts" / "shards" / "1-of-2", shared=False), job_lock(out / ".batchtts", shared=True):
        busy = run_job(manifest, out, server.base_url)  # a shard is running: the folder is not the run's alone
        assert busy.exit_code == 2 and "in use by" in busy.output
        assert merge(out).exit_code == 2
        same_shard = run_job(manifest, out, server.base_url, "--shard", "1/2")
        assert same_shard.exit_code == 2 and "1-of-2" in same_shard.output
    assert starts(server) == 0


def test_merge_refuses_a_changed_manifest_and_says_what_to_do(tmp_path, server):
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    out = tmp_path / "out"
    assert run_job(manifest, out, server.base_url, "--shard", "0/2").exit_code == 0
    write_csv(manifest, ROWS[:-1])
    changed = merge(out)
    assert changed.exit_code == 2 and "not the manifest the shards ran over" in changed.output
    shutil.rmtree(out / ".batchtts" / "shards")
    empty = merge(out)
    assert empty.exit_code == 2 and "no shard parts to merge" in empty.output


def test_an_unsharded_folder_split_into_shards_sends_nothing_again(tmp_path, server):
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    out = tmp_path / "out"
    assert run_job(manifest, out, server.base_url, "--limit", "12").exit_code == 4  # an unsharded start
    server.stats.reset()
    for k in range(2):
        assert run_job(manifest, out, server.base_url, "--shard", f"{k}/2").exit_code == 0
    assert starts(server) == len(ROWS) - 12  # the 12 the unsharded run did are kept by their shards
    assert merge(out).exit_code == 0
    merged = results(out / "results.parquet")
    assert sum(r["reused"] for r in merged) == 12 and all(r["status"] == "ok" for r in merged)


CHAPTERS = [{"id": f"p{n:02d}", "text": f"Paragraph {n}.", "chapter": f"ch{n % 5}"} for n in range(20)]


def test_a_group_stays_in_one_shard_and_voices_and_the_dataset_index_merge(tmp_path, server):
    manifest = write_csv(tmp_path / "book.csv", CHAPTERS)
    out = tmp_path / "book"
    for k in range(2):
        job = run_job(manifest, out, server.base_url, "--group-by", "chapter", "--shard", f"{k}/2")
        assert job.exit_code == 0, job.output
    assert merge(out).exit_code == 0
    merged = results(out / "results.parquet")
    assert [r["id"] for r in merged] == [row["id"] for row in CHAPTERS]
    by_chapter: dict[str, set[str]] = {}
    for row, record in zip(CHAPTERS, merged, strict=True):
        by_chapter.setdefault(row["chapter"], set()).add(record["path"])
    assert all(len(paths) == 1 for paths in by_chapter.values())  # one file per chapter, made whole by one shard

    voiced = tmp_path / "voiced"
    args = ["--voices", "emily,magnus", "--metadata", "audiofolder"]
    assert run_job(manifest, voiced, server.base_url, "--shard", "1/2", *args).exit_code == 0
    assert not (voiced / "metadata.csv").exists()  # the merge writes the index, not a shard
    assert merge(voiced).exit_code == 4  # shard 0 has not run
    records = results(voiced / "results.parquet")
    assert [(r["id"], r["voice_id"]) for r in records] == [
        (row["id"], voice) for row in CHAPTERS for voice in ("emily", "magnus")
    ]
    ok = [r for r in records if r["status"] == "ok"]
    assert {r["id"] for r in ok} == set(ids_in_shard(1))
    import csv

    with (voiced / "metadata.csv").open(encoding="utf-8") as handle:
        listed = [line["file_name"] for line in csv.DictReader(handle)]
    assert listed == [r["path"] for r in ok]


def ids_in_shard(shard: int) -> list[str]:
    return [row["id"] for row in CHAPTERS if shard_of(row["id"], 2) == shard]


def test_a_new_split_keeps_what_the_old_one_did_and_the_merge_wants_one_split(tmp_path, server):
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    out = tmp_path / "out"
    for k in range(2):
        assert run_job(manifest, out, server.base_url, "--shard", f"{k}/2").exit_code == 0
    server.stats.reset()
    for k in range(3):
        assert run_job(manifest, out, server.base_url, "--shard", f"{k}/3").exit_code == 0
    assert starts(server) == 0  # every row was done under the old split
    mixed = merge(out)
    assert mixed.exit_code == 2 and "different splits (0-of-2, 1-of-2, 0-of-3, 1-of-3, 2-of-3)" in mixed.output
    for k in range(2):
        shutil.rmtree(out / ".batchtts" / "shards" / f"{k}-of-2")
    assert merge(out).exit_code == 0
    assert [r["status"] for r in results(out / "results.parquet")] == ["ok"] * len(ROWS)


def test_merge_reads_a_part_whose_rerun_was_killed_from_both_of_its_journals(tmp_path, local_server):
    server = local_server(**SLOW)
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    out = tmp_path / "out"
    first = run_job(manifest, out, server.base_url, "--shard", "0/2", "--limit", "4")
    assert first.exit_code == 4, first.output
    settle(server)
    server.stats.reset()
    process = spawn_run(manifest, out, server.base_url, "--shard", "0/2", "--concurrency", "1", logs=tmp_path / "k")
    wait_until(lambda: completed(server) >= 2 or process.poll() is not None, what="streams")
    process.kill()
    finish(process)
    part = out / ".batchtts" / "shards" / "0-of-2"
    assert (part / "journal.prev.jsonl").exists() and (part / "journal.jsonl").exists()
    done = completed(server)
    merged = merge(out)
    assert merged.exit_code == 4, merged.output
    statuses = {r["id"]: r["status"] for r in results(out / "results.parquet")}
    ours = rows_of(0, 2)
    ok = [row_id for row_id in ours if statuses[row_id] == "ok"]
    # The first run's 4 rows, and what the killed run finished: its first stream surely (journaled long
    # before the kill), its last perhaps not (killed between the server's end and the journal line).
    assert 4 + 1 <= len(ok) <= 4 + done
    assert all(statuses[row_id] == "pending" for row_id in rows_of(1, 2))
