"""Every simulator scenario through the real exporter and a real Prometheus.

Each test asks Prometheus (its HTTP API) what it stored from scraping the exporter that polls
a simulated kube-proxy in that scenario. Nothing here times anything: each condition is polled
until it holds or a generous deadline passes, and the failure message shows what Prometheus
returned. See ``conftest.py`` for the time scale (syncPeriod 0.5 s, 503 after 1 s, restarts
every 5 s, flaps every 2 s) and the exporter's windows (``10s`` and ``1m``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import pairwise

import pytest

from kpexporter.simulator import SCENARIOS
from tests.e2e.conftest import CLOCK_SKEW, SYNC_PERIOD, WINDOWS, KpPair
from tests.e2e.harness import PrometheusServer, Sample, sample_value

pytestmark = pytest.mark.e2e

SYNC = "kpexporter_sync_proxy_rules_duration_seconds"
NETPROG = "kpexporter_network_programming_duration_seconds"
QUANTILES = ("0.5", "0.9", "0.99")
SLOW_SYNC_THRESHOLD = 1.0
"""The sync-latency threshold (seconds) the slow-sync scenario must cross at p99."""
HEALTH_TIMEOUT = 2 * SYNC_PERIOD
"""kube-proxy's 503 threshold: a change queued longer than 2 x syncPeriod."""


def eq(target: float) -> Callable[[float], bool]:
    return lambda v: v == target


def by_label(result: list[Sample], label: str) -> dict[str, float]:
    return {s["metric"].get(label, ""): sample_value(s) for s in result}


def wait_history(prom: PrometheusServer, pair: KpPair, seconds: int) -> None:
    """Until Prometheus holds about ``seconds`` worth of scrapes of the pair's exporter."""
    prom.wait_for_value(f"count_over_time({pair.m('kpexporter_up')}[{seconds}s])",
                        lambda n: n >= seconds - 2, timeout=seconds + 60,
                        what=f"{seconds}s of scrapes of {pair.node}")


def test_healthy(scenario_pairs: dict[str, KpPair], prometheus: PrometheusServer) -> None:
    p = scenario_pairs["healthy"]
    prometheus.wait_for_value(p.m("kpexporter_up"), eq(1))
    prometheus.wait_for_value(p.m("kpexporter_healthz_healthy"), eq(1))
    prometheus.wait_for_value(p.m("kpexporter_healthz_status_code"), eq(200))
    prometheus.wait_for_value(p.m("kpexporter_healthz_node_eligible"), eq(1))
    prometheus.wait_for_value(p.m("kpexporter_proxy_mode_info", mode="iptables"), eq(1))

    # Every window (lifetime, 10s, 1m) has observations, so every quantile is a finite
    # number; healthy syncs (~30 ms) stay far below the slow-sync threshold.
    windows = ("lifetime", *WINDOWS)
    counts = prometheus.wait_for(
        p.m(SYNC + "_count"),
        lambda r: by_label(r, "window").keys() == set(windows)
        and all(v > 0 for v in by_label(r, "window").values()),
        what="a positive sync count in every window")
    assert len(counts) == len(windows)

    def quantiles_ok(r: list[Sample]) -> bool:
        return len(r) == len(windows) * len(QUANTILES) and all(
            math.isfinite(sample_value(s)) and 0 < sample_value(s) < SLOW_SYNC_THRESHOLD
            for s in r)

    prometheus.wait_for(p.m(SYNC), quantiles_ok,
                        what="finite sync quantiles below 1 s in every window")
    prometheus.wait_for(p.m(NETPROG, window=WINDOWS[0]),
                        lambda r: len(r) == 3 and all(math.isfinite(sample_value(s)) for s in r),
                        what="finite network-programming quantiles")
    # Changes are synced within minSyncPeriod: never anywhere near kube-proxy's 503 rule.
    wait_history(prometheus, p, 5)
    pending = prometheus.query_value(f"max_over_time({p.m('kpexporter_sync_pending_seconds')}"
                                     "[1m])")
    assert pending is not None and pending < HEALTH_TIMEOUT, pending


def test_slow_sync(scenario_pairs: dict[str, KpPair], prometheus: PrometheusServer) -> None:
    p = scenario_pairs["slow-sync"]
    for window in WINDOWS:
        p99 = prometheus.wait_for_value(
            p.m(SYNC, window=window, quantile="0.99"), lambda v: v > SLOW_SYNC_THRESHOLD,
            what=f"the {window} sync p99 above {SLOW_SYNC_THRESHOLD} s")
        assert p99 <= 16.384, p99  # the top finite sync bucket: quantiles never go past it
    # Slow but syncing: kube-proxy stays healthy, nothing waits past its 503 rule.
    prometheus.wait_for_value(p.m("kpexporter_healthz_healthy"), eq(1))
    wait_history(prometheus, p, 5)
    assert prometheus.query_value(f"min_over_time({p.m('kpexporter_healthz_healthy')}[1m])") == 1


def test_stuck(scenario_pairs: dict[str, KpPair], prometheus: PrometheusServer) -> None:
    p = scenario_pairs["stuck"]
    prometheus.wait_for_value(p.m("kpexporter_up"), eq(1))
    prometheus.wait_for_value(p.m("kpexporter_healthz_healthy"), eq(0),
                              what="the 503 once a change waited 2 x syncPeriod")
    prometheus.wait_for_value(p.m("kpexporter_healthz_status_code"), eq(503))
    prometheus.wait_for_value(f"time() - {p.m('kpexporter_sync_last_timestamp_seconds')}",
                              lambda v: v > 10 * SYNC_PERIOD,
                              what="the last sync falling behind (no sync completes)")


def test_stuck_pending_grows(scenario_pairs: dict[str, KpPair],
                             prometheus: PrometheusServer) -> None:
    """A change queued in a hung kube-proxy waits longer and longer: pending must grow.

    The stuck node hangs from before its exporter's first poll, so after 10 s of scrapes
    every sample of the last few seconds is past the 503 threshold and each is larger
    than the one before by about the time between them.
    """
    p = scenario_pairs["stuck"]
    pending = p.m("kpexporter_sync_pending_seconds")
    prometheus.wait_for_value(p.m("kpexporter_healthz_healthy"), eq(0))
    wait_history(prometheus, p, 10)
    now = prometheus.query_value("time()")
    assert now is not None
    series = prometheus.query_range(pending, now - 6, now, 1)
    assert len(series) == 1, series
    values = [float(v) for _, v in series[0]["values"]]
    assert len(values) >= 5, values
    assert all(b >= a for a, b in pairwise(values)), f"pending fell back: {values}"
    assert values[-1] - values[0] >= 2.0, f"pending did not grow with time: {values}"
    assert min(values) > HEALTH_TIMEOUT, f"pending below the 503 threshold: {values}"


def test_restart(scenario_pairs: dict[str, KpPair], prometheus: PrometheusServer) -> None:
    p = scenario_pairs["restart"]
    lifetime = p.m(SYNC + "_count", window="lifetime")
    prometheus.wait_for_value(f"resets({lifetime}[1m])", lambda v: v >= 2,
                              what="two kube-proxy restarts (counter resets) in Prometheus")
    # Prometheus's own view of the lifetime counter across the restarts.
    inc = prometheus.query_value(f"increase({lifetime}[1m])")
    assert inc is not None and inc >= 0, inc
    for window in WINDOWS:
        # The exporter's windowed increases are reset-aware: never negative ...
        for part in ("_count", "_sum"):
            low = prometheus.query_value(
                f"min_over_time({p.m(SYNC + part, window=window)}[1m])")
            assert low is not None and low >= 0, (window, part, low)
        # ... and no spike: quantiles stay at healthy sync latencies (~30 ms, far below 1 s).
        for q in QUANTILES:
            high = prometheus.query_value(
                f"max_over_time({p.m(SYNC, window=window, quantile=q)}[1m])")
            assert high is not None and math.isfinite(high), (window, q, high)
            assert 0 < high < SLOW_SYNC_THRESHOLD, (window, q, high)
    # No window ever counts more than a longer one at the same moment (a reset counted as
    # a fresh total would make the short window jump above the long one).
    short, long_ = (p.m(SYNC + "_count", window=w) for w in WINDOWS)
    excess = prometheus.query_value(
        f"max_over_time(({short} - ignoring(window) {long_})[1m:1s])")
    assert excess is not None and excess <= 0, excess
    prometheus.wait_for_value(p.m("kpexporter_up"), eq(1))


def test_idle(scenario_pairs: dict[str, KpPair], prometheus: PrometheusServer) -> None:
    p = scenario_pairs["idle"]
    # The last sync ages well past syncPeriod (iptables re-syncs only hourly when idle) ...
    prometheus.wait_for_value(f"time() - {p.m('kpexporter_sync_last_timestamp_seconds')}",
                              lambda v: v > 10 * SYNC_PERIOD,
                              what="the last sync aging past 10 x syncPeriod")
    # ... and that is not unhealthy: nothing is queued, /healthz stays 200 the whole time.
    prometheus.wait_for_value(p.m("kpexporter_healthz_healthy"), eq(1))
    prometheus.wait_for_value(p.m("kpexporter_sync_pending_seconds"), eq(0))
    assert prometheus.query_value(f"min_over_time({p.m('kpexporter_healthz_healthy')}[1m])") == 1
    assert prometheus.query_value(
        f"max_over_time({p.m('kpexporter_sync_pending_seconds')}[1m])") == 0
    # A window without syncs: _count 0 and NaN quantiles (not 0, not an error).
    result = prometheus.wait_for(
        p.m(SYNC, window=WINDOWS[0]),
        lambda r: len(r) == 3 and all(math.isnan(sample_value(s)) for s in r),
        what="NaN quantiles over a window without syncs")
    assert len(result) == 3
    prometheus.wait_for_value(p.m(SYNC + "_count", window=WINDOWS[0]), eq(0))


def test_never_synced(scenario_pairs: dict[str, KpPair], prometheus: PrometheusServer) -> None:
    p = scenario_pairs["never-synced"]
    prometheus.wait_for_value(p.m("kpexporter_up"), eq(1))
    prometheus.wait_for_value(p.m("kpexporter_healthz_healthy"), eq(0))
    prometheus.wait_for_value(p.m("kpexporter_healthz_status_code"), eq(503))
    prometheus.wait_for_value(p.m("kpexporter_healthz_staleness_seconds"), eq(math.inf),
                              what="+Inf staleness (lastUpdated is the zero time)")
    assert prometheus.query(p.m("kpexporter_healthz_last_updated_timestamp_seconds")) == []
    # The sync loop runs and fails: attempts are timed, nothing was ever programmed.
    # kube-proxy's 0 (never synced) is shown as absent, like healthz's zero lastUpdated.
    prometheus.wait_for(p.m("kpexporter_sync_last_timestamp_seconds"), lambda r: r == [],
                        what="no last-sync timestamp (never synced)")
    prometheus.wait_for_value(f"increase({p.m(SYNC + '_count', window='lifetime')}[5s])",
                              lambda v: v > 0, what="failing sync attempts being counted")


def test_first_sync_fails(scenario_pairs: dict[str, KpPair],
                          prometheus: PrometheusServer) -> None:
    """1.29+ answers 200 by the start-up rule while nothing was ever programmed."""
    p = scenario_pairs["first-sync-fails"]
    wait_history(prometheus, p, 5)
    assert prometheus.query_value(f"min_over_time({p.m('kpexporter_healthz_healthy')}[1m])") == 1
    # Only the metrics tell: never synced, changes waiting, attempts counted.
    # kube-proxy's 0 (never synced) is shown as absent, like healthz's zero lastUpdated.
    prometheus.wait_for(p.m("kpexporter_sync_last_timestamp_seconds"), lambda r: r == [],
                        what="no last-sync timestamp (never synced)")
    prometheus.wait_for_value(f"max_over_time({p.m('kpexporter_sync_pending_seconds')}[10s])",
                              lambda v: v > 0, what="a change waiting")
    prometheus.wait_for_value(f"increase({p.m(SYNC + '_count', window='lifetime')}[5s])",
                              lambda v: v > 0, what="failing sync attempts being counted")


def test_draining(scenario_pairs: dict[str, KpPair], prometheus: PrometheusServer) -> None:
    p = scenario_pairs["draining"]
    prometheus.wait_for_value(p.m("kpexporter_healthz_node_eligible"), eq(0))
    prometheus.wait_for_value(p.m("kpexporter_healthz_healthy"), eq(0))
    prometheus.wait_for_value(p.m("kpexporter_healthz_status_code"), eq(503))
    prometheus.wait_for_value(p.m("kpexporter_up"), eq(1), what="a draining node still up")
    # Not a kube-proxy fault: it keeps syncing.
    prometheus.wait_for_value(f"increase({p.m(SYNC + '_count', window='lifetime')}[5s])",
                              lambda v: v > 0, what="syncs continuing while draining")


def test_flapping(scenario_pairs: dict[str, KpPair], prometheus: PrometheusServer) -> None:
    p = scenario_pairs["flapping"]
    healthy = p.m("kpexporter_healthz_healthy")
    prometheus.wait_for(
        f"min_over_time({healthy}[30s]) == 0 and max_over_time({healthy}[30s]) == 1",
        what="/healthz taking both values within 30 s")
    prometheus.wait_for_value(f"changes({healthy}[1m])", lambda v: v >= 2,
                              what="at least two health transitions")
    prometheus.wait_for_value(p.m("kpexporter_up"), eq(1))


def test_clock_skew(scenario_pairs: dict[str, KpPair], prometheus: PrometheusServer) -> None:
    p = scenario_pairs["clock-skew"]
    skew = prometheus.wait_for_value(p.m("kpexporter_clock_skew_seconds"),
                                     lambda v: abs(v - CLOCK_SKEW) < 2,
                                     what=f"a clock skew of about {CLOCK_SKEW} s")
    assert abs(skew - CLOCK_SKEW) < 2
    prometheus.wait_for_value(p.m("kpexporter_healthz_healthy"), eq(1))
    # The skew is kube-proxy's clock, not a waiting change: pending stays near 0.
    wait_history(prometheus, p, 5)
    pending = prometheus.query_value(
        f"max_over_time({p.m('kpexporter_sync_pending_seconds')}[1m])")
    assert pending is not None and pending < HEALTH_TIMEOUT, pending
    # Network programming is measured against the skewed clock: inflated by the skew.
    prometheus.wait_for_value(p.m(NETPROG, window=WINDOWS[1], quantile="0.5"),
                              lambda v: v > CLOCK_SKEW / 2,
                              what="network programming p50 inflated by the skew")


def test_restore_failures(scenario_pairs: dict[str, KpPair],
                          prometheus: PrometheusServer) -> None:
    p = scenario_pairs["restore-failures"]
    prometheus.wait_for_value(p.m("kpexporter_healthz_healthy"), eq(0),
                              what="the 503 once a change waited 2 x syncPeriod")
    prometheus.wait_for_value(p.m("kpexporter_up"), eq(1))
    wait_history(prometheus, p, 10)
    last_sync = p.m("kpexporter_sync_last_timestamp_seconds")
    # Attempts keep being timed into the histogram, but the last success stands still ...
    prometheus.wait_for_value(f"increase({p.m(SYNC + '_count', window='lifetime')}[10s])",
                              lambda v: v > 0, what="failed sync attempts being counted")
    assert prometheus.query_value(f"changes({last_sync}[10s])") == 0
    prometheus.wait_for_value(f"time() - {last_sync}", lambda v: v > 10 * SYNC_PERIOD,
                              what="the last successful sync falling behind")
    # ... while changes wait.
    prometheus.wait_for_value(f"max_over_time({p.m('kpexporter_sync_pending_seconds')}[10s])",
                              lambda v: v > 0, what="a change waiting")


def test_churn(scenario_pairs: dict[str, KpPair], prometheus: PrometheusServer) -> None:
    p, calm = scenario_pairs["churn"], scenario_pairs["healthy"]
    short = WINDOWS[0]
    prometheus.wait_for_value(p.m(NETPROG + "_count", window=short), lambda v: v > 0,
                              what=f"network programming observed in the {short} window")
    prometheus.wait_for_value(p.m(SYNC + "_count", window=short), lambda v: v > 0)
    # Heavy churn programs far more endpoints than the healthy node in the same window.
    prometheus.wait_for(
        f"{p.m(NETPROG + '_count', window=short)} > ignoring(node, instance) "
        f"5 * {calm.m(NETPROG + '_count', window=short)}",
        what="churn's windowed count above 5 x the healthy node's")
    prometheus.wait_for_value(p.m("kpexporter_healthz_healthy"), eq(1))


def test_every_scenario_has_a_test() -> None:
    missing = [s for s in SCENARIOS if f"test_{s.replace('-', '_')}" not in globals()]
    assert not missing, f"scenarios without an end-to-end test: {missing}"
