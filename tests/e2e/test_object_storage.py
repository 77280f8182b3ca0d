"""``s3://`` manifests and ``--out s3://bucket/prefix/`` against a real S3-compatible server (moto, loopback).

The runner runs for real (in-process or as a subprocess) against the real local
TTS server; the store is a real HTTP server, versioned, so every test can count
how many times each object was written.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from batchtts.cli import main
from tests.nightly_support import REPO, finish, settle, spawn_run, starts, wait_until
from tests.runner_support import TEST_KEY, run_job
from tests.s3_support import ACCESS_KEY, SECRET_KEY, S3Server

ROWS = [{"id": f"row-{n:02d}", "text": f"Line number {n} is spoken."} for n in range(12)]
#: Streams of ~0.2 s: rows finish one after another, so a kill lands mid-job.
SLOW = {"latency": 0.05, "realtime_factor": 4.0, "chunk_ms": 50.0}


def parquet_bytes(rows: list[dict[str, str]]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    return sink.getvalue()


def csv_bytes(rows: list[dict[str, str]]) -> bytes:
    return ("id,text\n" + "".join(f"{r['id']},{r['text']}\n" for r in rows)).encode()


def audio_keys(s3: S3Server, bucket: str, prefix: str = "out/") -> list[str]:
    return [key for key in s3.keys(bucket, prefix + "audio/")]


def test_s3_manifest_in_s3_audio_out_byte_exact_and_results_readable_by_pyarrow(
    tmp_path: Path, server, s3: S3Server
) -> None:
    bucket = s3.bucket("exact")
    s3.put(bucket, "in/lines.parquet", parquet_bytes(ROWS))
    local = run_job(f"s3://{bucket}/in/lines.parquet", tmp_path / "local", server.base_url, "--concurrency", "3")
    assert local.exit_code == 0, local.output
    remote = run_job(f"s3://{bucket}/in/lines.parquet", f"s3://{bucket}/out/", server.base_url, "--concurrency", "3")
    assert remote.exit_code == 0, remote.output
    assert f"audio in s3://{bucket}/out/" in remote.output

    keys = audio_keys(s3, bucket)
    assert keys == sorted(f"out/audio/{row['id']}.wav" for row in ROWS)
    for row in ROWS:
        assert (
            s3.get(bucket, f"out/audio/{row['id']}.wav") == (tmp_path / "local/audio" / f"{row['id']}.wav").read_bytes()
        )
        head = s3.client.head_object(Bucket=bucket, Key=f"out/audio/{row['id']}.wav")
        assert head["Metadata"]["batchtts-id"] == row["id"]
        assert len(head["Metadata"]["batchtts-fingerprint"]) >= 16

    # The results and summary, read by pyarrow's own S3 client straight from the bucket.
    host, port = s3.endpoint.removeprefix("http://").split(":")
    fs = pafs.S3FileSystem(access_key=ACCESS_KEY, secret_key=SECRET_KEY, endpoint_override=f"{host}:{port}",
                           scheme="http", region="us-east-1")  # fmt: skip
    results = pq.read_table(f"{bucket}/out/results.parquet", filesystem=fs).to_pylist()
    assert sorted(r["id"] for r in results) == [row["id"] for row in ROWS]
    assert {r["status"] for r in results} == {"ok"}
    assert {r["path"] for r in results} == {f"audio/{row['id']}.wav" for row in ROWS}
    document = json.loads(s3.get(bucket, "out/summary.json"))
    assert document["ok"] == len(ROWS)
    assert document["out"] == f"s3://{bucket}/out"
    assert document["manifest"] == f"s3://{bucket}/in/lines.parquet"
    # The lock is released, and the journal left as one compact segment.
    keys = s3.keys(bucket, "out/.batchtts/")
    assert len(keys) == 1 and keys[0].startswith("out/.batchtts/journal/"), keys
    assert all(count == 1 for count in s3.versions(bucket, "out/audio/").values())


def test_a_rerun_sends_nothing_and_a_changed_row_replaces_only_its_object(tmp_path: Path, server, s3: S3Server) -> None:
    bucket = s3.bucket("rerun")
    s3.put(bucket, "in/lines.csv", csv_bytes(ROWS))
    url = f"s3://{bucket}/in/lines.csv"
    assert run_job(url, f"s3://{bucket}/out/", server.base_url).exit_code == 0
    server.stats.reset()
    again = run_job(url, f"s3://{bucket}/out/", server.base_url)
    assert again.exit_code == 0, again.output
    assert starts(server) == 0
    changed = [dict(row) for row in ROWS]
    changed[3]["text"] = "A different line now."
    s3.put(bucket, "in/lines.csv", csv_bytes(changed))
    third = run_job(url, f"s3://{bucket}/out/", server.base_url)
    assert third.exit_code == 0, third.output
    assert starts(server) == 1
    versions = s3.versions(bucket, "out/audio/")
    assert versions.pop("out/audio/row-03.wav") == 2
    assert set(versions.values()) == {1}


def spawn_unsegmented(manifest: str, out: str, base_url: str, *args: str, logs: Path) -> subprocess.Popen[bytes]:
    """``batchtts run`` in its own process that never writes a journal segment before it ends."""
    code = (
        "import sys, batchtts.job.objectout as o; o.SEGMENT_SECONDS = 3600.0; o.SEGMENT_ROWS = 10**6; "
        "from batchtts.cli import main; sys.argv[0] = 'batchtts'; main()"
    )
    argv = [sys.executable, "-c", code, "run", manifest, "--out", out, "--progress", "off", "--base-url", base_url,
            *args]  # fmt: skip
    env = {**os.environ, "SMALLEST_API_KEY": TEST_KEY, "BATCHTTS_BASE_URL": ""}
    return subprocess.Popen(argv, cwd=REPO, env=env, stdout=open(f"{logs}.out", "wb"), stderr=open(f"{logs}.err", "wb"))


def test_sigkill_mid_job_then_a_rerun_loses_nothing_and_uploads_nothing_twice(
    tmp_path: Path, local_server, s3: S3Server
) -> None:
    server = local_server(**SLOW)
    bucket = s3.bucket("killed")
    rows = [{"id": f"k-{n:02d}", "text": f"Row {n} of the killed job."} for n in range(20)]
    s3.put(bucket, "in/lines.csv", csv_bytes(rows))
    url, out = f"s3://{bucket}/in/lines.csv", f"s3://{bucket}/out/"
    process = spawn_unsegmented(url, out, server.base_url, "--concurrency", "2", logs=tmp_path / "kill")
    wait_until(lambda: len(audio_keys(s3, bucket)) >= 3, what="uploaded objects")
    process.kill()
    assert finish(process) == -signal.SIGKILL
    landed = audio_keys(s3, bucket)
    assert 3 <= len(landed) < len(rows)
    assert not s3.keys(bucket, "out/.batchtts/journal/")  # no segment lists them: the objects alone must tell
    settle(server)
    server.stats.reset()
    rerun = run_job(url, out, server.base_url, "--concurrency", "2")
    assert rerun.exit_code == 0, rerun.output
    # Every object that was uploaded whole is kept, whether or not a journal segment listed it.
    assert starts(server) == len(rows) - len(landed)
    assert audio_keys(s3, bucket) == sorted(f"out/audio/{row['id']}.wav" for row in rows)
    assert set(s3.versions(bucket, "out/audio/").values()) == {1}
    results = pq.read_table(io.BytesIO(s3.get(bucket, "out/results.parquet"))).to_pylist()
    assert {r["status"] for r in results} == {"ok"} and len(results) == len(rows)
    assert sum(bool(r["reused"]) for r in results) == len(landed)


def test_a_second_run_on_the_same_prefix_is_refused_with_exit_2(tmp_path: Path, local_server, s3: S3Server) -> None:
    server = local_server(**SLOW)
    bucket = s3.bucket("locked")
    s3.put(bucket, "in/lines.csv", csv_bytes(ROWS))
    url, out = f"s3://{bucket}/in/lines.csv", f"s3://{bucket}/out/"
    first = spawn_run(url, out, server.base_url, "--concurrency", "1", logs=tmp_path / "first")  # type: ignore[arg-type]
    try:
        wait_until(lambda: "out/.batchtts/lock" in s3.keys(bucket, "out/.batchtts/"), what="the lock object")
        second = run_job(url, out, server.base_url)
        assert second.exit_code == 2, second.output
        assert "is in use by another batchtts run" in second.output
        assert "Traceback" not in second.output
    finally:
        first.send_signal(signal.SIGTERM)
        finish(first)


def test_a_lock_whose_lease_ran_out_is_taken_over(tmp_path: Path, server, s3: S3Server) -> None:
    bucket = s3.bucket("stale")
    s3.put(bucket, "in/lines.csv", csv_bytes(ROWS[:3]))
    stale = {"run": "x", "pid": 1, "host": "another-pod", "started_at": "2026-01-01T00:00:00Z",
             "expires_at": time.time() - 5}  # fmt: skip
    s3.put(bucket, "out/.batchtts/lock", json.dumps(stale).encode())
    job = run_job(f"s3://{bucket}/in/lines.csv", f"s3://{bucket}/out/", server.base_url)
    assert job.exit_code == 0, job.output
    assert "lease ran out" in job.output
    live = {**stale, "expires_at": time.time() + 3600}
    s3.put(bucket, "out/.batchtts/lock", json.dumps(live).encode())
    refused = run_job(f"s3://{bucket}/in/lines.csv", f"s3://{bucket}/out/", server.base_url)
    assert refused.exit_code == 2 and "another-pod" in refused.output


def test_validate_reads_a_manifest_from_s3(s3: S3Server) -> None:
    bucket = s3.bucket("validate", versioned=False)
    rows = [*ROWS, {"id": "empty", "text": ""}]
    s3.put(bucket, "in/lines.csv", csv_bytes(rows))
    result = CliRunner().invoke(main, ["validate", f"s3://{bucket}/in/lines.csv"])
    assert result.exit_code == 1, result.output
    assert f"manifest: s3://{bucket}/in/lines.csv" in result.output
    assert f"{len(rows)} rows" in result.output
    missing = CliRunner().invoke(main, ["validate", f"s3://{bucket}/in/nothing.csv"])
    assert missing.exit_code == 2
    assert "no such manifest object" in missing.output and "Traceback" not in missing.output


@pytest.mark.parametrize("name", ["lines.jsonl", "lines.csv.gz", "lines.parquet"])
def test_every_manifest_format_streams_from_s3(s3: S3Server, name: str) -> None:
    import gzip

    bucket = s3.bucket(f"formats-{name.replace('.', '-')}", versioned=False)
    if name.endswith(".jsonl"):
        data = "".join(json.dumps(row) + "\n" for row in ROWS).encode()
    elif name.endswith(".gz"):
        data = gzip.compress(csv_bytes(ROWS))
    else:
        data = parquet_bytes(ROWS)
    s3.put(bucket, name, data)
    result = CliRunner().invoke(main, ["validate", f"s3://{bucket}/{name}"])
    assert result.exit_code == 0, result.output
    assert f"{len(ROWS)} rows, all valid" in result.output


def test_a_bad_bucket_or_store_stops_before_any_request(tmp_path: Path, server, s3: S3Server) -> None:
    bucket = s3.bucket("good", versioned=False)
    s3.put(bucket, "in/lines.csv", csv_bytes(ROWS))
    job = run_job(f"s3://{bucket}/in/lines.csv", "s3://no-such-bucket/out/", server.base_url)
    assert job.exit_code == 2
    assert "no such bucket 'no-such-bucket'" in job.output and "Traceback" not in job.output
    # A store nobody answers at, with the key given as storage options.
    unreachable = run_job(f"s3://{bucket}/in/lines.csv", f"s3://{bucket}/out/", server.base_url,
                          "--storage-option", "endpoint_url=http://127.0.0.1:9",
                          "--storage-option", f"secret={SECRET_KEY}",
                          "--storage-option", f"key={ACCESS_KEY}")  # fmt: skip
    assert unreachable.exit_code == 2
    assert "Traceback" not in unreachable.output and SECRET_KEY not in unreachable.output
    assert starts(server) == 0
    missing_extra = CliRunner().invoke(main, ["validate", "gs://bucket/lines.csv"])
    assert missing_extra.exit_code == 2
    assert "pip install gcsfs" in missing_extra.output and "Traceback" not in missing_extra.output


def test_key_material_never_appears_in_any_output_log_or_object(tmp_path: Path, server, s3: S3Server) -> None:
    bucket = s3.bucket("secrets", versioned=False)
    s3.put(bucket, "in/lines.csv", csv_bytes(ROWS[:4]))
    job = run_job(f"s3://{bucket}/in/lines.csv", f"s3://{bucket}/out/", server.base_url, "-vv",
                  "--log-format", "json")  # fmt: skip
    assert job.exit_code == 0, job.output
    seen = [job.output]
    for key in s3.keys(bucket, "out/"):
        seen.append(s3.get(bucket, key).decode("latin-1"))
        seen.append(json.dumps(s3.client.head_object(Bucket=bucket, Key=key)["Metadata"]))
    assert not [text for text in seen if SECRET_KEY in text]


def test_a_failed_upload_fails_its_row_the_job_goes_on_and_a_rerun_does_it(
    tmp_path: Path, server, s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from batchtts.storage.objects import ObjectStore

    bucket = s3.bucket("upload-fails")
    s3.put(bucket, "in/lines.csv", csv_bytes(ROWS))
    upload = ObjectStore.upload

    def refusing(self: ObjectStore, local: Path, relative: str, **kwargs: object) -> None:
        if relative == "audio/row-05.wav":
            raise OSError(104, "Connection reset by peer")  # the store dropped the connection mid-upload
        upload(self, local, relative, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ObjectStore, "upload", refusing)
    url, out = f"s3://{bucket}/in/lines.csv", f"s3://{bucket}/out/"
    job = run_job(url, out, server.base_url)
    assert job.exit_code == 1, job.output
    results = {r["id"]: r for r in pq.read_table(io.BytesIO(s3.get(bucket, "out/results.parquet"))).to_pylist()}
    assert results["row-05"]["status"] == "failed" and "upload" in results["row-05"]["error"]
    assert results["row-05"]["path"] is None
    assert sum(r["status"] == "ok" for r in results.values()) == len(ROWS) - 1
    assert "out/audio/row-05.wav" not in s3.keys(bucket, "out/audio/")
    assert json.loads(s3.get(bucket, "out/summary.json"))["failed"] == 1
    monkeypatch.setattr(ObjectStore, "upload", upload)
    server.stats.reset()
    rerun = run_job(url, out, server.base_url)
    assert rerun.exit_code == 0, rerun.output
    assert starts(server) == 1
    assert "out/audio/row-05.wav" in s3.keys(bucket, "out/audio/")


def test_a_job_file_names_the_store_and_its_options(tmp_path: Path, server, s3: S3Server) -> None:
    bucket = s3.bucket("jobfile", versioned=False)
    s3.put(bucket, "in/lines.csv", csv_bytes(ROWS[:3]))
    job_file = tmp_path / "jobs" / "nightly.toml"
    job_file.parent.mkdir()
    job_file.write_text(
        f'manifest = "s3://{bucket}/in/lines.csv"\nout = "s3://{bucket}/nightly/"\n'
        f'storage-option = ["endpoint={s3.endpoint}", "region=us-east-1"]\n',
        encoding="utf-8",
    )
    argv = ["run", "--job", str(job_file), "--base-url", server.base_url, "--progress", "off"]
    result = CliRunner().invoke(main, argv, env={"SMALLEST_API_KEY": TEST_KEY, "AWS_ENDPOINT_URL": ""})
    assert result.exit_code == 0, result.output
    assert s3.keys(bucket, "nightly/audio/") == [f"nightly/audio/{row['id']}.wav" for row in ROWS[:3]]


def test_a_limited_run_uploads_its_journal_without_pending_rows_and_a_rerun_does_the_rest(
    tmp_path: Path, server, s3: S3Server
) -> None:
    """``--limit`` over a big manifest: the final journal object keeps what was done, not the rows left pending."""
    bucket = s3.bucket("limited")
    s3.put(bucket, "in/lines.csv", csv_bytes(ROWS))
    url, out = f"s3://{bucket}/in/lines.csv", f"s3://{bucket}/out/"
    first = run_job(url, out, server.base_url, "--limit", "4", "--concurrency", "1")
    assert first.exit_code == 4, first.output
    assert starts(server) == 4
    segments = [key for key in s3.keys(bucket, "out/.batchtts/journal/")]
    assert segments, "no journal in the store"
    lines = [json.loads(line) for key in segments for line in s3.get(bucket, key).splitlines() if line.strip()]
    statuses = [line["status"] for line in lines]
    assert "pending" not in statuses
    assert sorted(line["id"] for line in lines if line["status"] == "ok") == [row["id"] for row in ROWS[:4]]
    server.stats.reset()
    rest = run_job(url, out, server.base_url)
    assert rest.exit_code == 0, rest.output
    assert starts(server) == len(ROWS) - 4
    assert len(audio_keys(s3, bucket)) == len(ROWS)
    assert set(s3.versions(bucket, "out/audio/").values()) == {1}
