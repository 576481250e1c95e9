"""Prometheus 2.42's ``histogram_quantile`` for classic buckets, ported line by line.

The contract promises the exact value Prometheus 2.42 would return for the same buckets, so
this is a transliteration of ``promql/quantile.go@v2.42.0`` (``bucketQuantile``,
``coalesceBuckets``, ``ensureMonotonic``) rather than a re-derivation: same order of
operations (so IEEE doubles give the same bits as Go on amd64), same edge cases, and Go's
division semantics (``x/0`` is ±Inf or NaN, never an exception). ``tests/stats`` checks it
against ``promtool`` 2.42 on hundreds of random cases each run.

Known, documented gaps (none reachable with kube-proxy's integer counts and bounds):

* Go sorts with an unstable sort; equal bounds are summed after sorting, so with three or
  more equal bounds *and* non-integer counts the sum may round differently. Which sign of
  zero survives when ``le="0"`` and ``le="-0"`` meet is likewise unspecified (they compare
  equal, so no result changes).
* A NaN bound makes Go's sort order implementation-defined; we do not mimic pdqsort.
* 2.49+ ignores relative count differences below 1e-12; 2.42 (matched here) does not.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter

from kpexporter.stats.histogram import Buckets

__all__ = ["bucket_quantile", "bucket_quantiles", "go_div", "quantile", "quantiles"]


def go_div(a: float, b: float) -> float:
    """IEEE-754 division as Go does it: ``x/0`` is ±Inf, ``0/0`` and ``NaN/0`` are NaN."""
    if b != 0.0:
        return a / b
    if a == 0.0 or math.isnan(a):
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _go_search(n: int, f: Callable[[int], bool]) -> int:
    """Go's ``sort.Search``: the same bisection, so even non-monotonic input matches Go."""
    i, j = 0, n
    while i < j:
        h = (i + j) >> 1
        if not f(h):
            i = h + 1
        else:
            j = h
    return i


def bucket_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """The ``q``-quantile of ``(upper_bound, cumulative_count)`` pairs, as Prometheus 2.42.

    Pairs may come in any order and may repeat a bound (``le="1"`` and ``le="1.0"``: their
    counts are summed). Returns NaN without ``+Inf`` bucket, with fewer than two distinct
    bounds, or with no observations; the second-highest bound when the rank falls in the
    ``+Inf`` bucket; the lowest bound itself when that is ≤ 0 and the rank falls there.
    An empty input also gives NaN (Prometheus produces no sample for it at all).
    """
    return bucket_quantiles((q,), buckets)[0]


def bucket_quantiles(qs: Sequence[float], buckets: Iterable[tuple[float, float]]
                     ) -> list[float]:
    """``[bucket_quantile(q, buckets) for q in qs]``, sorting and merging the buckets once.

    The exporter asks for three quantiles of every series each poll: the preparation
    (sort, coalesce, monotonic fix-up) is most of the work, and it does not depend on ``q``.
    """
    bs: list[list[float]] | None = None
    out: list[float] = []
    for q in qs:
        if math.isnan(q):
            out.append(math.nan)
        elif q < 0:
            out.append(-math.inf)
        elif q > 1:
            out.append(math.inf)
        else:
            if bs is None:
                bs = _prepare(buckets)
            out.append(_ranked(q, bs) if bs else math.nan)
    return out


def _prepare(buckets: Iterable[tuple[float, float]]) -> list[list[float]]:
    """Sorted, coalesced, monotonic ``[bound, count]`` pairs; ``[]`` when every q gives NaN."""
    bs = [[float(bound), float(count)] for bound, count in buckets]
    if not bs:
        return []
    bs.sort(key=itemgetter(0))  # stable, by bound: the order Go's sort gives these pairs
    if bs[-1][0] != math.inf:
        return []
    bs = _coalesce(bs)
    _ensure_monotonic(bs)
    if len(bs) < 2:
        return []
    if bs[-1][1] == 0:  # no observations
        return []
    return bs


def _ranked(q: float, bs: list[list[float]]) -> float:
    """The quantile for ``0 <= q <= 1`` over prepared buckets (read-only)."""
    observations = bs[-1][1]
    rank = q * observations
    b = _go_search(len(bs) - 1, lambda i: bs[i][1] >= rank)
    if b == len(bs) - 1:
        return bs[-2][0]
    if b == 0 and bs[0][0] <= 0:
        return bs[0][0]
    bucket_start = 0.0
    bucket_end = bs[b][0]
    count = bs[b][1]
    if b > 0:
        bucket_start = bs[b - 1][0]
        count -= bs[b - 1][1]
        rank -= bs[b - 1][1]
    return bucket_start + (bucket_end - bucket_start) * go_div(rank, count)


def _coalesce(bs: list[list[float]]) -> list[list[float]]:
    """Sum the counts of equal bounds, keeping the first bound of each run (Go's loop)."""
    out: list[list[float]] = []
    last = bs[0]
    for b in bs[1:]:
        if b[0] == last[0]:
            last[1] += b[1]
        else:
            out.append(last)
            last = b
    out.append(last)
    return out


def _ensure_monotonic(bs: list[list[float]]) -> None:
    """Raise any count below the running maximum to it (2.42: exact compare, NaN untouched)."""
    running = -math.inf
    for b in bs:
        if b[1] > running:
            running = b[1]
        elif b[1] < running:
            b[1] = running


def quantile(q: float, b: Buckets) -> float:
    """``bucket_quantile`` over one ``Buckets`` series (its bounds, not its ``le`` strings)."""
    return bucket_quantile(q, zip(b.bounds, b.counts, strict=True))


def quantiles(qs: Sequence[float], b: Buckets) -> list[float]:
    """``bucket_quantiles`` over one ``Buckets`` series."""
    return bucket_quantiles(qs, zip(b.bounds, b.counts, strict=True))
