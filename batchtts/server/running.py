"""Running the local server: in a background thread (tests, ``run --local``) or in the foreground (CLI).

The listening socket is bound before uvicorn starts, so the port is known (and
a busy port fails) at once, and ``port=0`` gives a free ephemeral port.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import replace
from types import TracebackType

from batchtts.server.config import ServerConfig
from batchtts.server.engines import Engine
from batchtts.server.stats import ServerStats

_START_TIMEOUT = 15.0
_GRACEFUL_SHUTDOWN = 2  # seconds; uvicorn takes an int


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (OSError when taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so,
    # and without it every small answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    # Listening now means a client may connect as soon as the URL is known:
    # connections wait in the backlog until uvicorn accepts them.
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _served(app: object, config: ServerConfig) -> object:
    """The ASGI app uvicorn runs: the app, behind late answers when ``config.answer_delay`` asks for them."""
    if not config.answers_late:
        return app
    from batchtts.server.answers import LateAnswers

    return LateAnswers(app, config.answer_delay, seed=config.seed)  # type: ignore[arg-type]


def _uvicorn_server(app: object, *, quiet: bool) -> object:
    import uvicorn

    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        lifespan="off",
        access_log=False,
        log_level="warning",
        log_config=None if quiet else uvicorn.config.LOGGING_CONFIG,
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN,
        ws="none",
    )
    return uvicorn.Server(config)


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class LocalServer:
    """The local server on 127.0.0.1 and an ephemeral port, in a daemon thread.

    ``with LocalServer(config) as server: httpx.post(server.base_url + ...)``;
    ``server.stats`` is the live :class:`ServerStats` of the running app.
    """

    def __init__(self, config: ServerConfig | None = None) -> None:
        from batchtts.server.app import create_app

        base = config if config is not None else ServerConfig()
        self.config = replace(base, host="127.0.0.1", port=0)
        self.app = create_app(self.config)
        self.stats: ServerStats = self.app.state.stats
        self.engine_name: str = self.app.state.engine.name
        self.port: int = 0
        self._server: object | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if not self.port:
            raise RuntimeError("the server is not started")
        return _url("127.0.0.1", self.port)

    def start(self) -> LocalServer:
        if self._thread is not None:
            return self
        sock = _bind("127.0.0.1", 0)
        self.port = sock.getsockname()[1]
        server = _uvicorn_server(_served(self.app, self.config), quiet=True)
        self._server = server
        failure: list[BaseException] = []

        def serve() -> None:
            try:
                server.run(sockets=[sock])  # type: ignore[attr-defined]
            except BaseException as exc:  # surfaced by start()
                failure.append(exc)
            finally:
                sock.close()

        self._thread = threading.Thread(target=serve, name=f"batchtts-serve-{self.port}", daemon=True)
        self._thread.start()
        deadline = _START_TIMEOUT
        while not server.started:  # type: ignore[attr-defined]
            if not self._thread.is_alive() or deadline <= 0:
                self._thread = None
                raise RuntimeError(f"the local server did not start: {failure[0] if failure else 'timeout'}")
            self._thread.join(0.01)
            deadline -= 0.01
        return self

    def stop(self, wait: bool = True) -> None:
        """Ask the server to exit; with ``wait``, return once it has (open streams get 2 s)."""
        thread, server = self._thread, self._server
        if thread is None or server is None:
            return
        server.should_exit = True  # type: ignore[attr-defined]
        if wait:
            self.join()

    def join(self) -> None:
        """Wait for a stopping server's thread to end."""
        thread, server = self._thread, self._server
        if thread is None or server is None:
            return
        thread.join(_GRACEFUL_SHUTDOWN + 3)
        if thread.is_alive():
            server.force_exit = True  # type: ignore[attr-defined]
            thread.join(5)
        self._thread = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_forever(
    config: ServerConfig,
    announce: Callable[[str], None] | None = None,
    *,
    engine: Engine | None = None,
) -> None:
    """Serve ``config`` in the foreground until Ctrl-C; ``announce`` gets the one start-up line.

    Binding comes first, so a taken port raises OSError before anything is announced.
    """
    from batchtts.server.app import create_app

    app = create_app(config, engine=engine)
    sock = _bind(config.host, config.port)
    port = sock.getsockname()[1]
    if announce is not None:
        engine = app.state.engine.name
        announce(f"batchtts serve: {_url(config.host, port)} (engine: {engine}; {config.describe_limits()})")
    server = _uvicorn_server(_served(app, config), quiet=False)
    try:
        server.run(sockets=[sock])  # type: ignore[attr-defined]
    finally:
        sock.close()
