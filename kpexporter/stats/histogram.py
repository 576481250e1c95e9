"""Histogram snapshots: the one shape every stage agrees on.

A ``Buckets`` is one classic-histogram series (one family, one label set other than
``le``) either as scraped (cumulative since kube-proxy started) or as an increase over a
window. Keeping ``le`` as written matters: ``le="1"`` and ``le="1.0"`` are two series to
Prometheus, and ``histogram_quantile`` sums them only after parsing.
"""

from __future__ import annotations

from dataclasses import dataclass


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
