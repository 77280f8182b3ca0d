"""`batchtts serve` on the command line: option errors, the start-up line, a real foreground server."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import httpx
import pytest
from click.testing import CliRunner

from batchtts.cli import main
from tests.server_support import BODY, LIVE, STATS, SYNC


@pytest.mark.parametrize(
    "args,option",
    [
        (["--rate", "5/fortnight"], "--rate"),
        (["--rate", "0/s"], "--rate"),
        (["--concurrency", "0"], "--concurrency"),
        (["--latency", "-1"], "--latency"),
        (["--admission-delay", "-0.1"], "--admission-delay"),
        (["--answer-delay", "soon"], "--answer-delay"),
        (["--answer-delay", "0.3-0.1"], "--answer-delay"),
        (["--chunk-ms", "0"], "--chunk-ms"),
        (["--realtime-factor", "-2"], "--realtime-factor"),
        (["--fault", "boom:0.5"], "--fault"),
        (["--fault", "503"], "--fault"),
        (["--fault", "503:1.5"], "--fault"),
        (["--fault", "drop:often"], "--fault"),
        (["--sse-style", "fancy"], "--sse-style"),
        (["--sse-style", "cr", "--sse-style", "crlf"], "--sse-style"),
        (["--engine", "festival"], "--engine"),
        (["--port", "70000"], "--port"),
        (["--seed", "abc"], "--seed"),
        (["--api-key", " "], "--api-key"),
        (["--content-expiry", "soon"], "--content-expiry"),
    ],
)
def test_bad_values_are_usage_errors_naming_the_option(args, option):
    result = CliRunner().invoke(main, ["serve", *args])
    assert result.exit_code == 2, result.output
    assert option in result.output


def test_a_busy_port_is_a_clean_error(server):
    port = server.base_url.rsplit(":", 1)[1]
    result = CliRunner().invoke(main, ["serve", "--port", port, "--engine", "synthetic"])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output


def test_serve_runs_in_the_foreground_and_announces_itself_without_the_key():
    secret = "sk-very-secret-123"
    command = [
        sys.executable,
        "-m",
        "batchtts",
        "serve",
        "--port",
        "0",
        "--engine",
        "synthetic",
        "--api-key",
        secret,
        "--rate",
        "50/s",
        "--concurrency",
        "3",
        "--latency",
        "0",
        "--realtime-factor",
        "0",
        "--fault",
        "drop:0.5",
        "--seed",
        "4",
        "--sse-style",
        "crlf",
        "--answer-delay",
        "0.01-0.02",
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, line
        assert "engine: synthetic" in line and "50/s" in line and "concurrency: 3" in line
        assert "drop:0.5" in line and "seed 4" in line and "crlf" in line and "key required" in line
        assert "answers with the first audio after 0.01s to 0.02s" in line
        assert secret not in line
        base_url = match.group(0)
        with httpx.Client(base_url=base_url, timeout=10) as client:
            assert client.post(SYNC, json=BODY, headers={"Authorization": "Bearer wrong"}).status_code == 401
            outcomes = []
            for _ in range(8):
                try:
                    with client.stream("POST", LIVE, json=BODY, headers={"Authorization": f"Bearer {secret}"}) as r:
                        outcomes.append(r.read().endswith(b'data: {"status": "200", "done": true}\r\n\r\n'))
                except httpx.RemoteProtocolError:
                    outcomes.append(False)
            assert True in outcomes and False in outcomes  # some streams complete, some are dropped
            assert client.get(STATS).json()["faults"]["drop"] == outcomes.count(False)
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0
    assert secret not in stderr
    assert "Traceback" not in stderr  # deliberate drops are not logged as crashes


@pytest.mark.parametrize(
    "overrides,setting",
    [
        ({"engine": "festival"}, "engine"),
        ({"concurrency": 0}, "concurrency"),
        ({"latency": -0.1}, "latency"),
        ({"answer_delay": (0.3, 0.1)}, "answer_delay"),
        ({"answer_delay": (-1.0, 0.1)}, "answer_delay"),
        ({"chunk_ms": 0}, "chunk_ms"),
        ({"realtime_factor": -1}, "realtime_factor"),
        ({"faults": {"boom": 0.1}}, "faults"),
        ({"faults": {"drop": 1.1}}, "faults"),
        ({"sse_style": frozenset({"fancy"})}, "sse_style"),
        ({"port": 70000}, "port"),
        ({"api_key": ""}, "api_key"),
    ],
)
def test_server_config_refuses_bad_settings_by_name(overrides, setting):
    from batchtts.server.config import ServerConfig

    with pytest.raises(ValueError, match=f"^{setting}:"):
        ServerConfig(**overrides)


def test_the_key_never_shows_in_a_config_repr():
    from batchtts.server.config import ServerConfig

    config = ServerConfig(api_key="sk-hidden-42")
    assert "sk-hidden-42" not in repr(config) and "sk-hidden-42" not in config.describe_limits()


def test_local_server_runs_in_a_thread_on_an_ephemeral_port_and_stops():
    from batchtts.server.config import ServerConfig
    from batchtts.server.running import LocalServer

    with LocalServer(ServerConfig(engine="synthetic", port=8765, latency=0)) as server:
        assert server.base_url.startswith("http://127.0.0.1:") and server.port != 8765
        assert httpx.post(server.base_url + SYNC, json=BODY, headers={"Authorization": "Bearer k"}).status_code == 200
        assert server.stats.snapshot()["ok"] == 1
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.base_url + STATS)
