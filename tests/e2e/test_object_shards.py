"""Shards writing to one ``s3://`` prefix at once, and ``batchtts merge s3://...`` putting them together there.

Real ``batchtts run --shard K/N`` processes against the real local TTS server
(which counts every request) and a real S3-compatible server (moto, loopback,
versioned buckets: every write of an object is counted).
"""

from __future__ import annotations

import io
import json
import signal
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq
from click.testing import CliRunner

from batchtts.cli import main
from batchtts.job.shards import shard_of
from tests.e2e.test_object_storage import SLOW, audio_keys, csv_bytes, spawn_unsegmented
from tests.nightly_support import finish, settle, spawn_run, starts, wait_until
from tests.runner_support import run_job
from tests.s3_support import ACCESS_KEY, SECRET_KEY, S3Server

ROWS = [{"id": f"utt-{n:03d}", "text": f"Sentence number {n} of the sharded job."} for n in range(24)]
PARTS = ".batchtts/shards"


def merge(out: str, *args: str):
    return CliRunner().invoke(main, ["merge", out, *args], catch_exceptions=False)


def shard_processes(url: str, out: str, base_url: str, tmp_path: Path, count: int = 3, *args: str):
    shard_args = [["--shard", f"{k}/{count}", "--concurrency", "2", *args] for k in range(count)]
    return [
        spawn_run(url, out, base_url, *shard_args[k], logs=tmp_path / f"s{k}")  # type: ignore[arg-type]
        for k in range(count)
    ]


def errors(tmp_path: Path, count: int = 3) -> list[str]:
    return [(tmp_path / f"s{k}.err").read_text() for k in range(count)]


def test_three_shards_into_one_prefix_merged_there_equal_a_local_run_and_a_rerun_sends_nothing(
    tmp_path: Path, server, s3: S3Server
) -> None:
    bucket = s3.bucket("sharded")
    s3.put(bucket, "in/lines.csv", csv_bytes(ROWS))
    url, out = f"s3://{bucket}/in/lines.csv", f"s3://{bucket}/out/"
    local = run_job(url, tmp_path / "local", server.base_url)
    assert local.exit_code == 0, local.output
    server.stats.reset()

    processes = shard_processes(url, out, server.base_url, tmp_path)
    assert [finish(p, timeout=120) for p in processes] == [0, 0, 0], errors(tmp_path)
    assert starts(server) == len(ROWS)  # each row once, across the shards
    for k in range(3):
        part = f"out/{PARTS}/{k}-of-3/"
        keys = s3.keys(bucket, part)
        assert f"{part}part.json" in keys and f"{part}summary.json" in keys, keys
        assert f"{part}lock" not in keys  # released
        record = json.loads(s3.get(bucket, f"{part}part.json"))
        assert record["manifest"] == url
        assert json.loads(s3.get(bucket, f"{part}summary.json"))["shard"] == f"{k}/3"
    assert "out/results.parquet" not in s3.keys(bucket, "out/")

    merged = merge(out)
    assert merged.exit_code == 0, merged.output
    assert f"results in s3://{bucket}/out/results.parquet" in merged.output
    assert "batchtts-merge-" not in merged.output and SECRET_KEY not in merged.output  # no scratch path, no key
    host, port = s3.endpoint.removeprefix("http://").split(":")
    fs = pafs.S3FileSystem(access_key=ACCESS_KEY, secret_key=SECRET_KEY, endpoint_override=f"{host}:{port}",
                           scheme="http", region="us-east-1")  # fmt: skip
    results = pq.read_table(f"{bucket}/out/results.parquet", filesystem=fs).to_pylist()
    assert [(r["id"], r["row"], r["status"]) for r in results] == [
        (row["id"], n, "ok") for n, row in enumerate(ROWS, start=1)
    ]
    assert [r["path"] for r in results] == [r["path"] for r in local.results()]
    # Audio disjoint across shards (each object written once) and byte-exact against the local unsharded run.
    assert audio_keys(s3, bucket) == sorted(f"out/audio/{row['id']}.wav" for row in ROWS)
    assert set(s3.versions(bucket, "out/audio/").values()) == {1}
    for row in ROWS:
        name = f"audio/{row['id']}.wav"
        assert s3.get(bucket, f"out/{name}") == (tmp_path / "local" / name).read_bytes()
    document = json.loads(s3.get(bucket, "out/summary.json"))
    assert document["ok"] == len(ROWS) and document["shards"]["count"] == 3
    assert document["out"] == f"s3://{bucket}/out"
    assert "/tmp/" not in json.dumps(document)

    # A rerun without --shard over the merged prefix sends nothing, and takes the parts in.
    server.stats.reset()
    again = run_job(url, out, server.base_url)
    assert again.exit_code == 0, again.output
    assert starts(server) == 0
    assert not s3.keys(bucket, f"out/{PARTS}/")
    assert set(s3.versions(bucket, "out/audio/").values()) == {1}
    rerun = pq.read_table(io.BytesIO(s3.get(bucket, "out/results.parquet"))).to_pylist()
    assert [r["id"] for r in rerun] == [row["id"] for row in ROWS] and all(r["reused"] for r in rerun)


def test_a_killed_shard_rerun_uploads_nothing_twice_and_the_merge_has_every_row(
    tmp_path: Path, local_server, s3: S3Server
) -> None:
    server = local_server(**SLOW)
    bucket = s3.bucket("killedshard")
    s3.put(bucket, "in/lines.csv", csv_bytes(ROWS))
    url, out = f"s3://{bucket}/in/lines.csv", f"s3://{bucket}/out/"
    mine = [row["id"] for row in ROWS if shard_of(row["id"], 2) == 0]
    # Shard 0 never writes a segment before it ends: after the kill, its objects' metadata alone must tell.
    process = spawn_unsegmented(url, out, server.base_url, "--shard", "0/2", "--concurrency", "1",
                                logs=tmp_path / "kill")  # fmt: skip
    wait_until(lambda: len(audio_keys(s3, bucket)) >= 2, timeout=60, what="uploaded objects")
    process.kill()
    assert finish(process) == -signal.SIGKILL
    landed = audio_keys(s3, bucket)
    assert 2 <= len(landed) < len(mine)
    assert f"out/{PARTS}/0-of-2/lock" in s3.keys(bucket, "out/.batchtts/")  # left behind by the kill
    other = spawn_run(url, out, server.base_url, "--shard", "1/2", logs=tmp_path / "other")  # type: ignore[arg-type]
    assert finish(other, timeout=120) == 0, (tmp_path / "other.err").read_text()
    settle(server)
    server.stats.reset()
    rerun = run_job(url, out, server.base_url, "--shard", "0/2")
    assert rerun.exit_code == 0, rerun.output
    assert starts(server) == len(mine) - len(landed)
    assert set(s3.versions(bucket, "out/audio/").values()) == {1}  # nothing uploaded twice

    merged = merge(out, "--metadata", "audiofolder", "--log-format", "json")
    assert merged.exit_code == 0, merged.output
    results = pq.read_table(io.BytesIO(s3.get(bucket, "out/results.parquet"))).to_pylist()
    assert [(r["id"], r["status"]) for r in results] == [(row["id"], "ok") for row in ROWS]
    index = s3.get(bucket, "out/metadata.csv").decode().splitlines()
    assert [line.split(",")[0] for line in index[1:]] == [f"audio/{row['id']}.wav" for row in ROWS]
    event = json.loads(merged.output.strip().splitlines()[-1])
    assert event["out"] == f"s3://{bucket}/out" and event["ok"] == len(ROWS)


def test_merge_or_an_unsharded_run_while_a_shard_runs_is_refused_with_exit_2(
    tmp_path: Path, local_server, s3: S3Server
) -> None:
    server = local_server(**SLOW)
    bucket = s3.bucket("busy")
    s3.put(bucket, "in/lines.csv", csv_bytes(ROWS))
    url, out = f"s3://{bucket}/in/lines.csv", f"s3://{bucket}/out/"
    shard = spawn_run(url, out, server.base_url, "--shard", "0/2", "--concurrency", "1",  # type: ignore[arg-type]
                      logs=tmp_path / "busy")  # fmt: skip
    try:
        wait_until(lambda: f"out/{PARTS}/0-of-2/lock" in s3.keys(bucket, "out/.batchtts/"), what="the part's lock")
        refused = merge(out)
        assert refused.exit_code == 2, refused.output
        assert "in use by shard runs" in refused.output and "Traceback" not in refused.output
        unsharded = run_job(url, out, server.base_url)
        assert unsharded.exit_code == 2, unsharded.output
        assert "in use by shard runs" in unsharded.output
        # The other shard is not refused: shards share the prefix.
        other = run_job(url, out, server.base_url, "--shard", "1/2")
        assert other.exit_code == 0, other.output
    finally:
        shard.send_signal(signal.SIGTERM)
        finish(shard)
    assert "out/.batchtts/lock" not in s3.keys(bucket, "out/.batchtts/")  # the refused ones released theirs
    assert SECRET_KEY not in refused.output


def test_a_shard_is_refused_while_an_unsharded_run_or_a_merge_holds_the_prefix(
    tmp_path: Path, server, s3: S3Server
) -> None:
    import time

    bucket = s3.bucket("held")
    s3.put(bucket, "in/lines.csv", csv_bytes(ROWS[:4]))
    url, out = f"s3://{bucket}/in/lines.csv", f"s3://{bucket}/out/"
    live = {"run": "x", "pid": 1, "host": "merge-pod", "started_at": "2026-01-01T00:00:00Z",
            "expires_at": time.time() + 3600}  # fmt: skip
    s3.put(bucket, "out/.batchtts/lock", json.dumps(live).encode())
    refused = run_job(url, out, server.base_url, "--shard", "0/2")
    assert refused.exit_code == 2, refused.output
    assert "merge-pod" in refused.output and "without --shard" in refused.output
    assert starts(server) == 0
    assert f"out/{PARTS}/0-of-2/lock" not in s3.keys(bucket, "out/")  # its own lock released
    s3.put(bucket, "out/.batchtts/lock", json.dumps({**live, "expires_at": time.time() - 5}).encode())
    taken = run_job(url, out, server.base_url, "--shard", "0/2")  # a lease that ran out does not count
    assert taken.exit_code == 0, taken.output


def test_merge_of_a_prefix_without_parts_or_with_a_local_results_path_is_a_one_line_error(s3: S3Server) -> None:
    bucket = s3.bucket("empty")
    nothing = merge(f"s3://{bucket}/out/")
    assert nothing.exit_code == 2, nothing.output
    assert f"s3://{bucket}/out: no shard parts to merge" in nothing.output
    assert "batchtts-merge-" not in nothing.output and "Traceback" not in nothing.output
    local = merge(f"s3://{bucket}/out/", "--results", "results.csv")
    assert local.exit_code == 2 and "give a name inside it" in local.output, local.output
    assert not s3.keys(bucket)  # nothing written, the lock released


def test_shards_keep_the_rows_an_unsharded_run_did_and_the_merge_has_them(tmp_path: Path, server, s3: S3Server) -> None:
    bucket = s3.bucket("mixed")
    s3.put(bucket, "in/lines.csv", csv_bytes(ROWS))
    url, out = f"s3://{bucket}/in/lines.csv", f"s3://{bucket}/out/"
    first = run_job(url, out, server.base_url, "--limit", "8")
    assert first.exit_code == 4, first.output
    done = {r["id"] for r in pq.read_table(io.BytesIO(s3.get(bucket, "out/results.parquet"))).to_pylist()
            if r["status"] == "ok"}  # fmt: skip
    assert len(done) == 8
    server.stats.reset()
    # Shard 0 does one new row (--limit 1): the rows of its own the unsharded run did are kept, in its part.
    assert run_job(url, out, server.base_url, "--shard", "0/2", "--limit", "1").exit_code == 4
    assert run_job(url, out, server.base_url, "--shard", "1/2").exit_code == 0
    assert starts(server) == 1 + sum(1 for row in ROWS if shard_of(row["id"], 2) == 1 and row["id"] not in done)
    merged = merge(out)
    assert merged.exit_code == 4, merged.output  # shard 0's other rows are pending
    results = {
        r["id"]: r["status"] for r in pq.read_table(io.BytesIO(s3.get(bucket, "out/results.parquet"))).to_pylist()
    }
    assert all(results[row_id] == "ok" for row_id in done)
    assert (
        sum(status == "pending" for status in results.values())
        == sum(1 for row in ROWS if shard_of(row["id"], 2) == 0 and row["id"] not in done) - 1
    )


def test_a_killed_shard_part_still_lists_the_rows_it_kept_from_an_unsharded_run(
    tmp_path: Path, local_server, s3: S3Server
) -> None:
    server = local_server(**SLOW)
    bucket = s3.bucket("keptkilled")
    s3.put(bucket, "in/lines.csv", csv_bytes(ROWS))
    url, out = f"s3://{bucket}/in/lines.csv", f"s3://{bucket}/out/"
    assert run_job(url, out, server.base_url, "--limit", "8", "--concurrency", "4").exit_code == 4
    done = {r["id"] for r in pq.read_table(io.BytesIO(s3.get(bucket, "out/results.parquet"))).to_pylist()
            if r["status"] == "ok"}  # fmt: skip
    kept = [row["id"] for row in ROWS if shard_of(row["id"], 2) == 0 and row["id"] in done]
    assert kept
    shard = spawn_run(url, out, server.base_url, "--shard", "0/2", "--concurrency", "1",  # type: ignore[arg-type]
                      logs=tmp_path / "shard0")  # fmt: skip
    segments = f"out/{PARTS}/0-of-2/journal/"
    wait_until(lambda: bool(s3.keys(bucket, segments)), timeout=60, what="a segment of shard 0")
    shard.kill()
    assert finish(shard) == -signal.SIGKILL
    assert run_job(url, out, server.base_url, "--shard", "1/2").exit_code == 0
    merged = merge(out)
    assert merged.exit_code in (0, 4), merged.output  # 4: shard 0's rows it had not done are pending
    results = {
        r["id"]: r["status"] for r in pq.read_table(io.BytesIO(s3.get(bucket, "out/results.parquet"))).to_pylist()
    }
    assert all(results[row_id] == "ok" for row_id in kept)  # kept by shard 0: listed in its part
