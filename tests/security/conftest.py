"""A real uvicorn serving through ``kpexporter.security.server`` in a thread, for the tests
of server, connections and noise: clients are real sockets and httpx. Limits are shrunk (1 s
timeouts, a handful of connections) so each test takes a second or two; every wait has a
generous bound and no assertion measures a duration.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from kpexporter.security.connections import ConnectionLimits
from kpexporter.security.server import WebServer, WebUvicornConfig, make_uvicorn_config
from kpexporter.security.webconfig import WebConfig

DATA = Path(__file__).parent.parent / "data" / "web-config"
CERT = DATA / "testonly-selfsigned.crt"
KEY = DATA / "testonly-selfsigned.key"
ALICE_HASH = "$2b$04$BTPsZTjYr7Fdwifh7yCjs..Ax9nB9IiJQDtAwSZHzo3MT.SxCc9HO"  # alice-password
BOB_HASH = "$2b$04$1O2AyiOdhepQGXDPIq.9Vud0Gbv1x1bq2Is8x869hXESqOwuv7izC"  # bob-password
BOUND = 15.0  # seconds: generous bound for anything that should take one or two


async def _hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


APP = Starlette(routes=[Route("/", _hello), Route("/metrics", _hello)])


class Running:
    def __init__(self, server: LoopServer, port: int, scheme: str) -> None:
        self.server = server
        self.port = port
        self.url = f"{scheme}://localhost:{port}/"

    @property
    def config(self) -> WebUvicornConfig:
        return self.server.config

    def call(self, coro_fn: Callable[[], Awaitable[Any]]) -> Any:
        """Run a coroutine on the server's event loop; wait for its result."""
        async def run() -> Any:
            return await coro_fn()

        return asyncio.run_coroutine_threadsafe(run(), self.server.loop).result(BOUND)

    def live_connections(self) -> int:
        async def count() -> int:
            return len(self.config.admission.live)

        return int(self.call(count))


class LoopServer(WebServer):
    loop: asyncio.AbstractEventLoop

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets)


Serve = Callable[..., Running]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start a WebServer in a thread on a loopback port; yield a starter."""
    started: list[tuple[WebServer, threading.Thread]] = []

    def start(web: WebConfig | None, limits: ConnectionLimits | None = None,
              config_path: Path | None = None, app: Any = None, **kwargs: Any) -> Running:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = make_uvicorn_config(APP if app is None else app, "127.0.0.1", port, web,
                                     limits=limits, config_path=config_path, log_config=None,
                                     access_log=False, lifespan="off", **kwargs)
        server = LoopServer(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        started.append((server, thread))
        deadline = time.monotonic() + 30  # a generous start-up bound, not a timing assertion
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        scheme = "https" if web is not None and web.tls is not None else "http"
        return Running(server, port, scheme)

    yield start
    for server, thread in started:
        server.should_exit = True
        thread.join(timeout=30)


def client_context(cafile: Path = CERT, maximum: ssl.TLSVersion | None = None,
                   cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cafile)
    if maximum is not None:
        ctx.maximum_version = maximum
    if cert:
        ctx.load_cert_chain(CERT, KEY)
    return ctx


def closed_by_server(sock: socket.socket, bound: float = BOUND) -> bool:
    """True once the server closes ``sock`` (EOF or reset) within ``bound`` seconds."""
    sock.settimeout(bound)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def wait(check: Callable[[], bool], bound: float = BOUND) -> bool:
    deadline = time.monotonic() + bound
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
