"""Resume and idempotence: reruns on the same folder pay only for what changed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from batchtts.api.request import TtsRequest
from batchtts.job.shaping.parts import request_fingerprint
from batchtts.ledger import Journal, RowResult
from batchtts.ledger.resume import EarlierRuns, ResumeIndex, compact_journals, row_fingerprint
from tests.nightly_support import assert_file_exact, journal_state, starts, summary, temp_files
from tests.runner_support import read_int16, run_job, write_csv

ROWS = [
    {"id": "a", "text": "First line.", "note": "x"},
    {"id": "b", "text": "Second line.", "note": "x"},
    {"id": "c", "text": "Third line.", "note": "x"},
    {"id": "d", "text": "Fourth line.", "note": "x"},
]


def journal_lines(out: Path) -> int:
    return len((out / ".batchtts" / "journal.jsonl").read_bytes().splitlines())


def test_a_finished_job_rerun_sends_nothing(tmp_path, local_server):
    server = local_server()
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    first = run_job(manifest, tmp_path / "out", server.base_url)
    assert first.exit_code == 0, first.output
    assert starts(server) == 4
    before = {r["id"]: r for r in first.results()}
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out" / "audio").iterdir()}

    second = run_job(manifest, tmp_path / "out", server.base_url)
    assert second.exit_code == 0, second.output
    assert starts(server) == 4  # not one more request
    after = second.results()
    assert [r["id"] for r in after] == ["a", "b", "c", "d"]
    for record in after:
        assert record["status"] == "ok" and record["reused"] is True
        assert record["request_id"] == before[record["id"]]["request_id"]  # the earlier run's values
        assert record["path"] == before[record["id"]]["path"]
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out" / "audio").iterdir()} == stamps
    report = summary(tmp_path / "out")
    assert (report["ok"], report["skipped"], report["synthesized"], report["exit_status"]) == (4, 4, 0, 0)
    assert "4 kept from earlier runs" in second.output


def test_only_new_and_changed_rows_are_synthesized(tmp_path, local_server):
    server = local_server()
    out = tmp_path / "out"
    first = run_job(write_csv(tmp_path / "m.csv", ROWS), out, server.base_url)
    assert first.exit_code == 0, first.output
    old_request_ids = {r["id"]: r["request_id"] for r in first.results()}

    changed = [
        {"id": "a", "text": "First line.", "note": "x"},  # unchanged
        {"id": "b", "text": "Second line, edited.", "note": "x"},  # text changed
        {"id": "c", "text": "Third line.", "note": "a new note"},  # only a carried column changed
        # "d" is gone from the manifest
        {"id": "e", "text": "A brand new row.", "note": "x"},  # new
    ]
    second = run_job(write_csv(tmp_path / "m2.csv", changed), out, server.base_url)
    assert second.exit_code == 0, second.output
    assert starts(server) == 4 + 2  # b and e only
    results = second.by_id()
    assert sorted(results) == ["a", "b", "c", "e"]  # d left the manifest, so it left the results
    assert results["a"]["reused"] and results["c"]["reused"]
    assert results["a"]["request_id"] == old_request_ids["a"]
    assert results["c"]["note"] == "a new note"  # carried values come from today's manifest
    assert not results["b"]["reused"] and results["b"]["request_id"] != old_request_ids["b"]
    assert_file_exact(out, results["b"], "Second line, edited.")
    assert_file_exact(out, results["e"], "A brand new row.")
    assert_file_exact(out, results["a"], "First line.")
    assert [r["row"] for r in second.results()] == [1, 2, 3, 4]


def test_a_changed_request_field_redoes_only_that_row(tmp_path, local_server):
    server = local_server()
    out = tmp_path / "out"
    rows = [{"id": "a", "text": "Same text.", "speed": ""}, {"id": "b", "text": "Other text.", "speed": ""}]
    assert run_job(write_csv(tmp_path / "m.csv", rows), out, server.base_url).exit_code == 0
    rows[1]["speed"] = "1.5"
    job = run_job(write_csv(tmp_path / "m.csv", rows), out, server.base_url)
    assert job.exit_code == 0, job.output
    assert starts(server) == 3
    assert_file_exact(out, job.by_id()["b"], "Other text.", speed=1.5)
    # A job-wide option that shapes the audio changes every fingerprint.
    job = run_job(tmp_path / "m.csv", out, server.base_url, "--sample-rate", "16000")
    assert starts(server) == 5
    assert_file_exact(out, job.by_id()["a"], "Same text.", sample_rate=16000)


def test_a_deleted_or_replaced_file_is_synthesized_again(tmp_path, local_server):
    server = local_server()
    out = tmp_path / "out"
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    assert run_job(manifest, out, server.base_url).exit_code == 0
    (out / "audio" / "a.wav").unlink()
    (out / "audio" / "b.wav").write_bytes(b"not the audio we made")
    job = run_job(manifest, out, server.base_url)
    assert job.exit_code == 0, job.output
    assert starts(server) == 6
    results = job.by_id()
    assert not results["a"]["reused"] and not results["b"]["reused"] and results["c"]["reused"]
    assert_file_exact(out, results["a"], "First line.")
    assert_file_exact(out, results["b"], "Second line.")


def test_failed_rows_are_retried_unless_no_retry_failed(tmp_path, local_server):
    server = local_server()
    out = tmp_path / "out"
    rows = [
        {"id": "good", "text": "Fine.", "voice_id": ""},
        {"id": "bad", "text": "Unknown voice.", "voice_id": "nobody"},  # the local server refuses it: 400
    ]
    manifest = write_csv(tmp_path / "m.csv", rows)
    unchecked = "--no-voice-check"  # the server, not the voice check, refuses 'bad': a failure with a request
    first = run_job(manifest, out, server.base_url, unchecked)
    assert first.exit_code == 1 and first.by_id()["bad"]["http_status"] == 400
    assert starts(server) == 2

    kept = run_job(manifest, out, server.base_url, "--no-retry-failed", unchecked)
    assert kept.exit_code == 1
    assert starts(server) == 2  # the failure stands: no request
    bad = kept.by_id()["bad"]
    assert bad["status"] == "failed" and bad["reused"] is True and bad["error"] == first.by_id()["bad"]["error"]
    assert summary(out)["skipped"] == 2

    retried = run_job(manifest, out, server.base_url, unchecked)  # the default: try failures again
    assert retried.exit_code == 1
    assert starts(server) == 3  # "bad" once more, "good" still not
    assert retried.by_id()["bad"]["reused"] is False


def test_force_redoes_every_row(tmp_path, local_server):
    server = local_server()
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    assert run_job(manifest, tmp_path / "out", server.base_url).exit_code == 0
    job = run_job(manifest, tmp_path / "out", server.base_url, "--force")
    assert job.exit_code == 0
    assert starts(server) == 8
    assert not any(r["reused"] for r in job.results())


def test_the_journal_stays_compact_across_reruns(tmp_path, local_server):
    server = local_server()
    out = tmp_path / "out"
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    for _ in range(3):
        assert run_job(manifest, out, server.base_url).exit_code == 0
        assert journal_lines(out) == 4  # one entry per manifest row, not one per row per run
        assert not (out / ".batchtts" / "journal.prev.jsonl").exists()
    assert temp_files(out) == []


def test_a_run_that_died_leaves_two_journals_and_the_next_merges_them(tmp_path, local_server):
    """Simulate a kill in the middle of a rerun: journal.prev.jsonl (old) + journal.jsonl (partial)."""
    server = local_server()
    out = tmp_path / "out"
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    assert run_job(manifest, out, server.base_url).exit_code == 0
    state = out / ".batchtts"
    os.replace(state / "journal.jsonl", state / "journal.prev.jsonl")
    # The "killed" rerun redid b (say, forced) before dying: its entry is newer.
    entries = journal_state(out)
    newer = {**entries["b"], "request_id": "b.newer.run.1"}
    (state / "journal.jsonl").write_text(json.dumps(newer) + "\n", encoding="utf-8")
    job = run_job(manifest, out, server.base_url)
    assert job.exit_code == 0, job.output
    assert starts(server) == 4  # nothing redone
    assert job.by_id()["b"]["request_id"] == "b.newer.run.1"  # the later entry won
    assert journal_lines(out) == 4
    assert not (state / "journal.prev.jsonl").exists()


# --- units ---------------------------------------------------------------------------


def test_the_fingerprint_covers_every_field_that_shapes_the_audio():
    base = TtsRequest(text="Hello.", voice_id="magnus")
    fingerprint = row_fingerprint(base, "wav")
    assert row_fingerprint(TtsRequest(text="Hello.", voice_id="magnus"), "wav") == fingerprint
    assert row_fingerprint(TtsRequest(text="Hello.", session_id="s1", request_id="r1"), "wav") == fingerprint
    variants = [
        TtsRequest(text="Hello!"),
        TtsRequest(text="Hello.", voice_id="emily"),
        TtsRequest(text="Hello.", model="lightning_v3.1_pro"),
        TtsRequest(text="Hello.", sample_rate=16000),
        TtsRequest(text="Hello.", speed=1.1),
        TtsRequest(text="Hello.", language="en"),
        TtsRequest(text="Hello.", output_format="mp3"),
        TtsRequest(text="Hello.", pronunciation_dicts=("d1",)),
    ]
    prints = {row_fingerprint(v, "wav") for v in variants}
    assert len(prints) == len(variants) and fingerprint not in prints
    assert row_fingerprint(base, "flac") != fingerprint
    assert row_fingerprint(base, "wav", {"max_chars": 500}) != fingerprint


def test_fingerprints_keep_the_values_earlier_versions_wrote():
    """Reruns compare fingerprints with journals and part stores written by older versions: pinned values."""
    odd = TtsRequest(
        text='H\u00e9llo, "world" \u2014 ok. \ud800',  # non-ASCII, quotes, a lone surrogate
        voice_id="emily",
        sample_rate=24000,
        speed=1.25,
        language="en",
        pronunciation_dicts=("d1", "d0"),
        session_id="s",
        request_id="r",
    )
    shaped = {"max_chars": 500, "join_gap_ms": 250, "id": "ch-1", "order": "2", "title": None}
    assert row_fingerprint(TtsRequest(text="Hello."), "wav") == "f1f46dac4949d937a30dc7064e173951"
    assert row_fingerprint(odd, "wav") == "2f0b53bd616ee1b6059ed17848d09369"
    assert row_fingerprint(odd, "flac", shaped) == "2006ca3c091facd46d35ca4030f8634e"
    assert request_fingerprint(TtsRequest(text="Hello.")) == "33ab8d4464163f11c4fa8b2ceea3d2ac"
    assert request_fingerprint(odd) == "9e14db3c0f3ae6449bb128c888a4c993"


def _entry(number: int, status: str = "ok", fingerprint: str | None = "ab" * 16, row_id: str | None = None) -> dict:
    entry = RowResult(id=row_id or f"r{number}", row=number, status=status, path=f"audio/r{number}.wav").to_entry()
    if fingerprint is not None:
        entry["fingerprint"] = fingerprint
    return entry


def test_index_keeps_the_latest_entry_per_id_and_skips_unfingerprinted_ones(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        journal.append_entry(_entry(1, "failed"))
        journal.append_entry(_entry(2, fingerprint=None))  # a bad row: nothing to reuse
        journal.append_entry(_entry(1, "ok", fingerprint="cd" * 16))
        journal.append_entry(_entry(3, "pending"))
    index = ResumeIndex([path])
    assert len(index) == 1
    hit = index.lookup("r1")
    assert hit is not None and hit.status == "ok" and hit.fingerprint_bits == int("cd" * 8, 16)
    assert index.entry_at(hit.position)["fingerprint"] == "cd" * 16
    assert index.lookup("r2") is None and index.lookup("r3") is None and index.lookup("zz") is None
    index.close()


def test_compaction_merges_files_later_wins(tmp_path):
    old, new = tmp_path / "old.jsonl", tmp_path / "new.jsonl"
    with Journal(old) as journal:
        for number in range(1, 4):
            journal.append_entry(_entry(number, fingerprint="11" * 16))
    with Journal(new) as journal:
        journal.append_entry(_entry(2, "failed", fingerprint="22" * 16))
    assert compact_journals([old, new], old) == 3
    lines = [json.loads(line) for line in old.read_text().splitlines()]
    assert {(e["id"], e["status"], e["fingerprint"][:2]) for e in lines} == {
        ("r1", "ok", "11"), ("r2", "failed", "22"), ("r3", "ok", "11"),
    }  # fmt: skip
    assert temp_files(tmp_path) == []


def test_index_memory_is_25_bytes_per_row(tmp_path):
    """The figure the module docstring promises, measured on the arrays themselves."""
    path = tmp_path / "j.jsonl"
    rows = 20_000
    with Journal(path, fsync_every=10_000) as journal:
        for number in range(1, rows + 1):
            journal.append_entry(_entry(number, fingerprint=f"{number:032x}"), durable=False)
    index = ResumeIndex([path])
    assert len(index) == rows
    assert index.nbytes == 25 * rows
    hit = index.lookup("r12345")
    assert hit is not None and index.entry_at(hit.position)["id"] == "r12345"
    index.close()


def test_earlier_runs_refuses_a_wrong_path_or_stamp(tmp_path):
    state, out = tmp_path / "out" / ".batchtts", tmp_path / "out"
    audio = out / "audio" / "r1.wav"
    audio.parent.mkdir(parents=True)
    audio.write_bytes(b"RIFF....")
    info = audio.stat()
    with Journal(state / "journal.jsonl") as journal:
        entry = _entry(1)
        entry.update(file_size=info.st_size, file_mtime_ns=info.st_mtime_ns)
        journal.append_entry(entry)
    earlier = EarlierRuns(state, out)
    earlier.open().close()
    assert earlier.earlier_result("r1", None, "ab" * 16, "audio/r1.wav") is not None
    assert earlier.earlier_result("r1", None, "ab" * 16, "audio/r1.flac") is None  # another file
    assert earlier.earlier_result("r1", None, "ef" * 16, "audio/r1.wav") is None  # another request
    audio.write_bytes(b"RIFF.....longer")
    assert earlier.earlier_result("r1", None, "ab" * 16, "audio/r1.wav") is None  # replaced since
    earlier.finish(complete=False)
    assert (state / "journal.prev.jsonl").exists()  # kept: this "run" did not cover the manifest


@pytest.mark.parametrize("force", [True])
def test_force_ignores_the_index(tmp_path, force):
    state = tmp_path / ".batchtts"
    with Journal(state / "journal.jsonl") as journal:
        journal.append_entry(_entry(1))
    earlier = EarlierRuns(state, tmp_path, force=force)
    earlier.open().close()
    assert not earlier.may_know("r1")


# --- reruns of split rows, voice fan-outs and chapter groups ---------------------------------

LONG = "One sentence here. Another sentence there. A third one to finish the row."


def test_split_rows_rerun_sends_nothing_and_a_changed_row_alone_is_redone(tmp_path, local_server):
    server = local_server()
    out = tmp_path / "out"
    rows = [{"id": "a", "text": LONG}, {"id": "b", "text": LONG.replace("One", "First")}]
    args = ["--max-chars", "30", "--sample-rate", "8000"]
    first = run_job(write_csv(tmp_path / "m.csv", rows), out, server.base_url, *args)
    assert first.exit_code == 0, first.output
    sent = starts(server)
    assert sent > 2  # split into parts
    again = run_job(tmp_path / "m.csv", out, server.base_url, *args)
    assert again.exit_code == 0 and starts(server) == sent
    assert [r["parts"] for r in again.results()] == [r["parts"] for r in first.results()]  # earlier values
    rows[1]["text"] = LONG.replace("One", "Second")
    changed = run_job(write_csv(tmp_path / "m.csv", rows), out, server.base_url, *args)
    assert changed.exit_code == 0
    assert 0 < starts(server) - sent <= changed.by_id()["b"]["parts"]
    assert changed.by_id()["a"]["reused"] and not changed.by_id()["b"]["reused"]
    # A different split changes every split row's file: all redone.
    run_job(tmp_path / "m.csv", out, server.base_url, "--max-chars", "50", "--sample-rate", "8000")
    assert not any(r["reused"] for r in pq.read_table(out / "results.parquet").to_pylist())


def test_voice_fan_out_reruns_are_keyed_by_voice(tmp_path, local_server):
    server = local_server()
    out = tmp_path / "out"
    manifest = write_csv(tmp_path / "m.csv", ROWS[:2])
    assert run_job(manifest, out, server.base_url, "--voices", "magnus,emily").exit_code == 0
    assert starts(server) == 4
    job = run_job(manifest, out, server.base_url, "--voices", "emily,magnus,arjun")  # reordered, one more
    assert job.exit_code == 0, job.output
    assert starts(server) == 6  # only arjun's two
    records = job.results()
    assert [(r["id"], r["voice_id"], r["reused"]) for r in records] == [
        ("a", "emily", True), ("a", "magnus", True), ("a", "arjun", False),
        ("b", "emily", True), ("b", "magnus", True), ("b", "arjun", False),
    ]  # fmt: skip
    assert_file_exact(out, records[0], "First line.", voice_id="emily")


def test_chapter_groups_stand_or_are_redone_whole(tmp_path, local_server):
    server = local_server()
    out = tmp_path / "out"
    rows = [{"id": f"p{n}", "chapter": "one" if n <= 2 else "two", "text": f"Paragraph {n}."} for n in range(1, 6)]
    args = ["--group-by", "chapter", "--sample-rate", "8000"]
    assert run_job(write_csv(tmp_path / "m.csv", rows), out, server.base_url, *args).exit_code == 0
    assert starts(server) == 5
    one_stamp = (out / "audio" / "one.wav").stat().st_mtime_ns

    job = run_job(tmp_path / "m.csv", out, server.base_url, *args)
    assert job.exit_code == 0 and starts(server) == 5  # a finished book: nothing sent
    assert all(r["reused"] for r in job.results())
    assert (out / "audio" / "one.wav").stat().st_mtime_ns == one_stamp

    rows[3]["text"] = "Paragraph four, rewritten."  # chapter two changes: its three rows are made again
    job = run_job(write_csv(tmp_path / "m.csv", rows), out, server.base_url, *args)
    assert job.exit_code == 0, job.output
    assert starts(server) == 5 + 3
    assert (out / "audio" / "one.wav").stat().st_mtime_ns == one_stamp  # chapter one untouched
    from tests.e2e.test_books import joined

    texts_two = [r["text"] for r in rows[2:]]
    assert np.array_equal(read_int16(out / "audio" / "two.wav")[0], joined(texts_two, 0))

    del rows[0]  # a row leaves chapter one: its file must be made again without it
    job = run_job(write_csv(tmp_path / "m.csv", rows), out, server.base_url, *args)
    assert job.exit_code == 0
    assert starts(server) == 8 + 1
    assert np.array_equal(read_int16(out / "audio" / "one.wav")[0], joined([rows[0]["text"]], 0))
    assert [r["id"] for r in job.results()] == ["p2", "p3", "p4", "p5"]


def test_damage_found_by_the_group_check_stops_cleanly(tmp_path, local_server):
    """The --group-by rerun check reads the whole manifest first; damage there exits 2, sends nothing."""
    server = local_server()
    out = tmp_path / "out"
    manifest = tmp_path / "m.jsonl"
    good = [json.dumps({"id": f"p{n}", "chapter": "one", "text": f"Line {n}."}) for n in range(1, 3)]
    manifest.write_text("\n".join(good) + "\n", encoding="utf-8")
    args = ["--group-by", "chapter", "--sample-rate", "8000"]
    assert run_job(manifest, out, server.base_url, *args).exit_code == 0
    filler = [json.dumps({"id": f"q{n}", "chapter": "two", "text": f"More {n}."}) for n in range(1, 1100)]
    manifest.write_text("\n".join(good + filler) + "\nnot json\n", encoding="utf-8")
    job = run_job(manifest, out, server.base_url, *args)
    assert job.exit_code == 2 and "is not valid JSON" in job.output
    assert starts(server) == 2
    assert summary(out)["stop_reason"] == "manifest"
