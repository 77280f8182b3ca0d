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


def test_rate_holds_when_the_server_counts_requests_late(tmp_path, local_server):
    # The server's limiter counts each request up to 80 ms after it arrived (a queue
    # before it), so starts sent evenly reach its window bunched. Pacing from the send
    # times with a small allowance would trip it; counting from the answers does not.
    server = local_server(rate=Rate(10, 1.0), admission_delay=0.08, seed=5, latency=0.0, realtime_factor=0)
    job = run_job(
        write_csv(tmp_path / "m.csv", rows(40)),
        tmp_path / "out",
        server.base_url,
        "--rate",
        "10/s",
        "--concurrency",
        "8",
        "--no-adaptive",
        "--max-attempts",
        "1",
    )
    assert job.exit_code == 0, job.output
    stats = server.stats.snapshot()
    assert stats["rate_limited"] == 0
    assert stats["starts_total"] == 40
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
