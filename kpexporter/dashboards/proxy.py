"""Dashboard 3, "kube-proxy (kubernetes-mixin panels, fixed)": the familiar view, corrected.

Every panel of the kubernetes-mixin "Kubernetes / Proxy" dashboard, over kube-proxy's own
series as kpexporter passes them through (``job="kube-proxy"``, with ``node``), and with what
its users complain about fixed: quantiles aggregate ``sum by (node, le)`` (one quantile per
node, not per series), request latency is in seconds (the mixin shows POST latency as ops),
"Up" says how many of how many, rates are per node rather than one cluster sum, the node
picker reads ``kpexporter_up`` (every proxy mode has it; the mixin's iptables-only source is
empty under nftables), and p50/p90 sit beside p99.
"""

from __future__ import annotations

from grafana_foundation_sdk.models import common as cm

from kpexporter.dashboards.board import Board
from kpexporter.dashboards.scope import PROXY_UID, Scope, qname
from kpexporter.dashboards.style import (
    BAD,
    INFO,
    OK,
    Layout,
    PanelSpec,
    Target,
    stat,
    steps,
    timeseries,
)
from kpexporter.rules.promql import num

RATE = "[$__rate_interval]"


def _quantiles(s: Scope, metric: str, by: tuple[str, ...], legend: str) -> list[Target]:
    rate = f"rate({s.p(metric + '_bucket')}{RATE})"
    return [Target(f"histogram_quantile({q!r}, sum {s.by(*by, 'le')} ({rate}))",
                   f"{legend} {qname(q)}") for q in s.quantiles]


def proxy(s: Scope) -> Board:
    lay = Layout()
    lay.row("kube-proxy")
    up = s.m("kpexporter_up", node=True)
    lay.add(stat(PanelSpec(
        "Up", "none", [Target(f"sum({up})", "reachable", instant=True),
                       Target(f"count({up})", "polled", instant=True)],
        "kube-proxies kpexporter reached, of those it polls (the mixin counts only the "
        "first).", thresholds=steps(INFO)),
        text_mode=cm.BigValueTextMode.VALUE_AND_NAME, background=False), 4, 7)
    lay.add(timeseries(PanelSpec(
        "Rules Sync Rate", "ops",
        [Target(f"sum {s.by('node')} (rate("
                f"{s.p('kubeproxy_sync_proxy_rules_duration_seconds_count')}{RATE}))",
                "{{node}}")],
        "Rule syncs per second, per node.", min=0)), 10, 7)
    sync = s.settings.sync_threshold
    lay.add(timeseries(PanelSpec(
        "Rules Sync Latency", "s",
        _quantiles(s, "kubeproxy_sync_proxy_rules_duration_seconds", ("node",), "{{node}}"),
        f"Per node, summed by le before the quantile. Dashed: the SLO threshold, "
        f"{num(sync)} s.", thresholds=steps(OK, (sync, BAD)), min=0),
        threshold_lines=True), 10, 7)
    lay.add(timeseries(PanelSpec(
        "Network Programming Rate", "ops",
        [Target(f"sum {s.by('node')} (rate("
                f"{s.p('kubeproxy_network_programming_duration_seconds_count')}{RATE}))",
                "{{node}}")],
        "Network-programming observations per second, per node.", min=0)), 12, 7)
    npl = s.settings.network_programming_threshold
    lay.add(timeseries(PanelSpec(
        "Network Programming Latency", "s",
        _quantiles(s, "kubeproxy_network_programming_duration_seconds", ("node",),
                   "{{node}}"),
        "From a Service or EndpointSlice change to the rules on this node. Dashed: the SLO "
        f"threshold, {num(npl)} s.", thresholds=steps(OK, (npl, BAD)), min=0),
        threshold_lines=True), 12, 7)
    requests = f"rate({s.p('rest_client_requests_total')}{RATE})"
    lay.add(timeseries(PanelSpec(
        "Kube API Request Rate", "reqps",
        [Target(f"sum {s.by('code_class')} (label_replace({requests}, \"code_class\", "
                "\"${1}xx\", \"code\", \"([0-9]).*\"))", "{{code_class}}")],
        "kube-proxy's requests to the API server by status class (2xx, 3xx, 4xx, 5xx): one "
        "query where the mixin has four.", min=0)), 8, 7)
    lay.add(timeseries(PanelSpec(
        "Kube API Request Latency", "s",
        _quantiles(s, "rest_client_request_duration_seconds", ("verb",), "{{verb}}"),
        "kube-proxy's API request latency by verb (POST, GET, …), in seconds.", min=0)),
        16, 7)
    lay.add(timeseries(PanelSpec(
        "Memory", "bytes",
        [Target(s.p("process_resident_memory_bytes"), "{{node}}")],
        "kube-proxy's resident memory.", min=0)), 8, 7)
    lay.add(timeseries(PanelSpec(
        "CPU usage", "short",
        [Target(f"rate({s.p('process_cpu_seconds_total')}{RATE})", "{{node}}")],
        "kube-proxy's CPU, in cores.", min=0)), 8, 7)
    lay.add(timeseries(PanelSpec(
        "Goroutines", "short", [Target(s.p("go_goroutines"), "{{node}}")],
        "kube-proxy's goroutines.", min=0)), 8, 7)
    return Board(PROXY_UID, "kube-proxy (kubernetes-mixin panels, fixed)", __doc__ or "", lay,
                 node_variable=True)
