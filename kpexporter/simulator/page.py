"""The kube-proxy ``/metrics`` page for a version and mode, shaped like client_golang writes it.

Families are sorted by name, label pairs by name with ``le`` last, HELP carries the stability
prefix (``[ALPHA] `` from 1.16), floats are Go's ``strconv.FormatFloat(v, 'g', -1, 64)``. Which
``kubeproxy_*`` families exist follows research §2.1–§2.2: when each appeared, the 1.31
mode-specific registration, the 1.33 ``ip_family`` label, and that a ``*Vec`` shows nothing until
its first observation. The go_/process_/rest_client_ families are plausible filler so the page has
a real page's size and noise; only their names and types matter to the exporter.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Iterable
from decimal import Decimal

from kpexporter.simulator.bodies import NS
from kpexporter.simulator.model import Histogram, NodeModel
from kpexporter.simulator.versions import Version

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def go_float(v: float) -> str:
    """Go's ``%g`` with shortest precision: ``0.001``, ``16.384``, ``1.024e+06``, ``+Inf``."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == int(v) and abs(v) < 1e6:  # fast path: counts and round numbers print plainly
        return str(int(v))
    sign, digits, exp = Decimal(repr(float(v))).as_tuple()
    assert isinstance(exp, int)
    ds = list(digits)
    while len(ds) > 1 and ds[-1] == 0:
        ds.pop()
        exp += 1
    text = "".join(map(str, ds))
    x = exp + len(ds) - 1  # decimal exponent of the first digit
    if x < -4 or x >= 6:
        mant = text[0] + ("." + text[1:] if len(text) > 1 else "")
        out = f"{mant}e{'-' if x < 0 else '+'}{abs(x):02d}"
    elif exp >= 0:
        out = text + "0" * exp
    elif x >= 0:
        out = text[: x + 1] + "." + text[x + 1 :]
    else:
        out = "0." + "0" * (-x - 1) + text
    return ("-" if sign else "") + out


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    items = sorted(pairs)
    if not items:
        return ""
    return "{" + ",".join(f'{k}="{v}"' for k, v in items) + "}"


class _Page:
    """Collects families, then writes them sorted by name as client_golang's Gather does."""

    def __init__(self, version: Version) -> None:
        self.prefix = version.alpha_prefix
        self.families: dict[str, str] = {}

    def add(
        self, name: str, typ: str, help_: str, lines: list[str], *, stable: bool = False,
        level: str | None = None,
    ) -> None:
        if not lines:
            return  # a Vec with no children is not written at all
        prefix = "" if stable else self.prefix if level is None else f"[{level}] "
        head = f"# HELP {name} {prefix}{help_}\n# TYPE {name} {typ}\n"
        self.families[name] = head + "".join(lines)

    def text(self) -> str:
        return "".join(self.families[k] for k in sorted(self.families))


def _sample(name: str, labels: Iterable[tuple[str, str]], value: float) -> str:
    return f"{name}{_labels(labels)} {go_float(value)}\n"


@functools.lru_cache(maxsize=256)
def _bucket_prefixes(
    name: str, labels: tuple[tuple[str, str], ...], bounds: tuple[float, ...]
) -> tuple[str, ...]:
    """``name_bucket{...,le="x"} `` for every bound: the same few strings on every scrape."""
    base = [f'{k}="{v}"' for k, v in sorted(labels)]
    return tuple(
        f"{name}_bucket{{{','.join([*base, f'le={chr(34)}{go_float(b)}{chr(34)}'])}}} "
        for b in (*bounds, math.inf)
    )


def _histogram(name: str, h: Histogram, labels: tuple[tuple[str, str], ...] = ()) -> list[str]:
    base = sorted(labels)
    prefixes = _bucket_prefixes(name, labels, h.bounds)
    out = [f"{p}{cum}\n" for p, cum in zip(prefixes, h.cumulative(), strict=True)]
    out.append(_sample(f"{name}_sum", base, h.sum))
    out.append(_sample(f"{name}_count", base, h.count))
    return out


def _merge(hs: list[Histogram]) -> Histogram:
    acc = hs[0]
    for h in hs[1:]:
        acc = acc.merged(h)
    return acc


def render_metrics(model: NodeModel, now_ns: int) -> str:
    """The whole page at ``now_ns`` (the model is advanced first)."""
    model.advance(now_ns)
    v = model.version
    page = _Page(v)
    _kubeproxy(page, model)
    _runtime(page, model, now_ns)
    return page.text()


def _kubeproxy(page: _Page, model: NodeModel) -> None:
    v, mode = model.version, model.config.mode
    fams = model.families
    per_family = v.per_family_labels
    specific = v.mode_specific_registration
    iptables_families = mode == "iptables" or not specific
    latest = max(fams, key=lambda f: f.last_ok_ns or 0)

    fam_labels = [(f, (("ip_family", f.family),)) for f in fams]

    def hist(
        name: str, help_: str, get: str, show: bool = True, present: str = "attempted"
    ) -> None:
        if not show:
            return
        if per_family:  # a HistogramVec child exists only once observed
            lines: list[str] = []
            for f, lab in fam_labels:
                if getattr(f, present):
                    lines += _histogram(name, getattr(f, get), lab)
        else:
            lines = _histogram(name, _merge([getattr(f, get) for f in fams]))
        page.add(name, "histogram", help_, lines)

    def counter(name: str, help_: str, get: str, show: bool = True) -> None:
        if not show:
            return
        if per_family:
            lines = [_sample(name, lab, getattr(f, get)) for f, lab in fam_labels if f.attempted]
        else:
            lines = [_sample(name, (), sum(getattr(f, get) for f in fams))]
        page.add(name, "counter", help_, lines)

    def timestamp(name: str, help_: str, get: str) -> None:
        if per_family:
            lines = [
                _sample(name, lab, model.node_seconds(getattr(f, get)))
                for f, lab in fam_labels
                if getattr(f, get) is not None
            ]
        else:
            values = [getattr(f, get) for f in fams if getattr(f, get) is not None]
            lines = [_sample(name, (), model.node_seconds(max(values)) if values else 0)]
        page.add(name, "gauge", help_, lines)

    def by_table(name: str, help_: str, get: str) -> None:
        lines = []
        for f, lab in fam_labels if per_family else [(latest, ())]:
            for table, n in sorted(getattr(f, get).items()):
                lines.append(_sample(name, (*lab, ("table", table)), n))
        page.add(name, "gauge", help_, lines)

    sync_help = "SyncProxyRules latency in seconds"
    if not v.at_least(17):
        name = "kubeproxy_sync_proxy_rules_latency_microseconds"
        if not v.at_least(14):
            help_ = "SyncProxyRules latency"
        elif v.at_least(16):
            help_ = "(Deprecated since 1.14.0) SyncProxyRules latency in microseconds"
        else:
            help_ = "(Deprecated) SyncProxyRules latency in microseconds"
        page.add(name, "histogram", help_, _histogram(name, _merge([f.sync_us for f in fams])))
    if not v.at_least(14):
        return
    hist("kubeproxy_sync_proxy_rules_duration_seconds", sync_help, "sync")
    hist(
        "kubeproxy_network_programming_duration_seconds",
        "In Cluster Network Programming Latency in seconds",
        "netprog",
        present="netprog_observed",
    )
    if v.at_least(28):
        show = mode == "iptables" or not specific
        hist("kubeproxy_sync_full_proxy_rules_duration_seconds",
             sync_help + " for full resyncs", "full", show)
        hist("kubeproxy_sync_partial_proxy_rules_duration_seconds",
             sync_help + " for partial resyncs", "partial", show)
    if v.at_least(15):
        pend_ep = sum(len(f.pending) for f in fams)
        pend_svc = max(f.service_pending for f in fams)
        for what, pending, total in (
            ("endpoint", pend_ep, model.endpoint_changes_total),
            ("service", pend_svc, model.service_changes_total),
        ):
            cap = what.capitalize()
            page.add(f"kubeproxy_sync_proxy_rules_{what}_changes_pending", "gauge",
                     f"Pending proxy rules {cap} changes",
                     [_sample(f"kubeproxy_sync_proxy_rules_{what}_changes_pending", (), pending)])
            page.add(f"kubeproxy_sync_proxy_rules_{what}_changes_total", "counter",
                     f"Cumulative proxy rules {cap} changes",
                     [_sample(f"kubeproxy_sync_proxy_rules_{what}_changes_total", (), total)])
        timestamp("kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                  "The last time proxy rules were successfully synced", "last_ok_ns")
    if v.at_least(19):
        timestamp("kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
                  "The last time a sync of proxy rules was queued", "last_queued_ns")
    if v.at_least(16):
        counter("kubeproxy_sync_proxy_rules_iptables_restore_failures_total",
                "Cumulative proxy iptables restore failures", "restore_failures",
                mode in ("iptables", "ipvs") or not specific)
    if v.at_least(26):
        counter("kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total",
                "Cumulative proxy iptables partial restore failures", "partial_restore_failures",
                iptables_families)
    if v.at_least(21) and iptables_families:
        by_table("kubeproxy_sync_proxy_rules_iptables_total",
                 "Total number of iptables rules owned by kube-proxy" if v.at_least(28)
                 else "Number of proxy iptables rules programmed", "rules")
    if v.at_least(28) and iptables_families:
        by_table("kubeproxy_sync_proxy_rules_iptables_last",
                 "Number of iptables rules written by kube-proxy in last sync", "rules_last")
    if v.at_least(24):
        name = "kubeproxy_sync_proxy_rules_no_local_endpoints_total"
        lines = []
        for f, lab in fam_labels if per_family else [(latest, ())]:
            for policy, n in sorted(f.no_local_endpoints.items()):
                lines.append(_sample(name, (*lab, ("traffic_policy", policy)), n))
        page.add(name, "gauge", "Number of services with a Local traffic policy and no endpoints",
                 lines)
    if v.at_least(28):
        for what, totals in (("healthz", model.healthz_total), ("livez", model.livez_total)):
            name = f"kubeproxy_proxy_{what}_total"
            page.add(name, "counter", f"Cumulative proxy {what} HTTP status",
                     [_sample(name, (("code", c),), n) for c, n in sorted(totals.items())])
    if v.at_least(31) and mode == "nftables":
        counter("kubeproxy_sync_proxy_rules_nftables_sync_failures_total",
                "Cumulative proxy nftables sync failures", "nft_sync_failures")
        counter("kubeproxy_sync_proxy_rules_nftables_cleanup_failures_total",
                "Cumulative proxy nftables cleanup failures", "nft_cleanup_failures")
    if v.at_least(31) and mode == "iptables":
        dropped = sum(f.sync.count for f in fams) // 7
        page.add("kubeproxy_iptables_ct_state_invalid_dropped_packets_total", "counter",
                 "packets dropped by iptables to work around conntrack problems",
                 [_sample("kubeproxy_iptables_ct_state_invalid_dropped_packets_total", (),
                          dropped)])
        page.add("kubeproxy_iptables_localhost_nodeports_accepted_packets_total", "counter",
                 "Number of packets accepted on nodeports of loopback interface",
                 [_sample("kubeproxy_iptables_localhost_nodeports_accepted_packets_total", (),
                          0)])
    if v.at_least(33):
        name = "kubeproxy_conntrack_reconciler_sync_duration_seconds"
        lines = []
        for f, lab in fam_labels:
            if f.conntrack.count:
                lines += _histogram(name, f.conntrack, lab)
        page.add(name, "histogram", "ReconcileConntrackFlowsLatency latency in seconds", lines)
        name = "kubeproxy_conntrack_reconciler_deleted_entries_total"
        page.add(name, "counter", "Cumulative conntrack flows deleted by conntrack reconciler",
                 [_sample(name, lab, f.conntrack_deleted)
                  for f, lab in fam_labels if f.conntrack.count])


# --- the runtime filler: go_*, process_*, rest_client_*, kubernetes_* ---------------------------

_GO_MEMSTATS = (
    ("alloc_bytes", "gauge", "Number of bytes allocated and still in use.", 1.2e7),
    ("alloc_bytes_total", "counter", "Total number of bytes allocated, even if freed.", 4.1e8),
    ("buck_hash_sys_bytes", "gauge", "Number of bytes used by the profiling bucket hash table.",
     1.51e6),
    ("frees_total", "counter", "Total number of frees.", 3.2e6),
    ("gc_sys_bytes", "gauge", "Number of bytes used for garbage collection system metadata.",
     4.7e6),
    ("heap_alloc_bytes", "gauge", "Number of heap bytes allocated and still in use.", 1.2e7),
    ("heap_idle_bytes", "gauge", "Number of heap bytes waiting to be used.", 1.1e7),
    ("heap_inuse_bytes", "gauge", "Number of heap bytes that are in use.", 1.5e7),
    ("heap_objects", "gauge", "Number of allocated objects.", 6.1e4),
    ("heap_released_bytes", "gauge", "Number of heap bytes released to OS.", 7.9e6),
    ("heap_sys_bytes", "gauge", "Number of heap bytes obtained from system.", 2.6e7),
    ("last_gc_time_seconds", "gauge", "Number of seconds since 1970 of last garbage collection.",
     0.0),
    ("lookups_total", "counter", "Total number of pointer lookups.", 0.0),
    ("mallocs_total", "counter", "Total number of mallocs.", 3.3e6),
    ("mcache_inuse_bytes", "gauge", "Number of bytes in use by mcache structures.", 2400.0),
    ("mcache_sys_bytes", "gauge",
     "Number of bytes used for mcache structures obtained from system.", 15600.0),
    ("mspan_inuse_bytes", "gauge", "Number of bytes in use by mspan structures.", 2.9e5),
    ("mspan_sys_bytes", "gauge", "Number of bytes used for mspan structures obtained from system.",
     3.4e5),
    ("next_gc_bytes", "gauge", "Number of heap bytes when next garbage collection will take place.",
     2.2e7),
    ("other_sys_bytes", "gauge", "Number of bytes used for other system allocations.", 1.1e6),
    ("stack_inuse_bytes", "gauge", "Number of bytes in use by the stack allocator.", 1.3e6),
    ("stack_sys_bytes", "gauge", "Number of bytes obtained from system for stack allocator.",
     1.3e6),
    ("sys_bytes", "gauge", "Number of bytes obtained from system.", 3.6e7),
)
_REST_BUCKETS = (0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)
_HOST = "control-plane.kpexporter.invalid:6443"


def _jitter(model: NodeModel, what: str) -> float:
    """A stable per-node, per-process factor in [0.8, 1.2): pages differ between nodes."""
    key = f"{model.config.name}/{model.restarts}/{what}".encode()
    return 0.8 + 0.4 * int.from_bytes(hashlib.blake2b(key, digest_size=4).digest()) / 2**32


def _runtime(page: _Page, model: NodeModel, now_ns: int) -> None:
    v = model.version
    uptime = max(0.0, (now_ns - model.process_start_ns) / NS * model.config.time_scale)
    syncs = sum(f.sync.count for f in model.families)
    gc = 10 + int(uptime / 120)
    page.add("go_gc_duration_seconds", "summary",
             "A summary of the pause duration of garbage collection cycles.",
             [_sample("go_gc_duration_seconds", (("quantile", q),), val) for q, val in (
                 ("0", 4.1e-05), ("0.25", 7.3e-05), ("0.5", 0.000112), ("0.75", 0.000201),
                 ("1", 0.003712))]
             + [_sample("go_gc_duration_seconds_sum", (), round(gc * 0.00021, 9)),
                _sample("go_gc_duration_seconds_count", (), gc)], stable=True)
    page.add("go_goroutines", "gauge", "Number of goroutines that currently exist.",
             [_sample("go_goroutines", (), 40 + int(10 * _jitter(model, "g")))], stable=True)
    page.add("go_info", "gauge", "Information about the Go environment.",
             [_sample("go_info", (("version", v.go_version),), 1)], stable=True)
    for suffix, typ, help_, base in _GO_MEMSTATS:
        name = f"go_memstats_{suffix}"
        value = (
            model.node_seconds(now_ns - 60 * NS) if suffix == "last_gc_time_seconds"
            else float(int(base * _jitter(model, suffix)))
        )
        page.add(name, typ, help_, [_sample(name, (), value)], stable=True)
    page.add("go_threads", "gauge", "Number of OS threads created.",
             [_sample("go_threads", (), 9 + int(4 * _jitter(model, "t")))], stable=True)

    start_s = round(model.node_seconds(model.process_start_ns), 2)
    for name, typ, help_, value in (
        ("process_cpu_seconds_total", "counter",
         "Total user and system CPU time spent in seconds.",
         round(0.3 + uptime * 0.0015 + syncs * 0.004, 2)),
        ("process_max_fds", "gauge", "Maximum number of open file descriptors.", 1048576.0),
        ("process_open_fds", "gauge", "Number of open file descriptors.",
         float(10 + int(6 * _jitter(model, "fds")))),
        ("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
         float(int(4.6e7 * _jitter(model, "rss")) // 4096 * 4096)),
        ("process_start_time_seconds", "gauge",
         "Start time of the process since unix epoch in seconds.", start_s),
        ("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
         float(int(1.3e9 * _jitter(model, "vm")) // 4096 * 4096)),
        ("process_virtual_memory_max_bytes", "gauge",
         "Maximum amount of virtual memory available in bytes.", 1.8446744073709552e19),
    ):
        page.add(name, typ, help_, [_sample(name, (), value)], stable=True)

    gets = 4 + int(uptime / 300)
    name = "rest_client_requests_total"
    page.add(name, "counter",
             "Number of HTTP requests, partitioned by status code, method, and host.",
             [_sample(name, (("code", "200"), ("host", _HOST), ("method", "GET")), gets),
              _sample(name, (("code", "201"), ("host", _HOST), ("method", "POST")), 1)])
    name = "rest_client_request_duration_seconds"
    h = Histogram(_REST_BUCKETS)
    for i in range(gets):
        h.observe(0.004 + 0.003 * (i % 5))
    page.add(name, "histogram", "Request latency in seconds. Broken down by verb, and host.",
             _histogram(name, h, (("host", _HOST), ("verb", "GET"))))
    if v.at_least(16):
        name = "kubernetes_build_info"
        labels = (
            ("build_date", "2024-01-01T00:00:00Z"), ("compiler", "gc"),
            ("git_commit", hashlib.sha1(v.git_version.encode()).hexdigest()),
            ("git_tree_state", "clean"), ("git_version", v.git_version),
            ("go_version", v.go_version), ("major", "1"), ("minor", str(v.minor)),
            ("platform", "linux/amd64"),
        )
        page.add(name, "gauge",
                 "A metric with a constant '1' value labeled by major, minor, git version, git "
                 "commit, git tree state, build date, Go version, and compiler from which "
                 "Kubernetes was built, and platform on which it is running.",
                 [_sample(name, labels, 1)])
    if v.at_least(26):
        name = "kubernetes_feature_enabled"
        gates = [("MinimizeIPTablesRestore", "BETA" if v.minor < 30 else "", 1)]
        if v.at_least(28):
            # Assumed enabled in 1.28–1.29 too, where it was alpha (draining scenario relies on it).
            stage = "ALPHA" if v.minor < 30 else "BETA" if v.minor < 31 else ""
            gates.append(("KubeProxyDrainingTerminatingNodes", stage, 1))
        if v.at_least(29):
            stage = "ALPHA" if v.minor < 31 else "BETA" if v.minor < 33 else ""
            gates.append(("NFTablesProxyMode", stage, 1 if v.minor >= 31 else 0))
        page.add(name, "gauge",
                 "This metric records the data about the stage and enablement of a k8s feature.",
                 [_sample(name, (("name", n), ("stage", s)), val) for n, s, val in sorted(gates)],
                 level="BETA")


def proxy_mode_body(model: NodeModel) -> bytes:
    """``/proxyMode``: the bare mode name, no newline (``fmt.Fprintf(w, "%s", proxyMode)``)."""
    return model.config.mode.encode()
