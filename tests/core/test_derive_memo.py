"""The poll path's shortcuts change how fast, never what: each is checked against the long way.

- ``derive``'s summary memo: summaries with the memo equal those computed from scratch;
- ``bucket_quantiles``: several quantiles from one preparation equal one call per quantile;
- ``stats.histogram.plausible``'s quick accept: agrees with the plain definition on any buckets.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kpexporter.core.derive import SummaryMemo, derive
from kpexporter.core.state import TargetState
from kpexporter.stats.histogram import Buckets, plausible
from kpexporter.stats.quantile import bucket_quantiles
from kpexporter.stats.windows import HistogramHistory
from tests.builders import HEALTHY_128, HEALTHY_128_NOW, config, poll_result

SYNC = "kubeproxy_sync_proxy_rules_duration_seconds"
LES = ("0.001", "0.002", "0.004", "0.008", "0.016", "+Inf")


def page(counts: list[int], total: float) -> bytes:
    cum, lines = 0, [f"# TYPE {SYNC} histogram"]
    for le, c in zip(LES, counts, strict=True):
        cum += c
        lines.append(f'{SYNC}_bucket{{le="{le}"}} {cum}')
    lines += [f"{SYNC}_sum {total}", f"{SYNC}_count {cum}", ""]
    return "\n".join(lines).encode()


def key(x: Any) -> str:
    return repr(x)  # NaN == NaN, -0.0 != 0.0


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(0, 3), min_size=6, max_size=6),
                          st.sampled_from([1.0, 15.0, 200.0, 4000.0]),
                          st.booleans()), min_size=1, max_size=12))
def test_memo_gives_the_summaries_computed_from_scratch(
        polls: list[tuple[list[int], float, bool]]) -> None:
    cfg = config()
    memo: SummaryMemo = {}
    histories: dict[Any, HistogramHistory] = {}
    t = HEALTHY_128_NOW
    totals = [0] * 6
    for extra, gap, reset in polls:
        t += gap
        totals = list(extra) if reset else [a + b for a, b in zip(totals, extra, strict=True)]
        r = poll_result(HEALTHY_128, 200, page(totals, 0.001 * sum(totals)), started=t)
        assert r.metrics is not None
        for name, series in r.metrics.histograms.items():
            for labels, b in series.items():
                histories.setdefault((name, labels), HistogramHistory(cfg.horizon)).add(t, b)
        fast = derive(r, histories, cfg, memo=memo)
        slow = derive(r, histories, cfg)
        assert key(fast.summaries) == key(slow.summaries)
        assert len(memo) == len(fast.summaries)  # only this poll's keys: it never grows


def test_an_unchanged_target_reuses_its_summary_objects() -> None:
    cfg = config()
    st_ = TargetState(cfg.targets[0], horizon=cfg.horizon)
    p = page([1, 0, 2, 0, 0, 1], 0.01)
    first = st_.record(poll_result(HEALTHY_128, 200, p, started=HEALTHY_128_NOW), cfg)
    again = st_.record(poll_result(HEALTHY_128, 200, p, started=HEALTHY_128_NOW + 15), cfg)
    assert all(a is b for a, b in zip(first.summaries, again.summaries, strict=True))


bounds = st.sampled_from([-1.0, 0.0, 0.001, 0.5, 1.0, 1.0, 2.5, math.inf, math.nan])
counts = st.one_of(st.integers(0, 20).map(float),
                   st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 0.5]))


@given(st.lists(st.tuples(bounds, counts), max_size=8),
       st.lists(st.sampled_from([0.0, 0.25, 0.5, 0.9, 0.99, 1.0, -0.5, 1.5, math.nan]),
                min_size=1, max_size=5))
def test_several_quantiles_at_once_equal_one_at_a_time(pairs: list[tuple[float, float]],
                                                       qs: list[float]) -> None:
    together = bucket_quantiles(qs, pairs)
    alone = [bucket_quantiles((q,), pairs)[0] for q in qs]
    assert key(together) == key(alone)


def plausible_by_definition(b: Buckets) -> bool:
    if not all(math.isfinite(c) and c >= 0 for c in b.counts):
        return False
    if math.isinf(b.sum) or math.isinf(b.count) or b.count < 0:
        return False
    ordered = sorted(zip(b.bounds, b.counts, strict=True))
    return all(hi >= lo for (_, lo), (_, hi) in pairwise(ordered))


@given(st.lists(st.tuples(bounds.filter(lambda x: not math.isnan(x)), counts), max_size=8),
       st.sampled_from([0.0, 3.5, math.nan, math.inf]),
       st.sampled_from([0.0, 7.0, math.nan, -1.0, math.inf]))
def test_quick_plausibility_check_agrees_with_the_definition(
        pairs: list[tuple[float, float]], total: float, count: float) -> None:
    b = Buckets(tuple(repr(x) for x, _ in pairs), tuple(x for x, _ in pairs),
                tuple(c for _, c in pairs), total, count)
    assert plausible(b) == plausible_by_definition(b)
