"""Pacing, retries and adaptive backoff, end to end against the local server's limits and faults."""

from __future__ import annotations

import pytest

from batchtts.server.faults import FaultInjector
from batchtts.units import Rate
from tests.runner_support import FAST_BACKOFF, expected_samples, leftover_temp_files, read_int16, run_job, write_csv
from tests.schedule.test_throttle import max_in_window


def rows(n: int, prefix: str = "Row") -> list[dict[str, str]]:
    return [{"id": f"r{i:03d}", "text": f"{prefix} number {i}, said plainly."} for i in range(n)]


def test_rate_never_trips_the_server_limiter(tmp_path, local_server):
    server = local_server(rate=Rate(20, 1.0))
    job = run_job(
        write_csv(tmp_path / "m.csv", rows(45)),
        tmp_path / "out",
        server.base_url,
        "--rate",
        "20/s",
        "--concurrency",
        "8",
        "--no-adaptive",
    )
    assert job.exit_code == 0, job.output
    stats = server.stats.snapshot()
    assert stats["rate_limited"] == 0
    assert stats["starts_total"] == 45
    assert max_in_window(stats["start_times"], 1.0) <= 20


def test_a_server_that_counts_late_costs_at_most_one_429_and_no_row(tmp_path, local_server):
    # The server's limiter counts each request up to 80 ms after it arrived (a queue
    # before it), so starts sent evenly reach its window bunched. Pacing counts each
    # start from its send plus a small allowance, which this server outruns: one 429,
    # whose Retry-After is honoured; from then on pacing counts from the answers
    # (causal: the server has counted a request by the time it answers), so no second
    # 429, and every row is done.
    server = local_server(rate=Rate(10, 1.0), admission_delay=0.08, seed=5, latency=0.0, realtime_factor=0)
    job = run_job(
        write_csv(tmp_path / "m.csv", rows(40)),
        tmp_path / "out",
        server.base_url,
        "--rate",
        "10/s",
        "--no-adaptive",
        "-v",
    )
    assert job.exit_code == 0, job.output
    stats = server.stats.snapshot()
    assert stats["rate_limited"] <= 1
    assert stats["starts_total"] == 40
    assert max_in_window(stats["start_times"], 1.0) <= 10
    if stats["rate_limited"]:
        assert "pacing now counts from the answers" in job.output


def test_pacing_counts_from_the_sends_when_the_server_answers_late(tmp_path, local_server):
    """Counted when they arrive, answered 50-300 ms later (headers with the first audio): no 429, and
    pacing never falls back to the answers (the throughput is checked in virtual time in
    tests/schedule/test_auto_concurrency.py, and measured in BENCHMARKS.md)."""
    server = local_server(rate=Rate(10, 1.0), answer_delay=(0.05, 0.3), latency=0.0, realtime_factor=0)
    job = run_job(write_csv(tmp_path / "m.csv", rows(25)), tmp_path / "out", server.base_url, "--rate", "10/s", "-v")
    assert job.exit_code == 0, job.output
    stats = server.stats.snapshot()
    assert stats["rate_limited"] == 0 and stats["starts_total"] == 25
    assert "pacing now counts from the answers" not in job.output
    assert max_in_window(stats["start_times"], 1.0) <= 10


@pytest.mark.parametrize(
    "fault", ["500", "502", "503", "429", "drop", "nodone", "error-event", "bad-frame", "error-frame"]
)
def test_every_fault_kind_is_retried_until_the_row_is_exact(tmp_path, local_server, fault):
    server = local_server(faults={fault: 0.4}, seed=3)
    data = rows(10)
    job = run_job(
        write_csv(tmp_path / "m.csv", data),
        tmp_path / "out",
        server.base_url,
        "--max-attempts",
        "12",
        "--sample-rate",
        "8000",
        "--no-adaptive",
        *FAST_BACKOFF,
    )
    assert job.exit_code == 0, job.output
    results = job.by_id()
    assert server.stats.snapshot()["faults"].get(fault, 0) > 0
    assert sum(r["attempts"] for r in results.values()) == 10 + server.stats.snapshot()["faults"][fault]
    for row in data:
        record = results[row["id"]]
        samples, rate = read_int16(job.out / record["path"])
        assert rate == 8000
        assert (samples == expected_samples(text=row["text"], sample_rate=8000)).all()
    assert leftover_temp_files(job.out) == []


def test_attempts_are_counted_and_the_last_attempt_is_recorded(tmp_path, local_server):
    server = local_server(faults={"500": 1.0})
    job = run_job(
        write_csv(tmp_path / "m.csv", rows(2)), tmp_path / "out", server.base_url, "--max-attempts", "3", *FAST_BACKOFF
    )
    assert job.exit_code == 1
    for record in job.results():
        assert record["attempts"] == 3
        assert record["http_status"] == 500
        assert record["request_id"].endswith(".3")
        assert "500" in record["error"]
    assert server.stats.snapshot()["responses"]["500"] == 6


def _seed_for_fault_then_success(kind: str) -> int:
    for seed in range(1000):
        injector = FaultInjector({kind: 0.5}, seed)
        if injector.draw().kind == kind and injector.draw().kind is None:
            return seed
    raise AssertionError("no seed found")


def test_retry_after_is_honoured_before_the_next_attempt(tmp_path, local_server):
    server = local_server(faults={"503": 0.5}, seed=_seed_for_fault_then_success("503"))
    job = run_job(write_csv(tmp_path / "m.csv", rows(1)), tmp_path / "out", server.base_url)
    assert job.exit_code == 0, job.output
    [record] = job.results()
    assert record["attempts"] == 2
    first, second = server.stats.snapshot()["start_times"]
    assert second - first >= 1.0  # the server's Retry-After: 1, not the 0.5 s first backoff


def test_adaptive_backoff_converges_under_unknown_limits(tmp_path, local_server):
    server = local_server(rate=Rate(20, 1.0), concurrency=3, latency=0.02, realtime_factor=40)
    job = run_job(
        write_csv(tmp_path / "m.csv", rows(60)),
        tmp_path / "out",
        server.base_url,
        "--concurrency",
        "8",
        "--max-attempts",
        "10",
    )
    assert job.exit_code == 0, job.output
    stats = server.stats.snapshot()
    assert stats["starts_total"] == 60
    refused = stats["rate_limited"]
    assert refused < (60 + refused) / 5, f"{refused} of {60 + refused} requests refused"
    assert f"{refused} rate-limited (429)" in job.output


def test_without_adaptive_the_same_limits_refuse_far_more(tmp_path, local_server):
    """The control for the test above: adaptive backoff is what keeps 429s rare."""
    server = local_server(rate=Rate(20, 1.0), concurrency=3, latency=0.02, realtime_factor=40)
    job = run_job(
        write_csv(tmp_path / "m.csv", rows(30)),
        tmp_path / "out",
        server.base_url,
        "--concurrency",
        "8",
        "--max-attempts",
        "30",
        "--no-adaptive",
        *FAST_BACKOFF,
    )
    assert job.exit_code in (0, 1), job.output  # hammering may even exhaust some rows' attempts
    assert server.stats.snapshot()["rate_limited"] >= 30 / 4


def test_a_stalled_stream_is_abandoned_after_the_idle_timeout_and_retried(tmp_path, local_server):
    server = local_server(latency=1.5)
    job = run_job(
        write_csv(tmp_path / "m.csv", rows(1)),
        tmp_path / "out",
        server.base_url,
        "--timeout",
        "0.3",
        "--max-attempts",
        "2",
        *FAST_BACKOFF,
    )
    assert job.exit_code == 1
    [record] = job.results()
    assert record["attempts"] == 2
    assert "timed out" in record["error"]


# --- --concurrency auto ----------------------------------------------------------------------


def test_auto_concurrency_on_a_1_stream_account(tmp_path, local_server):
    """The documented default account: auto probes a second stream once, then runs one at a time."""
    server = local_server(concurrency=1, latency=0.02)
    job = run_job(write_csv(tmp_path / "m.csv", rows(30)), tmp_path / "out", server.base_url, *FAST_BACKOFF)
    assert job.exit_code == 0, job.output
    stats = server.stats.snapshot()
    assert stats["starts_total"] == 30 and stats["max_concurrent_streams"] == 1
    assert 1 <= stats["rate_limited"] <= 2  # the slow start's second stream (probes come 30 s later)
    assert "concurrency auto: 1 stream(s) at the end; the account refused 2 streams at once" in job.output
    assert all(r["status"] == "ok" for r in job.results())


def test_auto_concurrency_on_a_3_stream_account(tmp_path, local_server):
    server = local_server(concurrency=3, latency=0.05)
    job = run_job(write_csv(tmp_path / "m.csv", rows(60)), tmp_path / "out", server.base_url, *FAST_BACKOFF)
    assert job.exit_code == 0, job.output
    stats = server.stats.snapshot()
    assert stats["starts_total"] == 60 and stats["max_concurrent_streams"] == 3
    assert 1 <= stats["rate_limited"] <= 4  # the overshoot of one slow-start round
    assert "concurrency auto: 3 stream(s) at the end; the account refused 4 streams at once" in job.output


def test_auto_concurrency_on_a_64_stream_account(tmp_path, local_server):
    """Slow start: 1, 2, 4, ... 64 streams in six rounds, and no 429."""
    server = local_server(concurrency=64, latency=0.4)
    manifest = write_csv(tmp_path / "m.csv", [{"id": f"r{i:03d}", "text": "Hi."} for i in range(256)])
    job = run_job(manifest, tmp_path / "out", server.base_url, "--sample-rate", "8000")
    assert job.exit_code == 0, job.output
    stats = server.stats.snapshot()
    assert stats["starts_total"] == 256 and stats["rate_limited"] == 0
    # The server thread shares this process's CPU with the runner: a wave of 64 ends spread out.
    assert stats["max_concurrent_streams"] > 32  # past slow start's fifth round
    assert "concurrency auto: 64 stream(s) at the end; no stream refused; up to 64 at once" in job.output


def test_max_concurrency_caps_auto(tmp_path, local_server):
    server = local_server(latency=0.05)
    job = run_job(write_csv(tmp_path / "m.csv", rows(40)), tmp_path / "out", server.base_url, "--max-concurrency", "5")
    assert job.exit_code == 0, job.output
    stats = server.stats.snapshot()
    assert stats["max_concurrent_streams"] == 5 and stats["rate_limited"] == 0
    assert "up to 5 at once (--max-concurrency 5)" in job.output


def test_a_fixed_concurrency_stays_fixed(tmp_path, local_server):
    """--concurrency N: N streams from the first row, no probing (and on a 1-stream account, 429s)."""
    server = local_server(latency=0.05)
    job = run_job(write_csv(tmp_path / "m.csv", rows(24)), tmp_path / "out", server.base_url, "--concurrency", "6")
    assert job.exit_code == 0, job.output
    assert server.stats.snapshot()["max_concurrent_streams"] == 6
    assert "concurrency auto" not in job.output
    one = local_server(concurrency=1, latency=0.05)
    job = run_job(
        write_csv(tmp_path / "m2.csv", rows(12)),
        tmp_path / "out2",
        one.base_url,
        "--concurrency",
        "3",
        "--no-adaptive",
        "--max-attempts",
        "5",
        *FAST_BACKOFF,
    )
    assert job.exit_code in (0, 1), job.output  # hammering may exhaust a row's attempts
    assert one.stats.snapshot()["rate_limited"] > 2  # what auto avoids


@pytest.mark.parametrize("value", ["0", "many", "2000", "1.5"])
def test_a_bad_concurrency_is_refused_before_anything_is_sent(tmp_path, server, value):
    job = run_job(write_csv(tmp_path / "m.csv", rows(2)), tmp_path / "out", server.base_url, "--concurrency", value)
    assert job.exit_code == 2
    assert "--concurrency" in job.output
    assert server.stats.snapshot()["starts_total"] == 0
