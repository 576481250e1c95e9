"""Histogram snapshots: the one shape every stage agrees on.

A ``Buckets`` is one classic-histogram series (one family, one label set other than
``le``) either as scraped (cumulative since kube-proxy started) or as an increase over a
window. Keeping ``le`` as written matters: ``le="1"`` and ``le="1.0"`` are two series to
Prometheus, and ``histogram_quantile`` sums them only after parsing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise


@dataclass(frozen=True, slots=True)
class Buckets:
    """One histogram series at one instant, or its increase over a window."""

    les: tuple[str, ...]
    """The ``le`` label values as written on the page, in page order."""
    bounds: tuple[float, ...]
    """``les`` parsed the way Go's ``strconv.ParseFloat`` would (same order)."""
    counts: tuple[float, ...]
    """Cumulative bucket counts (same order)."""
    sum: float
    count: float


def counter_increase(old: float, new: float) -> float:
    """Prometheus's two-sample counter increase: a drop is a reset, so the old value is added.

    Written as Prometheus computes it, ``(new - old) + old`` on a reset (not just ``new``), so
    non-integer values round the same way as ``increase()`` over exactly these two samples.
    """
    delta = new - old
    if new < old:
        delta += old
    return delta


def increase(old: Buckets, new: Buckets) -> Buckets:
    """``new`` minus ``old`` per series (each bucket, ``_sum``, ``_count``), resets included.

    This is Prometheus ``increase()`` over two samples with samples on both range ends, i.e.
    without extrapolation. A different ``le`` layout means kube-proxy restarted with other
    buckets; there is nothing to subtract, so the whole of ``new`` is the increase.
    """
    if old.les != new.les:
        return new
    return Buckets(
        les=new.les,
        bounds=new.bounds,
        counts=tuple(counter_increase(o, n) for o, n in zip(old.counts, new.counts, strict=True)),
        sum=counter_increase(old.sum, new.sum),
        count=counter_increase(old.count, new.count),
    )


def plausible(b: Buckets) -> bool:
    """Whether a scraped histogram series may join the window history.

    kube-proxy's cumulative counts are finite, non-negative and non-decreasing in ``le``; a
    page that says otherwise is garbage (a proxy's error page, a broken exporter in between).
    Fed to the history, one such snapshot fakes a counter reset and with it an hour of
    phantom observations, and an infinite count poisons the series' reset correction for
    good. A missing ``_sum``/``_count`` (NaN) is fine: it is "not reported".
    """
    if math.isinf(b.sum) or math.isinf(b.count) or b.count < 0:
        return False
    counts = b.counts
    # The usual page in C-speed checks: a finite total means no NaN and no infinity; bounds
    # and counts both in order (as kube-proxy writes them) means non-decreasing in ``le``.
    if (math.isfinite(sum(counts)) and (not counts or min(counts) >= 0)
            and list(b.bounds) == sorted(b.bounds) and list(counts) == sorted(counts)):
        return True
    if not all(math.isfinite(c) and c >= 0 for c in counts):
        return False
    ordered = sorted(zip(b.bounds, counts, strict=True))
    return all(hi >= lo for (_, lo), (_, hi) in pairwise(ordered))
