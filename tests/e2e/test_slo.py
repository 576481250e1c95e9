"""SLOs and the bridge through a real Prometheus scraping exporters of simulated kube-proxies.

Time is compressed (the simulator runs at ``TIME_SCALE``, see ``conftest.py``) and the SLO
windows are short (``10s``, ``1m``, from a test config file), so burn rates move within
seconds. Three things are checked:

1. ``slow-sync`` burns the ``sync_latency`` budget fast (short-window burn rate above 14.4,
   the SRE workbook's page threshold) while ``healthy`` stays under 1;
2. in a 3-node simulated cluster polled by one exporter (central mode, Prometheus job
   ``kube-proxy``), ``sum(increase(good))/sum(increase(total))`` over our counters equals the
   same ratio over kube-proxy's own buckets passed through (``le`` at the threshold over
   ``_count``);
3. the kubernetes-mixin "Kubernetes / Proxy" dashboard's panel queries (research
   anchors-dashboards-slo.md §1.1, ``$cluster`` empty, ``$instance`` ``.+``) return data.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import JOB, KpPair, PairFactory, PairSpec
from tests.e2e.harness import (
    ExporterProcess,
    PrometheusServer,
    ScrapeJob,
    SimulatorProcess,
    sample_value,
)

pytestmark = pytest.mark.e2e

SLO_WINDOWS = ("10s", "1m")
KUBE_PROXY_JOB = "kube-proxy"
PAGE_BURN = 14.4
"""The SRE workbook's fast-burn page threshold (2 % of a 30-day budget in 1 h)."""


@pytest.fixture(scope="module")
def slo_config(e2e_workdir: Path) -> Path:
    path = e2e_workdir / "slo-test.yaml"
    path.write_text(yaml.safe_dump({"slos": {"windows": list(SLO_WINDOWS), "min_events": 5}}))
    return path


@pytest.fixture(scope="module")
def slo_pairs(kp_pairs: PairFactory, slo_config: Path) -> dict[str, KpPair]:
    specs = [PairSpec(s, name=f"slo-{s}", extra_args=("--config", str(slo_config)))
             for s in ("slow-sync", "healthy")]
    return {p.spec.scenario: p for p in kp_pairs.ensure(*specs)}


def test_slow_sync_burns_fast_and_healthy_does_not(slo_pairs: dict[str, KpPair],
                                                   prometheus: PrometheusServer) -> None:
    slow, healthy = slo_pairs["slow-sync"], slo_pairs["healthy"]
    for window in SLO_WINDOWS:
        burn = prometheus.wait_for_value(
            slow.m("kpexporter_slo_burn_rate", slo="sync_latency", window=window),
            lambda v: v > PAGE_BURN, what=f"slow-sync's {window} burn rate above {PAGE_BURN}")
        assert burn <= 1 / (1 - 0.99)  # at most every event bad
        prometheus.wait_for_value(
            healthy.m("kpexporter_slo_burn_rate", slo="sync_latency", window=window),
            lambda v: v < 1, what=f"healthy's {window} burn rate below 1")
    # The page alert's shape works on the exporter's own windows.
    prometheus.wait_for(
        f'kpexporter_slo_burn_rate{{slo="sync_latency",window="1m"}} > {PAGE_BURN} '
        f'and ignoring(window) '
        f'kpexporter_slo_burn_rate{{slo="sync_latency",window="10s"}} > {PAGE_BURN}',
        lambda r: {s["metric"]["node"] for s in r} >= {slow.node}
        and healthy.node not in {s["metric"]["node"] for s in r},
        what="the multi-window page condition for slow-sync only")
    budget = prometheus.wait_for_value(
        slow.m("kpexporter_slo_error_budget_remaining_ratio", slo="sync_latency"),
        lambda v: v < 0, what="slow-sync's budget overspent")
    assert budget >= 1 - 1 / (1 - 0.99)
    prometheus.wait_for_value('max(kpexporter_slo_objective_ratio{slo="sync_latency"})',
                              lambda v: v == 0.99, what="the process-level objective")


CENTRAL_KUBE_PROXY_JOB = ScrapeJob(KUBE_PROXY_JOB, extra={"metric_relabel_configs": [
    {"action": "drop", "source_labels": ["__name__"], "regex": "kpexporter_.*"}]})
"""deploy/prometheus/central.yml's ``kube-proxy`` job: kube-proxy's passed-through series of
one node per target (``/metrics?node=NAME``, ``instance`` = the node's name). The targets'
``__param_node`` and ``instance`` come from file_sd labels here instead of Node discovery."""


@pytest.fixture(scope="module")
def cluster(prometheus: PrometheusServer, e2e_workdir: Path, slo_config: Path
            ) -> Iterator[list[str]]:
    """3 simulated nodes (node-1 slow), one central exporter polling them all, scraped per
    node by the session's ``kpexporter`` job and by a ``kube-proxy`` job as documented."""
    work = e2e_workdir / "slo-cluster"
    work.mkdir(exist_ok=True)
    sim = SimulatorProcess(work, nodes=3, name="slo-simulator")
    sim.start()
    exporter: ExporterProcess | None = None
    nodes = [f"cluster-{n.name}" for n in sim.nodes]
    try:
        sim.nodes[1].set_scenario("slow-sync")
        config = work / "central.yaml"
        config.write_text(yaml.safe_dump({
            "targets": [{"node": f"cluster-{n.name}", "healthz_url": n.healthz_url,
                         "metrics_url": n.metrics_url} for n in sim.nodes],
            **yaml.safe_load(slo_config.read_text())}))
        exporter = ExporterProcess(work, healthz_url=sim.nodes[0].healthz_url,
                                   metrics_url=sim.nodes[0].metrics_url, node="central",
                                   extra_args=("--config", str(config)), name="central")
        exporter.start()
        prometheus.add_job(CENTRAL_KUBE_PROXY_JOB)
        for job in (KUBE_PROXY_JOB, JOB):
            for node in nodes:
                prometheus.add_targets(job, [exporter.address],
                                       {"__param_node": node, "instance": node})
        for job in (KUBE_PROXY_JOB, JOB):
            prometheus.wait_for(f'count(up{{job="{job}",instance=~"cluster-.*"}} == 1)',
                                lambda r: bool(r) and sample_value(r[0]) == 3,
                                what=f"three per-node targets of job {job} up")
        yield nodes
    finally:
        if exporter is not None:
            for job in (KUBE_PROXY_JOB, JOB):
                prometheus.remove_targets(job, [exporter.address])
            exporter.stop()
        sim.stop()


def test_cluster_ratio_from_our_counters_equals_the_buckets(
        cluster: list[str], prometheus: PrometheusServer) -> None:
    """Both sides from the same scrapes (job ``kpexporter`` keeps every series), so
    ``increase()`` sees the same timestamps and extrapolates both alike: exactly equal."""
    sel = f'job="{JOB}",node=~"cluster-.*"'
    ours = (f'sum(increase(kpexporter_slo_good_events_total{{{sel},slo="sync_latency"}}[30s]))'
            f' / sum(increase(kpexporter_slo_events_total{{{sel},slo="sync_latency"}}[30s]))')
    theirs = ("sum(increase(kubeproxy_sync_proxy_rules_duration_seconds_bucket"
              f'{{{sel},le="1.024"}}[30s])) / sum(increase('
              f"kubeproxy_sync_proxy_rules_duration_seconds_count{{{sel}}}[30s]))")
    found = prometheus.wait_for(
        f"count by (node) (kubeproxy_sync_proxy_rules_duration_seconds_count{{{sel}}})",
        lambda r: len(r) == 3, what="pass-through series of all three nodes")
    assert {s["metric"]["node"] for s in found} == set(cluster)
    prometheus.wait_for(f'count_over_time(kpexporter_up{{{sel},node="{cluster[0]}"}}[30s])',
                        lambda r: bool(r) and sample_value(r[0]) >= 25, timeout=90,
                        what="30 s of scrapes")
    at = prometheus.query_value("time()")
    assert at is not None
    a, b = prometheus.query(ours, at), prometheus.query(theirs, at)
    assert len(a) == len(b) == 1, (a, b)
    mine, reference = sample_value(a[0]), sample_value(b[0])
    assert 0 < reference < 1, reference  # one slow node of three: a real mix
    assert mine == reference, (mine, reference)


MIXIN_PANELS: dict[str, str] = {
    "Up": 'sum(up{cluster="$cluster", job="kube-proxy"})',
    "Rules Sync Rate": 'sum(rate(kubeproxy_sync_proxy_rules_duration_seconds_count{cluster="$cluster", job="kube-proxy", instance=~"$instance"}[$__rate_interval]))',  # noqa: E501
    "Rules Sync Latency 99th Quantile": 'histogram_quantile(0.99,rate(kubeproxy_sync_proxy_rules_duration_seconds_bucket{cluster="$cluster", job="kube-proxy", instance=~"$instance"}[$__rate_interval]))',  # noqa: E501
    "Network Programming Rate": 'sum(rate(kubeproxy_network_programming_duration_seconds_count{cluster="$cluster", job="kube-proxy", instance=~"$instance"}[$__rate_interval]))',  # noqa: E501
    "Network Programming Latency 99th Quantile": 'histogram_quantile(0.99, sum(rate(kubeproxy_network_programming_duration_seconds_bucket{cluster="$cluster", job="kube-proxy", instance=~"$instance"}[$__rate_interval])) by (instance, le))',  # noqa: E501
    "Kube API Request Rate 2xx": 'sum(rate(rest_client_requests_total{cluster="$cluster",job="kube-proxy", instance=~"$instance",code=~"2.."}[$__rate_interval]))',  # noqa: E501
    "Kube API Request Rate 3xx": 'sum(rate(rest_client_requests_total{cluster="$cluster",job="kube-proxy", instance=~"$instance",code=~"3.."}[$__rate_interval]))',  # noqa: E501
    "Kube API Request Rate 4xx": 'sum(rate(rest_client_requests_total{cluster="$cluster",job="kube-proxy", instance=~"$instance",code=~"4.."}[$__rate_interval]))',  # noqa: E501
    "Kube API Request Rate 5xx": 'sum(rate(rest_client_requests_total{cluster="$cluster",job="kube-proxy", instance=~"$instance",code=~"5.."}[$__rate_interval]))',  # noqa: E501
    "Post Request Latency 99th Quantile": 'histogram_quantile(0.99, sum(rate(rest_client_request_duration_seconds_bucket{cluster="$cluster", job="kube-proxy",instance=~"$instance",verb="POST"}[$__rate_interval])) by (verb, le))',  # noqa: E501
    "Get Request Latency 99th Quantile": 'histogram_quantile(0.99, sum(rate(rest_client_request_duration_seconds_bucket{cluster="$cluster", job="kube-proxy", instance=~"$instance", verb="GET"}[$__rate_interval])) by (verb, le))',  # noqa: E501
    "Memory": 'process_resident_memory_bytes{cluster="$cluster", job="kube-proxy",instance=~"$instance"}',  # noqa: E501
    "CPU usage": 'rate(process_cpu_seconds_total{cluster="$cluster", job="kube-proxy",instance=~"$instance"}[$__rate_interval])',  # noqa: E501
    "Goroutines": 'go_goroutines{cluster="$cluster", job="kube-proxy",instance=~"$instance"}',
}
"""§1.1's panel queries, exactly as kube-prometheus ships them."""
NOT_SIMULATED = {"Kube API Request Rate 3xx", "Kube API Request Rate 4xx",
                 "Kube API Request Rate 5xx", "Post Request Latency 99th Quantile"}
"""The simulated kube-proxy makes only 2xx GET/POST requests and times GETs only: these
panels are empty on real quiet clusters too. They must still be valid queries."""


def _expand(query: str) -> str:
    """Grafana's variables as a dashboard without a ``cluster`` label fills them."""
    return (query.replace("$cluster", "").replace("$instance", ".+")
            .replace("$__rate_interval", "15s"))


@pytest.mark.parametrize("panel", list(MIXIN_PANELS))
def test_mixin_proxy_dashboard_panels_return_data(panel: str, cluster: list[str],
                                                  prometheus: PrometheusServer) -> None:
    query = _expand(MIXIN_PANELS[panel])
    if panel in NOT_SIMULATED:
        prometheus.query(query)  # valid PromQL over our series; raises when refused
        return
    result = prometheus.wait_for(
        query, lambda r: any(math.isfinite(sample_value(s)) for s in r),
        timeout=90, what=f"data for the mixin panel {panel!r}")
    if "by (instance" in query or panel in ("Memory", "CPU usage", "Goroutines",
                                             "Rules Sync Latency 99th Quantile"):
        assert {s["metric"].get("instance") for s in result} >= set(cluster), result
    if panel == "Up":
        assert sample_value(result[0]) >= 3  # one up per node: KubeProxyDown's view too
