"""--limits-url: several real `batchtts run` processes share one account's limits through a real Redis.

Redis is the server binary started by the tests (tests/redis_support.py); the
account is the local server with limits, in this test process, on loopback.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from batchtts.schedule.shared.address import limits_namespace
from batchtts.schedule.shared.store import LEASE_TTL
from batchtts.units import Rate
from tests.nightly_support import finish, spawn_run, summary, wait_until
from tests.redis_support import free_port, running_redis
from tests.runner_support import TEST_KEY, run_job, write_csv

pytestmark = pytest.mark.slow


def _manifest(path: Path, prefix: str, rows: int, text: str = "Hello number {i}.") -> Path:
    return write_csv(path, [{"id": f"{prefix}{i}", "text": text.format(i=i)} for i in range(rows)])


def _logs(logs: Path) -> str:
    return Path(f"{logs}.out").read_text() + Path(f"{logs}.err").read_text()


def test_three_processes_share_one_accounts_rate_and_streams(tmp_path, local_server, redis_server):
    # Streams of about 0.2 s at 10/s: two or three at once, so both limits bind.
    server = local_server(rate=Rate(10, 1.0), concurrency=3, latency=0.2)
    procs = []
    for k in range(3):
        manifest = _manifest(tmp_path / f"m{k}.csv", f"p{k}-", 15)
        procs.append(spawn_run(manifest, tmp_path / f"out{k}", server.base_url, "--concurrency", "3", "--rate",
                               "10/s", "--limits-url", redis_server.url, logs=tmp_path / f"run{k}"))  # fmt: skip
    codes = [finish(p, timeout=120) for p in procs]
    assert codes == [0, 0, 0], [_logs(tmp_path / f"run{k}") for k in range(3)]
    stats = server.stats.snapshot()
    assert stats["rate_limited"] == 0
    assert stats["max_concurrent_streams"] <= 3
    assert stats["streams_completed"] == 45
    for k in range(3):
        assert summary(tmp_path / f"out{k}")["ok"] == 15
    # The three processes used one namespace: the account's, from a digest of its key.
    keys = {key.decode() for key in redis_server.client().keys("batchtts:limits:*")}
    assert keys and all(key.startswith(limits_namespace(TEST_KEY)) for key in keys)
    assert not any(TEST_KEY in key for key in keys)


def test_without_shared_limits_the_same_processes_are_refused(tmp_path, local_server):
    """The control for the test above: each process pacing itself alone overruns the account."""
    server = local_server(rate=Rate(10, 1.0), concurrency=3, latency=0.2)
    procs = [
        spawn_run(_manifest(tmp_path / f"m{k}.csv", f"p{k}-", 15), tmp_path / f"out{k}", server.base_url,
                  "--concurrency", "3", "--rate", "10/s", "--backoff-scale", "0.01", logs=tmp_path / f"run{k}")
        for k in range(3)
    ]  # fmt: skip
    assert [finish(p, timeout=120) for p in procs] == [0, 0, 0]
    assert server.stats.snapshot()["rate_limited"] > 0


def test_concurrency_auto_is_found_once_for_every_process(tmp_path, local_server, redis_server):
    # A 2-stream account and two processes finding it: the shared cap settles at 2 for both.
    server = local_server(concurrency=2, latency=0.1)
    procs = [
        spawn_run(_manifest(tmp_path / f"m{k}.csv", f"p{k}-", 30), tmp_path / f"out{k}", server.base_url,
                  "--max-concurrency", "8", "--backoff-scale", "0.01", "--limits-url", redis_server.url,
                  logs=tmp_path / f"run{k}")
        for k in range(2)
    ]  # fmt: skip
    assert [finish(p, timeout=120) for p in procs] == [0, 0], [_logs(tmp_path / f"run{k}") for k in range(2)]
    state = redis_server.client().hgetall(f"{limits_namespace(TEST_KEY)}:state")
    assert float(state[b"auto_cap"]) == 2 and int(state[b"refused_at"]) == 3
    stats = server.stats.snapshot()
    assert stats["streams_completed"] == 60
    # Slow start overshoots once or twice before it settles; alone, each process would overshoot too.
    assert stats["rate_limited"] <= 4


def test_the_streams_of_a_sigkilled_process_are_used_again(tmp_path, local_server, redis_server):
    # Long streams for the holder (about 30 s of audio each at 4x real time), short ones for the other.
    server = local_server(concurrency=3, latency=0.0, realtime_factor=4.0)
    long_rows = _manifest(tmp_path / "long.csv", "long", 6, "Long text {i}. " + "word " * 400)
    holder = spawn_run(long_rows, tmp_path / "out-holder", server.base_url, "--concurrency", "3",
                       "--limits-url", redis_server.url, logs=tmp_path / "holder")  # fmt: skip
    wait_until(lambda: server.stats.snapshot()["active_streams"] == 3, timeout=60, what="the holder's 3 streams")
    namespace = limits_namespace(TEST_KEY)
    client = redis_server.client()
    assert client.zcard(f"{namespace}:leases") == 3
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    killed_at = time.monotonic()
    # Its leases outlive it, but never longer than one lease's life from the last renewal.
    seconds, micros = client.time()
    now = seconds + micros / 1e6
    expiries = [score for _, score in client.zrange(f"{namespace}:leases", 0, -1, withscores=True)]
    assert len(expiries) == 3 and all(expiry <= now + LEASE_TTL + 0.1 for expiry in expiries)
    other = spawn_run(_manifest(tmp_path / "short.csv", "short", 6), tmp_path / "out-other", server.base_url,
                      "--concurrency", "3", "--limits-url", redis_server.url, logs=tmp_path / "other")  # fmt: skip
    assert finish(other, timeout=90) == 0, _logs(tmp_path / "other")
    waited = time.monotonic() - killed_at
    assert summary(tmp_path / "out-other")["ok"] == 6
    assert server.stats.snapshot()["max_concurrent_streams"] <= 3
    print(f"the other process finished {waited:.1f}s after the kill")  # reported, not asserted (machine load)


def test_redis_lost_mid_job_and_back_loses_nothing(tmp_path, local_server):
    server = local_server(rate=Rate(10, 1.0), latency=0.05)
    with running_redis(tmp_path / "redis") as redis:
        manifest = _manifest(tmp_path / "m.csv", "r", 40)
        job = spawn_run(manifest, tmp_path / "out", server.base_url, "--concurrency", "2", "--rate", "10/s",
                        "--limits-url", redis.url, logs=tmp_path / "run")  # fmt: skip
        wait_until(lambda: server.stats.snapshot()["streams_completed"] >= 5, timeout=60, what="five rows done")
        redis.stop()
        wait_until(lambda: "lost Redis" in _logs(tmp_path / "run"), timeout=30, what="the lost line")
        # No new starts while Redis is away (the streams in flight had time to finish).
        time.sleep(0.5)
        before = server.stats.snapshot()["starts_total"]
        time.sleep(1.0)
        assert server.stats.snapshot()["starts_total"] == before
        assert job.poll() is None
        redis.start()
        assert finish(job, timeout=120) == 0, _logs(tmp_path / "run")
    output = _logs(tmp_path / "run")
    assert output.count("lost Redis") == 1 and output.count("is back; request starts go on") == 1
    assert summary(tmp_path / "out")["ok"] == 40
    assert server.stats.snapshot()["streams_completed"] == 40


def test_unreachable_redis_at_start_exits_2_with_the_url_masked(tmp_path, server):
    port = free_port()  # nothing listens there
    manifest = _manifest(tmp_path / "m.csv", "r", 3)
    job = run_job(manifest, tmp_path / "out", server.base_url,
                  "--limits-url", f"redis://:hunter2-secret@127.0.0.1:{port}/0")  # fmt: skip
    assert job.exit_code == 2
    assert f"redis://:****@127.0.0.1:{port}/0" in job.output
    assert "hunter2-secret" not in job.output and "Traceback" not in job.output
    assert "check that the server runs" in job.output
    assert server.stats.snapshot()["requests"] == {}  # not even the voice catalog was asked


def test_the_redis_password_is_never_printed(tmp_path, server):
    password = "pw-0123456789-do-not-print"
    with running_redis(tmp_path / "redis", password=password) as redis:
        manifest = _manifest(tmp_path / "m.csv", "r", 4)
        good = run_job(manifest, tmp_path / "out", server.base_url, "-vv", "--log-format", "json",
                       "--limits-url", redis.url)  # fmt: skip
        assert good.exit_code == 0, good.output
        assert password not in good.output
        wrong = redis.url.replace(password, "not-the-password")
        bad = run_job(manifest, tmp_path / "out2", server.base_url, "--limits-url", wrong)
        assert bad.exit_code == 2 and "check the password" in bad.output
        assert "not-the-password" not in bad.output and "Traceback" not in bad.output
        env = {"BATCHTTS_LIMITS_URL": redis.url}
        from_env = run_job(manifest, tmp_path / "out3", server.base_url, "-vv", env=env)
        assert from_env.exit_code == 0 and password not in from_env.output
        assert "shared limits" in from_env.output


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379/0", "redis://:secretpw@127.0.0.1:notaport/0",
                                 "redis://127.0.0.1:6379/zero"])  # fmt: skip
def test_a_bad_limits_url_is_one_line_before_anything(tmp_path, url):
    manifest = _manifest(tmp_path / "m.csv", "r", 1)
    job = run_job(manifest, tmp_path / "out", None, "--local", "--limits-url", url)
    assert job.exit_code == 2
    assert "--limits-url" in job.output and "Traceback" not in job.output and "secretpw" not in job.output


def test_two_accounts_or_namespaces_never_share(tmp_path):
    assert limits_namespace("key-a") != limits_namespace("key-b")
    assert "key-a" not in limits_namespace("key-a")
    assert limits_namespace("key-a", "nightly") != limits_namespace("key-a")
    assert limits_namespace(None) != limits_namespace("local")
