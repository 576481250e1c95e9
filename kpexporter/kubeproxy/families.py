"""The kube-proxy families the exporter uses, as typed values, from an :class:`Exposition`.

This is the one place that knows kube-proxy's metric names across versions: a new generation
of names is added here and nowhere else. The histograms come out as :class:`Buckets`, one per
series (label set without ``le``), ready for the windowing and quantile math.

Decisions, each mirroring what Prometheus 2.42 would compute from the same page:

- Buckets keep page order and ``le`` as written (``le="1"`` and ``le="1.0"`` stay two
  buckets); ``le`` goes through Go's ``ParseFloat``, and a bucket whose ``le`` it rejects is
  dropped silently, as ``histogram_quantile`` does. Buckets are read whatever ``# TYPE`` says:
  ``histogram_quantile`` looks at names and labels, not at metadata.
- A series without ``+Inf`` is kept (the quantile math decides what that means). A missing
  ``_sum`` or ``_count`` becomes ``NaN``: "not reported", which no arithmetic can mistake for
  zero observations. A series with no usable bucket is left out.
- Pre-1.14 ``kubeproxy_sync_proxy_rules_latency_microseconds`` is converted to seconds (bounds
  and ``_sum`` divided by 10⁶; counts unchanged; ``les`` rewritten as Go would print the new
  bound, e.g. ``"0.001"``, since the original strings name microseconds). It is used only when
  the page has no ``kubeproxy_sync_proxy_rules_duration_seconds`` bucket at all: seconds win.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from kpexporter.kubeproxy.passthrough import PassFamily, select
from kpexporter.memo import Memo
from kpexporter.promtext.exposition import Exposition, LabelSet
from kpexporter.promtext.floats import format_go_float
from kpexporter.promtext.gofloat import parse_go_float
from kpexporter.stats.histogram import Buckets

__all__ = [
    "HISTOGRAMS",
    "LEGACY_MICROSECOND_HISTOGRAMS",
    "KubeProxyMetrics",
    "LabelSet",
    "extract",
    "format_go_float",
]

HISTOGRAMS: Mapping[str, str] = MappingProxyType(
    {
        "sync_proxy_rules_duration_seconds": "kubeproxy_sync_proxy_rules_duration_seconds",
        "sync_full_proxy_rules_duration_seconds": (
            "kubeproxy_sync_full_proxy_rules_duration_seconds"
        ),
        "sync_partial_proxy_rules_duration_seconds": (
            "kubeproxy_sync_partial_proxy_rules_duration_seconds"
        ),
        "network_programming_duration_seconds": "kubeproxy_network_programming_duration_seconds",
    }
)
"""Our summary's key (the contract's name without ``kpexporter_``) -> kube-proxy's family."""

LEGACY_MICROSECOND_HISTOGRAMS: Mapping[str, str] = MappingProxyType(
    {"sync_proxy_rules_duration_seconds": "kubeproxy_sync_proxy_rules_latency_microseconds"}
)
"""Fallback sources in microseconds (kube-proxy < 1.14), used when the seconds one is absent."""

LAST_SYNC = "kubeproxy_sync_proxy_rules_last_timestamp_seconds"
LAST_QUEUED = "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds"
ENDPOINT_CHANGES_PENDING = "kubeproxy_sync_proxy_rules_endpoint_changes_pending"
SERVICE_CHANGES_PENDING = "kubeproxy_sync_proxy_rules_service_changes_pending"
PROCESS_START_TIME = "process_start_time_seconds"


@dataclass(frozen=True, slots=True)
class KubeProxyMetrics:
    """What one ``/metrics`` page says about kube-proxy's syncs, typed."""

    histograms: dict[str, dict[LabelSet, Buckets]]
    """Key of :data:`HISTOGRAMS` -> series labels without ``le`` (``()`` before 1.33,
    ``(("ip_family", "IPv4"),)`` from 1.33) -> buckets. Absent families are absent keys."""
    last_sync: dict[LabelSet, float]
    """``kubeproxy_sync_proxy_rules_last_timestamp_seconds`` per label set."""
    last_queued: dict[LabelSet, float]
    """``kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds`` per label set."""
    endpoint_changes_pending: float | None
    """Summed over label sets (one unlabelled series in every known version); None if absent."""
    service_changes_pending: float | None
    """Summed like ``endpoint_changes_pending``."""
    process_start_time: float | None
    """``process_start_time_seconds`` (unlabelled): tells a kube-proxy restart apart."""
    bad_lines: int
    """Carried over from the exposition: lines skipped as malformed."""
    errors: tuple[str, ...]
    """Carried over from the exposition: the first few reasons."""
    passthrough: tuple[PassFamily, ...] = ()
    """kube-proxy's own families to re-expose (``passthrough:`` patterns; see
    :mod:`kpexporter.kubeproxy.passthrough`)."""


def extract(exp: Exposition, passthrough: tuple[str, ...] = ()) -> KubeProxyMetrics:
    """Pick the kube-proxy families out of a read page (pure); ``passthrough``: the name
    patterns of the families to re-expose (read with ``passthrough.reader_prefixes``)."""
    histograms: dict[str, dict[LabelSet, Buckets]] = {}
    for key, family in HISTOGRAMS.items():
        series = _histogram(exp, family)
        legacy = LEGACY_MICROSECOND_HISTOGRAMS.get(key)
        if not series and legacy is not None:
            series = {labels: _to_seconds(b) for labels, b in _histogram(exp, legacy).items()}
        if series:
            histograms[key] = series
    process = exp.samples.get(PROCESS_START_TIME, {})
    return KubeProxyMetrics(
        histograms=histograms,
        last_sync=dict(exp.samples.get(LAST_SYNC, {})),
        last_queued=dict(exp.samples.get(LAST_QUEUED, {})),
        endpoint_changes_pending=_total(exp, ENDPOINT_CHANGES_PENDING),
        service_changes_pending=_total(exp, SERVICE_CHANGES_PENDING),
        process_start_time=process.get(()),
        bad_lines=exp.bad_lines,
        errors=tuple(exp.errors),
        passthrough=select(exp, passthrough, histograms) if passthrough else (),
    )


MAX_LABEL_CHARS = 256
"""A histogram series whose labels (besides ``le``) are longer than this is ignored: kube-proxy
writes ``ip_family`` at most, and re-exposing megabyte label values would cost every scrape."""
MAX_LABELS = 4
"""Likewise a histogram series with more labels than this besides ``le`` (Prometheus's
``label_limit``): kube-proxy's have one at most (``ip_family``, from 1.33)."""


def _histogram(exp: Exposition, family: str) -> dict[LabelSet, Buckets]:
    """Group ``family``'s ``_bucket`` samples by their labels without ``le``, in page order."""
    grouped: dict[LabelSet, tuple[list[str], list[float], list[float]]] = {}
    for labels, value in exp.samples.get(family + "_bucket", {}).items():
        le: str | None = None
        rest: list[tuple[str, str]] = []
        for pair in labels:
            if pair[0] == "le":
                le = pair[1]
            else:
                rest.append(pair)
        if le is None:
            continue  # not a bucket (Prometheus skips it too)
        bound = _LE_BOUNDS.get(le)
        if bound is None:
            try:
                bound = _bound(le)
            except ValueError:
                continue
        if len(rest) > MAX_LABELS or sum(len(k) + len(v) for k, v in rest) > MAX_LABEL_CHARS:
            continue  # not kube-proxy's (ip_family at most): never re-exported, never kept
        les, bounds, counts = grouped.setdefault(tuple(rest), ([], [], []))
        les.append(le)
        bounds.append(bound)
        counts.append(value)
    sums = exp.samples.get(family + "_sum", {})
    totals = exp.samples.get(family + "_count", {})
    return {
        labels: Buckets(
            les=tuple(les),
            bounds=tuple(bounds),
            counts=tuple(counts),
            sum=sums.get(labels, math.nan),
            count=totals.get(labels, math.nan),
        )
        for labels, (les, bounds, counts) in grouped.items()
    }


_LE_BOUNDS: Memo[str, float] = Memo(4096)
"""``le`` text -> bound: the same few dozen strings on every page, so parse each once."""


def _bound(le: str) -> float:
    """Go's ParseFloat of an ``le``, remembered (bounded memo; only speed depends on it)."""
    return _LE_BOUNDS.put(le, parse_go_float(le))


def _to_seconds(b: Buckets) -> Buckets:
    """A microsecond histogram restated in seconds (only bounds, ``les`` and ``sum`` change)."""
    bounds = tuple(bound / 1e6 for bound in b.bounds)
    les = []
    for le, bound in zip(b.les, bounds, strict=True):
        text = _SECONDS_LES.get(le)
        if text is None:
            text = _SECONDS_LES.put(le, format_go_float(bound))
        les.append(text)
    return Buckets(les=tuple(les), bounds=bounds, counts=b.counts, sum=b.sum / 1e6, count=b.count)


_SECONDS_LES: Memo[str, str] = Memo(4096)
"""Microsecond ``le`` text -> the seconds ``le`` text (formatting is slow, pages repeat)."""


def _total(exp: Exposition, name: str) -> float | None:
    """Sum of a gauge's series, or None when the page has none."""
    series = exp.samples.get(name)
    return math.fsum(series.values()) if series else None
