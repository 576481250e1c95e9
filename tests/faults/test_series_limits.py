"""Cardinality and label limits: what a page may make the exporter keep.

Before: a page of 100,000 distinct histogram series (8 MB, under the body cap) took the
exporter from 53 to 846 MB with ``up`` 1 and no log line. Now a page with more kube-proxy
series than ``max_series`` (Prometheus's ``sample_limit``) fails the metrics poll with reason
``too_many_series``, logged once, and is not parsed at all. Under the cap, series whose counts
move every poll cost memory bounded by the longest window, never growing poll after poll.
Raw control characters in label values make a line malformed (Prometheus keeps them verbatim,
which we do not want on our page).
"""

from __future__ import annotations

import gc
import itertools
import logging
import subprocess
import tracemalloc

import pytest

from kpexporter.core.poll import interpret_metrics
from kpexporter.core.result import EndpointError
from kpexporter.net.fetcher import Fetched
from kpexporter.promtext.exposition import read_exposition
from tests.faults.hostile import SYNC_BOUNDS, answer, running
from tests.faults.test_faults import assert_clean_log, healthy_healthz
from tests.fixtures import V1_30, fixture_bytes
from tests.promtool import have_promtool, promtool_path, skip_reason

MiB = 1024 * 1024
BUCKET = "kubeproxy_sync_proxy_rules_duration_seconds_bucket"


def distinct_series_page(n: int) -> bytes:
    """``n`` bucket lines, each its own series (the attack in the issue: ~8 MB for 100,000)."""
    return "".join(f'{BUCKET}{{i="{i}",le="+Inf"}} {i}\n'
                   for i in range(n)).encode()


def moving_page(families: int, poll: int) -> bytes:
    """``families`` histogram series (16 buckets, _sum, _count: 18 lines each) whose counts
    all move every poll."""
    name = "kubeproxy_sync_proxy_rules_duration_seconds"
    les = [repr(b) for b in SYNC_BOUNDS] + ["+Inf"]
    lines = [f"# TYPE {name} histogram"]
    for f in range(families):
        labels = f'ip_family="f{f}"'
        lines += [f'{name}_bucket{{{labels},le="{le}"}} {poll * (k + 1)}'
                  for k, le in enumerate(les)]
        lines += [f"{name}_sum{{{labels}}} {poll * 0.5}",
                  f"{name}_count{{{labels}}} {poll * len(les)}"]
    return ("\n".join(lines) + "\n").encode()


def fetched(body: bytes) -> Fetched:
    return Fetched(200, body, "text/plain; version=0.0.4", 0.0, 0.0)


def test_real_pages_are_far_below_the_default() -> None:
    """The v1.30 capture holds 153 kube-proxy series; the default cap is 10,000."""
    exp = read_exposition(fixture_bytes(V1_30))
    assert sum(map(len, exp.samples.values())) < 10_000 // 20
    assert not isinstance(interpret_metrics(fetched(fixture_bytes(V1_30))), EndpointError)


def test_the_cap_counts_every_series_line() -> None:
    page = distinct_series_page(100)
    assert not isinstance(interpret_metrics(fetched(page), max_series=100), EndpointError)
    over = interpret_metrics(fetched(page), max_series=99)
    assert isinstance(over, EndpointError) and over.reason == "too_many_series"
    # Lines with leading blanks are valid and read; they count too.
    indented = b"".join(b" " + line + b"\n" for line in page.splitlines())
    over = interpret_metrics(fetched(indented), max_series=99)
    assert isinstance(over, EndpointError) and over.reason == "too_many_series"


def test_an_oversized_page_is_refused_without_being_parsed() -> None:
    page = distinct_series_page(100_000)
    assert len(page) < 8 * MiB  # under the default body cap: only the series cap stops it
    interpret_metrics(fetched(distinct_series_page(10)))  # warm-up
    gc.collect()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        got = interpret_metrics(fetched(page), max_series=10_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(got, EndpointError) and got.reason == "too_many_series"
    assert peak - base < MiB, f"{(peak - base) / MiB:.1f} MiB to refuse the page"


async def test_exporter_over_max_series(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="kpexporter")
    page = distinct_series_page(100_000)
    flags = {"interval": "0.2", "timeout": "2", "max_body_bytes": str(16 * MiB)}
    async with running(healthy_healthz(), answer(page), **flags) as (_, exp):
        await exp.settle(3)
        s = await exp.scrape()
    assert s.status == 200
    assert s.value("kpexporter_up") == 0.0
    assert s.errors("metrics", "too_many_series") >= 3
    assert s.value("kpexporter_healthz_healthy") == 1.0  # the other endpoint still shows
    assert not [k for k in s.series if k[0].startswith("kpexporter_sync_proxy_rules")]
    problems = [r for r in caplog.records if r.getMessage() == "poll_problem"]
    assert len(problems) == 1, [vars(r) for r in problems]  # once, not every poll
    assert_clean_log(caplog)


async def test_series_moving_every_poll_do_not_grow_memory() -> None:
    """~5,000 series (277 histograms) whose counts all move every poll: after the longest
    window (1 s here) has filled, what a poll leaves behind does not add up."""
    polls = itertools.count(1)
    families = 5_000 // 18

    def page() -> bytes:
        return moving_page(families, next(polls))

    flags = {"interval": "0.2", "timeout": "5", "windows": "1s"}
    async with running(healthy_healthz(), answer(page), **flags) as (_, exp):
        await exp.settle(10, deadline=60)  # the 1 s window full: histories at steady size
        assert (await exp.client.get("/metrics")).status_code == 200
        gc.collect()
        tracemalloc.start()
        try:
            await exp.wait_polls(3, deadline=60)
            gc.collect()
            middle, _ = tracemalloc.get_traced_memory()
            await exp.wait_polls(12, deadline=120)
            assert (await exp.client.get("/metrics")).status_code == 200
            gc.collect()
            end, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert exp.state.derived is not None and exp.state.derived.up
    assert end - middle < 2 * MiB, f"{(end - middle) / MiB:.1f} MiB more after 12 polls"


CONTROL_VALUES = ["cr\rq", "nul\0q", "esc\x1b[31mq", "del\x7fq"]


@pytest.mark.skipif(not have_promtool(), reason=skip_reason())
def test_promtool_accepts_control_characters_that_we_refuse() -> None:
    """The oracle: Prometheus's own text parser keeps these bytes; we deliberately do not."""
    for v in CONTROL_VALUES:
        page = f'# HELP x h\n# TYPE x gauge\nx{{a="{v}"}} 1\n'.encode()
        run = subprocess.run([str(promtool_path()), "check", "metrics"], input=page,
                             capture_output=True, timeout=30, check=False)
        assert run.returncode == 0, (v, run.stderr)
        exp = read_exposition(page.replace(b"x", b"kubeproxy_x").replace(b"kubeproxy_x{a",
                                                                             b"kubeproxy_x{a"))
        assert exp.bad_lines == 1 and not exp.samples, (v, exp)


async def test_control_characters_never_reach_our_page(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="kpexporter")
    good = fixture_bytes(V1_30)
    extra = "".join(f'{BUCKET}{{ip_family="{v}",le="+Inf"}} 1\n' for v in CONTROL_VALUES)
    page = good + extra.encode()
    async with running(healthy_healthz(), answer(page)) as (_, exp):
        await exp.settle(2)
        s = await exp.scrape()
    assert s.value("kpexporter_up") == 1.0
    assert s.errors("metrics", "parse") >= len(CONTROL_VALUES)
    for ch in "\r\0\x1b\x7f":
        assert ch not in s.text
    assert_clean_log(caplog)


@pytest.mark.parametrize("trailing", [b"", b"\n"])
@pytest.mark.parametrize("lines", [98, 99, 100, 101])
def test_the_newline_shortcut_never_hides_a_page_over_the_cap(lines: int, trailing: bytes) -> None:
    """Fewer newlines than the cap means fewer candidate lines: the shortcut that skips the
    per-prefix count agrees with the count at the edge (no trailing newline, first line ours)."""
    from kpexporter.core.poll import _too_many_candidates
    page = distinct_series_page(lines).rstrip(b"\n") + trailing
    counted = page.count(b"\n" + BUCKET.encode()) + page.startswith(BUCKET.encode())
    for limit in (98, 99, 100, 101):
        assert _too_many_candidates(page, ("kubeproxy_",), limit) == (counted > limit)
        got = interpret_metrics(fetched(page), max_series=limit)
        assert isinstance(got, EndpointError) == (lines > limit), (lines, limit)
