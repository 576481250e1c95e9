"""Per-target SLO state: the three SLOs' event counters and their windowed values.

Events per SLO (``kpexporter.config.slos``):

- ``sync_latency``: good = kube-proxy's ``kubeproxy_sync_proxy_rules_duration_seconds_bucket``
  at ``le`` = the threshold, total = its ``_count``, each summed over the series (``ip_family``
  from 1.33) from the lifetime buckets as polled; pre-1.14 pages count from the microsecond
  histogram converted to seconds.
- ``network_programming_latency``: the same from ``kubeproxy_network_programming_duration_seconds``.
- ``availability``: one event per poll, good when ``/healthz`` answered 200 and no queued
  change had waited past ``pending_threshold``. A poll that reached nothing is a bad event.
  A node being drained (503 with ``nodeEligible: false``, 1.28+) is no event at all: kube-proxy
  says so on purpose to take the node out of load balancers, it is not a fault (the alerts stay
  silent for it too), and counting it would burn the budget on every cluster upgrade. A queued
  change waiting past the threshold on a draining node is still a bad event.

The counters are :class:`~kpexporter.stats.slo.ContinuousCounter` (restart-proof), their
history an :class:`~kpexporter.stats.slo.EventHistory` bounded by the longest SLO window; the
values ``/metrics`` shows are computed once per poll, here, not at scrape time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kpexporter.config.slos import AVAILABILITY, SOURCE_HISTOGRAM, SLOConfig
from kpexporter.core.derive import Derived
from kpexporter.core.result import PollResult
from kpexporter.kubeproxy.families import HISTOGRAMS, LabelSet
from kpexporter.memo import Memo
from kpexporter.stats.histogram import Buckets
from kpexporter.stats.slo import (
    ContinuousCounter,
    EventHistory,
    budget_remaining,
    burn_rate,
    sli,
)

__all__ = ["OBJECTIVES", "SLOState", "SLOValue", "SLOWindowValue", "latency_events"]

OBJECTIVES: dict[str, float] = {}
"""SLO name -> objective of the SLOs in force (process-level: ``kpexporter_slo_objective_ratio``).
Set by every :class:`SLOState` from its configuration (one configuration per process)."""

_HISTOGRAM_KEY = {slo: next(k for k, fam in HISTOGRAMS.items() if fam == family)
                  for slo, family in SOURCE_HISTOGRAM.items()}
"""SLO name -> the key of :data:`HISTOGRAMS` its events come from."""


@dataclass(frozen=True, slots=True)
class SLOWindowValue:
    window: str
    good: float  # good events in the window
    total: float
    sli: float  # NaN below min_events
    burn_rate: float


@dataclass(frozen=True, slots=True)
class SLOValue:
    """One SLO of one target after a poll: what the ``kpexporter_slo_*`` families show."""

    slo: str
    objective: float
    good_total: float  # the continuous counters (NaN: no event source seen yet)
    events_total: float
    windows: tuple[SLOWindowValue, ...]
    budget_remaining: float  # over the retained history; NaN below min_events
    retained_seconds: float  # how far back the budget looks now (≤ the longest window)

    @property
    def lifetime_ratio(self) -> float:
        """good / total of the counters: all one poll can know (``check``)."""
        return sli(self.good_total, self.events_total)


def _threshold_index(les: tuple[str, ...], bounds: tuple[float, ...],
                     threshold: float) -> int | None:
    for i, bound in enumerate(bounds):
        if bound == threshold or math.isclose(bound, threshold, rel_tol=1e-12):
            return i
    return None


_INDEX_MEMO: Memo[tuple[tuple[str, ...], float], int | None] = Memo(1024)


def latency_events(series: dict[LabelSet, Buckets], threshold: float
                   ) -> tuple[dict[LabelSet, float], dict[LabelSet, float]]:
    """(good, total) per series: the bucket at ``le`` = ``threshold`` and ``_count``.

    A series without that bucket, or without a finite ``_count``, has no events to give.
    """
    good: dict[LabelSet, float] = {}
    total: dict[LabelSet, float] = {}
    for labels, b in series.items():
        key = (b.les, threshold)
        if key in _INDEX_MEMO:
            i = _INDEX_MEMO[key]
        else:
            i = _INDEX_MEMO.put(key, _threshold_index(b.les, b.bounds, threshold))
        if i is None or not math.isfinite(b.count):
            continue
        good[labels] = b.counts[i]
        total[labels] = b.count
    return good, total


@dataclass(slots=True)
class _One:
    good: ContinuousCounter
    total: ContinuousCounter
    history: EventHistory


class SLOState:
    """The SLOs of one target; :meth:`record` after every poll, read :attr:`values`."""

    __slots__ = ("_cfg", "_slos", "values")

    def __init__(self, cfg: SLOConfig) -> None:
        self._cfg = cfg
        objectives = {s.name: s.objective for s in cfg.enabled}
        if objectives != OBJECTIVES:
            OBJECTIVES.clear()
            OBJECTIVES.update(objectives)
        self._slos = {s.name: _One(ContinuousCounter(), ContinuousCounter(),
                                   EventHistory(cfg.horizon)) for s in cfg.enabled}
        self.values: tuple[SLOValue, ...] = ()

    def record(self, result: PollResult, derived: Derived, pending_threshold: float
               ) -> tuple[SLOValue, ...]:
        """Count this poll's events and compute every SLO's values as of ``result.started``."""
        cfg = self._cfg
        now = result.started
        out: list[SLOValue] = []
        for slo in cfg.enabled:
            one = self._slos[slo.name]
            if slo.name == AVAILABILITY:
                pending = derived.sync_pending
                stuck = pending is not None and pending > pending_threshold
                draining = (derived.healthz_status == 503 and derived.node_eligible is False)
                if not draining or stuck:
                    one.good.add(1.0 if derived.healthz_healthy and not stuck else 0.0)
                    one.total.add(1.0)
            elif result.metrics is not None and slo.threshold is not None:
                series = result.metrics.histograms.get(_HISTOGRAM_KEY[slo.name], {})
                good, total = latency_events(series, slo.threshold)
                one.good.update(good)
                one.total.update(total)
            one.history.add(now, one.good.value, one.total.value)
            windows = []
            for w in cfg.windows:
                ev = one.history.window(now, w.seconds)
                g, t = (ev.good, ev.total) if ev is not None else (0.0, 0.0)
                ratio = sli(g, t, cfg.min_events)
                windows.append(SLOWindowValue(w.name, g, t, ratio, burn_rate(ratio, slo.objective)))
            kept = one.history.retained()
            if kept is not None:
                budget = budget_remaining(sli(kept.good, kept.total, cfg.min_events),
                                          slo.objective)
                span = min(now - kept.start, cfg.horizon)
            else:
                budget, span = math.nan, 0.0
            out.append(SLOValue(slo.name, slo.objective, one.good.value, one.total.value,
                                tuple(windows), budget, span))
        self.values = tuple(out)
        return self.values

    def nbytes(self) -> int:
        """Bytes of the stored history points (for the memory benchmark)."""
        return sum(one.history.nbytes() for one in self._slos.values())
