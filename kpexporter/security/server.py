"""The uvicorn glue: one config for plain HTTP and TLS, connection limits, SIGHUP reload.

Bounds an attacker on the exporter's own port meets (issue 10), each one enforced per
connection before any request is read:

- a cap on live connections, below the process's file-descriptor limit with room left for
  polling; at the cap a new connection replaces the oldest one not serving a request (so idle
  connections cannot lock Prometheus out), before a TLS handshake costs anything;
- a TLS handshake timeout (asyncio's default is 60 s) and a smaller TLS read buffer than
  asyncio's 256 KiB, which was most of the memory a silent TLS connection held;
- an idle timeout from the moment a connection is made, not only after a first response
  (uvicorn starts its keep-alive timer only then, so a silent connection lived forever);
- one log line per 10 s for each kind of noise a client can cause at will (refused
  connections, accept errors, malformed requests, WebSocket upgrades), with a count.

TLS is done here rather than by ``create_server(ssl=...)``: each connection gets the context
current when it is accepted, which is how a SIGHUP reload reaches certificates, client CAs and
every other TLS setting, as exporter-toolkit re-reads its file per connection. The protocols
are in ``connections``, the log throttle in ``noise``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import socket
import ssl
import threading
from asyncio import sslproto
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any, cast

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from kpexporter.logs import event
from kpexporter.security.connections import (
    Admission,
    ConnectionLimits,
    Gate,
    IdleH11,
    TLSGate,
    TLSProtocol,
    connection_cap,
    nofile,
)
from kpexporter.security.noise import LogThrottle, ThrottleFilter, accept_error_handler
from kpexporter.security.quick import QuickAnswer
from kpexporter.security.webauth import WebSecurityMiddleware, prepare
from kpexporter.security.webconfig import (
    TLSServerConfig,
    WebConfig,
    WebConfigError,
    build_ssl_context,
    load_web_config,
)

__all__ = ["ConnectionLimits", "WebServer", "WebUvicornConfig", "make_uvicorn_config"]

LISTEN_BACKLOG = 1024  # the kernel's queue of connections not yet accepted (no descriptors)
_UVICORN_LOGGER = "uvicorn.error"


class _LiveTLS:
    """The SSLContext new connections get; swapped whole on reload."""

    def __init__(self, tls: TLSServerConfig, context: ssl.SSLContext | None) -> None:
        self.tls = tls
        self.context = self._adopt(context or build_ssl_context(tls))

    @staticmethod
    def _adopt(context: ssl.SSLContext) -> ssl.SSLContext:
        context.set_alpn_protocols(["http/1.1"])  # what uvicorn serves here
        return context

    def swap(self, tls: TLSServerConfig, context: ssl.SSLContext) -> None:
        self.tls, self.context = tls, self._adopt(context)


# --- the uvicorn config ------------------------------------------------------------------------


class WebUvicornConfig(uvicorn.Config):
    """A ``uvicorn.Config`` serving through the connection gate, TLS from the web config.

    uvicorn builds its own ``SSLContext`` from file names (encode/uvicorn#806), which cannot
    express min/max version, client-CA policy or curves, and fixes it for the server's life;
    so uvicorn is told to serve plain HTTP and TLS is wrapped per connection here.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        web: WebConfig | None,
        config_path: Path | None = None,
        limits: ConnectionLimits | None = None,
        quick: QuickAnswer | None = None,
        **kwargs: Any,
    ) -> None:
        """``quick``: the app's answer for the quick path (``security.quick``); used only
        without a web config, whose auth and headers only the ASGI middleware applies."""
        clash = sorted(k for k in kwargs if k.startswith("ssl_") or k in (
            "limit_concurrency", "timeout_keep_alive", "backlog", "http", "server_header"))
        if clash:
            raise TypeError(f"set by the web config and limits; do not pass {', '.join(clash)}")
        self.web = web
        self.config_path = config_path
        self.quick = quick if web is None else None
        self.limits = limits = limits or ConnectionLimits()
        self.max_connections, backlog = connection_cap(limits.max_connections, nofile())
        self.throttle = LogThrottle()
        self.live_tls = (
            _LiveTLS(web.tls, web.ssl_context) if web is not None and web.tls is not None else None
        )
        if self.live_tls is not None:  # for Server.run: asyncio's SSLProtocol needs its loop
            kwargs["loop"] = "asyncio"
        super().__init__(
            app, http="h11", server_header=False, timeout_keep_alive=limits.idle_timeout,
            backlog=backlog, **kwargs,
        )

    @property
    def security(self) -> WebSecurityMiddleware | None:
        """The auth/headers middleware serving the web config (None without one)."""
        app = self.app
        return app if isinstance(app, WebSecurityMiddleware) else None

    def load(self) -> None:
        super().load()
        self.admission = Admission(self.max_connections, self.throttle)
        self.http_protocol_class = cast(
            "type[asyncio.Protocol]", functools.partial(self._protocol, self.admission)
        )

    def _protocol(self, admission: Admission, *, config: uvicorn.Config, server_state: Any,
                  app_state: dict[str, Any], _loop: Any = None) -> asyncio.Protocol:
        """One connection's protocol stack: gate → (TLS →) HTTP/1.1."""
        def http() -> H11Protocol:
            protocol = IdleH11(config=config, server_state=server_state, app_state=app_state,
                               _loop=_loop)
            protocol.quick = self.quick
            return protocol

        def plain() -> tuple[H11Protocol, H11Protocol]:
            inner = http()
            return inner, inner

        live = self.live_tls
        if live is None:
            return Gate(admission, plain)
        context = live.context  # the one current at accept: a reload reaches new connections
        timeout = self.limits.handshake_timeout

        def tls() -> tuple[sslproto.SSLProtocol, H11Protocol]:
            inner = http()
            # No waiter: nobody awaits the handshake, its failure just closes the connection.
            waiter: Any = None
            wrapped = TLSProtocol(asyncio.get_running_loop(), inner, context, waiter,
                                  server_side=True,
                                  ssl_handshake_timeout=timeout)  # type: ignore[arg-type]
            return wrapped, inner

        return TLSGate(admission, tls)

    async def reload_web_config(self) -> bool:
        """Re-read the web config file: users, headers and TLS (certificates and every other
        setting, for connections accepted from now on). A bad file keeps the old config and
        logs one line; switching between TLS and plain HTTP needs a restart."""
        path, security = self.config_path, self.security
        if path is None or security is None:
            event(logging.WARNING, "web_config_reload_skipped", reason="no --web-config-file")
            return False

        def load() -> tuple[WebConfig, Any]:  # file I/O and a bcrypt run: off the event loop
            web = load_web_config(path)
            return web, prepare(web)

        try:
            web, auth = await asyncio.to_thread(load)
        except WebConfigError as e:
            event(logging.ERROR, "web_config_reload_failed", path=str(path), error=str(e),
                  note="still serving the previous web config")
            return False
        live = self.live_tls
        if (web.tls is None) != (live is None):
            event(logging.WARNING, "web_config_tls_changed", path=str(path),
                  note="switching between TLS and plain HTTP takes effect on restart")
        elif live is not None and web.tls is not None and web.ssl_context is not None:
            live.swap(web.tls, web.ssl_context)
        security.use(auth)
        self.web = web
        event(logging.INFO, "web_config_reloaded", path=str(path),
              users=len(web.basic_auth_users), headers=len(web.headers),
              tls=live is not None)
        return True


def make_uvicorn_config(
    app: ASGIApp,
    host: str,
    port: int,
    web: WebConfig | None,
    *,
    config_path: Path | None = None,
    unauthenticated_paths: Collection[str] = (),
    limits: ConnectionLimits | None = None,
    **kwargs: Any,
) -> WebUvicornConfig:
    """The uvicorn config for ``app``, with or without a web config.

    With one, ``app`` is wrapped in ``WebSecurityMiddleware`` (unless it already is one), so a
    web config with users can never be served without them; ``config_path`` is what SIGHUP
    re-reads. ``http2`` is accepted but has no effect: uvicorn serves HTTP/1.1.
    """
    if web is not None and not isinstance(app, WebSecurityMiddleware):
        app = WebSecurityMiddleware(app, web, unauthenticated_paths=unauthenticated_paths)
    return WebUvicornConfig(app, web=web, config_path=config_path, limits=limits, host=host,
                            port=port, **kwargs)


# --- the server --------------------------------------------------------------------------------


class WebServer(uvicorn.Server):
    """``uvicorn.Server`` that reloads the web config on SIGHUP and keeps noise to a line."""

    config: WebUvicornConfig

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        with self._installed():
            await super().serve(sockets=sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        # asyncio uses one number for the kernel's accept queue and for how many connections
        # one wake-up accepts. The batch is kept small (``connection_cap``) so a burst cannot
        # exhaust descriptors before the gate closes the excess; the queue is made long again
        # so a burst does not drop SYNs (each drop costs the client a 1 s retry).
        for sock in sockets or ():
            sock.listen(LISTEN_BACKLOG)

    @contextlib.contextmanager
    def _installed(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        throttle = self.config.throttle
        log_filter = ThrottleFilter(throttle)
        uvicorn_logger = logging.getLogger(_UVICORN_LOGGER)
        uvicorn_logger.addFilter(log_filter)
        previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(functools.partial(accept_error_handler, throttle))
        reloads: set[asyncio.Task[bool]] = set()

        def on_sighup() -> None:
            task = loop.create_task(self.config.reload_web_config())
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        main = threading.current_thread() is threading.main_thread()  # signals: main only
        if main:
            loop.add_signal_handler(signal.SIGHUP, on_sighup)
        try:
            yield
        finally:
            if main:
                loop.remove_signal_handler(signal.SIGHUP)
            loop.set_exception_handler(previous_handler)
            uvicorn_logger.removeFilter(log_filter)
