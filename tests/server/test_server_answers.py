"""`batchtts serve --answer-delay`: the answer (status line, headers) comes with the first audio, late.

The limits still count a request when it arrives; only the answer is late, as
an API that sends its headers with its first audio. The delay itself is checked
in virtual time (no wall-clock assertion); against the real server, what the
delay changes is which requests the limits see together.
"""

from __future__ import annotations

import anyio
import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from batchtts.server.answers import LateAnswers
from batchtts.units import Rate
from tests.server_support import AUTH, BODY, LIVE
from tests.virtual_time import run_virtual


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    status = 200 if scope["path"] == "/ok" else 429
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b"first audio", "more_body": False})


def _times(path: str, method: str, delay: tuple[float, float]) -> list[tuple[float, str]]:
    """When each ASGI message of one request left the middleware, in virtual seconds after it arrived."""
    seen: list[tuple[float, str]] = []

    async def main() -> None:
        late = LateAnswers(_app, delay, seed=1, clock=anyio.current_time)
        scope = {"type": "http", "method": method, "path": path}

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            seen.append((anyio.current_time(), message["type"]))

        await late(scope, receive, send)

    run_virtual(main)
    return seen


def test_a_stream_is_answered_with_its_first_audio_after_the_delay() -> None:
    assert _times("/ok", "POST", (0.25, 0.25)) == [(0.25, "http.response.start"), (0.25, "http.response.body")]


def test_the_delay_is_drawn_from_the_range() -> None:
    (at, _), _ = _times("/ok", "POST", (0.05, 0.3))
    assert 0.05 <= at <= 0.3


@pytest.mark.parametrize("path,method", [("/refused", "POST"), ("/ok", "GET")])
def test_refusals_and_other_routes_are_answered_at_once(path: str, method: str) -> None:
    assert [t for t, _ in _times(path, method, (0.25, 0.25))] == [0.0, 0.0]


def test_the_limits_count_a_request_when_it_arrives_not_when_it_is_answered(local_server) -> None:
    # 1 start per second, answers held 0.4 s: a second request sent while the first waits for its
    # answer is refused. Counted at its answer, the first would have left the window empty for it.
    server = local_server(rate=Rate(1, 1.0), answer_delay=(0.4, 0.4))
    statuses: dict[str, int] = {}

    async def main() -> None:
        async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH, timeout=10) as client:

            async def post(name: str, after: float) -> None:
                await anyio.sleep(after)
                statuses[name] = (await client.post(LIVE, json=BODY)).status_code

            async with anyio.create_task_group() as tg:
                tg.start_soon(post, "first", 0.0)
                tg.start_soon(post, "second", 0.1)

    anyio.run(main)
    assert statuses == {"first": 200, "second": 429}
    assert server.stats.snapshot()["starts_total"] == 1
