"""``kpexporter demo``: a simulated kube-proxy and the exporter on free local ports.

Every argument is checked (the simulator's options, the exporter's config, the exporter's
listen socket bound) before the simulator starts, so bad usage is one line and exit 64.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
from collections.abc import Coroutine
from typing import Any

from kpexporter.cli.serve import bind_socket, run_service
from kpexporter.config.schema import Config, build_config
from kpexporter.logs import setup_logging


def add_demo_arguments(demo: argparse.ArgumentParser) -> None:
    from kpexporter.simulator import MODES, SCENARIOS, add_k8s_version_argument
    add_k8s_version_argument(demo, "sim_version")
    demo.add_argument("--mode", default="iptables",
                      help=f"proxy mode: {', '.join(MODES)} (default %(default)s)")
    demo.add_argument("--scenario", default="healthy",
                      help=f"initial scenario: {', '.join(SCENARIOS)} (default %(default)s)")
    demo.add_argument("--time-scale", type=float, default=1.0, metavar="K",
                      help="run the simulated kube-proxy K times faster (e.g. 60: stuck "
                      "answers 503 within seconds) (default %(default)s)")
    demo.add_argument("--interval", default="1", metavar="SECONDS", help="exporter poll interval "
                      "(default %(default)s)")
    demo.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT",
                      help="exporter address (default a free local port)")


def prepare_demo(args: argparse.Namespace) -> Coroutine[Any, Any, None]:
    """Validate every argument and bind the exporter's socket; raise ValueError or
    ConfigError (one line naming the argument) before anything has started."""
    from kpexporter.simulator import SimOptions, validate_options
    opts = SimOptions(healthz_port=0, metrics_port=0, version=args.sim_version,
                      mode=args.mode, scenario=args.scenario, time_scale=args.time_scale)
    validate_options(opts)
    cfg = build_config(None, os.environ, {"node": "node-0", "interval": args.interval,
                                          "listen": args.listen})
    setup_logging(cfg.log_format, cfg.log_level)  # type: ignore[arg-type]
    sock = bind_socket(cfg.listen_host, cfg.listen_port)
    return _demo(opts, cfg, sock)


async def _demo(opts: Any, cfg: Config, sock: socket.socket) -> None:
    from kpexporter.simulator import start_simulator
    try:
        sim = await start_simulator(opts)
    except BaseException:
        sock.close()
        raise
    node = sim.nodes[0]
    cfg = dataclasses.replace(cfg, node=node.name, healthz_url=node.healthz_url,
                              metrics_url=node.metrics_url)

    def announce(exporter: str) -> None:
        # The first three lines are the form `simulate` prints (and scripts may read).
        print(f"healthz: {node.healthz_url}\n"
              f"metrics: {node.metrics_url}\n"
              f"exporter: {exporter}/metrics\n"
              f"simulated kube-proxy: Kubernetes {opts.version}, {opts.mode}, scenario "
              f"{opts.scenario}, time scale {opts.time_scale:g}\n"
              f"switch scenario: curl -X POST '{node.control_url}?name=stuck'\n"
              "Ctrl-C stops both; the exporter's log follows.", flush=True)

    try:
        await run_service(cfg, sock, ready=announce)
    finally:
        await sim.stop()
