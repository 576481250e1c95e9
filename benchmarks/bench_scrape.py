"""What one per-node scrape (``/metrics?node=NAME``) costs the exporter's process, and where.

Run from the repository root::

    python benchmarks/bench_scrape.py [--targets 200] [--requests 4000]

``--targets`` targets are polled once (the v1.30 page, every histogram moved) and their lines
written, as the poller leaves them. Then, in this process:

- *app*: the ASGI app (``create_app``) called directly for ``?node=`` scrapes, with
  Prometheus's headers (OpenMetrics first, gzip);
- *page*: ``render_metrics`` + ``gzip.compress`` alone, the baseline: what a scrape must do;
- *collector*: the same page through prometheus_client's OpenMetrics writer (what every
  Prometheus scrape cost before the writer from the cached lines).

And served in a child process pinned to one core, scraped by 8 keep-alive clients in this
process on the other core: the server's CPU per request from /proc. First as ``serve`` serves
it (``security.server``'s config with the quick path, uvloop), then by plain uvicorn on
asyncio through the app (h11, and ``httptools`` when installed), for comparison. At 5,000
nodes Prometheus's two per-node jobs every 30 s make ~330 such requests a second
(docs/performance.md, "Per-node scrapes at 5,000 nodes").
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import http.client
import importlib.util
import os
import socket
import threading
import time
from typing import Any

from prometheus_client.exposition import choose_encoder

from _common import PROMETHEUS_ACCEPT, busy_page, cores, fixture, pin_self, process_cpu
from kpexporter.config.schema import build_config
from kpexporter.service.app import create_app, render_metrics
from kpexporter.service.openmetrics import make_registry
from kpexporter.service.text import target_pieces


class _Poller:
    """What ``create_app`` reads of a poller: its config, its targets, readiness."""

    def __init__(self, cfg: Any, states: list[Any]) -> None:
        self.cfg, self.states, self.ready = cfg, states, True

    def snapshot(self) -> list[Any]:
        return self.states


def _app(targets: int) -> tuple[Any, _Poller]:
    import bench_render  # the same feeding of real polls as the render benchmark

    cfg = build_config(None, {}, {"node": "x", "log_level": "error"})
    states = bench_render.targets(targets, cfg)
    bench_render.poll_round(states, busy_page(fixture(), 1), 0, cfg)
    for st in states:
        target_pieces(st)
    poller = _Poller(cfg, states)
    return create_app(poller, manage_poller=False), poller  # type: ignore[arg-type]


async def _call(app: Any, query: bytes) -> None:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/metrics", "raw_path": b"/metrics",
             "query_string": query, "root_path": "", "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 2),
             "headers": [(b"host", b"x"), (b"accept", PROMETHEUS_ACCEPT.encode()),
                        (b"accept-encoding", b"gzip")]}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_: dict[str, Any]) -> None:
        return None

    await app(scope, receive, send)


def in_process(targets: int, n: int) -> dict[str, float]:
    app, poller = _app(targets)
    names = [st.node for st in poller.states]

    async def run() -> float:
        for i in range(100):
            await _call(app, f"node={names[i % len(names)]}".encode())
        t = time.process_time()
        for i in range(n):
            await _call(app, f"node={names[i % len(names)]}".encode())
        return (time.process_time() - t) / n

    per_app = asyncio.run(run())
    t = time.process_time()
    for i in range(n):
        body, _ = render_metrics(poller, PROMETHEUS_ACCEPT,  # type: ignore[arg-type]
                                 [poller.states[i % len(names)]])
        gzip.compress(body, 1)
    per_page = (time.process_time() - t) / n
    writer, _ = choose_encoder(PROMETHEUS_ACCEPT)
    t = time.process_time()
    for i in range(n // 10):
        chosen = [poller.states[i % len(names)]]
        gzip.compress(writer(make_registry(lambda: chosen)), 1)  # noqa: B023
    per_collector = (time.process_time() - t) / (n // 10)
    return {"app": per_app, "page": per_page, "bytes": float(len(body)),
            "collector": per_collector}


def served(targets: int, n: int, protocol: str) -> float:
    """Server CPU seconds per request, uvicorn with ``protocol`` in a pinned child; ``serve``:
    as ``kpexporter serve`` serves (its uvicorn config with the quick path, on uvloop)."""
    import uvicorn

    from kpexporter.security.server import WebServer, make_uvicorn_config

    app, poller = _app(targets)
    names = [st.node for st in poller.states]
    cs = cores()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    pid = os.fork()
    if pid == 0:  # the server
        try:
            pin_self(cs[-1] if len(cs) > 1 else None)
            if protocol == "serve":
                WebServer(make_uvicorn_config(
                    app, "127.0.0.1", port, None, quick=app.state.metrics.quick, log_config=None,
                    access_log=False, lifespan="off", loop="uvloop")).run(sockets=[sock])
            else:
                uvicorn.Server(uvicorn.Config(app, http=protocol, loop="asyncio", log_config=None,
                                              access_log=False, lifespan="off")).run(
                    sockets=[sock])
        finally:
            os._exit(0)
    sock.close()
    pin_self(cs[0] if len(cs) > 1 else None)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        clients = 8

        def client(k: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for i in range(n // clients):
                conn.request("GET", f"/metrics?node={names[(i * clients + k) % len(names)]}",
                             headers={"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"})
                conn.getresponse().read()

        client(0)  # warm-up
        before = process_cpu(pid)
        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        return (process_cpu(pid) - before) / (n // clients * clients)
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pin_self(None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--requests", type=int, default=4000)
    args = parser.parse_args()
    r = in_process(args.targets, args.requests)
    print(f"per-node page, OpenMetrics as Prometheus asks ({r['bytes'] / 1000:.1f} kB): join + "
          f"gzip {r['page'] * 1e3:.3f} ms (baseline); through the app {r['app'] * 1e3:.3f} ms "
          f"(+{(r['app'] - r['page']) * 1e3:.3f} ms); prometheus_client's writer + gzip "
          f"{r['collector'] * 1e3:.3f} ms ({r['collector'] / r['page']:.0f}x the cached lines)")
    for protocol in ("serve", "h11", "httptools"):
        if protocol == "httptools" and importlib.util.find_spec("httptools") is None:
            print("httptools: not installed (pip install httptools to compare)")
            continue
        cpu = served(args.targets, args.requests, protocol)
        how = ("as `serve` serves it (quick path, uvloop)" if protocol == "serve"
               else f"by uvicorn ({protocol}, asyncio, through the app)")
        print(f"served {how}: {cpu * 1e3:.3f} ms of server CPU a request, "
              f"{cpu / r['page']:.1f}x the page itself")


if __name__ == "__main__":
    main()
