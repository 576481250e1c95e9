"""From one poll (plus the histogram history) to the values the exporter shows.

Pure: the poll result, the histories and the configuration go in, a ``Derived`` comes
out. ``serve`` stores it per target and renders it at scrape time; ``check`` prints it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from kpexporter.config.schema import Config
from kpexporter.core.result import PollResult
from kpexporter.core.verdict import Problem, Verdict, judge, sync_wait
from kpexporter.kubeproxy.families import KubeProxyMetrics, LabelSet
from kpexporter.kubeproxy.healthz import staleness_seconds
from kpexporter.promtext.floats import same_number
from kpexporter.stats.histogram import Buckets
from kpexporter.stats.quantile import quantiles
from kpexporter.stats.windows import HistogramHistory
from kpexporter.vocabulary import Endpoint

LIFETIME = "lifetime"
HistoryKey = tuple[str, LabelSet]
SummaryMemo = dict[tuple[str, LabelSet, str], tuple[Buckets, "Summary"]]
"""(summary name, labels, window) -> the buckets it was computed from, and the result."""


@dataclass(frozen=True, slots=True)
class Summary:
    """One ``kpexporter_<name>{window, quantile}`` summary for one label set."""

    name: str  # e.g. "sync_proxy_rules_duration_seconds"
    labels: LabelSet  # extra labels from the source, e.g. ip_family
    window: str
    quantiles: tuple[tuple[float, float], ...]
    sum: float
    count: float


@dataclass(frozen=True, slots=True)
class FamilyHealth:
    ip_family: str
    healthy: bool
    staleness: float


@dataclass(frozen=True, slots=True)
class Derived:
    up: bool
    healthz_ok: bool  # /healthz answered and its body parsed
    healthz_status: int
    healthz_healthy: bool
    node_eligible: bool | None
    last_updated: float | None
    staleness: float | None
    families: tuple[FamilyHealth, ...]
    clock_skew: float | None
    metrics_ok: bool
    sync_last: float | None
    sync_pending: float | None
    """The oldest queued change has waited at least this long (see ``core.verdict``)."""
    sync_pending_max: float | None
    """... and at most this long; None when no limit is known, equal when exact."""
    never_synced: bool
    """The page has sync gauges and none shows a sync yet (``sync_last`` is None)."""
    proxy_mode: str | None
    summaries: tuple[Summary, ...]
    verdict: Verdict
    problems: tuple[Problem, ...]

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(p.text for p in self.problems)

    @property
    def exit_code(self) -> int:
        return {"healthy": 0, "unhealthy": 1, "unreachable": 2}[self.verdict]


def summarize(name: str, labels: LabelSet, window: str, b: Buckets,
              qs: tuple[float, ...]) -> Summary:
    return Summary(name, labels, window, tuple(zip(qs, quantiles(qs, b), strict=True)),
                   b.sum, b.count)


def zero_increase(b: Buckets) -> Buckets:
    """A window with no history yet: nothing observed (``check`` polls only once)."""
    return Buckets(b.les, b.bounds, tuple(0.0 for _ in b.counts), 0.0, 0.0)


def _same(a: Buckets, b: Buckets) -> bool:
    """Equal buckets (NaN equal to NaN): the summary computed from ``a`` holds for ``b``.

    ``bounds`` follow from ``les``, so they need no comparison.
    """
    return a is b or (a.les == b.les and a.counts == b.counts
                      and same_number(a.sum, b.sum) and same_number(a.count, b.count))


def summaries(metrics: KubeProxyMetrics, histories: dict[HistoryKey, HistogramHistory] | None,
              now: float, cfg: Config, memo: SummaryMemo | None = None) -> tuple[Summary, ...]:
    """Every summary of the page: lifetime and each window, per histogram series.

    ``memo`` (the target's, from the previous poll) saves recomputing a summary whose input
    buckets did not change: an idle kube-proxy's histograms, and every window with no new
    observation at either end. It is rebuilt with only this poll's keys, so it never grows.
    The results are the same with or without it; only the time differs.
    """
    out: list[Summary] = []
    fresh: SummaryMemo = {}
    qs = cfg.quantiles

    def summary(name: str, labels: LabelSet, window: str, b: Buckets) -> Summary:
        key = (name, labels, window)
        known = memo.get(key) if memo is not None else None
        if known is not None and _same(known[0], b):
            s = known[1]
        else:
            s = summarize(name, labels, window, b, qs)
        fresh[key] = (b, s)
        return s

    for name in sorted(metrics.histograms):
        for labels, b in sorted(metrics.histograms[name].items()):
            out.append(summary(name, labels, LIFETIME, b))
            hist = histories.get((name, labels)) if histories is not None else None
            for w in cfg.windows:
                inc = hist.window(now, w.seconds) if hist is not None else None
                out.append(summary(name, labels, w.name, inc or zero_increase(b)))
    if memo is not None:
        memo.clear()
        memo.update(fresh)
    return tuple(out)


def oldest_queued(metrics: KubeProxyMetrics,
                  previous: Mapping[LabelSet, float]) -> dict[LabelSet, float]:
    """The earliest ``last_queued`` seen since each family's last sync.

    kube-proxy exposes only its *newest* queued time; under churn that keeps moving, so
    ``now − last_queued`` would never grow on a stuck node. Remembering the first value
    seen after the last sync gives a lower bound of the oldest pending change's wait,
    the quantity kube-proxy's own 503 rule uses. A sync or a restart (a value from
    before ``process_start_time_seconds``) clears it.
    """
    out: dict[LabelSet, float] = {}
    start = metrics.process_start_time if metrics.process_start_time is not None else -math.inf
    for labels, queued in metrics.last_queued.items():
        synced = metrics.last_sync.get(labels, -math.inf)
        if queued > synced:
            kept = previous.get(labels)
            fresh = kept is not None and synced < kept <= queued and kept >= start
            out[labels] = kept if fresh and kept is not None else queued
    return out


def derive(result: PollResult, histories: dict[HistoryKey, HistogramHistory] | None,
           cfg: Config, proxy_mode: str | None = None, memo: SummaryMemo | None = None,
           oldest: Mapping[LabelSet, float] | None = None) -> Derived:
    """``proxy_mode`` is the last known mode (``/proxyMode`` is not fetched every poll);
    ``memo`` is the target's summary memo (see :func:`summaries`); ``oldest`` the
    target's :func:`oldest_queued` after this poll."""
    h, m = result.healthz, result.metrics
    skew = None
    if h is not None and result.healthz_midpoint is not None:
        skew = h.current_time.unix - result.healthz_midpoint
    staleness = h.staleness_seconds if h is not None else None
    last_updated = h.last_updated.unix if h is not None and h.last_updated is not None else None
    fams: tuple[FamilyHealth, ...] = ()
    if h is not None:
        fams = tuple(FamilyHealth(f.ip_family, f.healthy,
                                  staleness_seconds(f.last_updated, h.current_time))
                     for f in h.families)
    wait = sync_last = None
    never_synced = False
    summ: tuple[Summary, ...] = ()
    if m is not None:
        mid = result.metrics_midpoint or result.started
        wait = sync_wait(m, mid + (skew or 0.0), oldest)
        synced = [t for t in m.last_sync.values() if t != 0]
        if synced:
            # The stalest family is the one that matters for "is it syncing?"; 0 is
            # kube-proxy's "never synced" (an unset gauge), shown as absent, like healthz.
            sync_last = min(synced)
        else:
            never_synced = bool(m.last_sync or m.last_queued)
        summ = summaries(m, histories, result.started, cfg, memo)
    healthy = h is not None and result.healthz_status == 200
    failures = [Problem(f"{e.endpoint}_{e.reason}", f"{e.endpoint}: {e.message}")
                for e in result.errors if e.endpoint != Endpoint.PROXY_MODE]
    verdict, problems = judge(result.up, failures, h, result.healthz_status, wait,
                              cfg.pending_threshold)
    return Derived(
        up=result.up, healthz_ok=h is not None, healthz_status=result.healthz_status,
        healthz_healthy=healthy, node_eligible=h.node_eligible if h is not None else None,
        last_updated=last_updated, staleness=staleness, families=fams, clock_skew=skew,
        metrics_ok=m is not None, sync_last=sync_last,
        sync_pending=wait.low if wait is not None else None,
        sync_pending_max=wait.high if wait is not None else None,
        never_synced=never_synced,
        proxy_mode=result.proxy_mode or proxy_mode, summaries=summ, verdict=verdict,
        problems=problems)
