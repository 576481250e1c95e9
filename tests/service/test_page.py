"""``/`` without a browser: the charts' SVG, the history behind them, and the page itself.

Oracles: an XML parser (the SVG and the page's charts are well-formed, and say what they
draw), the ``/metrics`` text page (the history samples what ``/metrics`` shows), and
``core.verdict``'s own words (the page's "why").
"""

from __future__ import annotations

import itertools
import math
import re
import xml.etree.ElementTree as ET

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kpexporter.config.schema import Target
from kpexporter.core.state import TargetState
from kpexporter.service.history import PageHistory
from kpexporter.service.page import MAX_CARDS, index_html
from kpexporter.service.svg import HEIGHT, PAD_BOTTOM, PAD_TOP, Line, fmt, line_chart, nice_max
from kpexporter.service.text import render_text
from tests.builders import HEALTHY_128, HEALTHY_128_NOW, config, poll_result
from tests.fixtures import V1_30, fixture_bytes

SVG = "{http://www.w3.org/2000/svg}"
NAN, INF = math.nan, math.inf


def _svg(markup: str) -> ET.Element:
    return ET.fromstring(markup)


def _points(el: ET.Element) -> list[tuple[float, float]]:
    return [tuple(map(float, p.split(","))) for p in el.get("points", "").split()]  # type: ignore[misc]


@pytest.mark.parametrize("v, top", [(0.0, 1.0), (-3, 1.0), (NAN, 1.0), (0.7, 1.0), (1.0, 1.0),
                                    (1.024, 2.0), (2.2, 2.5), (3.0, 5.0), (66, 100.0),
                                    (0.013, 0.02), (14.4 * 1.1, 20.0)])
def test_nice_max(v: float, top: float) -> None:
    assert nice_max(v) == pytest.approx(top)


def test_a_nan_breaks_the_line_and_a_lone_point_is_a_dot() -> None:
    pts = [(0, 1.0), (10, 2.0), (20, NAN), (30, 3.0), (40, NAN), (50, 4.0), (60, 0.5)]
    svg = _svg(line_chart("t", [Line("a", "#000", pts)], 0, 60, unit="s"))
    lines = svg.findall(f"{SVG}polyline")
    dots = svg.findall(f"{SVG}circle")
    assert [len(_points(p)) for p in lines] == [2, 2] and len(dots) == 1
    assert svg.get("data-points") == "5"
    xs = [x for p in lines for x, _ in _points(p)]
    assert xs == sorted(xs)  # time runs left to right


def test_values_are_placed_on_a_zero_based_axis_and_infinity_on_the_top_edge() -> None:
    svg = _svg(line_chart("t", [Line("a", "#000", [(0, 0.0), (5, 2.5), (10, INF)])], 0, 10,
                          unit="s"))
    (y0, y_half, y_top) = [y for _, y in _points(svg.find(f"{SVG}polyline"))]  # type: ignore[arg-type]
    bottom = HEIGHT - PAD_BOTTOM
    assert y0 == bottom and y_top == PAD_TOP  # axis 0..5 (nice_max(2.5) is 2.5: so top)
    assert y_half == PAD_TOP  # 2.5 is the top of a 0..2.5 axis
    texts = [t.text for t in svg.findall(f"{SVG}text")]
    assert "2.5 s" in texts and "now" in texts


def test_a_threshold_is_always_in_view_and_a_cap_bounds_the_axis() -> None:
    low = _svg(line_chart("t", [Line("a", "#000", [(0, 0.1), (1, 0.2)])], 0, 1, unit="s",
                          thresholds=[(60.0, "stuck")]))
    (line,) = low.findall(f"{SVG}line")
    assert PAD_TOP <= float(line.get("y1", "0")) < HEIGHT - PAD_BOTTOM
    assert "100 s" in [t.text for t in low.findall(f"{SVG}text")]
    capped = _svg(line_chart("t", [Line("a", "#000", [(0, 1000.0), (1, 0.5)])], 0, 1,
                             unit="x", thresholds=[(1.0, "1x"), (14.4, "page")], cap=18.0))
    assert "20×" in [t.text for t in capped.findall(f"{SVG}text")]
    assert len(capped.findall(f"{SVG}line")) == 2


def test_an_empty_chart_says_so() -> None:
    svg = _svg(line_chart("t", [Line("a", "#000", [(0, NAN)])], 0, 1, unit="s"))
    assert svg.get("data-points") == "0" and svg.find(f"{SVG}polyline") is None
    assert "no data" in [t.text for t in svg.findall(f"{SVG}text")]


@pytest.mark.parametrize("v, unit, text", [(0.0631, "s", "63.1 ms"), (1.5, "s", "1.5 s"),
                                           (600, "s", "10 min"), (NAN, "s", "–"),
                                           (INF, "s", "+Inf"), (999.9, "x", "1000×"),
                                           (14.4, "x", "14.4×"), (0, "s", "0 s")])
def test_fmt(v: float, unit: str, text: str) -> None:
    assert fmt(v, unit) == text


def _state(node: str) -> TargetState:
    cfg = config()
    return TargetState(Target(node, cfg.healthz_url, cfg.metrics_url), horizon=cfg.horizon)


def _poll(st: TargetState, at: float, status: int = 200) -> None:
    st.record(poll_result(HEALTHY_128, status, fixture_bytes(V1_30), started=at), config())


def test_history_keeps_samples_spaced_bounded_and_forgets_gone_nodes() -> None:
    cfg = config()
    h = PageHistory(cfg, span=10.0, points=5, max_targets=2)  # at least 2 s apart
    a, b, c = _state("a"), _state("b"), _state("c")
    for i in range(40):
        for st in (a, b, c):
            _poll(st, HEALTHY_128_NOW + i * 0.5)
        h.sample([a, b, c])
        h.sample([a, b, c])  # the same poll twice: one sample
    times = [s[0] for s in h.get("a")]
    assert len(times) == 5  # the newest 5, 2 s apart
    assert [round(t2 - t1, 6) for t1, t2 in itertools.pairwise(times)] == [2.0] * 4
    assert times[-1] == HEALTHY_128_NOW + 19.5 - 1.5  # the last one 2 s after its previous
    assert h.charted("b") and not h.charted("c")  # max_targets
    h.sample([b])
    assert not h.charted("a") and h.get("a") == ()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_a_history_sample_is_what_metrics_shows() -> None:
    cfg = config()
    h = PageHistory(cfg)
    st = _state("a")
    _poll(st, HEALTHY_128_NOW)
    _poll(st, HEALTHY_128_NOW + 15)
    h.sample([st])
    (sample,) = h.get("a")
    page = _samples(render_text([st]).decode())
    assert sample[0] == HEALTHY_128_NOW + 15
    pending = page.get(("kpexporter_sync_pending_seconds", (("node", "a"),)), NAN)
    assert sample[1] == pending or (math.isnan(sample[1]) and math.isnan(pending))
    cols = h.columns
    for i, window in enumerate(cols.windows):
        want = page[("kpexporter_sync_proxy_rules_duration_seconds",
                     (("node", "a"), ("quantile", repr(cols.quantile)), ("window", window)))]
        got = sample[2 + i]
        assert got == want or (math.isnan(got) and math.isnan(want)), (window, got, want)
    for i, slo in enumerate(cols.slos):
        key = ("kpexporter_slo_burn_rate", (("node", "a"), ("slo", slo),
                                            ("window", cols.slo_window)))
        got, want = sample[2 + len(cols.windows) + i], page.get(key, NAN)
        assert got == want or (math.isnan(got) and math.isnan(want)), (slo, got, want)


def test_the_page_is_self_contained_and_escapes_what_it_shows() -> None:
    cfg = config()
    hostile = _state('<script>alert("x")</script>')
    ok, bad, never = _state("ok"), _state("bad"), _state("never-polled")
    for i in range(3):
        _poll(ok, HEALTHY_128_NOW + i * 30)
        _poll(hostile, HEALTHY_128_NOW + i * 30)
        bad.record(poll_result(None, 0, None, started=HEALTHY_128_NOW + i * 30), cfg)
    h = PageHistory(cfg)
    h.sample([ok, bad, hostile, never])
    page = index_html([ok, never, bad, hostile], history=h, now=HEALTHY_128_NOW + 60,
                      refresh=7)
    assert "<script" not in page and 'alert("x")' not in page
    assert '<meta http-equiv="refresh" content="7">' in page
    # Nothing from elsewhere: every src/href is a path on this server or a fragment.
    for url in re.findall(r'(?:src|href)=["\']([^"\']*)', page):
        assert url.startswith(("/", "#")), url
    order = re.findall(r"<article class='node [^']*' id='node-([^']*)'", page)
    assert order[0] == "bad" and order[-1] == "never-polled"
    assert bad.derived is not None
    for reason in bad.derived.reasons:
        assert reason.replace("'", "&#x27;") in page
    svgs = re.findall(r"<svg .*?</svg>", page, re.S)
    assert len(svgs) == 3 * 3  # three charts for each polled node
    for markup in svgs:
        ET.fromstring(markup)  # well-formed
    assert "Waiting for the first poll" in page


def test_cards_are_bounded_and_the_table_lists_every_node() -> None:
    many = [_state(f"n{i:03d}") for i in range(MAX_CARDS + 5)]
    page = index_html(many)
    assert page.count("<article ") == MAX_CARDS
    assert "5 more nodes in the table below" in page
    assert all(f"href='#node-n{i:03d}'" in page for i in range(MAX_CARDS + 5))
