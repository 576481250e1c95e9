"""The exporter as a service under a real Prometheus: lint, targets, live switches, shutdown.

Runs after ``test_scenarios.py`` (file order) and reuses its pairs; the last test reads every
log the session produced.
"""

from __future__ import annotations

import shutil

import pytest

from tests.e2e.conftest import JOB, KpPair, PairFactory
from tests.e2e.harness import PrometheusServer
from tests.promtool import metrics_problems

pytestmark = pytest.mark.e2e


def live(pairs: dict[str, KpPair], factory: PairFactory) -> dict[str, KpPair]:
    """The pairs no test has stopped (``discard``)."""
    return {n: p for n, p in pairs.items() if p not in factory.retired}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not on PATH")
def test_promtool_check_metrics_on_live_pages(scenario_pairs: dict[str, KpPair],
                                              kp_pairs: PairFactory) -> None:
    """Every scenario's live /metrics page (NaN, +Inf, absent series ...) passes promlint."""
    problems = {}
    for node, pair in live(scenario_pairs, kp_pairs).items():
        page = pair.exporter.metrics_text()
        assert "kpexporter_up{" in page, node
        found = metrics_problems(page)  # less the lint of kube-proxy's passed-through names
        if found:
            problems[node] = found
    assert not problems, problems


def test_prometheus_scrapes_every_exporter(scenario_pairs: dict[str, KpPair],
                                           kp_pairs: PairFactory,
                                           prometheus: PrometheusServer) -> None:
    pairs = live(scenario_pairs, kp_pairs)
    addresses = {p.exporter.address for p in pairs.values()}
    targets = prometheus.wait_for_targets(JOB, addresses)
    assert all(t["lastError"] == "" for t in targets), targets
    # One kpexporter_up per node label, all 1: kube-proxy reached in every scenario.
    result = prometheus.wait_for(
        f'kpexporter_up{{job="{JOB}"}} == 1',
        lambda r: {s["metric"]["node"] for s in r} >= set(pairs),
        what="kpexporter_up 1 for every node")
    assert len(result) >= len(pairs)


def test_scenario_switch_while_running(scenario_pairs: dict[str, KpPair],
                                       prometheus: PrometheusServer) -> None:
    """The simulator's control endpoint switches a node; Prometheus follows both ways."""
    p = scenario_pairs["switched"]
    healthy = p.m("kpexporter_healthz_healthy")
    prometheus.wait_for_value(healthy, lambda v: v == 1)
    p.sim.set_scenario("stuck")
    assert p.sim.scenario() == "stuck"
    prometheus.wait_for_value(healthy, lambda v: v == 0, what="503 after switching to stuck")
    p.sim.set_scenario("healthy")
    prometheus.wait_for_value(healthy, lambda v: v == 1, what="200 after switching back")
    prometheus.wait_for_value(p.m("kpexporter_sync_pending_seconds"), lambda v: v < 1)


def test_sigterm_stops_the_exporter_cleanly(scenario_pairs: dict[str, KpPair],
                                            kp_pairs: PairFactory,
                                            prometheus: PrometheusServer) -> None:
    p = scenario_pairs["stopped"]
    prometheus.wait_for_value(p.m("kpexporter_up"), lambda v: v == 1)
    instance = p.exporter.address
    code = kp_pairs.discard(p)  # SIGTERM, wait
    # Exits by itself well within the grace period (not SIGKILLed), without a traceback.
    # uvicorn re-raises the SIGTERM after its graceful shutdown, so the status may be -15.
    assert code in (0, -15), f"exit {code}\n{p.exporter.describe()}"
    assert "Traceback" not in p.exporter.log_text(), p.exporter.log_text()
    # Prometheus notices: the target is gone or down, and its series go stale.
    prometheus.wait_for(p.m("kpexporter_up"), lambda r: r == [],
                        what="the stopped exporter's series going stale")
    assert all(t["labels"].get("instance") != instance or t["health"] != "up"
               for t in prometheus.targets())


def test_no_traceback_in_any_log(kp_pairs: PairFactory, scenario_pairs: dict[str, KpPair],
                                 prometheus: PrometheusServer) -> None:
    """Every exporter and simulator of the session: still running, and no traceback."""
    for pair in kp_pairs.all_pairs():
        log = pair.exporter.log_text()
        assert "Traceback" not in log, f"{pair.node}:\n{log}"
        assert "poll_bug" not in log, f"{pair.node}:\n{log}"
        if pair not in kp_pairs.retired:
            assert pair.exporter.running(), pair.exporter.describe()
    for sim in kp_pairs.simulators:
        assert sim.running(), sim.describe()
        assert "Traceback" not in sim.log_text(), sim.describe()
    assert "level=error" not in prometheus.log_text(), prometheus.describe()
