"""Fixtures every test file may use: the real local server on an ephemeral loopback port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from batchtts.server.config import ServerConfig
from batchtts.server.running import LocalServer

#: The S3-compatible server fixtures (s3_server, s3), for the object storage tests.
pytest_plugins = ["tests.s3_support"]

#: What tests want by default: the synthetic voice, no waiting, reproducible faults.
TEST_SERVER_DEFAULTS: dict[str, Any] = {
    "engine": "synthetic",
    "latency": 0.0,
    "realtime_factor": 0.0,
    "seed": 0,
}


@pytest.fixture(scope="session")
def _stopping_servers() -> Iterator[list[LocalServer]]:
    """Servers asked to stop; joined once at the end so no test waits for a shutdown."""
    stopping: list[LocalServer] = []
    yield stopping
    for server in stopping:
        server.join()


@pytest.fixture
def local_server(_stopping_servers: list[LocalServer]) -> Iterator[Callable[..., LocalServer]]:
    """Factory: ``local_server(**config_overrides)`` -> a started :class:`LocalServer`.

    Overrides are :class:`ServerConfig` fields (``rate=Rate(2, 1)``,
    ``faults={"drop": 1.0}``, ``sse_style=frozenset({"crlf"})``, ...); every
    server started is stopped when the test ends.
    """
    started: list[LocalServer] = []

    def start(**overrides: Any) -> LocalServer:
        server = LocalServer(ServerConfig(**{**TEST_SERVER_DEFAULTS, **overrides})).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop(wait=False)
        _stopping_servers.append(server)


@pytest.fixture
def server(local_server: Callable[..., LocalServer]) -> LocalServer:
    """One started server with the test defaults."""
    return local_server()


@pytest.fixture
def redis_server(tmp_path: Any) -> Iterator[Any]:
    """A real Redis (tests/redis_support.py) on a free loopback port, stopped when the test ends."""
    from tests.redis_support import running_redis

    with running_redis(tmp_path / "redis") as started:
        yield started
