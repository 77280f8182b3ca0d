"""Shared helpers for the runner's end-to-end tests: run the CLI, read what it wrote."""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pyarrow.parquet as pq
import soundfile
from click.testing import CliRunner, Result

from batchtts.api.request import VOICES_PATH, parse_request
from batchtts.cli import main
from batchtts.server.config import ServerConfig
from batchtts.server.faults import ConnectionDropped
from batchtts.server.running import LocalServer
from batchtts.server.synthetic import SyntheticEngine

TEST_KEY = "sk-test-0123456789abcdef"
#: Waits between attempts shrunk a thousandfold: same attempts, milliseconds of sleep.
FAST_BACKOFF = ["--backoff-scale", "0.001"]


@dataclass
class JobRun:
    result: Result
    out: Path

    @property
    def exit_code(self) -> int:
        return self.result.exit_code

    @property
    def output(self) -> str:
        return self.result.output

    def results(self, name: str = "results.parquet") -> list[dict[str, Any]]:
        return pq.read_table(self.out / name).to_pylist()

    def by_id(self) -> dict[str, dict[str, Any]]:
        return {r["id"]: r for r in self.results()}


def run_job(
    manifest: Path,
    out: Path,
    base_url: str | None,
    *args: str,
    key: str | None = TEST_KEY,
    env: dict[str, str] | None = None,
) -> JobRun:
    """Run ``batchtts run`` in-process against ``base_url`` (None: use the args as given)."""
    argv = ["run", str(manifest), "--out", str(out), "--progress", "off", *args]
    if base_url is not None:
        argv += ["--base-url", base_url]
    environ = {"SMALLEST_API_KEY": key or "", "BATCHTTS_BASE_URL": ""}
    environ.update(env or {})
    result = CliRunner().invoke(main, argv, env=environ, catch_exceptions=False)
    return JobRun(result, out)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    columns: list[str] = []
    for row in rows:
        columns.extend(c for c in row if c not in columns)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def expected_samples(**body: Any) -> np.ndarray:
    """The int16 samples the synthetic engine means to send for this request body."""
    body.setdefault("voice_id", "magnus")
    return SyntheticEngine().synthesize(parse_request(body))


def read_int16(path: Path) -> tuple[np.ndarray, int]:
    data, rate = soundfile.read(path, dtype="int16")
    return data, rate


def leftover_temp_files(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.is_file() and p.name.endswith(".part")]


@dataclass
class Received:
    """One request the recording server was sent: its path, headers and JSON body."""

    path: str
    headers: dict[str, str]
    body: Any


class RecordingApp:
    """Wraps the local server's ASGI app and keeps every request it is sent (the server still answers it).

    Not a mock: the real app answers; this only looks at what arrived, so a
    test can check the fields and headers the runner put on the wire.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.received: list[Received] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        record = Received(scope["path"], headers, None)
        self.received.append(record)

        async def recording_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False) and chunks != [b""]:
                    record.body = json.loads(b"".join(chunks))
            return message

        await self.app(scope, recording_receive, send)

    def bodies(self, path: str = "/waves/v1/tts/live") -> list[Any]:
        return [r.body for r in self.received if r.path == path]


@contextlib.contextmanager
def recording_server(**overrides: Any) -> Iterator[tuple[LocalServer, RecordingApp]]:
    """A started local server (the tests' defaults, then ``overrides``) that records what it is sent."""
    from tests.conftest import TEST_SERVER_DEFAULTS

    server = LocalServer(ServerConfig(**{**TEST_SERVER_DEFAULTS, **overrides}))
    recorder = RecordingApp(server.app)
    server.app = recorder  # type: ignore[assignment]
    with server:
        yield server, recorder


# --- a real local server whose voice catalog route is broken in one way -------------------------


def _answer(status: int, body: bytes, content_type: bytes = b"application/json") -> Callable[..., Any]:
    async def answer(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]})
        await send({"type": "http.response.body", "body": body})

    return answer


async def _hang(scope: Any, receive: Any, send: Any) -> None:
    await anyio.sleep(1.0)  # past the client's timeout in the tests (0.3 s); short, so the server stops soon


async def _cut(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
    await send({"type": "http.response.body", "body": b'{"voi', "more_body": True})
    raise ConnectionDropped("connection cut")  # uvicorn aborts the connection (the server does not log it)


BROKEN_CATALOGS: dict[str, tuple[Callable[..., Any], str]] = {
    "500": (_answer(500, b'{"error": "InternalServerError", "message": "An unexpected error occurred."}'),
            "HTTP 500: An unexpected error occurred."),
    "404": (_answer(404, b"<html>not here</html>", b"text/html"), "HTTP 404: <html>not here</html>"),
    "not-json": (_answer(200, b"voices: magnus"), "not JSON"),
    "no-list": (_answer(200, b'{"voices": {"magnus": {}}}'), 'no "voices" list'),
    "empty": (_answer(200, b'{"voices": []}'), "lists no voices"),
    "timeout": (_hang, "no answer within"),
    "cut": (_cut, "network error"),
}  # fmt: skip


@contextlib.contextmanager
def broken_catalog_server(kind: str) -> Iterator[tuple[LocalServer, str]]:
    """A real local server whose voices route gives one broken answer (``BROKEN_CATALOGS[kind]``; the
    other routes are real), and what the runner should say of it."""
    from tests.conftest import TEST_SERVER_DEFAULTS

    answer, said = BROKEN_CATALOGS[kind]
    server = LocalServer(ServerConfig(**TEST_SERVER_DEFAULTS))
    app = server.app

    async def routed(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == VOICES_PATH:
            await answer(scope, receive, send)
        else:
            await app(scope, receive, send)

    server.app = routed  # type: ignore[assignment]
    with server:
        yield server, said
