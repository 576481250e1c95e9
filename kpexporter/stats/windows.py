"""Sliding windows over one histogram series, with Prometheus ``increase()`` semantics.

The windowed summaries must equal ``histogram_quantile(q, increase(x_bucket[w]))`` as
Prometheus 2.42 evaluates it when samples sit on both ends of the (closed) range: the last
value minus the first, plus the previous value at every drop (a drop is a counter reset,
e.g. a kube-proxy restart), per series, with no extrapolation.

How it stays small and exact:

* Every snapshot keeps the raw values ``v`` and a reset correction ``R`` (the sum of the
  previous values at all resets seen so far, per series). ``v + R`` is a reset-free
  cumulative counter, so any window is a subtraction of two snapshots: exactly Prometheus's
  sum of deltas, and no intermediate snapshot is needed to answer it. ``R`` only changes at a
  reset, so consecutive snapshots share one ``R`` array.
* A snapshot equal to the previous one is not stored (an idle kube-proxy's histograms do not
  move for an hour). That loses nothing: the value "as of" any time is that of the newest
  stored snapshot at or before it, and the reset rule compares with the previous *value*,
  which the newest stored snapshot holds.
* Snapshots older than needed for ``horizon`` are dropped, keeping the newest one at or
  before ``latest time - horizon`` as the baseline of the longest window. Past
  ``max_snapshots`` (polls much faster than ``horizon`` needs), every other interior snapshot
  is dropped; windows then start at most one (doubled) poll gap earlier than asked.

Floating point: with integer counts (all kube-proxy buckets and counts) every result is
exact. A non-integer ``_sum`` matches Prometheus bit for bit while the window holds no reset;
across resets it may differ in the last bits, because Prometheus adds the corrections one by
one while this subtracts two running totals. A NaN value poisons the correction of its series
from then on (Prometheus recovers once the NaN leaves the window); kube-proxy never emits one.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right

from kpexporter.stats.histogram import Buckets

__all__ = ["HistogramHistory"]


def _vector(b: Buckets) -> array[float]:
    """All series of one snapshot in one flat array: buckets in page order, sum, count."""
    v = array("d", b.counts)
    v.append(b.sum)
    v.append(b.count)
    return v


class HistogramHistory:
    """Bounded, reset-corrected history of ONE histogram series for sliding windows.

    Times are seconds on any clock that does not jump; ``time.monotonic()`` is the safest.
    Feed it every poll's cumulative ``Buckets`` with ``add`` and ask ``window`` for the
    increase over the last N seconds.
    """

    __slots__ = ("_corr", "_horizon", "_last_t", "_latest", "_max", "_raw", "_times")

    def __init__(self, horizon: float, max_snapshots: int = 4096) -> None:
        """``horizon``: the longest window that will be asked for, in seconds.

        ``max_snapshots`` caps memory when polls are much denser than ``horizon`` needs
        (4096 covers one hour at about one poll per second without thinning).
        """
        if not horizon >= 0 or math.isinf(horizon):
            raise ValueError(f"horizon must be finite and >= 0, got {horizon!r}")
        if max_snapshots < 2:
            raise ValueError(f"max_snapshots must be >= 2, got {max_snapshots!r}")
        self._horizon = float(horizon)
        self._max = max_snapshots
        self._times: list[float] = []
        self._raw: list[array[float]] = []
        self._corr: list[array[float]] = []
        self._latest: Buckets | None = None
        self._last_t = -math.inf

    def add(self, t: float, b: Buckets) -> None:
        """Record the poll at time ``t`` whose cumulative buckets were ``b``.

        Times should not decrease. If ``t`` is earlier than the last poll (a clock stepped
        back), the snapshot is still recorded, as taken at the last poll's time: its values
        are real and its resets must be seen, and history never reorders. A different ``le``
        layout restarts the history at this snapshot. A NaN time is a caller bug: ValueError.
        """
        if math.isnan(t):
            raise ValueError("poll time is NaN")
        if self._latest is not None and self._latest.les != b.les:
            self._clear()
        self._latest = b
        t = max(float(t), self._last_t)
        self._last_t = t
        raw = _vector(b)
        if not self._raw:
            self._append(t, raw, array("d", bytes(8 * len(raw))))
            return
        prev = self._raw[-1]
        if raw == prev:
            self._prune(t)
            return
        corr = self._corr[-1]
        if any(new < old for new, old in zip(raw, prev, strict=True)):
            corr = array(
                "d",
                (c + old if new < old else c for new, old, c in zip(raw, prev, corr, strict=True)),
            )
        self._append(t, raw, corr)

    def latest(self) -> Buckets | None:
        """The last ``Buckets`` added, as scraped: the ``lifetime`` value."""
        return self._latest

    def window(self, now: float, seconds: float) -> Buckets | None:
        """The increase over the last ``seconds`` before ``now``, per series.

        From the newest snapshot taken at or before ``now - seconds`` (or the first one, while
        the history is younger than the window) to the newest snapshot. One snapshot gives
        all zeros. ``None`` before any snapshot. Windows longer than ``horizon`` start at the
        oldest snapshot kept.
        """
        if self._latest is None or not self._times:
            return None
        start = max(bisect_right(self._times, now - seconds) - 1, 0)
        end = len(self._times) - 1
        raw_a, raw_b = self._raw[start], self._raw[end]
        corr_a, corr_b = self._corr[start], self._corr[end]
        if corr_a is corr_b:  # no reset in between: plain ``last - first``, as Prometheus
            inc = [vb - va for va, vb in zip(raw_a, raw_b, strict=True)]
        else:
            inc = [
                (vb - va) + (cb - ca)
                for va, vb, ca, cb in zip(raw_a, raw_b, corr_a, corr_b, strict=True)
            ]
        n = len(self._latest.les)
        return Buckets(
            les=self._latest.les,
            bounds=self._latest.bounds,
            counts=tuple(inc[:n]),
            sum=inc[n],
            count=inc[n + 1],
        )

    def __len__(self) -> int:
        """Snapshots held, for memory accounting."""
        return len(self._times)

    def _clear(self) -> None:
        self._times.clear()
        self._raw.clear()
        self._corr.clear()

    def _append(self, t: float, raw: array[float], corr: array[float]) -> None:
        self._times.append(t)
        self._raw.append(raw)
        self._corr.append(corr)
        self._prune(t)

    def _prune(self, t: float) -> None:
        """Keep the newest snapshot at or before ``t - horizon`` and everything after it."""
        keep_from = bisect_right(self._times, t - self._horizon) - 1
        if keep_from > 0:
            del self._times[:keep_from]
            del self._raw[:keep_from]
            del self._corr[:keep_from]
        if len(self._times) > self._max:
            self._thin()

    def _thin(self) -> None:
        """Drop every other interior snapshot: the baseline and the newest always stay.

        Reset corrections are cumulative, so dropping a snapshot never loses a reset.
        """
        last = len(self._times) - 1
        keep = [0, *range(2, last, 2), last]
        self._times[:] = [self._times[i] for i in keep]
        self._raw[:] = [self._raw[i] for i in keep]
        self._corr[:] = [self._corr[i] for i in keep]
