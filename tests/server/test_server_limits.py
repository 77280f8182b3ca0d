"""The server's account limits: request starts per window and streams at once, both 429 with Retry-After."""

from __future__ import annotations

import time

import httpx
import pytest

from batchtts.server.limits import AccountLimits, Refusal, SlidingWindowRate, Slot, retry_after_header
from batchtts.units import Rate, parse_rate
from tests.server_support import AUTH, BODY, LIVE, SYNC, tts_error


@pytest.mark.parametrize("seconds,header", [(0.0, "1"), (0.2, "1"), (1.0, "1"), (1.01, "2"), (59.5, "60")])
def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one(seconds, header):
    assert retry_after_header(seconds) == header


def test_sliding_window_admits_count_per_period_at_any_moment():
    window = SlidingWindowRate(parse_rate("3/min"))
    starts = [0.0, 10.0, 20.0]
    for t in starts:
        assert window.wait_time(t) == 0
        window.record(t)
    assert window.wait_time(30.0) == pytest.approx(30.0)  # the start at 0 leaves the window at 60
    assert window.wait_time(59.9) == pytest.approx(0.1)
    assert window.wait_time(60.0) == 0
    window.record(60.0)
    assert window.wait_time(65.0) == pytest.approx(5.0)  # now the start at 10 is the oldest


def test_fractional_rates_keep_their_average():
    half = SlidingWindowRate(Rate(0.5, 1.0))
    assert (half.capacity, half.window) == (1, 2.0)
    two_and_half = SlidingWindowRate(Rate(2.5, 1.0))
    assert (two_and_half.capacity, two_and_half.window) == (2, pytest.approx(0.8))


def test_concurrency_is_checked_before_the_rate_so_refusals_cost_nothing():
    limits = AccountLimits(Rate(2, 60), concurrency=1)
    first = limits.admit(0.0)
    assert isinstance(first, Slot)
    refused = limits.admit(1.0)
    assert isinstance(refused, Refusal) and refused.reason == "concurrency_limit_exceeded"
    first.release()
    first.release()  # releasing twice frees one slot, not two
    assert limits.active == 0
    second = limits.admit(2.0)
    assert isinstance(second, Slot)  # the refused request did not use the second start
    second.release()
    rate_refused = limits.admit(3.0)
    assert isinstance(rate_refused, Refusal) and rate_refused.reason == "rate_limit_exceeded"
    assert rate_refused.retry_after == pytest.approx(57.0)


def test_rate_limit_answers_429_with_retry_after(local_server):
    server = local_server(rate=parse_rate("3/min"))
    with httpx.Client(base_url=server.base_url, headers=AUTH) as client:
        statuses = [client.post(SYNC, json=BODY).status_code for _ in range(3)]
        refused = client.post(LIVE, json=BODY)
        invalid = client.post(SYNC, json={"text": ""})
    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    assert tts_error(refused)["error"] == "rate_limit_exceeded"
    assert "3/min" in tts_error(refused)["message"]
    assert 55 <= int(refused.headers["retry-after"]) <= 60
    assert invalid.status_code == 400  # validation comes first and costs no start
    stats = server.stats.snapshot()
    assert stats["rate_limited"] == 1 and stats["starts_total"] == 3


def test_rate_limit_lets_requests_through_again_after_retry_after(local_server):
    server = local_server(rate=parse_rate("2/s"))
    with httpx.Client(base_url=server.base_url, headers=AUTH) as client:
        assert [client.post(SYNC, json=BODY).status_code for _ in range(2)] == [200, 200]
        refused = client.post(SYNC, json=BODY)
        assert refused.status_code == 429
        time.sleep(float(refused.headers["retry-after"]))
        assert client.post(SYNC, json=BODY).status_code == 200
    # Never more than 2 admitted starts within any 1 s.
    starts = server.stats.start_times
    assert len(starts) == 3
    assert all(later - earlier >= 1.0 for earlier, later in zip(starts, starts[2:], strict=False))


def test_concurrency_limit_answers_429_while_streams_are_open(local_server):
    # A long latency holds each stream open (headers sent, audio not yet) until the client leaves.
    server = local_server(concurrency=2, latency=30.0)
    with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=10) as client:
        first = client.send(client.build_request("POST", LIVE, json=BODY), stream=True)
        second = client.send(client.build_request("POST", LIVE, json=BODY), stream=True)
        assert (first.status_code, second.status_code) == (200, 200)
        refused = client.post(SYNC, json=BODY)
        assert refused.status_code == 429
        assert tts_error(refused)["error"] == "concurrency_limit_exceeded"
        assert int(refused.headers["retry-after"]) >= 1
        first.close()  # the client hangs up: the server frees the slot
        for _ in range(200):
            if server.stats.snapshot()["active_streams"] < 2:
                break
            time.sleep(0.01)
        third = client.send(client.build_request("POST", LIVE, json=BODY), stream=True)
        assert third.status_code == 200
        third.close()
        second.close()
    stats = server.stats.snapshot()
    assert stats["max_concurrent_streams"] == 2
    assert stats["rate_limited"] == 1


def test_without_limits_parallel_streams_all_succeed(local_server):
    server = local_server(latency=0.5)
    with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=10) as client:
        streams = [client.send(client.build_request("POST", LIVE, json=BODY), stream=True) for _ in range(5)]
        bodies = [s.read() for s in streams]
    assert all(b.endswith(b'data: {"status": "200", "done": true}\n\n') for b in bodies)
    assert server.stats.max_concurrent_streams == 5


def test_the_stats_keep_when_each_stream_ended(local_server):
    """With one stream at a time, a stream's end to the next start is the time the client left the account idle."""
    server = local_server(concurrency=1)
    with httpx.Client(base_url=server.base_url, headers=AUTH) as client:
        for _ in range(3):
            assert client.post(LIVE, json=BODY).status_code == 200
    for _ in range(200):  # the server thread records the end just after the last byte left
        if server.stats.snapshot()["active_streams"] == 0:
            break
        time.sleep(0.01)
    stats = server.stats.snapshot()
    starts, ends = stats["start_times"], stats["end_times"]
    assert len(starts) == len(ends) == 3 and ends == server.stats.end_times
    assert starts[0] <= ends[0] <= starts[1] <= ends[1] <= starts[2] <= ends[2]
    server.stats.reset()
    assert server.stats.end_times == []
