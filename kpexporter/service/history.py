"""The last hour of each node, kept small, for the charts of ``/``.

``/metrics`` needs no history (Prometheus keeps it); the page does, because an on-call
engineer opening it on a node has no Prometheus at hand. Each sample holds only what the
page draws: the pending-change age, the sync p99 over each of the exporter's windows, and
each SLO's burn rate over the shortest SLO window.

Bounded on every axis: at most ``points`` samples per node (at least ``span / points``
seconds apart, so an hour at one poll a second is still 120 samples), at most
``max_targets`` nodes (a central exporter polling thousands keeps charts for the first
ones; the dashboards are the place for the rest), and a node that leaves is forgotten.
A sample is an ``array('d')`` row: NaN where the value is absent.
"""

from __future__ import annotations

import asyncio
import math
from array import array
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from kpexporter.config.schema import Config
from kpexporter.config.slos import SYNC_LATENCY
from kpexporter.core.state import TargetState

__all__ = ["DEFAULT_POINTS", "DEFAULT_SPAN", "MAX_TARGETS", "Columns", "PageHistory"]

DEFAULT_SPAN = 3600.0
DEFAULT_POINTS = 120
MAX_TARGETS = 200
SYNC = "sync_proxy_rules_duration_seconds"
"""derive's name of the rule-sync summary (``Summary.name``)."""
NAN = math.nan


@dataclass(frozen=True, slots=True)
class Columns:
    """What each position of a sample row holds (after the time and the pending age)."""

    quantile: float  # the sync quantile drawn (the highest configured, p99 by default)
    windows: tuple[str, ...]  # one sync column per exporter window
    slo_window: str  # the burn-rate window (the shortest SLO window)
    slos: tuple[str, ...]  # one burn-rate column per enabled SLO

    @classmethod
    def of(cls, cfg: Config) -> Columns:
        slo_windows = cfg.slos.windows
        return cls(max(cfg.quantiles), tuple(w.name for w in cfg.windows),
                   min(slo_windows, key=lambda w: w.seconds).name if slo_windows else "",
                   tuple(s.name for s in cfg.slos.enabled))

    @property
    def width(self) -> int:
        return 2 + len(self.windows) + len(self.slos)


def _sync_quantile(st: TargetState, window: str, q: float) -> float:
    """The worst IP family's sync quantile over ``window`` (NaN when none)."""
    assert st.derived is not None
    best = NAN
    for s in st.derived.summaries:
        if s.name != SYNC or s.window != window:
            continue
        for quantile, v in s.quantiles:
            if quantile == q and not math.isnan(v) and (math.isnan(best) or v > best):
                best = v
    return best


def _burn(st: TargetState, slo: str, window: str) -> float:
    if st.slo is None:
        return NAN
    for v in st.slo.values:
        if v.slo == slo:
            return next((w.burn_rate for w in v.windows if w.window == window), NAN)
    return NAN


def row(st: TargetState, cols: Columns) -> array[float] | None:
    """One sample of a polled target: time, pending age, sync quantiles, burn rates."""
    d, last = st.derived, st.last
    if d is None or last is None:
        return None
    pending = d.sync_pending if d.sync_pending is not None else NAN
    return array("d", [last.started, pending,
                       *(_sync_quantile(st, w, cols.quantile) for w in cols.windows),
                       *(_burn(st, slo, cols.slo_window) for slo in cols.slos)])


class StateSource(Protocol):
    def snapshot(self) -> Sequence[TargetState]: ...


class PageHistory:
    """Per node, a ring of samples; :meth:`sample` after polls, :meth:`get` to draw."""

    def __init__(self, cfg: Config, *, span: float = DEFAULT_SPAN,
                 points: int = DEFAULT_POINTS, max_targets: int = MAX_TARGETS) -> None:
        if span <= 0 or points < 2 or max_targets < 0:
            raise ValueError("span > 0, points >= 2 and max_targets >= 0 required")
        self.columns = Columns.of(cfg)
        self.span = span
        self.points = points
        self.spacing = span / points
        self.max_targets = max_targets
        self.interval = cfg.interval
        self.pending_threshold = cfg.pending_threshold
        slo = cfg.slos.get(SYNC_LATENCY)
        self.sync_threshold = slo.threshold if slo is not None else None
        self.page_burn = max((r.factor for r in cfg.alerting.burn_rates), default=14.4)
        """The fastest burn-rate alert's factor: the burn chart's upper line."""
        self._rings: dict[str, deque[array[float]]] = {}
        self._seen: dict[str, int] = {}  # the poll count of each node's newest sample

    def sample(self, states: Sequence[TargetState]) -> None:
        """Add each target's newest poll, unless it is the last one added or comes sooner
        than ``spacing`` after it; forget the targets no longer listed."""
        kept = states[: self.max_targets]
        for st in kept:
            if self._seen.get(st.node) == st.polls:
                continue
            r = row(st, self.columns)
            if r is None:
                continue
            ring = self._rings.get(st.node)
            if ring is None:
                ring = self._rings[st.node] = deque(maxlen=self.points)
            elif r[0] - ring[-1][0] < self.spacing:
                continue
            ring.append(r)
            self._seen[st.node] = st.polls
        if len(self._rings) > len(kept):
            names = {st.node for st in kept}
            for node in [n for n in self._rings if n not in names]:
                del self._rings[node]
                self._seen.pop(node, None)

    def get(self, node: str) -> Sequence[array[float]]:
        """The node's samples, oldest first (empty when none)."""
        return tuple(self._rings.get(node, ()))

    def charted(self, node: str) -> bool:
        return node in self._rings

    async def run(self, source: StateSource) -> None:
        """Sample every ``min(spacing, interval)`` seconds until cancelled."""
        while True:
            self.sample(source.snapshot())
            await asyncio.sleep(min(self.spacing, self.interval))
