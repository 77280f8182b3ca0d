"""The client keeps its connections: one TCP connection per stream slot, not one per row."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from batchtts.api.client import POOL_CONNECTIONS
from batchtts.server.config import ServerConfig
from batchtts.server.running import LocalServer
from tests.conftest import TEST_SERVER_DEFAULTS
from tests.runner_support import run_job, write_csv


@pytest.fixture
def counting_server() -> Iterator[tuple[LocalServer, set[tuple[str, int]]]]:
    """A real local server that records the client address (host, port) of every request it serves."""
    server = LocalServer(ServerConfig(**TEST_SERVER_DEFAULTS))
    peers: set[tuple[str, int]] = set()
    app = server.app

    async def recording(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http" and scope["path"].startswith("/waves/"):
            peers.add(tuple(scope["client"]))
        await app(scope, receive, send)

    server.app = recording  # type: ignore[assignment]
    with server:
        yield server, peers


def test_sequential_rows_share_one_connection(tmp_path, counting_server):
    server, peers = counting_server
    rows = [{"id": f"r{i}", "text": f"Row {i}."} for i in range(12)]
    job = run_job(
        write_csv(tmp_path / "m.csv", rows),
        tmp_path / "out",
        server.base_url,
        "--concurrency",
        "1",
        "--sample-rate",
        "8000",
    )
    assert job.exit_code == 0, job.output
    assert server.stats.snapshot()["streams_completed"] == 12
    assert len(peers) == 1  # the body is read to its end after the done frame, so the connection is reused


def test_many_streams_spread_over_several_pools_and_still_reuse(tmp_path, counting_server):
    server, peers = counting_server
    concurrency = POOL_CONNECTIONS * 2 + 3  # three pools
    rows = [{"id": f"r{i}", "text": f"Row {i}."} for i in range(concurrency * 3)]
    job = run_job(
        write_csv(tmp_path / "m.csv", rows),
        tmp_path / "out",
        server.base_url,
        "--concurrency",
        str(concurrency),
        "--sample-rate",
        "8000",
    )
    assert job.exit_code == 0, job.output
    assert all(r["status"] == "ok" for r in job.results())
    assert server.stats.snapshot()["max_concurrent_streams"] <= concurrency
    assert len(peers) <= concurrency


def test_the_pools_share_one_tls_context(monkeypatch):
    """Loading the CA bundle costs ~20 ms of CPU: once per job, not once per pool."""
    import ssl

    from batchtts.api.client import ApiKey, WavesClient

    loads: list[int] = []
    original = ssl.SSLContext.load_verify_locations

    def counting(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        loads.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counting)
    client = WavesClient("https://api.example", ApiKey("k"), max_connections=POOL_CONNECTIONS * 4)
    assert len(client._pools) == 4
    assert len(loads) == 1


def test_a_network_failure_names_the_host_and_the_reason(tmp_path):
    from tests.runner_support import run_job, write_csv

    manifest = write_csv(tmp_path / "m.csv", [{"id": "a", "text": "Hello."}])
    args = ("--max-attempts", "1", "--backoff-scale", "0.001")
    refused = run_job(manifest, tmp_path / "out", "http://127.0.0.1:9", *args)
    error = refused.by_id()["a"]["error"]
    assert error.startswith("cannot connect to 127.0.0.1:9: connection refused"), error
    assert "cannot connect to 127.0.0.1:9" in refused.output  # the summary's failure line
    unknown = run_job(manifest, tmp_path / "out2", "http://no-such-host.invalid:443", *args)
    assert unknown.by_id()["a"]["error"] == "cannot connect to no-such-host.invalid:443: name resolution failed"
