"""SLO arithmetic: restart-proof event counters, windowed SLIs, burn rates, error budgets.

Pure: every time is passed in, nothing reads a clock.

An SLO counts *events* (rule syncs, network-programming observations, polls), each good or
bad. kube-proxy's own counters reset when it restarts, so the exporter keeps its own:

- :class:`ContinuousCounter` adds up kube-proxy's counter series the way Prometheus's
  ``increase()`` handles resets: a drop is a restart, and the whole new value (the new
  process counted from 0) is added, never subtracted. Its first value is kube-proxy's lifetime
  value, so while kube-proxy does not restart our counter equals its series, and
  ``increase()`` over ours equals ``increase()`` over theirs.
- :class:`EventHistory` keeps ``(t, good, total)`` of those continuous counters, a few floats
  per poll, only as far back as the longest window needs. A window's increase is the newest
  point minus the newest point at or before ``now − window`` (the first point while the
  history is younger than the window): the rule of the quantile windows
  (:mod:`kpexporter.stats.windows`), Prometheus's ``increase()`` with samples on both range
  ends, without extrapolation.

Then, as the SRE workbook (and Sloth, Pyrra) define them, with ``objective`` the good ratio
aimed at: ``sli = good / total``, ``burn_rate = (1 − sli) / (1 − objective)`` (1 spends the
error budget exactly over the SLO period), and over the retained history
``budget_remaining = 1 − burn_rate`` (negative once overspent). Each is written in the same
operation order as the PromQL in the tests, so Prometheus gets the same bits. A window with
fewer than ``min_events`` events says ``NaN``: one slow sync in a quiet 5 minutes is not a
100 % burn.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right
from collections.abc import Hashable, Mapping
from typing import Any

__all__ = [
    "ContinuousCounter",
    "EventHistory",
    "WindowEvents",
    "budget_remaining",
    "burn_rate",
    "sli",
]

DEFAULT_MAX_POINTS = 2048
"""Points kept per history before thinning: 6 h of 15 s polls (1,441) fit without it."""


class ContinuousCounter:
    """The sum of several counter series (e.g. one per ``ip_family``), reset-corrected.

    Each series is corrected on its own, as ``sum(increase(x[w]))`` does: a value below the
    series' previous one is a restart and the previous value is carried in a correction. A
    series that leaves the page keeps its last value in the total (the sum never drops); one
    that appears after the first update counts in full (a new process, counted from 0). NaN,
    infinite and negative values are not counts and are skipped.
    """

    __slots__ = ("_base", "_last", "_seen", "value")

    def __init__(self) -> None:
        self._last: dict[Hashable, float] = {}  # series -> last raw value
        self._base = 0.0  # corrections of resets plus the totals of series gone
        self._seen = False
        self.value = math.nan
        """The continuous total; NaN before the first update with any series."""

    def update(self, series: Mapping[Any, float]) -> float:
        """Fold one poll's raw values (series key → cumulative count); returns the total."""
        last = self._last
        fresh: dict[Hashable, float] = {}
        for key, raw in series.items():
            if not (math.isfinite(raw) and raw >= 0):
                old = last.get(key)
                if old is not None:
                    fresh[key] = old  # a garbage value this poll: hold the last good one
                continue
            old = last.get(key)  # None: a new series, all of it counts (from 0)
            if old is not None and raw < old:
                self._base += old  # a reset: what the old process counted stays counted
            fresh[key] = raw
        for key, old in last.items():
            if key not in fresh:
                self._base += old  # the series left the page: keep what it counted
        if fresh or self._seen:
            self._seen = True
            self._last = fresh
            self.value = self._base + math.fsum(fresh.values())
        return self.value

    def add(self, good: float) -> float:
        """Count ``good`` more events directly (the exporter's own events, e.g. polls)."""
        self._seen = True
        self._base += good
        self.value = self._base + math.fsum(self._last.values())
        return self.value


class WindowEvents:
    """Good and total events in one window, and when the window really started."""

    __slots__ = ("good", "start", "total")

    def __init__(self, good: float, total: float, start: float) -> None:
        self.good = good
        self.total = total
        self.start = start


class EventHistory:
    """Bounded history of one SLO's continuous ``(good, total)`` counters.

    A point equal to the previous one is not stored (an idle kube-proxy syncs once an hour):
    the value as of any time is the newest point at or before it, so nothing is lost. Points
    older than the newest one at or before ``latest − horizon`` are dropped. Past
    ``max_points`` (polls much denser than the horizon needs) every other interior point is
    dropped; windows then start at most one (doubled) poll gap earlier than asked.
    """

    __slots__ = ("_good", "_horizon", "_max", "_times", "_total")

    def __init__(self, horizon: float, max_points: int = DEFAULT_MAX_POINTS) -> None:
        if not (horizon >= 0 and math.isfinite(horizon)):
            raise ValueError(f"horizon must be finite and >= 0, got {horizon!r}")
        if max_points < 2:
            raise ValueError(f"max_points must be >= 2, got {max_points!r}")
        self._horizon = float(horizon)
        self._max = max_points
        self._times = array("d")
        self._good = array("d")
        self._total = array("d")

    def add(self, t: float, good: float, total: float) -> None:
        """Record the counters as of time ``t`` (a ``t`` before the last is taken as the last:
        history never reorders). NaN counters (nothing known yet) are not recorded."""
        if math.isnan(t):
            raise ValueError("time is NaN")
        if math.isnan(good) or math.isnan(total):
            return
        times = self._times
        if times:
            t = max(t, times[-1])
            if self._good[-1] == good and self._total[-1] == total:
                self._prune(t)
                return
        times.append(t)
        self._good.append(good)
        self._total.append(total)
        self._prune(t)

    def window(self, now: float, seconds: float) -> WindowEvents | None:
        """Events in the last ``seconds`` before ``now``; None before the first point."""
        times = self._times
        if not times:
            return None
        start = max(bisect_right(times, now - seconds) - 1, 0)
        return WindowEvents(self._good[-1] - self._good[start],
                            self._total[-1] - self._total[start], times[start])

    def retained(self) -> WindowEvents | None:
        """Events over everything kept (at most ``horizon`` plus one poll gap)."""
        if not self._times:
            return None
        return WindowEvents(self._good[-1] - self._good[0], self._total[-1] - self._total[0],
                            self._times[0])

    def __len__(self) -> int:
        return len(self._times)

    def nbytes(self) -> int:
        """Bytes of the stored points (for memory accounting)."""
        return sum(a.buffer_info()[1] * a.itemsize for a in (self._times, self._good,
                                                               self._total))

    def _prune(self, t: float) -> None:
        keep_from = bisect_right(self._times, t - self._horizon) - 1
        if keep_from > 0:
            for a in (self._times, self._good, self._total):
                del a[:keep_from]
        if len(self._times) > self._max:
            last = len(self._times) - 1
            keep = [0, *range(2, last, 2), last]
            for name in ("_times", "_good", "_total"):
                old = getattr(self, name)
                setattr(self, name, array("d", (old[i] for i in keep)))


def sli(good: float, total: float, min_events: float = 1.0) -> float:
    """``good / total``; NaN with fewer than ``min_events`` events (or none)."""
    if not total >= min_events or total <= 0:
        return math.nan
    return good / total


def burn_rate(ratio: float, objective: float) -> float:
    """How fast the error budget burns: ``(1 − sli) / (1 − objective)``; NaN stays NaN."""
    return (1 - ratio) / (1 - objective)


def budget_remaining(ratio: float, objective: float) -> float:
    """Share of the error budget left over the period ``ratio`` covers: ``1 − burn rate``."""
    return 1 - burn_rate(ratio, objective)
