"""``bucket_quantile``/``quantile``: every edge case of research §1.4 and real kube-proxy data.

Each row of ``CASES`` is checked twice: by our code (bit for bit) and, in
``test_table_matches_promtool``, by promtool 2.42 itself, so no expectation here rests on
hand arithmetic alone.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpexporter.promtext.gofloat import parse_go_float
from kpexporter.stats.histogram import Buckets
from kpexporter.stats.quantile import bucket_quantile, go_div, quantile
from tests.promtool import expect, have_promtool, run_promtool_tests, skip_reason

NAN = math.nan
INF = math.inf

# research §1.4's example
EX: list[tuple[str, float]] = [("0.25", 1), ("0.5", 2), ("1", 3), ("2.5", 4), ("+Inf", 5)]


def _fixture(text: str) -> list[tuple[str, float]]:
    """``{le="x"} n`` pairs as they appear on a kube-proxy /metrics page."""
    out = []
    for item in text.split("{le=")[1:]:
        le, count = item.split("}")
        out.append((le.strip('"'), float(count)))
    return out


# provenance of the captured pages: tests/data/kube-proxy/SOURCES.md
SYNC_V1_21 = _fixture(
    '{le="0.001"} 0 {le="0.002"} 0 {le="0.004"} 0 {le="0.008"} 0 {le="0.016"} 0 {le="0.032"} 0 '
    '{le="0.064"} 6 {le="0.128"} 7 {le="0.256"} 7 {le="0.512"} 18 {le="1.024"} 20 '
    '{le="2.048"} 23 {le="4.096"} 23 {le="8.192"} 23 {le="16.384"} 23 {le="+Inf"} 23'
)
SYNC_V1_30 = _fixture(
    '{le="0.001"} 0 {le="0.002"} 0 {le="0.004"} 0 {le="0.008"} 0 {le="0.016"} 1 {le="0.032"} 1 '
    '{le="0.064"} 1 {le="0.128"} 3 {le="0.256"} 3 {le="0.512"} 3 {le="1.024"} 3 '
    '{le="2.048"} 3 {le="4.096"} 3 {le="8.192"} 3 {le="16.384"} 3 {le="+Inf"} 3'
)
LATENCY_US_V1_8 = _fixture(
    '{le="1000"} 1 {le="2000"} 1 {le="4000"} 1 {le="8000"} 1 {le="16000"} 1 {le="32000"} 68 '
    '{le="64000"} 290 {le="128000"} 346 {le="256000"} 362 {le="512000"} 364 '
    '{le="1.024e+06"} 364 {le="2.048e+06"} 364 {le="4.096e+06"} 364 {le="8.192e+06"} 364 '
    '{le="1.6384e+07"} 364 {le="+Inf"} 364'
)
NP_BOUNDS = [
    "0",
    "0.25",
    "0.5",
    *map(str, range(1, 60)),
    *map(str, range(60, 116, 5)),
    *map(str, range(120, 301, 30)),
    "+Inf",
]
_NP_V1_21_COUNTS = {"0": 0, "0.25": 0, "0.5": 0, "1": 0, "2": 5, "3": 6, "4": 6, "5": 6, "6": 6}
NP_V1_21 = [
    (le, float(_NP_V1_21_COUNTS.get(le, 7 if le != "+Inf" and float(le) <= 16 else 8)))
    for le in NP_BOUNDS
]
NP_V1_30 = [(le, 0.0 if le in ("0", "0.25") else 1.0) for le in NP_BOUNDS]
NP_ALL_ZERO_BUCKET = [(le, 4.0) for le in NP_BOUNDS]  # every observation in le="0"

CASES: list[tuple[str, float, list[tuple[str, float]], float]] = [
    # research §1.4, row by row
    ("q is NaN", NAN, EX, NAN),
    ("q < 0", -0.1, EX, -INF),
    ("q > 1", 1.01, EX, INF),
    ("no +Inf bucket", 0.5, [("1", 1), ("2", 2)], NAN),
    ("only +Inf", 0.5, [("+Inf", 5)], NAN),
    ("+Inf spelled twice is one bucket", 0.5, [("+Inf", 5), ("Inf", 1)], NAN),
    ("no observations", 0.5, [("1", 0), ("+Inf", 0)], NAN),
    ("+Inf 0 raised by the monotonic fix", 0.5, [("1", 3), ("+Inf", 0)], 0.5),
    ("q=0, first bucket not empty", 0.0, EX, 0.0),
    ("q=0, first bucket empty: 0/0", 0.0, [("1", 0), ("2", 2), ("+Inf", 2)], NAN),
    ("lowest bound > 0 interpolates from 0", 0.1, EX, 0.125),
    ("lowest bound < 0 is returned", 0.1, [("-1", 1), ("1", 2), ("+Inf", 2)], -1.0),
    ("lowest bound 0 is returned", 0.5, [("0", 3), ("1", 4), ("+Inf", 4)], 0.0),
    ("negative bounds interpolate", 0.75, [("-2", 1), ("-1", 3), ("+Inf", 3)], -1.375),
    ("rank in +Inf: second-highest bound", 0.9, EX, 2.5),
    ("q=1 with +Inf above the last bucket", 1.0, EX, 2.5),
    ("q=1 with +Inf equal to the last bucket", 1.0, [("1", 2), ("2", 4), ("+Inf", 4)], 2.0),
    ("non-monotonic counts", 0.625, [("0.5", 4), ("1", 2), ("2", 6), ("+Inf", 8)], 1.5),
    ("duplicate bound spellings are summed", 0.5, [("1", 1), ("1.0", 1), ("+Inf", 4)], 1.0),
    ("three spellings", 0.5, [("1", 1), ("1.0", 1), ("1e0", 1), ("+Inf", 6)], 1.0),
    ("malformed le is skipped", 0.5, [("abc", 100), ("1", 1), ("2", 2), ("+Inf", 2)], 1.0),
    ("whitespace le is skipped (Go)", 0.5, [(" 1", 100), ("2", 2), ("+Inf", 2)], 1.0),
    ("hex le is a bound (Go)", 0.5, [("0x1p1", 2), ("+Inf", 2)], 1.0),
    ("float rounding as Go", 0.9, [("1", 3), ("2.5", 4), ("+Inf", 4)], 1.9000000000000001),
    ("page order is irrelevant", 0.5, list(reversed(EX)), 0.75),
    # kube-proxy's own histograms, from real pages
    ("sync v1.21 p50", 0.5, SYNC_V1_21, 0.36072727272727273),
    ("sync v1.21 p90", 0.9, SYNC_V1_21, 1.262933333333333),
    ("sync v1.21 p99", 0.99, SYNC_V1_21, 1.9694933333333333),
    ("sync v1.21 q=0 (first bucket empty)", 0.0, SYNC_V1_21, NAN),
    ("sync v1.21 q=1", 1.0, SYNC_V1_21, 2.048),
    ("sync v1.30 p50", 0.5, SYNC_V1_30, 0.08),
    ("sync v1.30 p90", 0.9, SYNC_V1_30, 0.1184),
    ("sync v1.30 p99", 0.99, SYNC_V1_30, 0.12704),
    ("sync latency µs v1.8 p50", 0.5, LATENCY_US_V1_8, 48432.432432432426),
    ("sync latency µs v1.8 p99", 0.99, LATENCY_US_V1_8, 242880.00000000012),
    ("network programming v1.21 p50", 0.5, NP_V1_21, 1.8),
    ("network programming v1.21 p90", 0.9, NP_V1_21, 16.2),
    ("network programming v1.21 p99", 0.99, NP_V1_21, 16.92),
    ("network programming v1.30 p50", 0.5, NP_V1_30, 0.375),
    ("network programming v1.30 p99", 0.99, NP_V1_30, 0.4975),
    ("network programming in le=0", 0.5, NP_ALL_ZERO_BUCKET, 0.0),
    (
        "network programming spelled 1.0",
        0.5,
        [(le + ".0" if le.isdigit() else le, c) for le, c in NP_V1_21],
        1.8,
    ),
]


def _buckets(pairs: list[tuple[str, float]]) -> Buckets:
    """The Buckets a parser builds: ``le`` strings Go rejects are skipped, as Prometheus does."""
    kept = []
    for le, count in pairs:
        try:
            kept.append((le, parse_go_float(le), float(count)))
        except ValueError:
            continue
    return Buckets(
        les=tuple(k[0] for k in kept),
        bounds=tuple(k[1] for k in kept),
        counts=tuple(k[2] for k in kept),
        sum=0.0,
        count=kept[-1][2] if kept else 0.0,
    )


def same(a: float, b: float) -> bool:
    """Bit-level float equality that treats NaN as equal to NaN."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1, a) == math.copysign(1, b)


@pytest.mark.parametrize(("name", "q", "pairs", "expected"), CASES, ids=[c[0] for c in CASES])
def test_edge_cases(name: str, q: float, pairs: list[tuple[str, float]], expected: float) -> None:
    got = quantile(q, _buckets(pairs))
    assert same(got, expected), f"{name}: got {got!r}, want {expected!r}"


def test_bucket_quantile_accepts_any_iterable_and_order() -> None:
    gen = ((b, c) for b, c in [(INF, 5.0), (1.0, 3.0), (0.25, 1.0), (2.5, 4.0), (0.5, 2.0)])
    assert bucket_quantile(0.5, gen) == 0.75


def test_empty_input_is_nan() -> None:
    assert math.isnan(bucket_quantile(0.5, []))
    assert math.isnan(quantile(0.5, Buckets((), (), (), 0.0, 0.0)))


def test_input_is_not_mutated() -> None:
    b = _buckets([("1", 5), ("1.0", 1), ("0.5", 9), ("+Inf", 7)])
    before = (b.les, b.bounds, b.counts)
    quantile(0.5, b)
    assert (b.les, b.bounds, b.counts) == before


@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        (1.0, 2.0, 0.5),
        (0.0, 0.0, NAN),
        (NAN, 0.0, NAN),
        (1.0, 0.0, INF),
        (-1.0, 0.0, -INF),
        (1.0, -0.0, -INF),
        (-1.0, -0.0, INF),
        (INF, 0.0, INF),
    ],
)
def test_go_div(a: float, b: float, want: float) -> None:
    assert same(go_div(a, b), want)


@given(
    st.lists(
        st.tuples(
            st.floats(allow_nan=False, min_value=-1e6, max_value=1e6),
            st.integers(min_value=0, max_value=10**6).map(float),
        ),
        max_size=12,
    ),
    st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=1),
)
def test_never_raises_and_stays_within_bounds(pairs: list[tuple[float, float]], q: float) -> None:
    """Any finite buckets: no exception, and a number lies between the bounds (or 0)."""
    got = bucket_quantile(q, [*pairs, (INF, 10.0**6)])
    if not math.isnan(got):
        finite = [b for b, _ in pairs]
        assert min([0.0, *finite]) <= got <= max([0.0, *finite])


@pytest.mark.promtool
@pytest.mark.skipif(not have_promtool(), reason=skip_reason())
def test_table_matches_promtool(tmp_path: Path) -> None:
    """Prometheus 2.42 agrees with every row above (the rows are not hand-trusted)."""
    series: list[dict[str, str]] = []
    tests: list[dict[str, Any]] = []
    for i, (_, q, pairs, expected) in enumerate(CASES):
        for le, count in pairs:
            series.append({"series": f't_bucket{{case="{i}",le="{le}"}}', "values": repr(count)})
        q_lit = "NaN" if math.isnan(q) else repr(q)
        expr = f'histogram_quantile({q_lit}, t_bucket{{case="{i}"}})'
        tests.append(expect(expr, "0m", expected, f'{{case="{i}"}}'))
    doc = {
        "rule_files": [],
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}],
    }
    run_promtool_tests(doc, tmp_path)
