"""Every query of every committed dashboard, against a real Prometheus: it parses and it
returns data.

A small cluster, as Grafana would see it: five simulated kube-proxies (time ×60) — four in
iptables mode (healthy, slow-sync, stuck, draining) and one in nftables mode — polled by one
kpexporter in central mode with its default windows, scraped per node as
``deploy/prometheus/central.yml`` does (job ``kpexporter`` keeps ``kpexporter_*``, job
``kube-proxy`` the pass-through; ``instance`` = node) with a ``cluster`` label. Each target
expression gets the variables Grafana would give it (``$cluster`` the cluster, ``$node``
"All", ``$__rate_interval`` and ``$__range`` from ``tests/dashboards/grafana.py``), and range
targets run as range queries, instant targets as instant queries. The node-detail and
mixin-panel queries run once more for the nftables node alone: no panel may depend on an
iptables-only series.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.dashboards.grafana import (
    Query,
    committed,
    expand,
    label_values,
    queries,
    unexpanded,
    variables,
)
from tests.e2e.harness import (
    ExporterProcess,
    PrometheusServer,
    ScrapeJob,
    SimulatorProcess,
    prometheus_binary,
    sample_value,
)

pytestmark = pytest.mark.e2e

CLUSTER = "e2e"
IPTABLES = ("healthy", "slow-sync", "stuck", "draining")
NFT_NODE = "nft-healthy"
NODES = (*(f"ipt-{s}" for s in IPTABLES), NFT_NODE)
BOARDS = committed()
QUERIES = [q for name, model in BOARDS.items() for q in queries(name, model)]
cluster_exporter: list[ExporterProcess] = []
"""The fixture's exporter, for tests that compare with its own verdicts."""
PER_NODE = ("kube-proxy-node-detail.json", "kube-proxy-mixin-proxy.json")


def _job(name: str, action: str) -> ScrapeJob:
    """A job as deploy/prometheus/central.yml writes it: the metric names split by job."""
    return ScrapeJob(name, extra={"metric_relabel_configs": [
        {"action": action, "source_labels": ["__name__"], "regex": "kpexporter_.*"}]})


@pytest.fixture(scope="module")
def cluster(e2e_workdir: Path) -> Iterator[PrometheusServer]:
    if prometheus_binary() is None:
        pytest.skip("no Prometheus server (Debian: apt-get install prometheus)")
    work = e2e_workdir / "dashboards"
    work.mkdir(exist_ok=True)
    sims = [SimulatorProcess(work, nodes=len(IPTABLES), name="dash-sim-iptables"),
            SimulatorProcess(work, nodes=1, mode="nftables", name="dash-sim-nftables")]
    prom = PrometheusServer(work / "prometheus", [_job("kpexporter", "keep"),
                                                  _job("kube-proxy", "drop")])
    exporter: ExporterProcess | None = None
    try:
        for sim in sims:
            sim.start()
        nodes = [*sims[0].nodes, *sims[1].nodes]
        for node, scenario in zip(sims[0].nodes, IPTABLES, strict=True):
            node.set_scenario(scenario)
        config = work / "central.yaml"
        config.write_text(yaml.safe_dump({"targets": [
            {"node": name, "healthz_url": n.healthz_url, "metrics_url": n.metrics_url}
            for name, n in zip(NODES, nodes, strict=True)]}))
        exporter = ExporterProcess(work, healthz_url=nodes[0].healthz_url,
                                   metrics_url=nodes[0].metrics_url, node="central",
                                   windows=None, extra_args=("--config", str(config)),
                                   name="dashboards")
        exporter.start()
        prom.start()
        for job in ("kpexporter", "kube-proxy"):
            for name in NODES:
                prom.add_targets(job, [exporter.address],
                                 {"__param_node": name, "instance": name, "cluster": CLUSTER})
        # Rates need a few scrapes in $__rate_interval.
        prom.wait_for(f'count(kpexporter_up{{cluster="{CLUSTER}"}} == 1) == {len(NODES)}',
                      what="all five nodes reached")
        prom.wait_for('count_over_time(kubeproxy_sync_proxy_rules_last_timestamp_seconds'
                      f'{{node="{NFT_NODE}"}}[1m]) >= 10', timeout=90,
                      what="10 s of scrapes of the pass-through")
        cluster_exporter[:] = [exporter]
        yield prom
    finally:
        prom.stop()
        if exporter is not None:
            exporter.stop()
        for sim in sims:
            sim.stop()


def _has_data(result: list[dict[str, Any]], ranged: bool) -> bool:
    """At least one finite value (NaN only: Grafana draws nothing, so no data)."""
    if ranged:
        return any(math.isfinite(float(v)) for s in result for _, v in s["values"])
    return any(math.isfinite(sample_value(s)) for s in result)


def _run(prom: PrometheusServer, q: Query, expr: str, timeout: float = 30.0) -> None:
    __tracebackhide__ = True
    assert not unexpanded(expr), expr
    deadline = time.monotonic() + timeout
    while True:
        if q.instant:
            result = prom.query(expr)  # a refused query raises at once with Prometheus's error
        else:
            now = time.time()
            result = prom.query_range(expr, now - 30, now, 5)
        if _has_data(result, not q.instant):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{q.dashboard} / {q.panel} / {q.ref}: no data for `{expr}`:"
                                 f" {result!r:.2000}")
        time.sleep(1)


def _id(q: Query) -> str:
    return f"{q.dashboard.removesuffix('.json')}:{q.panel}:{q.ref}"


@pytest.mark.parametrize("q", QUERIES, ids=_id)
def test_every_query_returns_data(q: Query, cluster: PrometheusServer) -> None:
    _run(cluster, q, expand(q.expr, {"cluster": CLUSTER, "node": ".+"}))


@pytest.mark.parametrize("q", [q for q in QUERIES if q.dashboard in PER_NODE], ids=_id)
def test_every_per_node_query_returns_data_for_an_nftables_node(
        q: Query, cluster: PrometheusServer) -> None:
    _run(cluster, q, expand(q.expr, {"cluster": CLUSTER, "node": NFT_NODE}))


def test_queries_without_a_cluster_label_match_everything(cluster: PrometheusServer) -> None:
    """"All" is ``.*``: the same queries work where Prometheus sets no ``cluster`` label."""
    for q in QUERIES[:5]:
        _run(cluster, q, expand(q.expr, {"cluster": ".*", "node": ".+"}))


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_variables_list_the_cluster_and_every_node(name: str,
                                                   cluster: PrometheusServer) -> None:
    for var in variables(BOARDS[name]).values():
        if var["type"] != "query":
            continue
        selector, label = label_values(var)
        assert selector is not None
        found = cluster.api(f"label/{label}/values",
                            {"match[]": expand(selector, {"cluster": CLUSTER})})
        want = {CLUSTER} if label == "cluster" else set(NODES)
        assert set(found) == want, (var["name"], found)


def test_the_overview_counts_agree_with_the_exporters_verdicts(
        cluster: PrometheusServer) -> None:
    """The overview's PromQL states against the exporter's own judgement (core.verdict, read
    from /api/v1/targets): the same healthy and unreachable nodes, the draining node apart
    from the unhealthy ones, and every unhealthy verdict one of unhealthy, stuck, draining."""
    model = BOARDS["kube-proxy-health-slo.json"]
    stats = {p["title"]: expand(p["targets"][0]["expr"], {"cluster": CLUSTER})
             for p in model["panels"] if p["type"] == "stat" and len(p.get("targets", [])) == 1}
    exporter = cluster_exporter[0]
    deadline = time.monotonic() + 30
    while True:
        verdicts = {t["node"]: t["derived"]["verdict"]
                    for t in exporter.get("/api/v1/targets").json()["targets"]}
        got = {title: sample_value(cluster.query(stats[title])[0])
               for title in ("Nodes", "Healthy", "Unhealthy", "Stuck", "Draining",
                             "Unreachable")}
        want = {v: sum(1 for x in verdicts.values() if x == v)
                for v in ("healthy", "unhealthy", "unreachable")}
        agree = (got["Nodes"] == len(NODES) == len(verdicts)
                 and got["Healthy"] == want["healthy"] >= 2
                 and got["Unreachable"] == want["unreachable"] == 0
                 and got["Draining"] == 1 and verdicts["ipt-draining"] == "unhealthy"
                 and got["Unhealthy"] >= 1 and verdicts["ipt-stuck"] == "unhealthy"
                 and want["unhealthy"] <= got["Unhealthy"] + got["Stuck"] + got["Draining"])
        if agree:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"dashboard {got} vs exporter {verdicts}")
        time.sleep(1)
