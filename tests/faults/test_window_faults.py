"""Windows under hostile histories: counter resets, version switches, garbage snapshots.

Two levels. Over the network (real poller, app and hostile kube-proxy): a kube-proxy restart
in the middle of a window and a page that switches kube-proxy generation between polls. The
default windows (5m, 1h) are longer than these tests, so each window starts at the first
snapshot and the expected values are exact. At the state level (deterministic times, many
random histories): windowed values never go negative or beyond the highest finite bound, and
a state that was fed garbage polls (NaN, infinite, negative or decreasing counts) shows the
same windows as a fresh state that saw only the good polls.
"""

from __future__ import annotations

import logging
import math
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kpexporter.config.schema import Config
from kpexporter.core.derive import LIFETIME, Summary
from kpexporter.core.state import TargetState
from kpexporter.kubeproxy.families import extract
from kpexporter.promtext.exposition import read_exposition
from kpexporter.stats.histogram import Buckets, increase
from kpexporter.stats.quantile import quantile
from tests.builders import config, poll_result
from tests.faults.hostile import (
    PROXY_MODE,
    SYNC_BOUNDS,
    Scrape,
    answer,
    fixture_page,
    healthz_body,
    histogram_page,
    running,
)
from tests.faults.test_faults import assert_clean_log, expected_lifetime, grown, healthy_healthz
from tests.fixtures import V1_8, V1_21, V1_30

SYNC = "sync_proxy_rules_duration_seconds"
QS = ("0.5", "0.9", "0.99")
MAX_FINITE = max(SYNC_BOUNDS)


def sync_buckets(page: bytes) -> Buckets:
    return extract(read_exposition(page)).histograms[SYNC][()]


def summed(parts: list[Buckets]) -> Buckets:
    first = parts[0]
    return Buckets(first.les, first.bounds,
                   tuple(math.fsum(p.counts[i] for p in parts) for i in range(len(first.counts))),
                   math.fsum(p.sum for p in parts), math.fsum(p.count for p in parts))


def prometheus_increase(pages: list[bytes]) -> Buckets:
    """``increase()`` over the consecutive snapshots of these pages (all the same layout)."""
    snaps = [sync_buckets(p) for p in pages]
    return summed([increase(a, b) for a, b in pairwise(snaps)])


def trailing_increase(name: str, pages: list[bytes]) -> Buckets:
    """Increase of family ``name`` over the trailing run of pages that have it, same layout."""
    run: list[Buckets] = []
    for p in reversed(pages):
        b = extract(read_exposition(p)).histograms.get(name, {}).get(())
        if b is None or (run and b.les != run[-1].les):
            break
        run.append(b)
    run.reverse()
    if len(run) == 1:
        return Buckets(run[0].les, run[0].bounds, tuple(0.0 for _ in run[0].counts), 0.0, 0.0)
    return summed([increase(a, b) for a, b in pairwise(run)])


def assert_sane_windows(s: Scrape) -> None:
    """No windowed value below zero or beyond the highest finite bucket bound."""
    for labels, v in s.values(f"kpexporter_{SYNC}"):
        if labels["window"] == LIFETIME:
            continue
        assert math.isnan(v) or 0 <= v <= MAX_FINITE, (labels, v)
    for labels, v in s.values(f"kpexporter_{SYNC}_count"):
        assert v >= 0, (labels, v)


def window_quantiles(s: Scrape, window: str) -> tuple[float, ...]:
    out = []
    for q in QS:
        v = s.value(f"kpexporter_{SYNC}", window=window, quantile=q)
        assert v is not None
        out.append(v)
    return tuple(out)


def cumulative(increments: list[int]) -> list[int]:
    out, running_total = [], 0
    for n in increments:
        running_total += n
        out.append(running_total)
    return out


# A first kube-proxy process, then a restart (new process_start_time, counts from zero).
A1 = cumulative([0, 0, 0, 0, 1, 2, 3, 4, 1, 0, 0, 0, 0, 0, 0, 0])
A2 = cumulative([0, 0, 0, 0, 3, 6, 9, 12, 3, 1, 0, 0, 0, 0, 0, 0])
B1 = cumulative([0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
B2 = cumulative([0, 0, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 4, 0, 0, 0])


async def test_counter_reset_mid_window(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="kpexporter")
    pages = [histogram_page(A1, total=1.0, start_time=1.7e9),
             histogram_page(A2, total=3.0, start_time=1.7e9),
             histogram_page(B1, total=0.1, start_time=1.7e9 + 600),
             histogram_page(B2, total=9.0, start_time=1.7e9 + 600)]
    async with running(healthy_healthz(), answer(pages[0]), interval="0.05") as (kp, exp):
        await exp.settle(1)
        first = await exp.scrape()
        mode_reads = kp.requests[PROXY_MODE]
        for p in pages[1:]:
            await kp.set(metrics=answer(p))
            await exp.settle(1)
            s = await exp.scrape()
            assert s.value("kpexporter_up") == 1
            assert_sane_windows(s)
        expected = prometheus_increase(pages)
        assert expected.count == (A2[-1] - A1[-1]) + B2[-1]  # the restart lost nothing
        for window in ("5m", "1h"):
            assert s.value(f"kpexporter_{SYNC}_count", window=window) == expected.count
            assert s.value(f"kpexporter_{SYNC}_sum", window=window) == pytest.approx(2.0 + 9.0)
            want = tuple(quantile(float(q), expected) for q in QS)
            assert window_quantiles(s, window) == pytest.approx(want)
        # The lifetime value is the new process's, as scraped.
        assert s.value(f"kpexporter_{SYNC}_count", window=LIFETIME) == B2[-1]
        # A restart is noticed: logged, and /proxyMode asked again (the mode may have changed).
        assert kp.requests[PROXY_MODE] > mode_reads
        assert grown(first, s) == set()
    assert "kube_proxy_restarted" in [r.getMessage() for r in caplog.records]
    assert_clean_log(caplog)


async def test_version_switch_between_polls(caplog: pytest.LogCaptureFixture) -> None:
    """v1.30 (seconds) -> v1.8.3 (microseconds) -> v1.21 -> v1.30, one real page each."""
    caplog.set_level(logging.DEBUG, logger="kpexporter")
    v130, v18, v121 = fixture_page(V1_30), fixture_page(V1_8), fixture_page(V1_21)
    sequence = [v130, v18, v121, v130]
    async with running(healthy_healthz(), answer(v130), interval="0.05") as (kp, exp):
        await exp.settle(1)
        before = await exp.scrape()
        for i, p in enumerate(sequence[1:], start=1):
            await kp.set(metrics=answer(p))
            await exp.settle(1)
            s = await exp.scrape()
            assert s.status == 200 and s.value("kpexporter_up") == 1
            assert grown(before, s) == set()
            assert_sane_windows(s)
            # The summaries are exactly the families this page has, lifetime as scraped.
            want = expected_lifetime(p)
            names = {n for (n, ls) in s.series
                     if n.startswith("kpexporter_") and dict(ls).get("window") == LIFETIME
                     and "quantile" in dict(ls)}
            assert names == {f"kpexporter_{n}" for n in want}
            for name, qs in want.items():
                got = tuple(s.value(f"kpexporter_{name}", window=LIFETIME, quantile=q)
                            for q in QS)
                assert got == pytest.approx(qs, nan_ok=True), name
            # Each window runs from the first poll of the family's current run (the trailing
            # pages that have it with the same buckets) as Prometheus increase() would: the
            # seconds histogram and the converted microseconds one share bucket bounds, so
            # the sync window runs on across versions; a family that left the page and came
            # back starts afresh.
            for name in want:
                inc = trailing_increase(name, sequence[: i + 1])
                assert s.value(f"kpexporter_{name}_count", window="1h") == inc.count, name
                got = tuple(s.value(f"kpexporter_{name}", window="1h", quantile=q) for q in QS)
                assert got == pytest.approx(tuple(quantile(float(q), inc) for q in QS),
                                            nan_ok=True), name
        assert len(exp.state.histories) == len(expected_lifetime(v130))
    assert_clean_log(caplog)


# ---------------------------------------------------------------- state level, many histories

GARBAGE = {
    "nan": ["NaN"] * 16,
    "inf": ["0"] * 8 + ["+Inf"] * 8,
    "negative": ["-3"] * 16,
    "decreasing": [str(100 - i) for i in range(16)],
    "negative-count": None,  # buckets fine, _count negative
}


def garbage_page(kind: str) -> bytes:
    raw = GARBAGE[kind]
    if raw is None:
        return histogram_page([1] * 16).replace(b"_count 1", b"_count -1")
    return histogram_page([], raw_values=raw)


step = st.tuples(
    st.integers(min_value=1, max_value=400),  # seconds since the previous poll
    st.lists(st.integers(min_value=0, max_value=50), min_size=16, max_size=16),  # new obs.
    st.booleans() | st.just(False),  # restart before this poll (counts from zero)
    st.sampled_from([None, None, None, *GARBAGE]),  # a garbage poll before this one
)


def windows_of(d_summaries: tuple[Summary, ...]) -> dict[str, tuple[float, ...]]:
    out = {}
    for s in d_summaries:
        if s.window != LIFETIME:
            out[s.window] = (*(v for _, v in s.quantiles), s.sum, s.count)
    return out


def same(a: dict[str, tuple[float, ...]], b: dict[str, tuple[float, ...]]) -> bool:
    return a.keys() == b.keys() and all(
        len(a[k]) == len(b[k]) and all(
            (math.isnan(x) and math.isnan(y)) or x == pytest.approx(y, rel=1e-9, abs=1e-9)
            for x, y in zip(a[k], b[k], strict=True)) for k in a)


def record(st_: TargetState, cfg: Config, t: float, page: bytes) -> dict[str, tuple[float, ...]]:
    d = st_.record(poll_result(healthz_body(t), 200, page, started=t), cfg)
    return windows_of(tuple(s for s in d.summaries if s.name == SYNC))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=1, max_size=25))
def test_garbage_polls_leave_the_windows_as_a_fresh_state_has_them(
        steps: list[tuple[int, list[int], bool, str | None]]) -> None:
    cfg = config()
    dirty = TargetState(cfg.targets[0], horizon=cfg.horizon)
    clean = TargetState(cfg.targets[0], horizon=cfg.horizon)
    t, start, counts = 1.7e9, 1.7e9 - 100, [0] * 16
    page = histogram_page(cumulative(counts), total=0.0, start_time=start)
    record(dirty, cfg, t, page)
    record(clean, cfg, t, page)
    for gap, new, restart, garbage in steps:
        if garbage is not None:  # half-way between two good polls
            record(dirty, cfg, t + gap / 2, garbage_page(garbage))
        t += gap
        if restart:
            start, counts = t - 1, [0] * 16
        counts = [c + n for c, n in zip(counts, new, strict=True)]
        page = histogram_page(cumulative(counts), total=sum(counts) * 0.01, start_time=start)
        got, want = record(dirty, cfg, t, page), record(clean, cfg, t, page)
        assert same(got, want), (got, want)
        for window, values in got.items():
            *qs, total, count = values
            assert count >= 0 and (math.isnan(total) or total >= 0), (window, values)
            assert all(math.isnan(q) or 0 <= q <= MAX_FINITE for q in qs), (window, values)
    rejected = sum(1 for s in steps if s[3] is not None)
    assert dirty.errors[("metrics", "parse")] == rejected
