"""Per-target state: the last poll, derived values, bounded histogram history, counters.

One ``TargetState`` per kube-proxy. Its memory is bounded: histories keep only what the
longest window needs, series that disappear from the page are dropped, and the error
counters have a fixed label set.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from kpexporter.config.schema import Config, Target
from kpexporter.core.derive import Derived, HistoryKey, SummaryMemo, derive, oldest_queued
from kpexporter.core.result import PollResult
from kpexporter.core.slo_state import SLOState
from kpexporter.kubeproxy.families import KubeProxyMetrics, LabelSet
from kpexporter.logs import event
from kpexporter.promtext.floats import same_number
from kpexporter.stats.histogram import plausible
from kpexporter.stats.windows import HistogramHistory
from kpexporter.vocabulary import ENDPOINTS, PREDECLARED_REASONS, Endpoint, Reason

KNOWN_REASONS = PREDECLARED_REASONS
POLL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MAX_SNAPSHOTS = 4096


@dataclass(slots=True)
class DurationHistogram:
    """Cumulative-at-render histogram of request durations (fixed buckets)."""

    counts: list[int] = field(default_factory=lambda: [0] * len(POLL_BUCKETS))
    sum: float = 0.0
    count: int = 0

    def observe(self, seconds: float) -> None:
        for i, bound in enumerate(POLL_BUCKETS):
            if seconds <= bound:
                self.counts[i] += 1
                break
        self.sum += seconds
        self.count += 1

    def cumulative(self) -> list[int]:
        out, running = [], 0
        for c in self.counts:
            running += c
            out.append(running)
        return out


@dataclass(slots=True, eq=False, weakref_slot=True)
class TargetState:
    """One target's state; compared and hashed by identity (writers key caches by it)."""

    target: Target
    horizon: float = 3600.0  # the longest window: how much histogram history to keep
    last: PollResult | None = None
    derived: Derived | None = None
    histories: dict[HistoryKey, HistogramHistory] = field(default_factory=dict)
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    durations: dict[str, DurationHistogram] = field(
        default_factory=lambda: {e: DurationHistogram() for e in ENDPOINTS})
    proxy_mode: str | None = None
    process_start: float | None = None
    polls: int = 0
    last_success: float | None = None
    version: int = 0
    """Bumped by every change of what ``/metrics`` shows for this target (each ``record``)."""
    _last_problems: frozenset[str] = frozenset()  # the kinds logged last (see _log_transitions)
    _rejected: int = 0  # histogram series of the last poll kept out of the windows
    _memo: SummaryMemo = field(default_factory=dict)  # derive's summaries of the last poll
    queued_since: dict[LabelSet, float] = field(default_factory=dict)  # see oldest_queued
    slo: SLOState | None = None
    """The SLO counters and windows (``core.slo_state``); created by the first ``record``."""

    def __post_init__(self) -> None:
        for e in ENDPOINTS:
            for r in KNOWN_REASONS:
                self.errors[(e, r)] += 0

    @property
    def node(self) -> str:
        return self.target.node

    def retarget(self, target: Target) -> None:
        """Poll other URLs for the same node from now on (discovery saw a new address)."""
        self.target = target
        self.version += 1

    def wants_proxy_mode(self) -> bool:
        """``/proxyMode`` only changes with a restart: ask again after one, or after a failure."""
        return self.proxy_mode is None

    def record(self, result: PollResult, cfg: Config) -> Derived:
        """Fold one poll into the state and derive what ``/metrics`` shows until the next."""
        self.polls += 1
        for endpoint, seconds in result.durations:
            self.durations[endpoint].observe(seconds)
        for err in result.errors:
            self.errors[(err.endpoint, err.reason)] += 1
        if result.proxy_mode is not None:
            self.proxy_mode = result.proxy_mode
        m = result.metrics
        if m is not None:
            if m.bad_lines:
                self.errors[(Endpoint.METRICS, Reason.PARSE)] += m.bad_lines
            if (m.process_start_time is not None and self.process_start is not None
                    and m.process_start_time != self.process_start):
                event(20, "kube_proxy_restarted", node=self.node,
                      process_start=m.process_start_time)
                self.proxy_mode = None  # re-read: the mode may have changed with the restart
            self.process_start = m.process_start_time
            self._rejected = self._update_histories(result)
            self.errors[(Endpoint.METRICS, Reason.PARSE)] += self._rejected
        else:
            self._rejected = 0
        if m is not None:
            self.queued_since = oldest_queued(m, self.queued_since)
        derived = derive(result, self.histories if m is not None else None, cfg, self.proxy_mode,
                         self._memo, self.queued_since)
        self.last, self.derived = result, derived
        if self.slo is None:
            self.slo = SLOState(cfg.slos)
        self.slo.record(result, derived, cfg.pending_threshold)
        if result.up:
            self.last_success = result.started
        self.version += 1
        self._log_transitions(result, derived, m)
        return derived

    def _update_histories(self, result: PollResult) -> int:
        """Feed each series to its window history; returns how many were kept out of it."""
        assert result.metrics is not None
        seen: set[HistoryKey] = set()
        horizon = self.horizon
        rejected = 0
        for name, series in result.metrics.histograms.items():
            for labels, b in series.items():
                key = (name, labels)
                seen.add(key)
                hist = self.histories.get(key)
                # The same buckets as last time passed the check then (the common case).
                last = hist.latest() if hist is not None else None
                if (last is None or last.counts != b.counts or last.les != b.les
                        or not same_number(last.sum, b.sum)
                        or not same_number(last.count, b.count)) and not plausible(b):
                    rejected += 1  # the lifetime value shows it as scraped; windows skip it
                    continue
                if hist is None:
                    hist = self.histories[key] = HistogramHistory(horizon, MAX_SNAPSHOTS)
                hist.add(result.started, b)
        for key in set(self.histories) - seen:
            del self.histories[key]  # the family left the page (version or mode change)
        return rejected

    def _log_transitions(self, result: PollResult, d: Derived, m: KubeProxyMetrics | None) -> None:
        """Log when what is wrong changes, not every poll: a stuck kube-proxy is one line.

        A problem is its kind (an endpoint's failure reason, malformed lines, a 503, a wait
        over the threshold), never its message: messages carry numbers that change every
        poll ("waited 61.6s"). One ``poll_problem`` line when the set of kinds changes (a
        problem starts, or one of several ends), one ``poll_recovered`` when it empties.
        """
        found: dict[str, str] = {}
        for e in result.errors:
            found.setdefault(f"{e.endpoint}/{e.reason}", f"{e.endpoint}/{e.reason}: {e.message}")
        if m is not None and m.bad_lines:
            first = m.errors[0] if m.errors else ""
            found["metrics/malformed_lines"] = (
                f"metrics/parse: {m.bad_lines} malformed line(s) skipped ({first})")
        if self._rejected:
            found["metrics/rejected_series"] = (
                f"metrics/parse: {self._rejected} histogram series with NaN, infinite, "
                "negative or decreasing counts kept out of the windows")
        if d.up:  # when not up, the problems are the endpoint failures already listed
            for p in d.problems:
                found.setdefault(p.kind, p.text)
        kinds = frozenset(found)
        if kinds == self._last_problems:
            return
        if kinds:
            event(30, "poll_problem", node=self.node, verdict=d.verdict,
                  problems=",".join(sorted(kinds)), detail="; ".join(found.values()))
        else:
            event(20, "poll_recovered", node=self.node, verdict=d.verdict)
        self._last_problems = kinds
