"""The behaviour of one kube-proxy over time, as a pure, seeded, event-driven model.

Nothing here reads a clock: every method takes ``now_ns`` (wall-clock Unix nanoseconds, the
*true* time; a skewed node clock is added only when values are reported). ``advance(now)`` replays
every event up to ``now`` in time order (changes arriving, syncs starting and ending, restarts),
drawing randomness from one ``random.Random(seed)`` in event order, so the same seed and the same
sequence of calls give the same kube-proxy. Idle nodes cost nothing until someone asks.

What is modelled is what kube-proxy's health and metrics depend on (research §1.4, §2.4):
``BoundedFrequencyRunner(minSyncPeriod, maxInterval)`` per IP family; ``QueuedUpdate``/``Updated``
and the version's 503 rule; full versus partial iptables syncs; failed syncs timed into the
histograms and retried after ``syncPeriod``; network-programming latency per changed endpoint
after a successful sync.

Time scale ``K``: every *duration of behaviour* (sync period, minSyncPeriod, the hourly resync,
the 503 threshold, restart and flap intervals) is divided by ``K`` and the change rate is
multiplied by ``K``; reported timestamps stay on the wall clock. Latencies the model measures
from its own timeline (network programming, a hung sync) are multiplied back by ``K`` so the
histograms show the magnitudes an unscaled kube-proxy would report.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field, replace

import kpexporter.simulator.bodies as bodies
from kpexporter.simulator.bodies import NS, FamilyHealth, GoTime
from kpexporter.simulator.versions import Version

SYNC_BUCKETS: tuple[float, ...] = tuple(0.001 * 2**k for k in range(15))
"""``ExponentialBuckets(0.001, 2, 15)``: 0.001 … 16.384 s."""
SYNC_BUCKETS_US: tuple[float, ...] = tuple(1000.0 * 2**k for k in range(15))
"""Pre-1.14 ``ExponentialBuckets(1000, 2, 15)`` in microseconds."""
NETPROG_BUCKETS: tuple[float, ...] = (
    0.0,
    0.25,
    0.5,
    *(float(s) for s in range(1, 60)),
    *(float(s) for s in range(60, 120, 5)),
    *(float(s) for s in range(120, 301, 30)),
)
"""1.16+ ``MergeBuckets(...)`` with its leading 0: 81 finite bounds."""
NETPROG_BUCKETS_114: tuple[float, ...] = tuple(0.001 * 2**k for k in range(20))
"""1.14–1.15 ``ExponentialBuckets(0.001, 2, 20)``."""

FULL_SYNC_PERIOD_NS = 3600 * NS
MAX_PENDING_TRACKED = 10_000


class Histogram:
    """A Go histogram: per-bucket counts (last one is +Inf), sum and count."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        # Go puts v into the first bucket with v <= bound.
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[int]:
        out, acc = [], 0
        for c in self.counts:
            acc += c
            out.append(acc)
        return out

    def merged(self, other: Histogram) -> Histogram:
        h = Histogram(self.bounds)
        h.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        h.sum, h.count = self.sum + other.sum, self.count + other.count
        return h


@dataclass(frozen=True)
class Policy:
    """How a scenario makes the node behave; see ``scenarios.py`` for the named ones."""

    name: str
    change_rate: float = 0.05
    """Service/EndpointSlice changes per second (Poisson)."""
    sync_median_s: float = 0.03
    sync_sigma: float = 0.5
    sync_range_s: tuple[float, float] | None = None
    """Clamp every drawn sync duration into ``(low, high)``: a scenario that promises a range
    keeps to it (an unclamped log-normal lands ~2 % of draws past two sigmas)."""
    fail_prob: float = 0.0
    """Probability that a sync attempt fails (iptables-restore / nft error)."""
    stuck: bool = False
    """Sync attempts hang: nothing completes while this holds."""
    flap_period_s: float | None = None
    """Alternate healthy / stuck phases of this length, starting healthy."""
    restart_every_s: float | None = None
    restart_on_enter: bool = False
    node_eligible: bool = True
    clock_skew_s: float = 0.0
    strict_startup: bool = False
    """Count a never-synced family with an overdue queued change as unhealthy on every version
    (real kube-proxy does so only in 1.25–1.28; see scenarios.py ``never-synced``)."""
    propagation_median_s: float = 0.2
    """Control plane to node delay added to network programming latency."""


@dataclass(frozen=True)
class NodeConfig:
    """What is fixed for the life of a simulated node (its kube-proxy flags)."""

    name: str = "node-0"
    version: Version = field(default_factory=lambda: Version(30))
    mode: str = "iptables"
    ip_families: tuple[str, ...] = ("IPv4",)
    seed: int = 0
    time_scale: float = 1.0
    sync_period_s: float = 30.0
    min_sync_period_s: float = 1.0
    startup_delay_s: float = 1.2
    """From process start to the first (full) sync: informers syncing."""
    uptime_s: float | None = None
    """Process age when the model starts; None draws 10–30 min from the seed."""


class FamilyState:
    """One per-IP-family proxier: its runner, health bookkeeping and its own histograms."""

    def __init__(self, family: str, version: Version) -> None:
        self.family = family
        self.last_ok_ns: int | None = None
        self.last_queued_ns: int | None = None
        self.oldest_pending_ns: int | None = None
        self.pending: list[int] = []  # trigger times of unsynced endpoint changes
        self.service_pending = 0
        self.last_run_ns: int | None = None
        self.last_end_ns: int | None = None  # when the last run (ok, failed or hung) ended
        self.last_full_ns: int | None = None
        self.need_full = True
        self.requested_ns: int | None = None
        self.retry_ns: int | None = None
        self.hung_since_ns: int | None = None
        self.next_dur_s: float | None = None
        self.attempted = False
        self.sync = Histogram(SYNC_BUCKETS)
        self.sync_us = Histogram(SYNC_BUCKETS_US)
        self.full = Histogram(SYNC_BUCKETS)
        self.partial = Histogram(SYNC_BUCKETS)
        self.conntrack = Histogram(SYNC_BUCKETS)
        self.netprog = Histogram(
            NETPROG_BUCKETS if version.at_least(16) else NETPROG_BUCKETS_114
        )
        self.netprog_observed = False
        self.restore_failures = 0
        self.partial_restore_failures = 0
        self.nft_sync_failures = 0
        self.nft_cleanup_failures = 0
        self.conntrack_deleted = 0
        self.rules: dict[str, int] = {}
        self.rules_last: dict[str, int] = {}
        self.no_local_endpoints: dict[str, int] = {}


@dataclass(frozen=True)
class Probe:
    """One answer of the health server."""

    status: int
    body: bytes


class NodeModel:
    """One kube-proxy process (and its restarts) on one node."""

    def __init__(self, config: NodeConfig, policy: Policy, start_ns: int) -> None:
        self.config = config
        self.version = config.version
        self.rng = random.Random(f"{config.seed}/{config.name}")
        k = config.time_scale
        self.sync_period_ns = int(config.sync_period_s * NS / k)
        self.min_sync_ns = int(config.min_sync_period_s * NS / k)
        self.health_timeout_ns = 2 * self.sync_period_ns
        hourly = self.version.hourly_resync(config.mode)
        self.max_interval_ns = int(FULL_SYNC_PERIOD_NS / k) if hourly else self.sync_period_ns
        self.full_period_ns = int(FULL_SYNC_PERIOD_NS / k)
        uptime_s = config.uptime_s
        if uptime_s is None:
            uptime_s = self.rng.uniform(600, 1800)
        # Cluster shape, drawn once per node: drives rule counts.
        self.services = self.rng.randint(8, 40)
        self.local_policy_services = self.rng.randint(0, 3)
        # History before the simulator started runs as a healthy node, then the scenario begins.
        self.policy = _baseline(policy)
        self.scenario_since_ns = start_ns
        self.now_ns = start_ns - int(uptime_s * NS / k)
        self.restarts = -1
        self.next_restart_ns: int | None = None
        self._restart(self.now_ns)
        self.advance(start_ns)
        self._enter(policy, start_ns)

    # --- public API -----------------------------------------------------------------------------
    def advance(self, now_ns: int) -> None:
        """Replay every event up to ``now_ns``; an earlier instant is a no-op (no rewinding)."""
        while True:
            when, kind, fam = self._next_event()
            if when is None or when > now_ns:
                break
            self._apply(kind, when, fam)
        self.now_ns = max(self.now_ns, now_ns)

    def set_scenario(self, policy: Policy, now_ns: int) -> None:
        """Switch behaviour at ``now_ns`` (the past is replayed under the old one first)."""
        self.advance(now_ns)
        self._enter(policy, now_ns)

    def queue_change(self, now_ns: int, kind: str = "endpoint", family: str | None = None) -> None:
        """Inject one Service/EndpointSlice change (tests and the control endpoint use it)."""
        self.advance(now_ns)
        self._change(now_ns, kind, family)

    def probe(self, path: str, now_ns: int) -> Probe | None:
        """Answer ``/healthz`` or ``/livez`` like this version's handler; None for other paths."""
        livez = path == "/livez"
        if path != "/healthz" and not (livez and self.version.has_livez):
            return None
        self.advance(now_ns)
        status, body = self._render(now_ns, livez)
        if self.version.has_livez:
            counter = self.livez_total if livez else self.healthz_total
            counter[str(status)] = counter.get(str(status), 0) + 1
        return Probe(status, body)

    @property
    def families(self) -> list[FamilyState]:
        return [self.family_state[f] for f in self.config.ip_families]

    @property
    def skew_ns(self) -> int:
        return int(self.policy.clock_skew_s * NS)

    def node_time(self, true_ns: int) -> GoTime:
        """A ``time.Now()`` reading taken at ``true_ns`` by this process."""
        return GoTime(true_ns + self.skew_ns, true_ns - self.process_start_ns)

    def node_seconds(self, true_ns: int) -> float:
        """``SetToCurrentTime()``: the node clock as float Unix seconds."""
        return (true_ns + self.skew_ns) / NS

    def proxy_healthy(self, now_ns: int) -> bool:
        return self._health(now_ns)[0]

    def state(self, now_ns: int) -> dict[str, object]:
        """A JSON-able summary for ``/sim/state`` and for people debugging a scenario."""
        self.advance(now_ns)
        healthy, _ = self._health(now_ns)
        fams: dict[str, object] = {}
        for f in self.families:
            fams[f.family] = {
                "last_sync_age_s": None if f.last_ok_ns is None else (now_ns - f.last_ok_ns) / NS,
                "oldest_pending_age_s": None
                if f.oldest_pending_ns is None
                else (now_ns - f.oldest_pending_ns) / NS,
                "pending_endpoint_changes": len(f.pending),
                "syncs": f.sync.count,
                "hung": f.hung_since_ns is not None,
            }
        return {
            "node": self.config.name,
            "version": str(self.version),
            "mode": self.config.mode,
            "scenario": self.policy.name,
            "time_scale": self.config.time_scale,
            "sync_period_s": self.sync_period_ns / NS,
            "health_timeout_s": self.health_timeout_ns / NS,
            "uptime_s": (now_ns - self.process_start_ns) / NS,
            "proxy_healthy": healthy,
            "node_eligible": self.node_eligible,
            "clock_skew_s": self.policy.clock_skew_s,
            "restarts": self.restarts,
            "families": fams,
        }

    # --- scenario switching ------------------------------------------------------------------
    def _enter(self, policy: Policy, now_ns: int) -> None:
        self.policy = policy
        self.scenario_since_ns = now_ns
        self.node_eligible = policy.node_eligible
        for f in self.families:
            if f.hung_since_ns is not None:
                if not policy.stuck:
                    self._finish_hung(f, now_ns)
            elif self._run_start(f) >= now_ns:
                f.next_dur_s = None  # a sync not started yet lasts as the new scenario says
        k = self.config.time_scale
        self.next_restart_ns = (
            now_ns + int(policy.restart_every_s * NS / k) if policy.restart_every_s else None
        )
        if policy.restart_on_enter:
            self._restart(now_ns)
        self.next_change_ns = self._draw_next_change(now_ns)

    def _restart(self, t: int) -> None:
        """A new kube-proxy process: every counter, histogram and timestamp starts over."""
        self.restarts += 1
        self.process_start_ns = t
        self.init_ns = t + int(self.config.startup_delay_s * NS / self.config.time_scale)
        self.family_state = {f: FamilyState(f, self.version) for f in self.config.ip_families}
        self.global_oldest_pending_ns: int | None = None  # 1.25–1.28: one value for all families
        self.endpoint_changes_total = 0
        self.service_changes_total = 0
        self.healthz_total: dict[str, int] = {}
        self.livez_total: dict[str, int] = {}
        self.node_eligible = self.policy.node_eligible
        self.next_change_ns = self._draw_next_change(t)

    # --- the event loop ----------------------------------------------------------------------
    def _draw_next_change(self, t: int) -> int | None:
        rate = self.policy.change_rate * self.config.time_scale
        if rate <= 0:
            return None
        return t + max(1, int(self.rng.expovariate(rate) * NS))

    def _stuck_at(self, t: int) -> bool:
        p = self.policy
        if p.stuck:
            return True
        if p.flap_period_s is None or t < self.scenario_since_ns:
            return False
        period = int(p.flap_period_s * NS / self.config.time_scale)
        return ((t - self.scenario_since_ns) // period) % 2 == 1

    def _unstick_at(self, t: int) -> int | None:
        p = self.policy
        if p.stuck or p.flap_period_s is None:
            return None
        period = int(p.flap_period_s * NS / self.config.time_scale)
        idx = (t - self.scenario_since_ns) // period
        if idx % 2 == 0:  # hung during a healthy phase cannot happen; finish at once
            return t
        return self.scenario_since_ns + (idx + 1) * period

    def _run_start(self, f: FamilyState) -> int:
        if f.last_run_ns is None:
            return self.init_ns
        earliest = f.last_run_ns + self.min_sync_ns
        cands = [f.last_run_ns + self.max_interval_ns]
        if f.requested_ns is not None:
            cands.append(max(f.requested_ns, earliest))
        if f.retry_ns is not None:
            cands.append(max(f.retry_ns, earliest))
        # Runs never overlap: a run asked for while one is going starts when that one ends
        # (a sync longer than minSyncPeriod, or the sync that hung until now).
        return max(min(cands), f.last_end_ns or 0)

    def _duration_s(self, f: FamilyState) -> float:
        if f.next_dur_s is None:
            p = self.policy
            d = p.sync_median_s * math.exp(self.rng.gauss(0.0, p.sync_sigma))
            if p.sync_range_s is not None:
                d = min(max(d, p.sync_range_s[0]), p.sync_range_s[1])
            f.next_dur_s = round(max(d, 1e-4), 9)
        return f.next_dur_s

    def _next_event(self) -> tuple[int | None, str, FamilyState | None]:
        best: tuple[int | None, str, FamilyState | None] = (None, "", None)

        def offer(t: int | None, kind: str, fam: FamilyState | None = None) -> None:
            nonlocal best
            if t is not None and (best[0] is None or t < best[0]):
                best = (t, kind, fam)

        offer(self.next_restart_ns, "restart")
        offer(self.next_change_ns, "change")
        for f in self.families:
            if f.hung_since_ns is not None:
                offer(self._unstick_at(f.hung_since_ns), "unhang", f)
                continue
            start = self._run_start(f)
            if self._stuck_at(start):
                offer(start, "hang", f)
            else:
                dur_ns = int(self._duration_s(f) * NS / self.config.time_scale)
                offer(start + dur_ns, "sync", f)
        return best

    def _apply(self, kind: str, t: int, f: FamilyState | None) -> None:
        if kind == "restart":
            self._restart(t)
            assert self.next_restart_ns is not None
            period = int((self.policy.restart_every_s or 0) * NS / self.config.time_scale)
            self.next_restart_ns = t + max(period, 1)
        elif kind == "change":
            self._change(t, "endpoint" if self.rng.random() < 0.75 else "service", None)
            self.next_change_ns = self._draw_next_change(t)
        elif kind == "hang" and f is not None:
            f.hung_since_ns = self._run_start(f)
            f.last_run_ns = f.hung_since_ns
            f.requested_ns = f.retry_ns = None
            f.attempted = True
        elif kind == "unhang" and f is not None:
            self._finish_hung(f, t)
        elif kind == "sync" and f is not None:
            start = self._run_start(f)
            dur = self._duration_s(f)
            f.next_dur_s = None
            f.last_run_ns = start
            f.requested_ns = f.retry_ns = None
            ok = self.rng.random() >= self.policy.fail_prob
            self._complete(f, t, dur, ok)

    def _change(self, t: int, kind: str, family: str | None) -> None:
        if kind == "service":
            self.service_changes_total += 1
            targets = self.families
        else:
            self.endpoint_changes_total += 1
            name = family or self.rng.choice(self.config.ip_families)
            targets = [self.family_state[name]]
        for f in targets:
            if kind == "service":
                f.service_pending += 1
            elif len(f.pending) < MAX_PENDING_TRACKED:
                f.pending.append(t)
            if t < self.init_ns:
                continue  # not initialized: the first sync will pick it up, nothing is queued
            # Proxier.Sync(): QueuedUpdate, last_queued_timestamp, runner.Run()
            if f.oldest_pending_ns is None:
                f.oldest_pending_ns = t
            if self.global_oldest_pending_ns is None:
                self.global_oldest_pending_ns = t
            f.last_queued_ns = t
            if f.requested_ns is None:
                f.requested_ns = t

    def _finish_hung(self, f: FamilyState, t: int) -> None:
        start = f.hung_since_ns if f.hung_since_ns is not None else t
        f.hung_since_ns = None
        f.next_dur_s = None
        self._complete(f, t, (t - start) / NS * self.config.time_scale, True)

    def _complete(self, f: FamilyState, end: int, dur_s: float, ok: bool) -> None:
        """End of ``syncProxyRules()``: timed in a defer whether it succeeded or not."""
        v, mode = self.version, self.config.mode
        f.attempted = True
        f.last_end_ns = end
        full = (
            f.need_full or f.last_full_ns is None or end - f.last_full_ns >= self.full_period_ns
        )
        f.sync.observe(dur_s)
        f.sync_us.observe(round(dur_s * 1e6, 3))
        if mode == "iptables" and v.at_least(28):
            (f.full if full else f.partial).observe(dur_s)
        if not ok:
            if mode == "nftables" and v.at_least(31):
                f.nft_sync_failures += 1
            else:
                f.restore_failures += 1
                if mode == "iptables" and v.at_least(26) and not full:
                    f.partial_restore_failures += 1
            f.need_full = True
            f.retry_ns = end + self.sync_period_ns
            return
        if full:
            f.last_full_ns = end
        f.need_full = False
        f.last_ok_ns = end
        f.oldest_pending_ns = None
        self.global_oldest_pending_ns = None
        k, skew_s = self.config.time_scale, self.policy.clock_skew_s
        if v.at_least(14):
            for trigger in f.pending:
                if trigger < self.process_start_ns:
                    continue
                prop = self.policy.propagation_median_s * math.exp(self.rng.gauss(0.0, 0.5))
                wait = (end - trigger) / NS * k
                f.netprog.observe(round(max(0.0, wait + prop + skew_s), 9))
                f.netprog_observed = True
        f.pending.clear()
        f.service_pending = 0
        if mode == "iptables":  # the iptables_total/_last gauges are set by that proxier only
            svc = self.services
            f.rules = {"filter": 4 + self.local_policy_services * 2, "nat": 5 + 6 * svc}
            f.rules_last = (
                dict(f.rules) if full else {"filter": 4, "nat": 5 + self.rng.randint(1, 8)}
            )
        f.no_local_endpoints = {"external": 0, "internal": 0}
        if v.at_least(33):
            f.conntrack.observe(round(0.002 * math.exp(self.rng.gauss(0.0, 0.6)), 9))
            f.conntrack_deleted += self.rng.choice((0, 0, 0, 1, 2))

    # --- health (research §1.4) ----------------------------------------------------------------
    def _overdue(self, pending_since: int | None, now: int) -> bool:
        return pending_since is not None and now - pending_since >= self.health_timeout_ns

    def _latest_ok(self) -> int | None:
        oks = [f.last_ok_ns for f in self.families if f.last_ok_ns is not None]
        return max(oks) if oks else None

    def _health(self, now: int) -> tuple[bool, int | None]:
        """(proxy healthy, lastUpdated to report on 503) under this version's rule."""
        v = self.version
        strict = self.policy.strict_startup
        never = [
            f for f in self.families
            if f.last_ok_ns is None and self._overdue(f.oldest_pending_ns, now)
        ]
        if strict and never:
            return False, None
        latest = self._latest_ok()
        if not v.at_least(17):
            unhealthy = latest is not None and now > latest + self.health_timeout_ns
            return not unhealthy, latest
        if not v.at_least(25):
            queued = [f.last_queued_ns for f in self.families if f.last_queued_ns is not None]
            last_queued = max(queued) if queued else None
            healthy = (
                latest is None
                or last_queued is None
                or latest > last_queued
                or now - last_queued < self.health_timeout_ns
            )
            return healthy, latest
        if not v.at_least(29):
            return not self._overdue(self.global_oldest_pending_ns, now), latest
        for f in self.families:
            if f.last_ok_ns is not None and self._overdue(f.oldest_pending_ns, now):
                return False, f.last_ok_ns
        return True, latest

    def _render(self, now: int, livez: bool) -> tuple[int, bytes]:
        v = self.version
        healthy, last_ok = self._health(now)
        eligible = self.node_eligible
        gen = v.healthz_generation
        current = self.node_time(now)
        stored = GoTime.zero() if last_ok is None else self.node_time(last_ok)
        if gen == "json":
            return self._render_json(now, livez, healthy, eligible)
        if gen == "raw":
            return (200 if healthy else 503), bodies.fmt_body(stored, current)
        ok = healthy and (livez or gen == "fmt" or eligible)
        reported = current if ok else stored
        if gen == "fmt" or livez:
            return (200 if ok else 503), bodies.fmt_body(reported, current)
        return (200 if ok else 503), bodies.fmt_body_node_eligible(reported, current, eligible)

    def _render_json(
        self, now: int, livez: bool, healthy: bool, eligible: bool
    ) -> tuple[int, bytes]:
        status: dict[str, FamilyHealth] = {}
        for f in self.families:
            overdue = self._overdue(f.oldest_pending_ns, now)
            if f.last_ok_ns is not None:
                status[f.family] = FamilyHealth(self.node_time(f.last_ok_ns), not overdue)
            elif self.policy.strict_startup and overdue:
                status[f.family] = FamilyHealth(GoTime.zero(), False)
        latest = self._latest_ok()
        last_updated = GoTime.zero() if latest is None else self.node_time(latest)
        ok = healthy and (livez or eligible)
        if ok:
            # The handler calls clock.Now() again after Health(): a few µs after currentTime.
            last_updated = self.node_time(now + 2_000 + (now // 7) % 9_000)
        body = bodies.json_body(
            last_updated, self.node_time(now), healthy, status, None if livez else eligible
        )
        return (200 if ok else 503), body


def _baseline(policy: Policy) -> Policy:
    """The healthy history a node has before its scenario starts (keeps skew: it is the clock)."""
    return replace(
        Policy(name="healthy"),
        clock_skew_s=policy.clock_skew_s,
    )
