"""``kpexporter serve``: bind the listen socket up front, then poll and serve until a signal."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from kpexporter import __version__
from kpexporter.cli.errors import UsageError
from kpexporter.config.schema import Config, ConfigError, redacted
from kpexporter.logs import event

if TYPE_CHECKING:
    from kpexporter.security.webconfig import WebConfig


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise UsageError(f"--listen {host}:{port}: cannot bind: {e.strerror or e}") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(choice: str, tls: bool) -> LoopFactory | None:
    """The event loop serve runs on (``event_loop:``); None: asyncio's own.

    uvloop because at thousands of nodes the loop's own work is most of what a per-node
    scrape costs: uvicorn with uvloop spends ~1/3 of the CPU per request it spends on
    asyncio's loop (``benchmarks/bench_scrape.py``), and polls' connects and reads get cheaper
    too. Not with TLS: the gate wraps each connection in asyncio's own ``SSLProtocol``
    (``security.server``, certificates re-read per connection), which uvloop's transports do
    not drive. Raises ConfigError for a choice that cannot be had.
    """
    if choice == "asyncio" or (choice == "auto" and tls):
        return None
    if tls:
        raise ConfigError("event_loop: uvloop cannot serve the web config's TLS "
                          "(use auto or asyncio)")
    try:
        import uvloop
    except ImportError:
        if choice == "auto":
            return None
        raise ConfigError("event_loop: uvloop is not installed (pip install uvloop)") from None
    return uvloop.new_event_loop


def prepare_serve(cfg: Config) -> tuple[Coroutine[Any, Any, None], LoopFactory | None]:
    """Check everything serve needs (web config, event loop, Kubernetes client, the listen
    address) before anything starts; a problem raises ConfigError, UsageError or
    WebConfigError. Returns the coroutine and the loop to run it on."""
    web = None
    if cfg.web_config_file is not None:
        from kpexporter.security.webconfig import load_web_config
        web = load_web_config(cfg.web_config_file)  # the only read, before binding
    factory = loop_factory(cfg.event_loop, web is not None and web.tls is not None)
    discovery = None
    if cfg.discovery is not None:  # fail fast (exit 64) without a usable Kubernetes client
        from kpexporter.service.discovery import Discovery, KubernetesNodes
        discovery = Discovery(KubernetesNodes(cfg.discovery, max(cfg.timeout, 30.0)),
                              cfg.discovery)
    if cfg.remote_write:  # certificates load now (exit 64), not at the first push
        from kpexporter.net.remote_write import check_tls
        for rw in cfg.remote_write:
            check_tls(rw)
    sock = bind_socket(cfg.listen_host, cfg.listen_port)
    return run_service(cfg, sock, discovery=discovery, web=web), factory


async def run_service(cfg: Config, sock: socket.socket, discovery: Any = None,
                      web: WebConfig | None = None,
                      ready: Callable[[str], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM: uvicorn drains connections, then the poller stops.

    ``discovery`` (a ``kpexporter.service.discovery.Discovery``) feeds the poller its targets;
    ``web`` is the loaded ``--web-config-file`` (TLS, basic auth, headers); ``ready`` is
    called with the base URL once signals are handled, before the start line is logged."""
    from kpexporter.security.server import WebServer, make_uvicorn_config
    from kpexporter.security.webconfig import load_web_config
    from kpexporter.service.app import create_app
    from kpexporter.service.poller import Poller
    if web is None and cfg.web_config_file is not None:
        web = load_web_config(cfg.web_config_file)
    poller = Poller(cfg, discovery=discovery)
    app: Any = create_app(poller)
    pusher = None
    if cfg.remote_write:  # push each poll too (service.remote_write); never slows polls
        from kpexporter.service.remote_write import RemoteWriter
        pusher = RemoteWriter(cfg, poller.snapshot, instance=None)
        push_task = asyncio.create_task(pusher.run(), name="remote-write")
    # Probes need no credentials and learn nothing from "ok"; SIGHUP re-reads config_path.
    ucfg = make_uvicorn_config(app, cfg.listen_host, cfg.listen_port, web,
                               config_path=cfg.web_config_file,
                               unauthenticated_paths=("/healthz", "/readyz"),
                               quick=app.state.metrics.quick,
                               log_config=None, access_log=False, lifespan="on")
    server = WebServer(ucfg)
    host, port = sock.getsockname()[:2]
    scheme = "https" if web is not None and web.tls is not None else "http"
    single = len(cfg.targets) == 1 and discovery is None

    # uvicorn re-raises the signal that stopped it once it has shut down, for the default
    # handler to kill the process (SIGTERM: exit status 143, no "stopped" line). By then we
    # have shut down cleanly: let the re-raised signal only ask for the exit, and exit 0.
    # Installed before anything is announced, so a Ctrl-C at once is a clean stop too.
    def ask_exit(signum: int, frame: object) -> None:
        server.should_exit = True

    previous = {sig: signal.signal(sig, ask_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if ready is not None:
            ready(f"{scheme}://{url_host(host)}:{port}")
        event(20, "start", version=__version__, listen=f"{url_host(host)}:{port}",
              targets="discovered" if discovery is not None else len(cfg.targets),
              node=cfg.node if single else "-",
              healthz_url=redacted(cfg.healthz_url) if single else "-",
              metrics_url=redacted(cfg.metrics_url) if single else "-",
              interval=cfg.interval, timeout=cfg.timeout,
              windows=",".join(w.name for w in cfg.windows),
              quantiles=",".join(repr(q) for q in cfg.quantiles),
              pending_threshold=cfg.pending_threshold,
              web_config=str(cfg.web_config_file or "none"),
              tls=scheme == "https",
              basic_auth=bool(web and web.basic_auth_users),
              event_loop=type(asyncio.get_running_loop()).__module__.split(".")[0])
        await server.serve(sockets=[sock])
    finally:
        if pusher is not None:
            push_task.cancel()
            await pusher.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    event(20, "stopped")
