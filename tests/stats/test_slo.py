"""SLO arithmetic against Prometheus 2.42 itself, via ``promtool test rules``.

Random kube-proxy-like counter series (a good-events bucket and a ``_count``, one or two
``ip_family`` series, restarts that reset both) are sampled every minute. The same samples go
through :class:`ContinuousCounter` and :class:`EventHistory`, and to promtool, which evaluates
the PromQL an SRE would write on kube-proxy's own series::

    sum(increase(good[w])) / sum(increase(total[w]))                     # SLI
    (1 - sum(increase(good[w])) / sum(increase(total[w]))) / (1 - obj)   # burn rate
    1 - (1 - sum(increase(good[H])) / sum(increase(total[H]))) / (1 - obj)  # budget left

and compares each with our value exactly (counts are integers, so every step is exact, and
our formulas apply the same operations in the same order).

Window edges: Prometheus 2.42 ranges are closed, so ``[t - w, t]`` holds a sample on both ends
when ``w`` is a multiple of the 1-minute step; ``increase()`` then does not extrapolate (the
distance to each end is 0) and equals the newest sample minus the one at ``t - w`` with reset
corrections: exactly our rule ("the newest point at or before ``now - w``"). The cases are
evaluated only where the history covers the whole window: when a window reaches back before
the first sample, Prometheus extrapolates the increase towards the range start (by up to half
a step, clamped at zero for counters) while we start at the first sample without
extrapolating, so the two legitimately differ there. Series that appear or vanish within a
window differ the same way (Prometheus extrapolates the partial series); the cases keep every
series present throughout. Below ``min_events`` we say NaN where Prometheus computes a ratio:
there the test checks promtool's ``sum(increase(total[w]))`` is indeed below ``min_events``.

``KPX_ORACLE_SEED`` reproduces a run (the seed is printed on failure).
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kpexporter.stats.slo import (
    ContinuousCounter,
    EventHistory,
    budget_remaining,
    burn_rate,
    sli,
)
from tests.promtool import expect, have_promtool, run_promtool_tests, skip_reason

STEP = 60
WINDOWS = (5, 30, 60)  # minutes
HORIZON = 60  # minutes: the longest window, the retained period
MIN_EVENTS = 10
CASES = 60


@dataclass
class Case:
    id: int
    objective: float
    series: list[str]  # ip_family values
    good: dict[str, list[int]]  # per series, one raw value per minute
    total: dict[str, list[int]]


def _case(rng: random.Random, i: int) -> Case:
    n = rng.randint(HORIZON + 5, HORIZON + 40)
    families = ["IPv4"] if rng.random() < 0.6 else ["IPv4", "IPv6"]
    rate = rng.choice([0.0, 0.2, 1.0, 5.0, 40.0])  # events per minute: some windows < min_events
    bad_share = rng.choice([0.0, 0.005, 0.05, 0.5, 1.0])
    restarts = {rng.randrange(1, n) for _ in range(rng.choice([0, 0, 1, 3]))}
    good: dict[str, list[int]] = {}
    total: dict[str, list[int]] = {}
    for fam in families:
        g = rng.randint(0, 10_000)  # the history starts mid-life
        t = g + rng.randint(0, 500)
        gs, ts = [], []
        for k in range(n):
            if k in restarts:
                g = t = 0  # kube-proxy restarted: its counters start over
            events = int(rng.expovariate(1.0 / rate)) if rate else 0
            bad = sum(rng.random() < bad_share for _ in range(events))
            g += events - bad
            t += events
            gs.append(g)
            ts.append(t)
        good[fam], total[fam] = gs, ts
    return Case(i, rng.choice([0.99, 0.999, 0.9, 0.95]), families, good, total)


def _series(case: Case) -> list[dict[str, Any]]:
    out = []
    for name, data in (("good", case.good), ("total", case.total)):
        for fam in case.series:
            out.append({"series": f'{name}{{case="{case.id}",ip_family="{fam}"}}',
                        "values": " ".join(str(v) for v in data[fam])})
    return out


def _sel(case: Case, name: str, minutes: int) -> str:
    return f'sum(increase({name}{{case="{case.id}"}}[{minutes}m]))'


def _tests_for(case: Case) -> list[dict[str, Any]]:
    """Assertions at the last minute, where every window (and the horizon) is covered."""
    hist = EventHistory(HORIZON * STEP)
    good, total = ContinuousCounter(), ContinuousCounter()
    n = len(case.good[case.series[0]])
    for k in range(n):
        hist.add(k * STEP, good.update({f: case.good[f][k] for f in case.series}),
                 total.update({f: case.total[f][k] for f in case.series}))
    now = (n - 1) * STEP
    at = f"{n - 1}m"
    obj = case.objective
    out: list[dict[str, Any]] = []
    for minutes in WINDOWS:
        ev = hist.window(now, minutes * STEP)
        assert ev is not None and ev.start <= now - minutes * STEP  # (repeats are not stored)
        g, t = _sel(case, "good", minutes), _sel(case, "total", minutes)
        out.append(expect(g, at, ev.good, "{}"))
        out.append(expect(t, at, ev.total, "{}"))
        ratio = sli(ev.good, ev.total, MIN_EVENTS)
        if math.isnan(ratio):
            assert ev.total < MIN_EVENTS
            continue
        out.append(expect(f"{g} / {t}", at, ratio, "{}"))
        out.append(expect(f"(1 - {g} / {t}) / (1 - {obj!r})", at, burn_rate(ratio, obj), "{}"))
    kept = hist.retained()
    assert kept is not None and kept.start <= now - HORIZON * STEP
    ratio = sli(kept.good, kept.total, MIN_EVENTS)
    if not math.isnan(ratio):
        g, t = _sel(case, "good", HORIZON), _sel(case, "total", HORIZON)
        out.append(expect(f"1 - (1 - {g} / {t}) / (1 - {obj!r})", at,
                          budget_remaining(ratio, obj), "{}"))
    return out


@pytest.mark.promtool
@pytest.mark.skipif(not have_promtool(), reason=skip_reason())
def test_sli_burn_rate_and_budget_equal_prometheus(tmp_path: Path) -> None:
    seed = int(os.environ.get("KPX_ORACLE_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    cases = [_case(rng, i) for i in range(CASES)]
    doc = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": [s for c in cases for s in _series(c)],
                   "promql_expr_test": [t for c in cases for t in _tests_for(c)]}],
    }
    try:
        run_promtool_tests(doc, tmp_path)
    except AssertionError as e:
        raise AssertionError(f"KPX_ORACLE_SEED={seed}\n{e}") from None


def test_counter_never_drops_across_restarts_and_vanishing_series() -> None:
    c = ContinuousCounter()
    seen = [c.update({"a": 100.0, "b": 50.0}),  # the first poll: kube-proxy's lifetime
            c.update({"a": 110.0, "b": 55.0}),
            c.update({"a": 3.0, "b": 1.0}),  # a restart: the new process counted 3 and 1
            c.update({"a": 4.0}),  # b left the page: what it counted stays
            c.update({"a": 4.0, "c": 2.0})]  # a series born later counts from 0
    assert seen == [150.0, 165.0, 169.0, 170.0, 172.0]
    assert c.update({"a": math.nan, "c": 2.0}) == 172.0  # garbage holds the last value


def test_counter_nan_until_first_values_and_direct_events() -> None:
    c = ContinuousCounter()
    assert math.isnan(c.update({}))
    assert c.add(1.0) == 1.0 and c.add(0.0) == 1.0


def test_history_skips_repeats_prunes_and_thins() -> None:
    h = EventHistory(600.0, max_points=8)
    for t in range(0, 100):
        h.add(t * 15.0, 5.0, 10.0)  # an idle source: one point is enough
    assert len(h) == 1
    for t in range(100, 200):
        h.add(t * 15.0, float(t), float(2 * t))
    assert len(h) <= 8  # thinned (600 s of 15 s polls is 41 points)
    ev = h.window(199 * 15.0, 60.0)
    assert ev is not None and ev.total == 2 * (199 - 195)  # exact while points are dense
    assert h.window(0.0, 1.0) is not None
    assert EventHistory(1.0).window(0.0, 1.0) is None


def test_min_events_and_burn_rate_edges() -> None:
    assert math.isnan(sli(1.0, 9.0, 10))  # one slow sync in a quiet window: not a 100 % burn
    assert math.isnan(sli(0.0, 0.0, 1))
    assert sli(9.0, 10.0, 10) == 0.9
    assert math.isnan(burn_rate(math.nan, 0.99))
    assert burn_rate(1.0, 0.99) == 0.0
    assert budget_remaining(1.0, 0.999) == 1.0
