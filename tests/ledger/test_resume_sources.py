"""The resume index reads other runs' journals (a shard reads the others'), which may move under it."""

from __future__ import annotations

import json
import os

from batchtts.ledger.resume import EarlierRuns, ResumeIndex, journal_files


def line(row_id: str, fingerprint: str) -> str:
    entry = {"id": row_id, "row": 1, "status": "ok", "fingerprint": fingerprint, "path": f"audio/{row_id}.wav"}
    return json.dumps(entry) + "\n"


def test_an_indexed_journal_renamed_or_removed_by_its_run_still_reads_as_indexed(tmp_path):
    other = tmp_path / "journal.prev.jsonl"
    other.write_text(line("a", "1" * 32) + line("b", "2" * 32))
    index = ResumeIndex([other])
    os.replace(other, tmp_path / "moved.jsonl")  # its shard started again: journal -> previous
    other.write_text(line("zzz", "9" * 32) * 5)  # and a new file took the name
    hit = index.lookup("b")
    assert hit is not None
    assert index.entry_at(hit.position)["id"] == "b"
    (tmp_path / "moved.jsonl").unlink()  # its shard finished: the previous journal is gone
    assert index.entry_at(index.lookup("a").position)["id"] == "a"
    index.close()


def test_a_shard_reads_other_journals_first_and_its_own_wins(tmp_path):
    main, part = tmp_path / ".batchtts", tmp_path / ".batchtts" / "shards" / "0-of-2"
    main.mkdir(parents=True)
    part.mkdir(parents=True)
    (main / "journal.jsonl").write_text(line("a", "1" * 32) + line("b", "1" * 32))
    (part / "journal.jsonl").write_text(line("b", "2" * 32))
    earlier = EarlierRuns(part, tmp_path, also_read=journal_files(main))
    earlier.open().close()
    assert earlier.index.lookup("a").fingerprint_bits == int("1" * 16, 16)  # read from the folder's journal
    assert earlier.index.lookup("b").fingerprint_bits == int("2" * 16, 16)  # its own, later, wins
    assert (main / "journal.jsonl").read_text().count("\n") == 2  # the other journal is not changed
    earlier.finish(complete=False)


def test_an_unsharded_run_takes_the_parts_in_and_removes_them(tmp_path):
    main, part = tmp_path / ".batchtts", tmp_path / ".batchtts" / "shards" / "1-of-2"
    part.mkdir(parents=True)
    (part / "journal.prev.jsonl").write_text(line("a", "1" * 32))
    (part / "journal.jsonl").write_text(line("a", "3" * 32) + line("c", "4" * 32))
    earlier = EarlierRuns(main, tmp_path, absorb=[part])
    earlier.open().close()
    assert not part.exists()
    assert earlier.index.lookup("a").fingerprint_bits == int("3" * 16, 16)  # the part's latest
    assert earlier.index.lookup("c") is not None
    kept = [json.loads(text)["id"] for text in (main / "journal.prev.jsonl").read_text().splitlines()]
    assert sorted(kept) == ["a", "c"]
    earlier.finish(complete=False)
