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
from kpexporter.core.poll import PollResult
from kpexporter.kubeproxy.families import KubeProxyMetrics, LabelSet
from kpexporter.logs import event
from kpexporter.net.fetch import HEALTHZ, METRICS, PROXY_MODE
from kpexporter.stats.histogram import plausible
from kpexporter.stats.windows import HistogramHistory

ENDPOINTS = (HEALTHZ, METRICS, PROXY_MODE)
KNOWN_REASONS = ("timeout", "connect", "read", "http_status", "parse", "too_large")
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


def _same_number(a: float, b: float) -> bool:
    return a == b or (a != a and b != b)  # NaN (a missing _sum/_count) equals NaN


@dataclass(slots=True)
class TargetState:
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
    rendered: object = None
    """The fast renderer's cache for this target (``kpexporter.service.text``); None until then."""
    _last_problem: str | None = None
    _rejected: int = 0  # histogram series of the last poll kept out of the windows
    _memo: SummaryMemo = field(default_factory=dict)  # derive's summaries of the last poll
    queued_since: dict[LabelSet, float] = field(default_factory=dict)  # see oldest_queued

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
                self.errors[(METRICS, "parse")] += m.bad_lines
            if (m.process_start_time is not None and self.process_start is not None
                    and m.process_start_time != self.process_start):
                event(20, "kube_proxy_restarted", node=self.node,
                      process_start=m.process_start_time)
                self.proxy_mode = None  # re-read: the mode may have changed with the restart
            self.process_start = m.process_start_time
            self._rejected = self._update_histories(result)
            self.errors[(METRICS, "parse")] += self._rejected
        else:
            self._rejected = 0
        if m is not None:
            self.queued_since = oldest_queued(m, self.queued_since)
        derived = derive(result, self.histories if m is not None else None, cfg, self.proxy_mode,
                         self._memo, self.queued_since)
        self.last, self.derived = result, derived
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
                        or not _same_number(last.sum, b.sum)
                        or not _same_number(last.count, b.count)) and not plausible(b):
                    rejected += 1  # the lifetime value shows it as scraped; windows skip it
                    continue
                if hist is None:
                    hist = self.histories[key] = HistogramHistory(horizon, MAX_SNAPSHOTS)
                hist.add(result.started, b)
        for key in set(self.histories) - seen:
            del self.histories[key]  # the family left the page (version or mode change)
        return rejected

    def _log_transitions(self, result: PollResult, d: Derived, m: KubeProxyMetrics | None) -> None:
        """Log when the picture changes, not every poll: a down kube-proxy is one line."""
        parts = [f"{e.endpoint}/{e.reason}: {e.message}" for e in result.errors]
        if m is not None and m.bad_lines:
            first = m.errors[0] if m.errors else ""
            parts.append(f"metrics/parse: {m.bad_lines} malformed line(s) skipped ({first})")
        if self._rejected:
            parts.append(f"metrics/parse: {self._rejected} histogram series with NaN, infinite, "
                         "negative or decreasing counts kept out of the windows")
        problem = "; ".join(parts)
        if d.verdict != "healthy" and not problem:
            problem = "; ".join(d.reasons)
        if problem != self._last_problem:
            if problem:
                event(30, "poll_problem", node=self.node, verdict=d.verdict, detail=problem)
            elif self._last_problem is not None:
                event(20, "poll_recovered", node=self.node, verdict=d.verdict)
            self._last_problem = problem
