"""``check`` and ``serve`` agree: the same kube-proxy at the same moment gets the same verdict.

Every simulator scenario runs at 1.30 (the fmt body with nodeEligible) and 1.33 (the JSON body
with per-family status), at ``TIME_SCALE`` 30: syncPeriod 1 s, kube-proxy's own 503 after
a change waited 2 s. The exporter's ``--pending-threshold`` is scaled alike (its default, 60 s,
is kube-proxy's healthTimeout): 2 s. One ``serve`` polls all 24 nodes every 0.5 s and
remembers the oldest queued change; ``check`` polls once and must reach the same verdict from
what one poll carries (the 503, process start time, last sync against last queued).

"The same moment": serve is read all the while ``check`` runs; when serve's polls just
before and just after check's poll agree, and are at most ``MAX_GAP`` apart, the node held
that verdict across it (the shortest episode any scenario has, ``flapping``'s 503, lasts
about 2 s), and ``check`` must give it too. A poll that falls on a change (``flapping``,
``restart``) is taken again. Every scenario is judged once it has held for twice the
threshold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from kpexporter.simulator import SCENARIOS
from tests.e2e.harness import REPO_ROOT, ExporterProcess, SimNodeHandle, SimulatorProcess

pytestmark = pytest.mark.e2e

TIME_SCALE = 30.0
THRESHOLD = 2 * 30.0 / TIME_SCALE
"""kube-proxy's 503 rule (a change waited 2 x syncPeriod), scaled: the exporter's threshold."""
SERVE_INTERVAL = 0.5
MAX_GAP = 1.5
"""Longest time between serve's polls around check's (a loaded machine delays polls)."""
VERSIONS = ("1.30", "1.33")
EXPECTED = {
    "healthy": "healthy", "idle": "healthy", "churn": "healthy", "slow-sync": "healthy",
    "stuck": "unhealthy", "never-synced": "unhealthy", "first-sync-fails": "unhealthy",
    "restart": "healthy", "draining": "unhealthy", "clock-skew": "healthy",
    "restore-failures": "unhealthy",
}
"""What each scenario is once it has held a while (``flapping`` alternates)."""
EXIT_VERDICT = {0: "healthy", 1: "unhealthy", 2: "unreachable"}
ATTEMPTS = 5
CHILD_ENV = {k: v for k, v in os.environ.items()
             if not k.startswith("KPEXPORTER_") and k != "NODE_NAME"}
"""The settings come from the flags only, as in the exporter the harness starts."""


@dataclass
class Case:
    version: str
    scenario: str
    node: SimNodeHandle
    serve: str = "not compared"
    check: str = ""
    check_out: str = ""

    @property
    def name(self) -> str:
        return f"{self.scenario}-{self.version}"


def serve_readings(exporter: ExporterProcess) -> dict[str, tuple[float, str]]:
    """serve's last poll of every node: when it started, and its verdict."""
    r = httpx.get(f"{exporter.url}/api/v1/targets", timeout=10.0)
    r.raise_for_status()
    return {t["node"]: (float(t["last_poll"]), str(t["derived"]["verdict"]))
            for t in r.json()["targets"] if t["derived"] is not None}


class ServeLog:
    """Every poll serve made of every node (start time -> verdict), read in the background."""

    def __init__(self, exporter: ExporterProcess) -> None:
        self.exporter = exporter
        self.polls: dict[str, dict[float, str]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ServeLog:
        self._thread.start()
        return self

    def wait_for(self, nodes: list[str], timeout: float = 30.0) -> None:
        """Until a poll of each node has been read: check's poll then has one before it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if all(self.polls.get(n) for n in nodes):
                    return
            time.sleep(SERVE_INTERVAL / 3)
        raise AssertionError(f"serve did not poll every node:\n{self.exporter.describe()}")

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                readings = serve_readings(self.exporter)
            except httpx.HTTPError:
                readings = {}
            with self._lock:
                for node, (polled, verdict) in readings.items():
                    self.polls.setdefault(node, {})[polled] = verdict
            self._stop.wait(SERVE_INTERVAL / 3)

    def around(self, node: str, t: float, wait: float = 10.0) -> tuple[str, str] | None:
        """serve's verdicts at its last poll before ``t`` and its first after; None when
        those are more than ``MAX_GAP`` apart."""
        deadline = time.monotonic() + wait
        while True:
            with self._lock:
                polls = dict(self.polls.get(node, {}))
            after = [p for p in polls if p > t]
            if after or time.monotonic() > deadline:
                break
            time.sleep(SERVE_INTERVAL / 3)
        before = [p for p in polls if p <= t]
        if not before or not after:
            return None
        t0, t1 = max(before), min(after)
        if t1 - t0 > MAX_GAP:
            return None
        return polls[t0], polls[t1]


def run_check(case: Case) -> tuple[float, str, str]:
    """``kpexporter check`` as a user runs it: when it polled, its exit code's verdict, what
    it said."""
    proc = subprocess.run(
        [sys.executable, "-m", "kpexporter", "check", "--node", case.name,
         "--healthz-url", case.node.healthz_url, "--metrics-url", case.node.metrics_url,
         "--pending-threshold", repr(THRESHOLD), "-o", "json"],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT, check=False, env=CHILD_ENV)
    verdict = EXIT_VERDICT.get(proc.returncode, f"exit {proc.returncode}")
    try:
        polled = float(json.loads(proc.stdout)["last_poll"])
    except (ValueError, KeyError, TypeError):
        polled = 0.0
    return polled, verdict, proc.stdout + proc.stderr


def compare(case: Case, log: ServeLog) -> Case:
    for _ in range(ATTEMPTS):
        polled, case.check, case.check_out = run_check(case)
        around = log.around(case.name, polled)
        if around is None:
            continue
        case.serve = around[0]
        if around[0] == around[1]:
            return case
    case.serve = f"changing ({case.serve})"
    return case


def test_check_agrees_with_serve_in_every_scenario(tmp_path: Path) -> None:
    simulators: list[SimulatorProcess] = []
    cases: list[Case] = []
    exporter: ExporterProcess | None = None
    try:
        for version in VERSIONS:
            sim = SimulatorProcess(tmp_path, nodes=len(SCENARIOS), version=version,
                                   time_scale=TIME_SCALE, name=f"simulator-{version}").start()
            simulators.append(sim)
            for node, scenario in zip(sim.nodes, SCENARIOS, strict=True):
                node.set_scenario(scenario)
                cases.append(Case(version, scenario, node))
        switched = time.monotonic()
        config = tmp_path / "serve.yaml"
        config.write_text(yaml.safe_dump({"targets": [
            {"node": c.name, "healthz_url": c.node.healthz_url,
             "metrics_url": c.node.metrics_url} for c in cases]}))
        first = cases[0].node
        exporter = ExporterProcess(
            tmp_path, healthz_url=first.healthz_url, metrics_url=first.metrics_url,
            node="unused", interval=repr(SERVE_INTERVAL), name="serve",
            extra_args=["--config", str(config), "--pending-threshold", repr(THRESHOLD)])
        exporter.start()
        time.sleep(max(0.0, switched + 2 * THRESHOLD - time.monotonic()))
        with ServeLog(exporter) as log, ThreadPoolExecutor(max_workers=2) as pool:
            log.wait_for([c.name for c in cases])
            done = list(pool.map(lambda c: compare(c, log), cases))
    finally:
        if exporter is not None:
            exporter.stop()
        for sim in simulators:
            sim.stop()

    table = "\n".join(f"{c.name:<24} serve={c.serve:<10} check={c.check}" for c in done)
    disagree = [c for c in done if c.serve != c.check]
    assert not disagree, (f"check and serve disagree:\n{table}\n\n" + "\n\n".join(
        f"--- check on {c.name}:\n{c.check_out}" for c in disagree))
    wrong = [c for c in done if EXPECTED.get(c.scenario, c.serve) != c.serve]
    assert not wrong, f"a scenario is not what it should be by now:\n{table}"
