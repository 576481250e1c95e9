"""``HistogramHistory`` and ``increase``: Prometheus ``increase()`` semantics, bounded memory.

The property test compares the history against a deliberately naive reference: Prometheus
2.42's ``increase`` loop (``last - first``, plus the previous value at every drop) over the
raw samples, with no dedupe, pruning or reset correction to share bugs with.
"""

from __future__ import annotations

import itertools
import math
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kpexporter.stats.histogram import Buckets, increase
from kpexporter.stats.quantile import quantile
from kpexporter.stats.windows import HistogramHistory

LES = ("0.5", "1", "+Inf")
BOUNDS = (0.5, 1.0, math.inf)


def snap(counts: tuple[float, ...], s: float | None = None, count: float | None = None) -> Buckets:
    """A snapshot over ``LES``; ``_count`` defaults to the +Inf bucket, ``_sum`` to 10×count."""
    c = counts[-1] if count is None else count
    return Buckets(LES, BOUNDS, tuple(map(float, counts)), float(10 * c if s is None else s), c)


def values(b: Buckets | None) -> tuple[float, ...]:
    assert b is not None
    return (*b.counts, b.sum, b.count)


def prometheus_increase(samples: list[float]) -> float:
    """Prometheus 2.42 ``extrapolatedRate`` for counters, minus the extrapolation."""
    result = samples[-1] - samples[0]
    last = 0.0
    for v in samples:
        if v < last:
            result += last
        last = v
    return result


# --- increase() -------------------------------------------------------------------------


def test_increase_plain() -> None:
    assert values(increase(snap((1, 2, 3)), snap((2, 4, 7)))) == (1, 2, 4, 40, 4)


def test_increase_reset_takes_the_new_value() -> None:
    assert values(increase(snap((5, 6, 9)), snap((1, 1, 2)))) == (1, 1, 2, 20, 2)


def test_increase_each_series_on_its_own() -> None:
    old = snap((5, 6, 9), s=100, count=9)
    new = snap((4, 8, 12), s=50, count=12)  # only le=0.5 and _sum dropped
    assert values(increase(old, new)) == (4, 2, 3, 50, 3)


def test_increase_layout_change_is_a_full_reset() -> None:
    other = Buckets(("1", "+Inf"), (1.0, math.inf), (3.0, 4.0), 7.0, 4.0)
    assert increase(snap((1, 2, 3)), other) is other


def test_increase_rounds_like_prometheus() -> None:
    """On a reset Prometheus computes (new - old) + old, which is not always new."""
    before, after = 7.64, 1.95  # a _sum that dropped: kube-proxy restarted
    b_old = Buckets(("+Inf",), (math.inf,), (0.0,), before, 0.0)
    b_new = Buckets(("+Inf",), (math.inf,), (0.0,), after, 0.0)
    got = increase(b_old, b_new).sum
    assert got == prometheus_increase([before, after]) == 1.9500000000000002
    assert got != after  # the reason to keep Go's expression


# --- HistogramHistory -------------------------------------------------------------------


def test_empty_history() -> None:
    h = HistogramHistory(horizon=300)
    assert h.latest() is None
    assert h.window(now=0, seconds=60) is None
    assert len(h) == 0


def test_one_snapshot_is_a_zero_increase_with_nan_quantiles() -> None:
    h = HistogramHistory(horizon=300)
    b = snap((1, 2, 3))
    h.add(0, b)
    w = h.window(now=0, seconds=300)
    assert h.latest() is b
    assert values(w) == (0, 0, 0, 0, 0)
    assert w is not None and w.les == LES and w.bounds == BOUNDS
    assert math.isnan(quantile(0.5, w))


def test_plain_window() -> None:
    h = HistogramHistory(horizon=300)
    for t, c in enumerate([(0, 0, 0), (1, 2, 3), (2, 4, 6), (4, 5, 8)]):
        h.add(t * 60, snap(c))
    assert values(h.window(now=180, seconds=60)) == (2, 1, 2, 20, 2)
    assert values(h.window(now=180, seconds=120)) == (3, 3, 5, 50, 5)
    assert values(h.window(now=180, seconds=180)) == (4, 5, 8, 80, 8)


def test_baseline_exactly_at_now_minus_window_is_used() -> None:
    """Closed range, as Prometheus 2.42: a sample at exactly ``now - window`` is the start."""
    h = HistogramHistory(horizon=300)
    h.add(100, snap((1, 1, 1)))
    h.add(160, snap((2, 2, 2)))
    h.add(220, snap((4, 4, 4)))
    assert values(h.window(now=220, seconds=60)) == (2, 2, 2, 20, 2)
    assert values(h.window(now=220, seconds=59.999)) == (2, 2, 2, 20, 2)
    assert values(h.window(now=220, seconds=0)) == (0, 0, 0, 0, 0)
    assert values(h.window(now=220, seconds=60.001)) == (3, 3, 3, 30, 3)


def test_window_older_than_history_starts_at_first_snapshot() -> None:
    """The exporter is younger than the window: the window starts at its first poll."""
    h = HistogramHistory(horizon=3600)
    h.add(1000, snap((5, 5, 5)))
    h.add(1015, snap((6, 7, 8)))
    h.add(1030, snap((6, 8, 9)))
    assert values(h.window(now=1030, seconds=3600)) == (1, 3, 4, 40, 4)
    assert values(h.window(now=1030, seconds=31)) == (1, 3, 4, 40, 4)


def test_reset_in_the_middle_of_a_window() -> None:
    h = HistogramHistory(horizon=600)
    for t, c in enumerate([(5, 8, 10), (7, 12, 20), (1, 2, 5), (3, 4, 15)]):
        h.add(t * 60, snap(c))
    # +Inf: 10 → 20 (+10), restart → 5 (+5), → 15 (+10) = 25: Prometheus's 15 - 10 + 20
    assert values(h.window(now=180, seconds=180)) == (
        prometheus_increase([5, 7, 1, 3]),
        prometheus_increase([8, 12, 2, 4]),
        25,
        250,
        25,
    )
    # a window that starts after the reset sees no correction
    assert values(h.window(now=180, seconds=60)) == (2, 2, 10, 100, 10)
    # a window that ends at the reset's first sample includes it
    assert h.window(now=180, seconds=120) is not None


def test_reset_of_a_single_bucket() -> None:
    h = HistogramHistory(horizon=600)
    for t, c in enumerate([(5, 8, 10), (2, 9, 11), (3, 10, 12)]):
        h.add(t * 60, snap(c))
    w = h.window(now=120, seconds=120)
    assert values(w) == (prometheus_increase([5, 2, 3]), 2, 2, 20, 2)
    assert values(w)[0] == 3 - 5 + 5  # 3: the drop 5 → 2 reads as a reset


def test_reset_to_the_same_value_is_invisible_as_in_prometheus() -> None:
    h = HistogramHistory(horizon=600)
    h.add(0, snap((1, 1, 1)))
    h.add(60, snap((1, 1, 1)))  # restarted and got the same counts: nothing to see
    assert values(h.window(now=60, seconds=60)) == (0, 0, 0, 0, 0)


def test_idle_snapshots_are_deduplicated_and_windows_stay_right() -> None:
    h = HistogramHistory(horizon=3600)
    h.add(0, snap((1, 2, 3)))
    for i in range(1, 101):
        h.add(i * 15, snap((1, 2, 3)))
        assert len(h) == 1
    h.add(101 * 15, snap((1, 3, 5)))
    assert len(h) == 2
    now = 101 * 15
    assert values(h.window(now=now, seconds=15)) == (0, 1, 2, 20, 2)
    assert values(h.window(now=now, seconds=300)) == (0, 1, 2, 20, 2)
    for i in range(102, 202):
        h.add(i * 15, snap((1, 3, 5)))
    assert len(h) == 2
    now = 201 * 15
    # the change at 1515 is older than 5 minutes: the 5m window is idle, the 1h one is not
    assert values(h.window(now=now, seconds=300)) == (0, 0, 0, 0, 0)
    assert values(h.window(now=now, seconds=3600)) == (0, 1, 2, 20, 2)
    assert h.latest() == snap((1, 3, 5))


def test_idle_then_reset_still_compares_with_the_last_value() -> None:
    h = HistogramHistory(horizon=3600)
    for i in range(50):
        h.add(i * 15, snap((4, 4, 4)))
    h.add(50 * 15, snap((1, 1, 1)))
    assert values(h.window(now=750, seconds=15)) == (1, 1, 1, 10, 1)


def test_horizon_pruning_keeps_memory_bounded() -> None:
    h = HistogramHistory(horizon=300)
    for i in range(10_000):
        h.add(i * 15, snap((i, 2 * i, 3 * i)))
        assert len(h) <= 300 // 15 + 2
    now = 9_999 * 15
    assert values(h.window(now=now, seconds=300)) == (20, 40, 60, 600, 60)
    assert values(h.window(now=now, seconds=15)) == (1, 2, 3, 30, 3)


def test_pruning_keeps_the_baseline_across_an_idle_stretch() -> None:
    h = HistogramHistory(horizon=300)
    h.add(0, snap((1, 1, 1)))
    h.add(15, snap((2, 2, 2)))
    for i in range(2, 1000):
        h.add(i * 15, snap((2, 2, 2)))
    assert len(h) == 1
    h.add(1000 * 15, snap((3, 3, 3)))
    assert values(h.window(now=15_000, seconds=300)) == (1, 1, 1, 10, 1)


def test_max_snapshots_thins_but_windows_cover_at_least_what_was_asked() -> None:
    h = HistogramHistory(horizon=1e9, max_snapshots=64)
    for i in range(10_000):
        h.add(i, snap((i, i, i)))
        assert len(h) <= 64
    w = h.window(now=9_999, seconds=100)
    assert w is not None and w.count >= 100
    assert values(h.window(now=9_999, seconds=1e9)) == (9_999, 9_999, 9_999, 99_990, 9_999)


def test_thinning_never_loses_a_reset() -> None:
    h = HistogramHistory(horizon=1e9, max_snapshots=8)
    for i in range(1, 500):
        v = i % 7 + 1  # resets every 7 polls
        h.add(i, snap((v, v, v)))
    expected = prometheus_increase([float(i % 7 + 1) for i in range(1, 500)])
    assert values(h.window(now=499, seconds=1e9))[2] == expected


def test_layout_change_restarts_the_history() -> None:
    h = HistogramHistory(horizon=600)
    h.add(0, snap((1, 2, 3)))
    h.add(60, snap((2, 4, 6)))
    other = Buckets(("1", "+Inf"), (1.0, math.inf), (1.0, 1.0), 2.0, 1.0)
    h.add(120, other)
    assert len(h) == 1
    assert h.latest() is other
    w = h.window(now=120, seconds=600)
    assert w is not None and w.les == other.les and w.bounds == other.bounds
    assert values(w) == (0, 0, 0, 0)
    h.add(180, Buckets(other.les, other.bounds, (2.0, 3.0), 5.0, 3.0))
    assert values(h.window(now=180, seconds=600)) == (1, 2, 3, 2)


def test_time_going_backwards_is_recorded_at_the_last_time() -> None:
    """A stepped-back clock neither reorders history nor hides a reset."""
    h = HistogramHistory(horizon=600)
    h.add(0, snap((1, 1, 1)))
    h.add(100, snap((5, 5, 5)))
    h.add(50, snap((2, 2, 2)))  # clock stepped back; kube-proxy restarted
    assert h.latest() == snap((2, 2, 2))
    assert len(h) == 3
    assert values(h.window(now=100, seconds=0)) == (0, 0, 0, 0, 0)
    h.add(160, snap((3, 3, 3)))
    assert values(h.window(now=160, seconds=60)) == (1, 1, 1, 10, 1)
    assert values(h.window(now=160, seconds=160)) == (7, 7, 7, 70, 7)  # 3 - 1 + 5


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        HistogramHistory(horizon=-1)
    with pytest.raises(ValueError):
        HistogramHistory(horizon=math.nan)
    with pytest.raises(ValueError):
        HistogramHistory(horizon=60, max_snapshots=1)
    with pytest.raises(ValueError):
        HistogramHistory(horizon=60).add(math.nan, snap((1, 1, 1)))


_step = st.tuples(
    st.sampled_from([0, 0, 1, 15, 15, 15, 60, 200]),  # time step, sometimes none
    st.sampled_from(["same", "grow", "grow", "reset", "drop_one"]),
    st.integers(min_value=0, max_value=4),  # which series
    st.integers(min_value=0, max_value=50),  # amount
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_step, min_size=1, max_size=40),
    st.integers(min_value=0, max_value=900),
    st.integers(min_value=0, max_value=900),
    st.integers(min_value=0, max_value=100),
)
def test_matches_prometheus_increase_over_raw_samples(
    steps: list[tuple[int, str, int, int]], horizon: int, seconds_seed: int, late: int
) -> None:
    """Any poll sequence, any window up to the horizon: exactly Prometheus's increase."""
    seconds = min(seconds_seed, horizon)
    h = HistogramHistory(horizon=horizon)
    t = 0
    cur = [0, 0, 0, 0, 0]  # le=0.5, le=1, +Inf, sum, count
    samples: list[tuple[int, list[int]]] = []
    for dt, kind, which, amount in steps:
        t += dt
        if kind == "grow":
            cur[which] += amount
        elif kind == "reset":
            cur = [amount // 3, amount // 2, amount, 7 * amount, amount]
        elif kind == "drop_one":
            cur[which] = min(cur[which], amount // 5)
        samples.append((t, list(cur)))
        h.add(t, Buckets(LES, BOUNDS, tuple(map(float, cur[:3])), float(cur[3]), float(cur[4])))
    now = t + late if seconds + late <= horizon else t
    target = now - seconds
    start = max((i for i, (ts, _) in enumerate(samples) if ts <= target), default=0)
    want = tuple(prometheus_increase([float(v[j]) for _, v in samples[start:]]) for j in range(5))
    assert values(h.window(now=now, seconds=seconds)) == want
    assert len(h) <= len(samples)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=0, max_value=1e6), min_size=2, max_size=8),
    st.booleans(),
)
def test_non_integer_sums_are_bit_exact_with_at_most_one_reset_since_the_start(
    sums: list[float], with_reset: bool
) -> None:
    """The documented float guarantee: no reset, or one reset in a window from the start."""
    ordered = sorted(sums)
    if with_reset:
        cut = len(ordered) // 2
        ordered = ordered[:cut] + [v / 3 for v in ordered[cut:]]
        if sum(b < a for a, b in itertools.pairwise(ordered)) > 1:
            return
    h = HistogramHistory(horizon=1e6)
    for i, v in enumerate(ordered):
        h.add(i, Buckets(("+Inf",), (math.inf,), (0.0,), v, 0.0))
    w = h.window(now=len(ordered) - 1, seconds=1e6)
    assert w is not None and w.sum == prometheus_increase(ordered)


# --- the compact layout: cursors, thinning, the fall-back to doubles ----------------------


def _naive(samples: list[tuple[float, list[float]]], now: float, seconds: float,
           ) -> tuple[float, ...]:
    target = now - seconds
    start = max((i for i, (ts, _) in enumerate(samples) if ts <= target), default=0)
    return tuple(prometheus_increase([v[j] for _, v in samples[start:]]) for j in range(5))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(_step, min_size=1, max_size=60),
    st.sampled_from([120, 600, 10**6]),
    st.sampled_from([4, 8, 4096]),
    st.one_of(st.none(), st.integers(min_value=0, max_value=59)),
)
def test_every_window_after_every_poll_matches_prometheus(
    steps: list[tuple[int, str, int, int]], horizon: int, cap: int, half_at: int | None,
) -> None:
    """Windows asked after every poll (cursors follow them), pruning, thinning and, from poll
    ``half_at`` on, half-integer counts (the layout falls back to doubles mid-history)."""
    h = HistogramHistory(horizon=horizon, max_snapshots=cap)
    t = 0
    cur = [0.0, 0.0, 0.0, 0.0, 0.0]  # le=0.5, le=1, +Inf, sum, count
    samples: list[tuple[float, list[float]]] = []
    for k, (dt, kind, which, amount) in enumerate(steps):
        t += dt
        if kind == "grow":
            cur[which] += amount
        elif kind == "reset":
            cur = [amount // 3, amount // 2, amount, 7 * amount, amount]
        elif kind == "drop_one":
            cur[which] = min(cur[which], amount // 5)
        if k == half_at:
            cur[1] += 0.5
        samples.append((t, list(cur)))
        h.add(t, Buckets(LES, BOUNDS, tuple(map(float, cur[:3])), float(cur[3]), float(cur[4])))
        for seconds in (0, 15, 60, 120):
            got = values(h.window(now=t, seconds=seconds))
            if cap >= len(samples):  # unthinned: exactly Prometheus's increase
                assert got == _naive(samples, t, seconds)
            else:  # thinned: an earlier start, never a lost reset (the whole span is exact)
                assert got[4] >= _naive(samples, t, seconds)[4]
        if horizon == 10**6 and cap >= len(samples):
            assert values(h.window(now=t, seconds=horizon)) == _naive(samples, t, horizon)


def test_a_busy_hour_costs_a_few_bytes_a_poll() -> None:
    """An hour of 15 s polls of a 40-bucket series, every poll a few observations: the history
    holds an integer record per poll, not a vector of doubles."""
    import sys
    les = (*(str(2**i) for i in range(39)), "+Inf")
    bounds = tuple(float(x) for x in les)
    h = HistogramHistory(horizon=3600)
    counts = [0] * 40
    for k in range(241):
        for j in range(k % 3, 40):
            counts[j] += 1 + k % 5
        h.add(15.0 * k, Buckets(les, bounds, tuple(map(float, counts)), 0.1 * k, counts[-1]))
        h.window(15.0 * k, 300)
    log = h._log  # the layout is what this test measures
    held = sum(sys.getsizeof(getattr(log, name)) for name in log.__slots__
               if isinstance(getattr(log, name), (bytearray, array)))
    assert held < 241 * 40  # under a byte per bucket and poll (the doubles took 16)
    w = h.window(15.0 * 240, 3600)
    assert w is not None and w.counts[-1] == counts[-1] - (1 + 0)  # all but the first poll
