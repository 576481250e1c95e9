"""Metric families built at scrape time from per-target state.

A ``prometheus_client`` custom collector: every scrape builds fresh families from the
last poll's derived values, so nothing can go stale between polls and no label set
lingers after a target disappears. Samples never carry timestamps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client.core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from kpexporter import __version__
from kpexporter.core.derive import Summary
from kpexporter.core.state import ENDPOINTS, POLL_BUCKETS, TargetState

P = "kpexporter_"

SUMMARY_HELP = {
    "sync_proxy_rules_duration_seconds":
        "Quantiles of kube-proxy's rule-sync duration over the window "
        "(from kubeproxy_sync_proxy_rules_duration_seconds, or the pre-1.14 "
        "kubeproxy_sync_proxy_rules_latency_microseconds converted to seconds); "
        "window=lifetime is the cumulative histogram.",
    "sync_full_proxy_rules_duration_seconds":
        "Quantiles of kube-proxy's full-resync duration over the window "
        "(from kubeproxy_sync_full_proxy_rules_duration_seconds).",
    "sync_partial_proxy_rules_duration_seconds":
        "Quantiles of kube-proxy's partial-sync duration over the window "
        "(from kubeproxy_sync_partial_proxy_rules_duration_seconds).",
    "network_programming_duration_seconds":
        "Quantiles of kube-proxy's network-programming latency over the window "
        "(from kubeproxy_network_programming_duration_seconds).",
}


FAMILIES: dict[str, tuple[str, str]] = {
    # name (without ``kpexporter_``; a counter's without ``_total``) -> (type, help)
    "build_info": ("gauge", "kpexporter's version."),
    "poll_errors": ("counter", "Failed requests to kube-proxy by endpoint and reason "
                    "(reason=parse also counts each malformed line skipped)."),
    "poll_duration_seconds": ("histogram", "Duration of each request to kube-proxy."),
    "up": ("gauge", "1 when the last poll reached and parsed both kube-proxy endpoints "
           "(a 503 from /healthz counts as reached)."),
    "last_success_timestamp_seconds": (
        "gauge", "When the last fully successful poll started (Unix seconds)."),
    "healthz_healthy": ("gauge", "1 when kube-proxy's /healthz answered 200."),
    "healthz_status_code": ("gauge", "HTTP status of the last /healthz answer (0 when none)."),
    "healthz_node_eligible": ("gauge", "The /healthz body's nodeEligible (1.28+): 0 while "
                              "the node is being deleted or drained."),
    "healthz_last_updated_timestamp_seconds": (
        "gauge", "The /healthz body's lastUpdated (Unix seconds); before 1.33 equal to "
        "currentTime whenever the answer is 200."),
    "healthz_staleness_seconds": (
        "gauge", "currentTime - lastUpdated from the /healthz body, >= 0; +Inf when "
        "kube-proxy never synced. 0 by construction on a 200 before 1.33."),
    "healthz_family_healthy": (
        "gauge", "Per-IP-family health from the 1.33+ /healthz status map."),
    "healthz_family_staleness_seconds": (
        "gauge", "currentTime - the family's lastUpdated (its last successful sync), from "
        "the 1.33+ status map."),
    "clock_skew_seconds": ("gauge", "kube-proxy's currentTime minus the exporter's clock at "
                           "the middle of the /healthz request."),
    "sync_last_timestamp_seconds": (
        "gauge", "kube-proxy's kubeproxy_sync_proxy_rules_last_timestamp_seconds (the "
        "stalest IP family's)."),
    "sync_pending_seconds": (
        "gauge", "How long the oldest queued rule change has waited unsynced, on "
        "kube-proxy's clock (0 when none is waiting)."),
    "proxy_mode_info": ("gauge", "kube-proxy's mode from /proxyMode."),
}
"""Every family but the summaries (``SUMMARY_HELP``); ``fastrender`` writes the same."""


def _fmt_le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(bound)


class _Families:
    """Builds each family once per scrape, adding samples per target."""

    def __init__(self) -> None:
        self._m: dict[str, Metric] = {}

    def get(self, name: str, doc: str = "", typ: str = "") -> Metric:
        m = self._m.get(name)
        if m is None:
            if not typ:
                typ, doc = FAMILIES[name]
            m = self._m[name] = Metric(P + name, doc, typ)
        return m

    def gauge(self, name: str, labels: dict[str, str], value: float) -> None:
        self.get(name).add_sample(P + name, labels, value)

    def __iter__(self) -> Iterator[Metric]:
        return iter(self._m.values())


def summary_labels(node: str, s: Summary) -> dict[str, str]:
    """Our labels, then kube-proxy's; one of theirs that clashes becomes ``exported_<name>``.

    As Prometheus does without ``honor_labels``: a page must not be able to set ``node`` (and
    pass for another node) nor ``window``/``quantile`` (two of its series would then render as
    one duplicate series, and Prometheus rejects a scrape with duplicates as a whole). Names
    Prometheus reserves (``__name__``, ``__anything``) are renamed the same way.
    """
    out = {"node": node, "window": s.window}
    for name, value in s.labels:
        while name in out or name == "quantile" or name.startswith("__"):
            name = "exported_" + name
        out[name] = value
    return out


def _summary(f: _Families, node: str, s: Summary) -> None:
    m = f.get(s.name, SUMMARY_HELP.get(s.name, s.name), "summary")
    base = summary_labels(node, s)
    for q, v in s.quantiles:
        m.add_sample(P + s.name, {**base, "quantile": repr(q)}, v)
    m.add_sample(P + s.name + "_sum", base, s.sum)
    m.add_sample(P + s.name + "_count", base, s.count)


def target_families(f: _Families, st: TargetState) -> None:
    """Add one target's samples to the families being built.

    ``kpexporter.service.text`` writes the same samples in the same order as text; change both
    together (``tests/test_fastrender.py`` compares them).
    """
    node = st.node
    lab = {"node": node}
    errs = f.get("poll_errors")
    for (endpoint, reason), n in sorted(st.errors.items()):
        errs.add_sample(P + "poll_errors_total",
                        {"node": node, "endpoint": endpoint, "reason": reason}, float(n))
    dur = f.get("poll_duration_seconds")
    for endpoint in ENDPOINTS:
        h = st.durations[endpoint]
        el = {"node": node, "endpoint": endpoint}
        for bound, c in zip(POLL_BUCKETS, h.cumulative(), strict=True):
            dur.add_sample(P + "poll_duration_seconds_bucket", {**el, "le": _fmt_le(bound)}, c)
        dur.add_sample(P + "poll_duration_seconds_bucket", {**el, "le": "+Inf"}, h.count)
        dur.add_sample(P + "poll_duration_seconds_sum", el, h.sum)
        dur.add_sample(P + "poll_duration_seconds_count", el, h.count)
    d = st.derived
    if d is None:
        return  # not polled yet: say nothing rather than guess
    f.gauge("up", lab, float(d.up))
    if st.last_success is not None:
        f.gauge("last_success_timestamp_seconds", lab, st.last_success)
    f.gauge("healthz_healthy", lab, float(d.healthz_healthy))
    f.gauge("healthz_status_code", lab, float(d.healthz_status))
    if d.healthz_ok:
        if d.node_eligible is not None:
            f.gauge("healthz_node_eligible", lab, float(d.node_eligible))
        if d.last_updated is not None:
            f.gauge("healthz_last_updated_timestamp_seconds", lab, d.last_updated)
        if d.staleness is not None:
            f.gauge("healthz_staleness_seconds", lab, d.staleness)
        for fam in d.families:
            fl = {"node": node, "ip_family": fam.ip_family}
            f.gauge("healthz_family_healthy", fl, float(fam.healthy))
            f.gauge("healthz_family_staleness_seconds", fl, fam.staleness)
        if d.clock_skew is not None:
            f.gauge("clock_skew_seconds", lab, d.clock_skew)
    if d.metrics_ok:
        if d.sync_last is not None:
            f.gauge("sync_last_timestamp_seconds", lab, d.sync_last)
        if d.sync_pending is not None:
            f.gauge("sync_pending_seconds", lab, d.sync_pending)
        for s in d.summaries:
            _summary(f, node, s)
    if d.proxy_mode is not None:
        f.gauge("proxy_mode_info", {"node": node, "mode": d.proxy_mode}, 1.0)


def build_families(states: Iterable[TargetState]) -> list[Metric]:
    f = _Families()
    f.gauge("build_info", {"version": __version__}, 1.0)
    for st in states:
        target_families(f, st)
    return list(f)


class StateCollector(Collector):
    """Renders whatever the poller last stored; never does I/O at scrape time."""

    def __init__(self, states: Callable[[], Sequence[TargetState]]) -> None:
        self._states = states

    def describe(self) -> list[Metric]:
        return []  # no collect() at registration time

    def collect(self) -> Iterator[Metric]:
        yield from build_families(self._states())


def make_registry(states: Callable[[], Sequence[TargetState]]) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StateCollector(states))
    return reg
