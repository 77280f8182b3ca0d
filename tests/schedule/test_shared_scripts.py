"""The Lua scripts of the shared limits, run in a real Redis (tests/redis_support.py): each decision alone."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from batchtts.schedule.shared import scripts
from batchtts.schedule.shared.address import check_limits_url, limits_namespace, masked_url
from batchtts.schedule.shared.store import SharedLimits

NS = "batchtts:limits:test"
LEASES, STATE, WINDOW = f"{NS}:leases", f"{NS}:state", f"{NS}:window"
NO_PACE = [0, 0, 0.0, 1.0, 0.001, 0.05]


def run(client: Any, name: str, keys: list[str], args: list[Any]) -> Any:
    return client.register_script(getattr(scripts, name))(keys=keys, args=args)


def take_slot(client: Any, lease: str, start: str, most: int, *, auto: bool = False, ttl: float = 6.0,
              rate: float = 0.0, window_starts: int = 0, lookahead: float = 0.0) -> list[Any]:  # fmt: skip
    window = window_starts / rate if window_starts else 0.0
    args = [lease, start, ttl, most, int(auto), rate, window_starts, window, 1.0, 0.001, 0.05, 3600, lookahead]
    return run(client, "TAKE_SLOT", [LEASES, STATE, WINDOW], args)


def take_lease(client: Any, lease: str, most: int, *, auto: bool = False, ttl: float = 6.0) -> bool:
    return int(take_slot(client, lease, f"start-of-{lease}", most, auto=auto, ttl=ttl)[0]) == 1


def take_start(client: Any, start: str, rate: float, window_starts: int = 0) -> list[Any]:
    return take_slot(client, f"lease-of-{start}", start, 1000, rate=rate, window_starts=window_starts)


def test_the_stream_cap_is_one_lease_per_stream(redis_server):
    client = redis_server.client()
    assert [take_lease(client, f"l{i}", 2) for i in range(3)] == [True, True, False]
    assert int(take_slot(client, "l2", "s", 2)[2]) == 2  # waiting for a stream, not for the pace
    run(client, "GIVE_LEASE", [LEASES], ["l0"])
    assert take_lease(client, "l2", 2)


def test_a_lease_not_renewed_expires_and_a_renewed_one_stays(redis_server):
    client = redis_server.client()
    assert take_lease(client, "dead", 2, ttl=0.3) and take_lease(client, "alive", 2, ttl=0.3)
    assert not take_lease(client, "new", 2)
    for _ in range(4):
        time.sleep(0.15)
        assert run(client, "RENEW_LEASES", [LEASES], [0.3, 0, "alive"]) == 1
    assert take_lease(client, "new", 2)  # "dead" expired, "alive" did not
    assert {m.decode() for m in client.zrange(LEASES, 0, -1)} == {"alive", "new"}


def test_renewing_after_an_outage_puts_the_leases_back(redis_server):
    client = redis_server.client()
    run(client, "RENEW_LEASES", [LEASES], [6, 0, "held"])
    assert client.zcard(LEASES) == 0  # a plain renewal does not create a lease
    run(client, "RENEW_LEASES", [LEASES], [6, 1, "held"])
    assert client.zcard(LEASES) == 1  # after Redis came back empty, it does


def test_starts_are_spaced_on_redis_clock(redis_server):
    client = redis_server.client()
    granted: list[float] = []
    while len(granted) < 6:
        reply = take_start(client, f"s{len(granted)}", rate=20.0)
        if int(reply[0]) == 1:
            granted.append(float(reply[1]))
        else:
            time.sleep(float(reply[1]))
    assert granted == sorted(granted)
    # One interval (50 ms) apart; after idling the pace catches up by at most one interval (MAX_CATCH_UP).
    assert granted[-1] - granted[0] >= 4 * 0.05 - 1e-6


def test_the_window_guard_waits_for_the_answers(redis_server):
    client = redis_server.client()
    # 2 starts per window; the pace alone would allow them all after 0.5 s each.
    client.hset(STATE, "tat", 0)
    assert int(take_start(client, "a", rate=1000.0, window_starts=2)[0]) == 1
    client.hset(STATE, "tat", 0)
    assert int(take_start(client, "b", rate=1000.0, window_starts=2)[0]) == 1
    client.hset(STATE, "tat", 0)
    refused = take_start(client, "c", rate=1000.0, window_starts=2)
    assert int(refused[0]) == 0 and int(refused[2]) == 1  # waiting on a start not answered yet
    run(client, "NOTE_ANSWERED", [WINDOW], ["a", 0.0])  # answered long ago: the window reopens now
    time.sleep(0.01)
    assert int(take_start(client, "c", rate=1000.0, window_starts=2)[0]) == 1


def test_a_429_pauses_and_slows_every_process(redis_server):
    client = redis_server.client()
    assert int(take_start(client, "a", rate=10.0)[0]) == 1
    granted = float(client.hget(STATE, "tat")) - 0.1
    what, _cap, rate = run(client, "ON_RATE_LIMITED", [STATE, LEASES],
                          [2.0, granted, 1, 10.0, 3, 0, "rate", 30, 600])  # fmt: skip
    assert what == b"slowed" and float(rate) == pytest.approx(7.0)
    refused = take_start(client, "b", rate=10.0)
    assert int(refused[0]) == 0 and 1.5 < float(refused[1]) <= 2.0  # the Retry-After pause, for anyone
    # A second 429 of a start granted before the cut does not cut again.
    what, _, rate = run(client, "ON_RATE_LIMITED", [STATE, LEASES], [0, granted, 1, 10.0, 3, 0, "rate", 30, 600])
    assert what == b"paused" and float(rate) == pytest.approx(7.0)
    for _ in range(200):
        _cap, rate = run(client, "ON_SUCCESS", [STATE, LEASES], [1, 10.0, 3, 0, 30, 600])
    assert float(rate) == pytest.approx(10.0)  # successes bring the pace back, never above --rate


def test_auto_concurrency_grows_while_saturated_and_settles_below_a_refusal(redis_server):
    client = redis_server.client()

    def succeed() -> float:
        client.hset(STATE, "waiting_until", time.time() + 1e6)  # someone waits for a stream
        return float(run(client, "ON_SUCCESS", [STATE, LEASES], [1, 0, 8, 1, 30, 600])[0])

    assert take_lease(client, "a", 8, auto=True)
    assert not take_lease(client, "b", 8, auto=True)  # auto starts at one stream
    assert succeed() == 2 and take_lease(client, "b", 8, auto=True)
    assert succeed() == 3 and take_lease(client, "c", 8, auto=True)
    assert succeed() == 4 and take_lease(client, "d", 8, auto=True)
    # The account refuses the 4th stream: the cap settles at the 3 others, for every process.
    what, cap, _quiet = run(client, "ON_RATE_LIMITED", [STATE, LEASES], [1, 0, 1, 0, 8, 1, "concurrency", 30, 600])
    assert what == b"settled" and float(cap) == 3
    run(client, "GIVE_LEASE", [LEASES], ["d"])
    assert not take_lease(client, "e", 8, auto=True)
    assert succeed() == 3  # no probe before the quiet period


def test_no_stream_is_held_while_its_start_waits_for_the_pace(redis_server):
    client = redis_server.client()
    assert int(take_slot(client, "a", "sa", 3, rate=2.0)[0]) == 1
    refused = take_slot(client, "b", "sb", 3, rate=2.0)
    assert int(refused[0]) == 0 and int(refused[2]) == 0 and float(refused[1]) > 0.3  # the pace: 0.5 s apart
    assert {m.decode() for m in client.zrange(LEASES, 0, -1)} == {"a"}  # "b" holds no stream meanwhile


def test_a_start_due_soon_is_granted_ahead_for_its_time_but_not_past_the_window_guard(redis_server):
    client = redis_server.client()
    first = take_slot(client, "a", "sa", 9, rate=10.0, window_starts=2, lookahead=0.2)
    second = take_slot(client, "b", "sb", 9, rate=10.0, window_starts=2, lookahead=0.2)
    assert int(first[0]) == 1 and int(second[0]) == 1
    ahead = float(second[3])
    assert 0 < ahead <= 0.1 and float(second[1]) >= float(first[1]) + 0.05  # for its time on the schedule
    # Two starts in the window, neither answered: the third waits, and is not granted ahead.
    third = take_slot(client, "c", "sc", 9, rate=10.0, window_starts=2, lookahead=10.0)
    assert int(third[0]) == 0 and int(third[2]) == 1


def test_take_slot_waits_until_a_stream_is_given_back(redis_server):
    async def main() -> list[str]:
        limits = await SharedLimits.connect(redis_server.url, NS)
        order: list[str] = []
        try:
            await limits.take_slot("first", "s1", 1, auto=False, pace=NO_PACE)

            async def second() -> None:
                await limits.take_slot("second", "s2", 1, auto=False, pace=NO_PACE)
                order.append("second taken")

            async with anyio.create_task_group() as group:
                group.start_soon(second)
                await anyio.sleep(0.1)
                order.append("first given back")
                await limits.report("GIVE_LEASE", [limits.leases_key], ["first"])
        finally:
            await limits.aclose()
        return order

    assert anyio.run(main) == ["first given back", "second taken"]


def test_urls_are_checked_and_shown_without_their_password():
    assert masked_url("redis://:s3cret@host:6379/0") == "redis://:****@host:6379/0"
    assert masked_url("redis://user:s3cret@host:6379/0") == "redis://user:****@host:6379/0"
    assert masked_url("redis://host:6379/0") == "redis://host:6379/0"
    assert check_limits_url(" redis://host:6379/2 ") == "redis://host:6379/2"
    for bad in ("http://host/0", "redis://:s3cret@host:port/0", "redis:///0", "redis://host:6379/x"):
        with pytest.raises(ValueError) as caught:
            check_limits_url(bad)
        assert "s3cret" not in str(caught.value)


def test_the_namespace_is_a_digest_of_the_key():
    assert limits_namespace("sk-one") != limits_namespace("sk-two")
    assert "sk-one" not in limits_namespace("sk-one")
    assert limits_namespace("sk-one", "nightly") == limits_namespace("sk-one") + ":nightly"
    assert limits_namespace(None) == "batchtts:limits:local"
