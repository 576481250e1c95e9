"""Our quantiles and windows against Prometheus 2.42 itself, via ``promtool test rules``.

Every expectation here is asserted by promtool: we write our own value into
``exp_samples`` and promtool compares it exactly with what its engine computes (NaN through
the ``count(x != x)`` idiom, "no output" as ``exp_samples: []``). One file, one promtool
run, several hundred random cases per run.

The seed comes from ``KPX_ORACLE_SEED`` or is drawn fresh; a failure prints it together with
the inputs of every failing case, so ``KPX_ORACLE_SEED=<seed> pytest ...`` reproduces it.

Windowed cases feed ``HistogramHistory`` samples at t = 0, 60, 120, ... and compare with
``increase(x[N m])`` evaluated at the last sample. In 2.42 ranges are closed, so the range
``[t - N m, t]`` holds samples exactly on both ends: ``durationToStart`` and
``durationToEnd`` are 0 and the extrapolation factor is exactly ``sampled/sampled = 1``
(research §1.6). Counts are integers there, so every value is exact.
"""

from __future__ import annotations

import math
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kpexporter.promtext.gofloat import parse_go_float
from kpexporter.stats.histogram import Buckets
from kpexporter.stats.quantile import quantile
from kpexporter.stats.windows import HistogramHistory
from tests.promtool import expect, have_promtool, run_promtool_tests, skip_reason

pytestmark = [
    pytest.mark.promtool,
    pytest.mark.skipif(not have_promtool(), reason=skip_reason()),
]

SEED_ENV = "KPX_ORACLE_SEED"
STATIC_CASES = 700
WINDOW_CASES = 260
MIN_CASES = 500
STEP = 60  # seconds between window samples (promtool ``interval: 1m``)

SYNC_LES = [repr(0.001 * 2**k) for k in range(15)]
NP_LES = [
    "0",
    "0.25",
    "0.5",
    *[str(i) for i in range(1, 60)],
    *[str(i) for i in range(60, 116, 5)],
    *[str(i) for i in range(120, 301, 30)],
]
# Spellings Go accepts (some odd) and some it rejects; Prometheus skips the rejected ones.
EXOTIC_LES = ["0x1p1", "1_0", "Infinity", "inf", "+inf", "+Inf", "1e0", ".5", "5.", "-0", "1e-400"]
BAD_LES = ["abc", " 5", "5 ", "+nan", "1__0", "0x1", "1e400", "", "_1", "1_"]
QS = [0.0, 0.5, 0.9, 0.99, 1.0, -0.1, 1.5, math.nan, 0.25, 0.75]


@dataclass
class StaticCase:
    """One histogram at one instant and one quantile."""

    id: int
    les: list[str]
    counts: list[float]
    q: float


@dataclass
class WindowCase:
    """A history of snapshots, a window of the last ``k`` of them, one quantile."""

    id: int
    les: list[str]
    snapshots: list[tuple[list[int], int, int]]  # (bucket counts, sum, count) per poll
    k: int
    horizon: float
    q: float
    window: Buckets | None = field(default=None)


def _spellings(v: float) -> list[str]:
    out = [repr(v)]
    if v.is_integer() and abs(v) < 1e15:
        i = int(v)
        out += [str(i), f"{i}.0", f"{i}e0", f"{i}_0e-1" if i > 0 else f"{i}.00"]
    else:
        out += [f"{v:e}", f"{v:.17g}", f"{v:g}"]
    return out


def _cumulative(obs: list[int]) -> list[int]:
    out, acc = [], 0
    for o in obs:
        acc += o
        out.append(acc)
    return out


def _random_bound(rng: random.Random) -> float:
    kind = rng.random()
    if kind < 0.35:
        return float(rng.randint(0, 10))
    if kind < 0.55:
        return rng.randint(-8, 40) / 4
    if kind < 0.7:
        return -float(rng.randint(1, 5))
    if kind < 0.9:
        return rng.uniform(-1, 100)
    return rng.choice([1e-9, 1e-3, 1e6, 0.1, 1 / 3])


def _random_q(rng: random.Random) -> float:
    return rng.choice(QS) if rng.random() < 0.6 else rng.random()


def _random_counts(rng: random.Random, n: int) -> list[float]:
    """Cumulative counts, sometimes empty, sometimes broken the ways real data is not."""
    r = rng.random()
    if r < 0.1:
        return [0.0] * n
    obs = [rng.choice([0, 0, 1, 2, 5, rng.randint(0, 1000)]) for _ in range(n)]
    counts = [float(c) for c in _cumulative(obs)]
    if r < 0.3 and n:  # non-monotonic: a few buckets drop
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(n)
            counts[i] = float(rng.randint(0, int(counts[i]) + 2))
    elif r < 0.35 and n:  # negative counts: Go's float semantics at the edges
        i = rng.randrange(n)
        counts[i] = -float(rng.randint(1, 5))
    return counts


def gen_static(rng: random.Random, cid: int) -> StaticCase:
    """A random histogram drawn from kube-proxy layouts and from the algorithm's edges."""
    kind = rng.choices(
        ["sync", "np", "random", "inf_only", "odd_les", "empty"],
        weights=[20, 15, 45, 5, 12, 3],
    )[0]
    if kind == "sync":
        les = [*SYNC_LES, "+Inf"]
    elif kind == "np":
        les = [*NP_LES, "+Inf"]
        if rng.random() < 0.3:
            les = [le + ".0" if le.isdigit() else le for le in les]
    elif kind == "inf_only":
        les = ["+Inf"]
    elif kind == "empty":
        les = []
    else:
        bounds = [_random_bound(rng) for _ in range(rng.randint(0, 8))]
        if rng.random() < 0.4 and bounds:  # the same bound spelled differently
            bounds += [rng.choice(bounds) for _ in range(rng.randint(1, 2))]
        les = []
        for b in bounds:
            for s in rng.sample(_spellings(b), k=len(_spellings(b))):
                if s not in les:
                    les.append(s)
                    break
        if rng.random() < 0.85:
            les.append(rng.choice(["+Inf", "+Inf", "+Inf", "Inf", "inf"]))
        if kind == "odd_les":
            les += rng.sample(EXOTIC_LES + BAD_LES, k=rng.randint(1, 4))
            les = list(dict.fromkeys(les))
    rng.shuffle(les)
    counts = _random_counts(rng, len(les))
    if kind == "random" and rng.random() < 0.3 and _max_dupes(les) <= 2:
        counts = [c + rng.randint(0, 999) / 1000 for c in counts]  # non-integer counts
    return StaticCase(cid, les, counts, _random_q(rng))


def _max_dupes(les: list[str]) -> int:
    """Most ``le`` strings sharing one bound: with 3+, Go's summation order may differ."""
    seen: dict[float, int] = {}
    for le in les:
        try:
            b = parse_go_float(le)
        except ValueError:
            continue
        seen[b] = seen.get(b, 0) + 1
    return max(seen.values(), default=0)


def parsed(les: list[str], counts: list[float]) -> Buckets | None:
    """The Buckets the exporter builds: unparseable ``le`` dropped, as Prometheus skips them."""
    kept = []
    for le, c in zip(les, counts, strict=True):
        try:
            kept.append((le, parse_go_float(le), c))
        except ValueError:
            continue
    if not kept:
        return None
    return Buckets(
        les=tuple(k[0] for k in kept),
        bounds=tuple(k[1] for k in kept),
        counts=tuple(k[2] for k in kept),
        sum=0.0,
        count=0.0,
    )


def gen_window(rng: random.Random, cid: int) -> WindowCase:
    """Polls of a living kube-proxy: growth, idle polls, restarts, single-series drops."""
    layout = rng.choice(["sync", "np", "random"])
    if layout == "sync":
        les = [*SYNC_LES, "+Inf"]
    elif layout == "np":
        les = [*NP_LES, "+Inf"]
    else:
        bounds = sorted({float(rng.randint(0, 12)) / 2 for _ in range(rng.randint(1, 6))})
        les = [repr(b) if rng.random() < 0.5 else _spellings(b)[1] for b in bounds]
        if rng.random() < 0.3:
            les.append(f"{int(bounds[0])}.0" if bounds[0].is_integer() else "0x1p-1")
        les = [*dict.fromkeys(les), "+Inf"]
    n = len(les)
    k = rng.randint(2, 6)
    extra = rng.choice([0, 0, 1, 2, 3])
    obs = [0] * n
    total = 0
    snaps: list[tuple[list[int], int, int]] = []
    for _ in range(k + extra):
        r = rng.random()
        if r < 0.15:  # kube-proxy restart: everything starts again from (almost) nothing
            obs = [rng.choice([0, 0, 1, 3]) for _ in range(n)]
            total = sum(obs) * rng.randint(0, 3)
        elif r > 0.3:  # growth; the rest are idle polls
            for _ in range(rng.randint(1, 4)):
                obs[rng.randrange(n)] += rng.choice([1, 1, 2, 7, 40])
            total += rng.randint(0, 500)
        counts = _cumulative(obs)
        count = counts[-1]
        s = total
        if rng.random() < 0.12:  # one series alone drops (odd, but Prometheus handles it)
            which = rng.randrange(n + 2)
            if which < n:
                counts[which] = rng.randint(0, max(counts[which] - 1, 0))
            elif which == n:
                s = rng.randint(0, max(s - 1, 0))
            else:
                count = rng.randint(0, max(count - 1, 0))
        snaps.append((counts, s, count))
    horizon = (k - 1) * STEP + rng.choice([0, 0, 30, 600])
    return WindowCase(cid, les, snaps, k, horizon, _random_q(rng))


def run_history(case: WindowCase) -> Buckets | None:
    """Feed the case to a HistogramHistory the way the poller does; return the window."""
    bounds = tuple(parse_go_float(le) for le in case.les)
    h = HistogramHistory(horizon=case.horizon)
    t = 0.0
    for i, (counts, s, count) in enumerate(case.snapshots):
        t = float(i * STEP)
        b = Buckets(tuple(case.les), bounds, tuple(map(float, counts)), float(s), float(count))
        h.add(t, b)
    return h.window(now=t, seconds=(case.k - 1) * STEP)


def _num(v: float) -> str:
    """A PromQL literal for ``v`` that parses back to the same double."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Inf" if v > 0 else "-Inf"
    return repr(v)


def _series_values(values: list[float]) -> str:
    return " ".join(str(int(v)) if float(v).is_integer() else repr(float(v)) for v in values)


def build_test_file(
    statics: list[StaticCase], windows: list[WindowCase]
) -> tuple[dict[str, Any], int]:
    """The promtool test file for all cases, and how many assertions it holds."""
    s_series: list[dict[str, str]] = []
    s_tests: list[dict[str, Any]] = []
    for c in statics:
        for le, count in zip(c.les, c.counts, strict=True):
            series = f's_bucket{{case="{c.id}",le="{le}"}}'
            s_series.append({"series": series, "values": _series_values([count])})
        b = parsed(c.les, c.counts)
        exp = None if b is None else quantile(c.q, b)
        expr = f'histogram_quantile({_num(c.q)}, s_bucket{{case="{c.id}"}})'
        s_tests.append(expect(expr, "0m", exp, f'{{case="{c.id}"}}'))
    w_series: list[dict[str, str]] = []
    w_tests: list[dict[str, Any]] = []
    for w in windows:
        snaps = w.snapshots
        for j, le in enumerate(w.les):
            w_series.append(
                {
                    "series": f'w_bucket{{case="{w.id}",le="{le}"}}',
                    "values": _series_values([s[0][j] for s in snaps]),
                }
            )
        w_series.append(
            {"series": f'w_sum{{case="{w.id}"}}', "values": _series_values([s[1] for s in snaps])}
        )
        w_series.append(
            {"series": f'w_count{{case="{w.id}"}}', "values": _series_values([s[2] for s in snaps])}
        )
        win = w.window
        assert win is not None
        at = f"{(len(snaps) - 1) * STEP}s"
        rng_sel = f'{{case="{w.id}"}}[{(w.k - 1) * STEP}s]'
        labels = f'{{case="{w.id}"}}'
        q_expr = f"histogram_quantile({_num(w.q)}, increase(w_bucket{rng_sel}))"
        w_tests.append(expect(q_expr, at, quantile(w.q, win), labels))
        w_tests.append(expect(f"increase(w_count{rng_sel})", at, win.count, labels))
        w_tests.append(expect(f"increase(w_sum{rng_sel})", at, win.sum, labels))
    doc = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "name": "histogram_quantile on instant buckets",
                "interval": "1m",
                "input_series": s_series,
                "promql_expr_test": s_tests,
            },
            {
                "name": "histogram_quantile and increase over windows with resets",
                "interval": "1m",
                "input_series": w_series,
                "promql_expr_test": w_tests,
            },
        ],
    }
    return doc, len(s_tests) + len(w_tests)


def _seed() -> int:
    env = os.environ.get(SEED_ENV)
    return int(env) if env else random.SystemRandom().randrange(2**32)


def _describe_failures(output: str, statics: list[StaticCase], windows: list[WindowCase]) -> str:
    by_id: dict[int, StaticCase | WindowCase] = {c.id: c for c in statics}
    by_id.update({w.id: w for w in windows})
    ids = sorted({int(m) for m in re.findall(r'case=\\?"(\d+)\\?"', output)})
    lines = []
    for cid in ids[:10]:
        c = by_id[cid]
        if isinstance(c, StaticCase):
            b = parsed(c.les, c.counts)
            ours = None if b is None else quantile(c.q, b)
            lines.append(f"case {cid}: q={c.q!r} les={c.les} counts={c.counts} ours={ours!r}")
        else:
            lines.append(
                f"case {cid}: q={c.q!r} k={c.k} les={c.les} snapshots={c.snapshots} "
                f"window={c.window}"
            )
    return "\n".join(lines)


def test_quantiles_and_windows_match_promtool(tmp_path: Path) -> None:
    seed = _seed()
    rng = random.Random(seed)
    statics = [gen_static(rng, i) for i in range(STATIC_CASES)]
    windows = [gen_window(rng, STATIC_CASES + i) for i in range(WINDOW_CASES)]
    for c in windows:
        c.window = run_history(c)
    doc, n_asserts = build_test_file(statics, windows)
    assert len(statics) + len(windows) >= MIN_CASES
    assert n_asserts >= MIN_CASES
    try:
        run_promtool_tests(doc, tmp_path, filename="oracle.yaml")
    except AssertionError as exc:
        raise AssertionError(
            f"our math disagrees with promtool 2.42 (reproduce: {SEED_ENV}={seed})\n"
            f"{_describe_failures(str(exc), statics, windows)}\n{exc}"
        ) from None


def test_oracle_catches_a_wrong_value(tmp_path: Path) -> None:
    """Guard against a vacuous oracle: a one-ULP-off expectation must fail promtool."""
    case = StaticCase(0, ["1", "2.5", "+Inf"], [3.0, 4.0, 4.0], 0.9)
    doc, _ = build_test_file([case], [])
    doc["tests"][0]["promql_expr_test"][0]["exp_samples"][0]["value"] = 1.9  # true: 1.9…01
    with pytest.raises(AssertionError, match=r"1\.9000000000000001"):
        run_promtool_tests(doc, tmp_path)


def test_oracle_catches_a_wrong_nan(tmp_path: Path) -> None:
    """The NaN idiom must fail when the value is not NaN (and "no output" is not NaN)."""
    ok = StaticCase(0, ["1", "+Inf"], [1.0, 2.0], 0.5)  # 1.0, not NaN
    doc, _ = build_test_file([ok], [])
    doc["tests"][0]["promql_expr_test"] = [
        expect('histogram_quantile(0.5, s_bucket{case="0"})', "0m", math.nan, "{}"),
        expect('histogram_quantile(0.5, s_bucket{case="nope"})', "0m", math.nan, "{}"),
    ]
    with pytest.raises(AssertionError) as err:
        run_promtool_tests(doc, tmp_path)
    assert str(err.value).count("exp:") == 2
