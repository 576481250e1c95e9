"""From one poll (plus the histogram history) to the values the exporter shows.

Pure: the poll result, the histories and the configuration go in, a ``Derived`` comes
out. ``serve`` stores it per target and renders it at scrape time; ``check`` prints it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from kpexporter.config.schema import Config
from kpexporter.core.poll import PollResult
from kpexporter.kubeproxy.families import KubeProxyMetrics, LabelSet
from kpexporter.kubeproxy.healthz import staleness_seconds
from kpexporter.stats.histogram import Buckets
from kpexporter.stats.quantile import quantiles
from kpexporter.stats.windows import HistogramHistory

LIFETIME = "lifetime"
Verdict = Literal["healthy", "unhealthy", "unreachable"]
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
    proxy_mode: str | None
    summaries: tuple[Summary, ...]
    verdict: Verdict
    reasons: tuple[str, ...]

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
                      and (a.sum == b.sum or (a.sum != a.sum and b.sum != b.sum))
                      and (a.count == b.count or (a.count != a.count and b.count != b.count)))


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
    the quantity kube-proxy's own 503 rule uses. A sync (or a restart) clears it.
    """
    out: dict[LabelSet, float] = {}
    for labels, queued in metrics.last_queued.items():
        synced = metrics.last_sync.get(labels, -math.inf)
        if queued > synced:
            kept = previous.get(labels)
            out[labels] = kept if kept is not None and synced < kept <= queued else queued
    return out


def sync_pending(metrics: KubeProxyMetrics, kube_now: float,
                 oldest: Mapping[LabelSet, float] | None = None) -> float | None:
    """Longest wait of a queued change not yet synced, per kube-proxy's own clock.

    ``last_queued > last_sync`` means a change is waiting; the worst family counts.
    ``oldest`` (from :func:`oldest_queued`) replaces ``last_queued`` where known.
    """
    if not metrics.last_queued:
        return None
    worst = 0.0
    for labels, queued in metrics.last_queued.items():
        synced = metrics.last_sync.get(labels, -math.inf)
        if queued > synced:
            since = oldest.get(labels, queued) if oldest is not None else queued
            worst = max(worst, kube_now - since)
    return max(worst, 0.0)


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
    pending = sync_last = None
    summ: tuple[Summary, ...] = ()
    if m is not None:
        mid = result.metrics_midpoint or result.started
        pending = sync_pending(m, mid + (skew or 0.0), oldest)
        synced = [t for t in m.last_sync.values() if t != 0]
        if synced:
            # The stalest family is the one that matters for "is it syncing?"; 0 is
            # kube-proxy's "never synced" (an unset gauge), shown as absent, like healthz.
            sync_last = min(synced)
        summ = summaries(m, histories, result.started, cfg, memo)
    healthy = h is not None and result.healthz_status == 200
    reasons: list[str] = []
    verdict: Verdict
    if not result.up:
        verdict = "unreachable"
        reasons = [f"{e.endpoint}: {e.message}" for e in result.errors
                   if e.endpoint != "proxymode"] or ["no answer"]
    else:
        verdict = "healthy"
        if not healthy:
            verdict = "unhealthy"
            why = "/healthz answered 503"
            if h is not None and h.node_eligible is False:
                why += " (node not eligible: being deleted or drained — not a kube-proxy fault)"
            elif h is not None and h.last_updated is None:
                why += " (never synced)"
            reasons.append(why)
        if pending is not None and pending > cfg.pending_threshold:
            verdict = "unhealthy"
            reasons.append(f"a queued rule change has waited {pending:.1f}s "
                           f"(threshold {cfg.pending_threshold:g}s)")
    return Derived(
        up=result.up, healthz_ok=h is not None, healthz_status=result.healthz_status,
        healthz_healthy=healthy, node_eligible=h.node_eligible if h is not None else None,
        last_updated=last_updated, staleness=staleness, families=fams, clock_skew=skew,
        metrics_ok=m is not None, sync_last=sync_last, sync_pending=pending,
        proxy_mode=result.proxy_mode or proxy_mode, summaries=summ, verdict=verdict,
        reasons=tuple(reasons))
