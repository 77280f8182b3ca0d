"""--shard K/N: the split is a stable hash of the row key, K is 0-based, auto/N reads the pod's index."""

from __future__ import annotations

import hashlib

import pytest

from batchtts.errors import UsageError
from batchtts.job.shards import INDEX_ENV, Shard, parse_shard, shard_key, shard_of
from batchtts.storage.names import parse_shard_part_name, shard_part_name


def test_shard_of_is_blake2b_of_the_key_mod_n_as_documented():
    for key in ["row-1", "Take 1", "é", ""]:
        digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
        assert shard_of(key, 7) == int.from_bytes(digest, "big") % 7


def test_every_row_is_in_exactly_one_shard_and_adding_rows_moves_none():
    ids = [f"utt-{n:05d}" for n in range(3000)]
    split = {row_id: [k for k in range(4) if Shard(k, 4).owns(row_id)] for row_id in ids}
    assert all(len(owners) == 1 for owners in split.values())
    sizes = [sum(owners == [k] for owners in split.values()) for k in range(4)]
    assert min(sizes) > 600  # about a quarter each
    more = [f"new-{n}" for n in range(500)] + list(reversed(ids))  # rows added and reordered
    assert {row_id: shard_of(row_id, 4) for row_id in more if row_id in split} == {
        row_id: owners[0] for row_id, owners in split.items()
    }


def test_a_group_is_sharded_by_its_value_so_it_stays_together():
    assert shard_key("row-9", "Chapter 3") == "Chapter 3"
    assert shard_key("row-9", 3.0) == "3"
    assert shard_key("row-9", None) == "row-9"
    assert shard_key("row-9", "  ") == "row-9"


def test_parse_k_of_n_and_auto_from_the_environment():
    assert parse_shard("2/5", {}) == Shard(2, 5)
    assert parse_shard("auto/5", {INDEX_ENV: "4"}) == Shard(4, 5)
    assert parse_shard("0/1", {}).name == "0-of-1"


@pytest.mark.parametrize(
    ("text", "environ", "says"),
    [
        ("3/3", {}, "0-based and must be 0 to 2"),
        ("1/0", {}, "N must be 1"),
        ("1", {}, "give K/N"),
        ("a/3", {}, "K must be a whole number"),
        ("auto/3", {}, f"{INDEX_ENV} is not set"),
        ("auto/3", {INDEX_ENV: "x"}, "is not a whole number"),
        ("auto/3", {INDEX_ENV: "3"}, "0-based and must be 0 to 2"),
    ],
)
def test_bad_shards_are_one_clear_error(text, environ, says):
    with pytest.raises(UsageError, match=says):
        parse_shard(text, environ)


def test_part_folder_names_round_trip_and_nothing_else_is_a_part():
    assert parse_shard_part_name(shard_part_name(3, 10)) == (3, 10)
    for name in ["3-of-3", "01-of-3", "x-of-3", "3of4", "lock"]:
        assert parse_shard_part_name(name) is None


def test_validate_checks_only_the_shards_rows(tmp_path):
    import re

    from click.testing import CliRunner

    from batchtts.cli import main
    from tests.runner_support import write_csv

    rows = [{"id": f"r{n}", "text": "" if n == 7 else f"Line {n}."} for n in range(40)]
    manifest = write_csv(tmp_path / "m.csv", rows)
    counts = []
    for k in range(3):
        result = CliRunner().invoke(main, ["validate", str(manifest), "--shard", f"{k}/3"])
        counts.append(int(re.search(rf"(\d+) rows in shard {k}/3", result.output)[1]))
        assert ("r7" in result.output) == (shard_of("r7", 3) == k)  # the bad row, listed by its shard only
        assert result.exit_code == (1 if shard_of("r7", 3) == k else 0)
    assert counts == [sum(shard_of(row["id"], 3) == k for row in rows) for k in range(3)]
