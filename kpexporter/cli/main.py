"""The ``kpexporter`` command: serve, check, simulate, demo.

Usage errors and bad configuration print one line naming the field and exit 64; no
command ever shows a traceback to a user.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from kpexporter import __version__
from kpexporter.config.schema import (
    DEFAULT_HEALTHZ_URL,
    DEFAULT_LISTEN,
    DEFAULT_METRICS_URL,
    ENV_PREFIX,
    Config,
    ConfigError,
    build_config,
    redacted,
)
from kpexporter.logs import event, setup_logging

EX_USAGE = 64


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 64 (EX_USAGE), per the contract."""

    def error(self, message: str) -> NoReturn:
        self.exit(EX_USAGE, f"{self.prog}: {message} (see --help)\n")


SOURCE_FLAGS = ("config", "node", "healthz_url", "metrics_url", "timeout", "windows",
                "quantiles", "pending_threshold", "log_format", "log_level")


def _add_source_options(p: argparse.ArgumentParser, serve: bool) -> None:
    g = p.add_argument_group("kube-proxy source (also settable in the config file and as "
                             f"{ENV_PREFIX}<NAME> environment variables)")
    g.add_argument("--config", metavar="FILE", help="YAML config file (keys as the long "
                   "options with _ for -, e.g. healthz_url:); flags > environment > file")
    g.add_argument("--node", help="node name for the `node` label (default: $NODE_NAME, "
                   "else $HOSTNAME, else the host name)")
    g.add_argument("--healthz-url", metavar="URL", help=f"default {DEFAULT_HEALTHZ_URL}")
    g.add_argument("--metrics-url", metavar="URL", help=f"default {DEFAULT_METRICS_URL} "
                   "(/proxyMode is read beside it)")
    g.add_argument("--timeout", metavar="SECONDS", help="per-request deadline (default 5)")
    g.add_argument("--windows", metavar="LIST", help="sliding windows for quantiles "
                   "(default 5m,1h)")
    g.add_argument("--quantiles", metavar="LIST", help="default 0.5,0.9,0.99")
    g.add_argument("--pending-threshold", metavar="SECONDS", help="a queued change waiting "
                   "longer than this is unhealthy (default 60, kube-proxy's healthTimeout)")
    g.add_argument("--log-format", choices=("logfmt", "json"), help="default logfmt")
    g.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                   help="default info")
    if serve:
        s = p.add_argument_group("service")
        s.add_argument("--listen", metavar="HOST:PORT", help=f"default {DEFAULT_LISTEN}")
        s.add_argument("--interval", metavar="SECONDS", help="poll interval (default 15; "
                       "fractions allowed, e.g. 0.5)")
        s.add_argument("--web-config-file", metavar="FILE", help="exporter-toolkit web "
                       "config: TLS, basic auth, response headers")
        s.add_argument("--discover-nodes", dest="discovery", action="store_const",
                       const="kubernetes", help="poll every Node's kube-proxy, listed from the "
                       "Kubernetes API (in-cluster or kubeconfig; needs kpexporter[kubernetes]; "
                       "settings under discovery: in the config file)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="kpexporter", description="kube-proxy health-and-SLO exporter for "
                "Prometheus: polls kube-proxy's /healthz and /metrics, derives staleness, "
                "clock skew and Prometheus-exact latency quantiles, and serves them.")
    p.add_argument("--version", action="version", version=f"kpexporter {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    serve = sub.add_parser("serve", help="poll kube-proxy every --interval and serve /metrics",
                           description="Poll kube-proxy every --interval and serve /metrics, "
                           "/healthz, /readyz, /api/v1/targets and / on --listen.")
    _add_source_options(serve, serve=True)
    check = sub.add_parser(
        "check", help="poll once, print the verdict, exit 0/1/2",
        description="Poll each endpoint once and print what serve would expose. Exit codes: "
        "0 healthy; 1 kube-proxy reachable but unhealthy (503, or a queued change pending "
        "longer than --pending-threshold); 2 unreachable or unparseable; 64 bad usage.")
    _add_source_options(check, serve=False)
    check.add_argument("--output", "-o", choices=("text", "json", "prometheus"),
                       default="text", help="text for a person (default), json for scripts, "
                       "prometheus for the exact /metrics page")
    from kpexporter.simulator import add_arguments as add_sim_arguments
    sim = sub.add_parser("simulate", help="run a realistic fake kube-proxy",
                         description="A fake kube-proxy serving /healthz and /metrics in a "
                         "chosen Kubernetes version's exact format and a chosen scenario.",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sim_arguments(sim)
    demo = sub.add_parser("demo", help="simulator + exporter on free local ports",
                          description="Start the simulated kube-proxy and the exporter on "
                          "free local ports, print their URLs, run until Ctrl-C.")
    demo.add_argument("--version", dest="sim_version", default="1.30",
                      help="simulated Kubernetes minor (default 1.30)")
    demo.add_argument("--mode", default="iptables", help="iptables, ipvs or nftables")
    demo.add_argument("--scenario", default="healthy", help="initial scenario")
    demo.add_argument("--interval", default="1", help="exporter poll interval (default 1)")
    demo.add_argument("--listen", default="127.0.0.1:0", help="exporter address "
                      "(default a free local port)")
    return p


def make_config(args: argparse.Namespace) -> Config:
    flags: dict[str, Any] = {}
    for key in (*SOURCE_FLAGS, "listen", "interval", "web_config_file", "discovery"):
        if key != "config" and hasattr(args, key):
            flags[key] = getattr(args, key)
    path = Path(args.config) if getattr(args, "config", None) else None
    return build_config(path, os.environ, flags)


# ---------------------------------------------------------------- check

def _fmt(v: float | None, unit: str = "s") -> str:
    if v is None:
        return "-"
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return f"{v:.3f}{unit}" if abs(v) < 100 else f"{v:.0f}{unit}"


def check_text(cfg: Config, st: Any) -> str:
    from kpexporter.core.derive import LIFETIME
    d = st.derived
    res = st.last
    out = [f"{d.verdict.upper()}: kube-proxy on node {st.node}"]
    out += [f"  why: {r}" for r in d.reasons]
    if d.healthz_ok and res.healthz is not None:
        h = res.healthz
        elig = "" if d.node_eligible is None else f"  nodeEligible={str(d.node_eligible).lower()}"
        out.append(f"  healthz   HTTP {d.healthz_status}  body generation {h.generation}+{elig}"
                   f"  staleness {_fmt(d.staleness)}  clock skew {_fmt(d.clock_skew)}")
        for f in d.families:
            out.append(f"            {f.ip_family}: healthy={str(f.healthy).lower()} "
                       f"staleness {_fmt(f.staleness)}")
    if d.metrics_ok:
        age = None if d.sync_last is None else time.time() - d.sync_last
        out.append(f"  sync      last {_fmt(age)} ago  pending {_fmt(d.sync_pending)} "
                   f"(threshold {cfg.pending_threshold:g}s)  mode {d.proxy_mode or '?'}")
        for s in d.summaries:
            if s.window != LIFETIME:
                continue
            qs = "  ".join(f"p{q * 100:g}={_fmt(v)}" for q, v in s.quantiles)
            lab = "".join(f" {k}={v}" for k, v in s.labels)
            out.append(f"  {s.name}{lab}: {qs}  (n={s.count:.0f}, lifetime)")
        if not d.summaries:
            out.append("  no kube-proxy latency histograms on the page (userspace mode?)")
    for e in res.errors:
        out.append(f"  error     {e.endpoint}: {e.reason}: {e.message}")
    return "\n".join(out)


async def _check(cfg: Config, output: str) -> int:
    from kpexporter.service.app import render_metrics, target_json
    from kpexporter.service.poller import Poller
    poller = Poller(cfg)
    await poller.open()
    try:
        st = poller.states[0]
        await poller.poll_once(st)
    finally:
        await poller.stop()
    if st.derived is None:
        print(f"UNREACHABLE: kube-proxy on node {st.node}: poll failed", file=sys.stderr)
        return 2
    if output == "json":
        print(json.dumps(target_json(st), indent=2, allow_nan=False))
    elif output == "prometheus":
        sys.stdout.write(render_metrics(poller, None)[0].decode())
    else:
        print(check_text(cfg, st))
    return st.derived.exit_code


# ---------------------------------------------------------------- serve / demo

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


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def run_service(cfg: Config, sock: socket.socket, announce: bool = False,
                      discovery: Any = None) -> None:
    """Serve until SIGINT/SIGTERM: uvicorn drains connections, then the poller stops.

    ``discovery`` (a ``kpexporter.service.discovery.Discovery``) feeds the poller its targets."""
    import uvicorn

    from kpexporter.service.app import create_app
    from kpexporter.service.poller import Poller
    poller = Poller(cfg, discovery=discovery)
    app: Any = create_app(poller)
    web_cfg = None
    ucfg: uvicorn.Config
    if cfg.web_config_file is not None:
        from kpexporter.security.webauth import WebSecurityMiddleware
        from kpexporter.security.webconfig import load_web_config
        web_cfg = load_web_config(cfg.web_config_file)
        # Probes need no credentials and learn nothing from "ok".
        app = WebSecurityMiddleware(app, web_cfg, config_path=cfg.web_config_file,
                                    unauthenticated_paths=("/healthz", "/readyz"))
        from kpexporter.security.webconfig import make_uvicorn_config
        ucfg = make_uvicorn_config(app, cfg.listen_host, cfg.listen_port, web_cfg,
                                   log_config=None, access_log=False, lifespan="on")
    else:
        ucfg = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(ucfg)
    host, port = sock.getsockname()[:2]
    scheme = "https" if web_cfg is not None and web_cfg.tls is not None else "http"
    single = len(cfg.targets) == 1 and discovery is None
    event(20, "start", version=__version__, listen=f"{_url_host(host)}:{port}",
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
          basic_auth=bool(web_cfg and web_cfg.basic_auth_users))
    if announce:
        print(f"exporter: {scheme}://{_url_host(host)}:{port}/metrics", flush=True)
    # uvicorn re-raises the signal that stopped it once it has shut down, for the default
    # handler to kill the process (SIGTERM: exit status 143, no "stopped" line). By then we
    # have shut down cleanly: let the re-raised signal only ask for the exit, and exit 0.
    def ask_exit(signum: int, frame: object) -> None:
        server.should_exit = True

    previous = {sig: signal.signal(sig, ask_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        await server.serve(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    event(20, "stopped")


async def _demo(args: argparse.Namespace) -> None:
    from kpexporter.simulator import SimOptions, start_simulator
    sim = await start_simulator(SimOptions(healthz_port=0, metrics_port=0,
                                           version=args.sim_version, mode=args.mode,
                                           scenario=args.scenario))
    node = sim.nodes[0]
    print(f"healthz: {node.healthz_url}", flush=True)
    print(f"metrics: {node.metrics_url}", flush=True)
    cfg = build_config(None, os.environ, {"node": node.name, "healthz_url": node.healthz_url,
                                          "metrics_url": node.metrics_url,
                                          "interval": args.interval, "listen": args.listen,
                                          "log_format": None})
    sock = bind_socket(cfg.listen_host, cfg.listen_port)
    print(f"control: {node.control_url} (switch scenario: curl -X POST "
          f"'{node.control_url}?name=stuck')", flush=True)
    try:
        await run_service(cfg, sock, announce=True)
    finally:
        await sim.stop()


def _prepare(args: argparse.Namespace) -> Any:
    """Validate everything up front; return the coroutine to run. ValueError = bad usage."""
    if args.command == "simulate":
        from kpexporter.simulator import options_from_args, run_forever
        opts = options_from_args(args)
        setup_logging()
        return run_forever(opts)
    if args.command == "demo":
        setup_logging()
        return _demo(args)
    cfg = make_config(args)
    if args.command == "check":
        # check's output already says what went wrong; log only errors unless asked.
        level = cfg.log_level if args.log_level else "error"
        setup_logging(cfg.log_format, level)  # type: ignore[arg-type]
        return _check(cfg, args.output)
    setup_logging(cfg.log_format, cfg.log_level)  # type: ignore[arg-type]
    if cfg.web_config_file is not None:
        from kpexporter.security.webconfig import load_web_config
        load_web_config(cfg.web_config_file)  # fail fast, before binding
    discovery = None
    if cfg.discovery is not None:  # fail fast (exit 64) without a usable Kubernetes client
        from kpexporter.service.discovery import Discovery, KubernetesNodes
        discovery = Discovery(KubernetesNodes(cfg.discovery, max(cfg.timeout, 30.0)),
                              cfg.discovery)
    sock = bind_socket(cfg.listen_host, cfg.listen_port)
    return run_service(cfg, sock, discovery=discovery)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EX_USAGE
    try:
        coro = _prepare(args)
    except (ConfigError, UsageError, ValueError) as e:  # WebConfigError is a ValueError
        print(f"kpexporter: {e}", file=sys.stderr)
        return EX_USAGE
    try:
        result = asyncio.run(coro)
    except KeyboardInterrupt:
        return 0
    except Exception as e:  # a bug: one line, not a traceback
        print(f"kpexporter: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        return 70
    return result if isinstance(result, int) else 0
