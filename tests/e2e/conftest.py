"""Fixtures of the end-to-end suite: one Prometheus per session, simulated nodes and exporters.

- ``prometheus``: a :class:`~tests.e2e.harness.PrometheusServer` for the whole session with one
  scrape job, ``kpexporter`` (1 s interval), whose targets the pair factory adds as it goes.
- ``kp_pairs``: the factory. ``kp_pairs("stuck")`` returns a :class:`KpPair` — a simulated
  kube-proxy node switched to that scenario, an exporter polling it every 0.5 s with windows
  ``10s,1m``, and Prometheus scraping that exporter — started on first use and reused for the
  rest of the session. ``kp_pairs.ensure(spec, spec, ...)`` starts many at once: do that up
  front in a module fixture, so the scenarios develop in parallel and Prometheus's target
  discovery (it hands new targets over every ~5 s) is waited for once.

Every pair has its own ``node`` label (the scenario name by default), which is how queries tell
them apart: ``pair.m("kpexporter_up")`` is ``kpexporter_up{node="stuck"}``.

The simulator runs at ``TIME_SCALE`` (60): kube-proxy's 30 s syncPeriod is 0.5 s, the 503 after
2 x syncPeriod comes after 1 s, the hourly iptables re-sync after 60 s, ``restart`` restarts
every 5 s and ``flapping`` flips every 2 s, so a "5-minute" behaviour happens in seconds.
Latencies are reported unscaled (a 4 s sync is still reported as 4 s).

Everything here skips cleanly when ``/usr/bin/prometheus`` is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kpexporter.simulator import SCENARIOS
from tests.e2e.harness import (
    PROMETHEUS_BIN,
    ExporterProcess,
    PrometheusServer,
    ScrapeJob,
    SimNodeHandle,
    SimulatorProcess,
    prometheus_binary,
)

E2E_DIR = Path(__file__).resolve().parent
JOB = "kpexporter"
TIME_SCALE = 60.0
"""Simulator behaviour runs this many times faster than real kube-proxy."""
CLOCK_SKEW = 30.0
"""Seconds the ``clock-skew`` scenario's node clock runs ahead."""
SYNC_PERIOD = 30.0 / TIME_SCALE
"""kube-proxy's syncPeriod as the simulator runs it (real seconds)."""
WINDOWS = ("10s", "1m")
"""The exporter's windows in this suite (short, so window semantics show within seconds)."""
NODES_PER_SIMULATOR = 20


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/e2e is ``e2e`` (so ``-m "not e2e"`` leaves it out)."""
    for item in items:
        if E2E_DIR in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@dataclass(frozen=True)
class PairSpec:
    """What a pair is: the scenario, the simulated kube-proxy, and how the exporter runs.

    ``name`` (the ``node`` label) defaults to the scenario, suffixed with version, mode and
    families when they are not the defaults; give a distinct name to get a second, separate
    pair of the same scenario (e.g. one a test will switch or stop).
    """

    scenario: str
    version: str = "1.30"
    mode: str = "iptables"
    ip_families: tuple[str, ...] = ("IPv4",)
    name: str | None = None
    interval: str = "0.5"
    windows: str = ",".join(WINDOWS)
    extra_args: tuple[str, ...] = ()

    @property
    def node(self) -> str:
        if self.name:
            return self.name
        parts = [self.scenario]
        if (self.version, self.mode) != ("1.30", "iptables"):
            parts += [self.version, self.mode]
        if self.ip_families != ("IPv4",):
            parts.append("-".join(f.lower() for f in self.ip_families))
        return "-".join(parts)

    @property
    def simulator_key(self) -> tuple[str, str, tuple[str, ...]]:
        return (self.version, self.mode, self.ip_families)


@dataclass
class KpPair:
    """A simulated kube-proxy node, the exporter polling it, and the Prometheus scraping it."""

    spec: PairSpec
    sim: SimNodeHandle
    exporter: ExporterProcess
    prometheus: PrometheusServer

    @property
    def node(self) -> str:
        """The ``node`` label of every series this pair's exporter serves."""
        return self.spec.node

    def sel(self, **labels: str) -> str:
        """``{node="<node>",k="v",...}``: a selector for this pair's series."""
        pairs = {"node": self.node, **labels}
        return "{" + ",".join(f'{k}="{v}"' for k, v in pairs.items()) + "}"

    def m(self, metric: str, **labels: str) -> str:
        """``metric{node="<node>",...}``."""
        return metric + self.sel(**labels)


@dataclass
class PairFactory:
    """Starts (and caches for the session) simulator nodes and exporters on demand."""

    prometheus: PrometheusServer
    workdir: Path
    pairs: dict[PairSpec, KpPair] = field(default_factory=dict)
    simulators: list[SimulatorProcess] = field(default_factory=list)
    retired: list[KpPair] = field(default_factory=list)
    _free: dict[tuple[str, str, tuple[str, ...]], list[tuple[SimulatorProcess, int]]] = field(
        default_factory=dict)

    def __call__(self, scenario: str, **options: Any) -> KpPair:
        """The pair for ``PairSpec(scenario, **options)``, started if needed."""
        return self.ensure(PairSpec(scenario, **options))[0]

    def _node_for(self, spec: PairSpec) -> SimNodeHandle:
        free = self._free.setdefault(spec.simulator_key, [])
        if not free:
            sim = SimulatorProcess(
                self.workdir, nodes=NODES_PER_SIMULATOR, version=spec.version, mode=spec.mode,
                time_scale=TIME_SCALE, ip_families=spec.ip_families, clock_skew=CLOCK_SKEW,
                name=f"simulator-{len(self.simulators)}")
            self.simulators.append(sim)
            sim.start()
            free.extend((sim, i) for i in range(sim.count))
        sim, index = free.pop(0)
        return sim.nodes[index]

    def ensure(self, *specs: PairSpec) -> list[KpPair]:
        """The pairs for ``specs`` (in order), starting the missing ones together."""
        new: list[KpPair] = []
        names = {p.node: s for s, p in self.pairs.items()}
        for spec in dict.fromkeys(specs):
            if spec in self.pairs:
                continue
            if spec.node in names:
                raise ValueError(f"node name {spec.node!r} is taken by {names[spec.node]}")
            node = self._node_for(spec)
            node.set_scenario(spec.scenario)
            exporter = ExporterProcess(
                self.workdir, healthz_url=node.healthz_url, metrics_url=node.metrics_url,
                node=spec.node, interval=spec.interval, windows=spec.windows,
                extra_args=spec.extra_args)
            exporter.spawn()
            pair = KpPair(spec, node, exporter, self.prometheus)
            self.pairs[spec] = pair
            names[spec.node] = spec
            new.append(pair)
        for pair in new:
            pair.exporter.wait_ready()
        if new:
            addresses = [p.exporter.address for p in new]
            self.prometheus.add_targets(JOB, addresses)
            self.prometheus.wait_for_targets(JOB, addresses, timeout=60)
        return [self.pairs[s] for s in specs]

    def discard(self, pair: KpPair) -> int | None:
        """Stop a pair's exporter and drop it from Prometheus; returns the exit code.

        For tests that stop or break an exporter: later tests (and ``targets()``) no longer
        see it. Its simulated node is not reused.
        """
        code = pair.exporter.stop()
        self.prometheus.remove_targets(JOB, [pair.exporter.address])
        self.pairs.pop(pair.spec, None)
        self.retired.append(pair)
        return code

    def all_pairs(self) -> list[KpPair]:
        """Every pair started this session, the discarded ones included (for log checks)."""
        return [*self.pairs.values(), *self.retired]

    def close(self) -> None:
        for pair in self.all_pairs():
            pair.exporter.request_stop()
        for pair in self.all_pairs():
            pair.exporter.stop()
        for sim in self.simulators:
            sim.stop()


@pytest.fixture(scope="session")
def e2e_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def prometheus(e2e_workdir: Path) -> Iterator[PrometheusServer]:
    """One real Prometheus for the session: job ``kpexporter``, 1 s scrape interval."""
    if prometheus_binary() is None:
        pytest.skip(f"no Prometheus server at {PROMETHEUS_BIN} (Debian: apt-get install "
                    "prometheus; or set KPEXPORTER_E2E_PROMETHEUS)")
    server = PrometheusServer(e2e_workdir / "prometheus", [ScrapeJob(JOB)])
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kp_pairs(prometheus: PrometheusServer, e2e_workdir: Path) -> Iterator[PairFactory]:
    """The (simulated node, exporter) pair factory, shared by the whole session."""
    factory = PairFactory(prometheus, e2e_workdir / "processes")
    try:
        yield factory
    finally:
        factory.close()


SCENARIO_SPECS: tuple[PairSpec, ...] = tuple(PairSpec(s) for s in SCENARIOS)
"""One pair per simulator scenario, node label = the scenario name."""
SPARE_SPECS: tuple[PairSpec, ...] = (
    PairSpec("healthy", name="switched"),  # a test switches its scenario while it runs
    PairSpec("healthy", name="stopped"),  # a test stops its exporter
)
"""Healthy pairs that tests may change, started with the others so they warm up together."""


@pytest.fixture(scope="session")
def scenario_pairs(kp_pairs: PairFactory) -> dict[str, KpPair]:
    """Every scenario's pair, plus ``SPARE_SPECS``, started together; keyed by node label.

    Started in one batch on first use, so all scenarios develop in parallel while the tests
    run one after another, and Prometheus's target discovery is waited for once.
    """
    pairs = kp_pairs.ensure(*SCENARIO_SPECS, *SPARE_SPECS)
    return {p.node: p for p in pairs}
