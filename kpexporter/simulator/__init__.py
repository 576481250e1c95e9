"""``kpexporter simulate``: a faithful fake kube-proxy (one node or thousands) to try the exporter.

The pieces, one job each: ``bodies`` (byte-exact healthz bodies), ``page`` (the /metrics page),
``model`` (pure behaviour over time), ``scenarios`` (named behaviours), ``versions`` (what each
Kubernetes minor does), ``server`` (the sockets, the only clock reader). This module is the
surface the CLI, the demo and the tests use.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import math
import re
from dataclasses import dataclass

from kpexporter.simulator.scenarios import DESCRIPTIONS, SCENARIOS
from kpexporter.simulator.server import Cluster, SimNodeRuntime, node_config, now_ns, raise_fd_limit
from kpexporter.simulator.versions import IP_FAMILIES, MODES, VERSIONS, Version

__all__ = [
    "MODES",
    "SCENARIOS",
    "VERSIONS",
    "BindError",
    "RunningSimulator",
    "SimNode",
    "SimOptions",
    "add_arguments",
    "add_k8s_version_argument",
    "options_from_args",
    "run_forever",
    "start_simulator",
    "validate_options",
]

MAX_NODES = 20_000


@dataclass(frozen=True)
class SimOptions:
    """Everything ``kpexporter simulate`` takes; ports 0 mean any free port."""

    host: str = "127.0.0.1"
    healthz_port: int = 10256
    metrics_port: int = 10249
    version: str = "1.30"
    mode: str = "iptables"
    scenario: str = "healthy"
    time_scale: float = 1.0
    nodes: int = 1
    spread: str = "ports"
    seed: int = 0
    ip_families: tuple[str, ...] = ("IPv4",)
    clock_skew: float = 30.0  # seconds, used by the clock-skew scenario


@dataclass(frozen=True)
class SimNode:
    """Where one simulated node answers."""

    name: str
    healthz_url: str
    metrics_url: str
    control_url: str


class RunningSimulator:
    """A started simulator: its nodes' URLs, a scenario switch, and stop."""

    def __init__(self, cluster: Cluster, nodes: list[SimNode]) -> None:
        self._cluster = cluster
        self.nodes = nodes

    async def set_scenario(self, name: str, node: int | None = None) -> None:
        """Switch one node (by index) or all of them; ValueError for an unknown scenario."""
        self._cluster.set_scenario(name, node)

    async def stop(self) -> None:
        await self._cluster.close()


class BindError(OSError):
    """A port the simulator was told to use cannot be bound; ``str()`` names the flag."""


def _bind_message(exc: OSError, plan: list[tuple[str, int, str, int]]) -> str:
    """``--healthz-port: cannot listen on …`` naming the flag whose port failed."""
    text = exc.strerror or str(exc)
    failed = re.search(r":(\d+): ", text)
    healthz_ports = {hp for _, hp, _, _ in plan if hp}
    flag = ("--healthz-port" if failed and int(failed.group(1)) in healthz_ports
            else "--metrics-port")
    return f"{flag}: {text}"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _bind_plan(opts: SimOptions) -> list[tuple[str, int, str, int]]:
    plan = []
    for i in range(opts.nodes):
        if opts.spread == "addresses":
            host = str(ipaddress.IPv4Address(opts.host) + i)
            plan.append((host, opts.healthz_port, host, opts.metrics_port))
        else:
            hp = opts.healthz_port + i if opts.healthz_port else 0
            mp = opts.metrics_port + i if opts.metrics_port else 0
            plan.append((opts.host, hp, opts.host, mp))
    return plan


async def start_simulator(opts: SimOptions) -> RunningSimulator:
    """Bind every node's two ports and return once all are listening (ports resolved)."""
    validate_options(opts)
    version = Version.parse(opts.version)
    raise_fd_limit(2 * opts.nodes + 256)
    start = now_ns()
    runtimes = [
        SimNodeRuntime(
            node_config(i, version, opts.mode, opts.ip_families, opts.seed, opts.time_scale),
            opts.scenario,
            start,
            opts.clock_skew,
        )
        for i in range(opts.nodes)
    ]
    cluster = Cluster(runtimes)
    plan = _bind_plan(opts)
    try:
        ports = await cluster.listen(plan)
    except OSError as exc:
        raise BindError(_bind_message(exc, plan)) from None
    nodes = []
    for rt, (h_host, _, m_host, _), (hp, mp) in zip(runtimes, plan, ports, strict=True):
        hz, ms = _url_host(h_host), _url_host(m_host)
        nodes.append(SimNode(
            name=rt.config.name,
            healthz_url=f"http://{hz}:{hp}/healthz",
            metrics_url=f"http://{ms}:{mp}/metrics",
            control_url=f"http://{ms}:{mp}/sim/scenario",
        ))
    return RunningSimulator(cluster, nodes)


async def run_forever(opts: SimOptions) -> None:
    """Start, print the endpoint lines, serve until cancelled."""
    sim = await start_simulator(opts)
    try:
        first = sim.nodes[0]
        print(f"healthz: {first.healthz_url}", flush=True)
        print(f"metrics: {first.metrics_url}", flush=True)
        print(f"control: {first.control_url}", flush=True)
        if len(sim.nodes) > 1:
            last = sim.nodes[-1]
            print(f"nodes: {len(sim.nodes)} ({first.name} .. {last.name}), last at "
                  f"{last.healthz_url} and {last.metrics_url}", flush=True)
        await asyncio.Event().wait()
    finally:
        await sim.stop()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``simulate`` flags, with help that lists what can be chosen."""
    scen = "; ".join(f"{name}: {text}" for name, text in DESCRIPTIONS.items())
    d = SimOptions()
    parser.add_argument("--host", default=d.host,
                        help="address to listen on (default %(default)s)")
    parser.add_argument("--healthz-port", type=int, default=d.healthz_port,
                        help="kube-proxy healthz port, /healthz and /livez (default %(default)s; "
                        "0 = any free port)")
    parser.add_argument("--metrics-port", type=int, default=d.metrics_port,
                        help="kube-proxy metrics port: /metrics, /proxyMode, /healthz, and the "
                        "control endpoint /sim/scenario?name=X, /sim/state, POST /sim/change "
                        "(default %(default)s; 0 = any free port)")
    add_k8s_version_argument(parser, "version")
    parser.add_argument("--mode", default=d.mode,
                        help=f"proxy mode: {', '.join(MODES)} (nftables from 1.29) "
                        "(default %(default)s)")
    parser.add_argument("--scenario", default=d.scenario,
                        help=f"behaviour, switchable while running: {scen} (default %(default)s)")
    parser.add_argument("--time-scale", type=float, default=d.time_scale,
                        help="run behaviour K times faster: sync period, 503 threshold, hourly "
                        "re-sync, restart/flap intervals shrink K-fold; reported times stay on "
                        "the wall clock (default %(default)s)")
    parser.add_argument("--nodes", type=int, default=d.nodes,
                        help="simulate N independent nodes node-0..node-N-1 in one process "
                        f"(up to {MAX_NODES}) (default %(default)s)")
    parser.add_argument("--spread", default=d.spread, choices=("ports", "addresses"),
                        help="with --nodes: consecutive ports from the given ones, or "
                        "consecutive loopback addresses from --host on the same ports "
                        "(default %(default)s)")
    parser.add_argument("--seed", type=int, default=d.seed,
                        help="random seed; the same seed replays the same nodes "
                        "(default %(default)s)")
    parser.add_argument("--ip-families", default=",".join(d.ip_families),
                        help="IPv4, IPv6 or IPv4,IPv6 for dual stack (default %(default)s)")
    parser.add_argument("--clock-skew", type=float, default=d.clock_skew,
                        help="seconds the node clock runs ahead in the clock-skew scenario "
                        "(negative: behind) (default %(default)s)")


def add_k8s_version_argument(parser: argparse.ArgumentParser, dest: str) -> None:
    """``--k8s-version``, with ``--version`` kept as a hidden alias for scripts that used it
    (``kpexporter --version`` is the program's version)."""
    default = SimOptions().version
    parser.add_argument("--k8s-version", dest=dest, default=default,
                        help=f"Kubernetes minor whose kube-proxy to imitate, {VERSIONS[0]} to "
                        f"{VERSIONS[-1]} (healthz body: raw <=1.16, fmt 1.17-1.27, +nodeEligible "
                        "1.28-1.32, JSON 1.33+; µs sync metric <=1.13) (default %(default)s)")
    parser.add_argument("--version", dest=dest, default=default, help=argparse.SUPPRESS)


def options_from_args(args: argparse.Namespace) -> SimOptions:
    """Build and validate options; ValueError("--flag: why") on a bad value."""
    families: list[str] = []
    for raw in str(args.ip_families).split(","):
        match = [f for f in IP_FAMILIES if f.lower() == raw.strip().lower()]
        if not match:
            raise ValueError(f"--ip-families: {raw.strip()!r} is not IPv4 or IPv6")
        if match[0] not in families:
            families.append(match[0])
    host = "127.0.0.1" if args.host == "localhost" else args.host
    opts = SimOptions(
        host=host, healthz_port=args.healthz_port, metrics_port=args.metrics_port,
        version=args.version, mode=args.mode, scenario=args.scenario,
        time_scale=args.time_scale, nodes=args.nodes, spread=args.spread, seed=args.seed,
        ip_families=tuple(families), clock_skew=args.clock_skew,
    )
    validate_options(opts)
    return opts


def validate_options(o: SimOptions) -> None:
    """ValueError("--flag: why") for the first bad option; binds nothing."""
    try:
        addr = ipaddress.ip_address(o.host)
    except ValueError:
        raise ValueError(f"--host: {o.host!r} is not an IP address") from None
    try:
        version = Version.parse(o.version)
    except ValueError as exc:
        raise ValueError(f"--k8s-version: {exc}") from None
    if o.mode not in MODES:
        raise ValueError(f"--mode: {o.mode!r} is not one of {', '.join(MODES)}")
    if o.mode == "nftables" and not version.at_least(29):
        raise ValueError(f"--mode: nftables needs --k8s-version 1.29 or later (got {version})")
    if o.scenario not in SCENARIOS:
        raise ValueError(f"--scenario: {o.scenario!r} is not one of {', '.join(SCENARIOS)}")
    if not (math.isfinite(o.time_scale) and 0 < o.time_scale <= 100_000):
        raise ValueError("--time-scale: must be a number > 0 and <= 100000")
    if not 1 <= o.nodes <= MAX_NODES:
        raise ValueError(f"--nodes: must be between 1 and {MAX_NODES}")
    if o.spread not in ("ports", "addresses"):
        raise ValueError("--spread: must be ports or addresses")
    if not o.ip_families or any(f not in IP_FAMILIES for f in o.ip_families):
        raise ValueError("--ip-families: IPv4, IPv6 or IPv4,IPv6")
    if not math.isfinite(o.clock_skew):
        raise ValueError("--clock-skew: must be a finite number of seconds")
    for flag, port in (("--healthz-port", o.healthz_port), ("--metrics-port", o.metrics_port)):
        last = port + (o.nodes - 1 if o.spread == "ports" and port else 0)
        if port < 0 or last > 65535:
            raise ValueError(f"{flag}: {port} (+{o.nodes} nodes) is outside 0-65535")
    if o.spread == "addresses" and o.nodes > 1:
        if addr.version != 4 or not addr.is_loopback:
            raise ValueError("--spread: addresses needs an IPv4 loopback --host like 127.0.0.1")
        if not (addr + (o.nodes - 1)).is_loopback:
            raise ValueError("--nodes: too many nodes for consecutive loopback addresses")
    elif o.spread == "ports" and o.nodes > 1 and o.healthz_port and o.metrics_port:
        h = range(o.healthz_port, o.healthz_port + o.nodes)
        if o.metrics_port in h or o.healthz_port in range(o.metrics_port,
                                                           o.metrics_port + o.nodes):
            raise ValueError("--nodes: the healthz and metrics port ranges overlap")
    if o.healthz_port and o.healthz_port == o.metrics_port:
        raise ValueError("--metrics-port: must differ from --healthz-port")
