"""The bridge: kube-proxy's own families picked by pattern, checked against prometheus_client.

The oracle for "as kube-proxy wrote them" is ``prometheus_client``'s full parse of the same
captured page: every sample of every family whose name matches a pattern, nothing else.
The pages the writers then make are checked with ``promtool check metrics`` (text) and the
OpenMetrics parser.
"""

from __future__ import annotations

import math
import re
import shutil

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
from prometheus_client.parser import text_string_to_metric_families

from kpexporter.config.schema import DEFAULT_PASSTHROUGH, build_config
from kpexporter.kubeproxy.families import extract
from kpexporter.kubeproxy.passthrough import (
    CONVERTED_HELP,
    PassFamily,
    reader_prefixes,
    select,
)
from kpexporter.promtext.exposition import read_exposition
from tests.fixtures import ALL, V1_8, V1_30, fixture_bytes, fixture_text
from tests.promtool import metrics_problems

Key = tuple[str, tuple[tuple[str, str], ...], float]


def passed(page: bytes, patterns: tuple[str, ...] = DEFAULT_PASSTHROUGH
           ) -> tuple[PassFamily, ...]:
    exp = read_exposition(page, reader_prefixes(patterns))
    return extract(exp, patterns).passthrough


def samples_of(families: tuple[PassFamily, ...]) -> set[Key]:
    return {(name, labels, value) for f in families for name, labels, value in f.samples}


def reference(text: str, patterns: tuple[str, ...]) -> set[Key]:
    """prometheus_client's samples of the families whose page name matches a pattern."""
    match = re.compile("|".join(".*".join(map(re.escape, p.split("*"))) for p in patterns))
    out: set[Key] = set()
    for fam in text_string_to_metric_families(text):
        page_name = fam.name + "_total" if fam.type == "counter" else fam.name
        if match.fullmatch(page_name) or match.fullmatch(fam.name):
            out |= {(s.name, tuple(sorted(s.labels.items())), s.value) for s in fam.samples}
    return out


@pytest.mark.parametrize("name", ALL)
def test_every_matching_sample_as_kube_proxy_wrote_it(name: str) -> None:
    got = passed(fixture_bytes(name))
    want = reference(fixture_text(name), DEFAULT_PASSTHROUGH)
    converted = {k for k in samples_of(got)
                 if k[0].startswith("kubeproxy_sync_proxy_rules_duration_seconds")}
    if name == V1_8:
        assert converted  # the pre-1.14 page also gets the seconds histogram
        assert samples_of(got) - converted == want
    else:
        assert samples_of(got) == want
    assert want  # every capture has go_goroutines, process_* at least


def test_types_and_help_follow_the_page() -> None:
    fams = {f.name: f for f in passed(fixture_bytes(V1_30))}
    assert fams["rest_client_requests"].type == "counter"  # named without _total, like ours
    assert {s[0] for s in fams["rest_client_requests"].samples} == {"rest_client_requests_total"}
    assert fams["kubeproxy_sync_proxy_rules_iptables_total"].type == "gauge"
    assert fams["kubeproxy_sync_proxy_rules_duration_seconds"].type == "histogram"
    assert fams["go_goroutines"].help == "Number of goroutines that currently exist."
    # OpenMetrics wants each series' buckets, _sum and _count together.
    names = [s[0] for s in fams["rest_client_request_duration_seconds"].samples]
    assert names.index("rest_client_request_duration_seconds_sum") < len(names) - 2


def test_microseconds_converted_to_seconds_unless_both() -> None:
    page = fixture_bytes(V1_8)
    fams = {f.name: f for f in passed(page)}
    micro = fams["kubeproxy_sync_proxy_rules_latency_microseconds"]
    secs = fams["kubeproxy_sync_proxy_rules_duration_seconds"]
    assert secs.help == CONVERTED_HELP
    by_name = {}
    for name, labels, value in micro.samples:
        by_name[(name.rsplit("_", 1)[-1], dict(labels).get("le"))] = value
    for name, labels, value in secs.samples:
        kind, le = name.rsplit("_", 1)[-1], dict(labels).get("le")
        if kind == "bucket":
            us = next(v for (k, ule), v in by_name.items()
                      if k == "bucket" and ule is not None
                      and (ule == le == "+Inf" or (ule != "+Inf" and le != "+Inf"
                                                    and float(ule) / 1e6 == float(le))))
            assert value == us
        elif kind == "sum":
            assert value == by_name[("sum", None)] / 1e6
        else:
            assert value == by_name[("count", None)]
    both = page + (b"\nkubeproxy_sync_proxy_rules_duration_seconds_bucket{le=\"+Inf\"} 1\n"
                   b"kubeproxy_sync_proxy_rules_duration_seconds_count 1\n")
    assert CONVERTED_HELP not in {f.help for f in passed(both)}


def test_off_when_empty_and_only_what_matches() -> None:
    assert passed(fixture_bytes(V1_30), ()) == ()
    fams = passed(fixture_bytes(V1_30), ("go_goroutines", "process_start_*"))
    assert {f.name for f in fams} == {"go_goroutines", "process_start_time_seconds"}


def test_page_node_label_becomes_exported_node_and_bad_lines_stay_out() -> None:
    page = (b"# TYPE kubeproxy_x gauge\n"
            b'kubeproxy_x{node="evil",exported_node="e"} 1\n'
            b'kubeproxy_x{a="1"} 2\n'
            b"kubeproxy_x{broken 3\n"
            b'kubeproxy_big{v="' + b"x" * 5000 + b'"} 4\n')
    exp = read_exposition(page, reader_prefixes(("kubeproxy_*",)))
    fams = select(exp, ("kubeproxy_*",))
    assert exp.bad_lines == 1
    assert samples_of(fams) == {
        ("kubeproxy_x", (("a", "1"),), 2.0),
        ("kubeproxy_x", (("exported_exported_node", "evil"), ("exported_node", "e")), 1.0)}


def test_help_unescaped_as_prometheus_reads_it() -> None:
    page = b'# HELP kubeproxy_x one \\\\ two\\nthree "q"\n# TYPE kubeproxy_x gauge\nkubeproxy_x 1\n'
    want = next(text_string_to_metric_families(page.decode())).documentation
    fams = select(read_exposition(page, ("kubeproxy_",)), ("kubeproxy_*",))
    assert fams[0].help == want == 'one \\ two\nthree "q"'


def test_malformed_histogram_is_passed_untyped() -> None:
    page = (b"# TYPE kubeproxy_h histogram\n"
            b'kubeproxy_h_bucket{le="abc"} 1\n'
            b"kubeproxy_h_count 1\n")
    fams = select(read_exposition(page, ("kubeproxy_",)), ("kubeproxy_*",))
    assert {(f.name, f.type) for f in fams} == {("kubeproxy_h_bucket", "unknown"),
                                                 ("kubeproxy_h_count", "unknown")}


def test_histogram_without_inf_bucket_is_passed_untyped() -> None:
    """OpenMetrics requires ``+Inf`` in every histogram series; the text format does not."""
    page = (b"# TYPE kubeproxy_h histogram\n"
            b'kubeproxy_h_bucket{a="1",le="1"} 1\n'
            b'kubeproxy_h_bucket{a="1",le="+Inf"} 1\n'
            b'kubeproxy_h_bucket{a="2",le="1"} 1\n')
    fams = select(read_exposition(page, ("kubeproxy_",)), ("kubeproxy_*",))
    assert [(f.name, f.type) for f in fams] == [("kubeproxy_h_bucket", "unknown")]
    whole = page.replace(b'{a="2",le="1"} 1', b'{a="2",le="+Inf"} 1')
    fams = select(read_exposition(whole, ("kubeproxy_",)), ("kubeproxy_*",))
    assert [(f.name, f.type) for f in fams] == [("kubeproxy_h", "histogram")]


def test_reader_prefixes_merge_shared_starts() -> None:
    assert reader_prefixes(DEFAULT_PASSTHROUGH) == (
        "go_goroutines", "kubeproxy_", "process_", "rest_client_request")
    assert reader_prefixes(()) == ("kubeproxy_", "process_start_time_seconds")


def _pages() -> tuple[str, str]:
    from prometheus_client.openmetrics.exposition import generate_latest

    from kpexporter.core.result import PollResult
    from kpexporter.core.state import TargetState
    from kpexporter.service.openmetrics import make_registry
    from kpexporter.service.text import render_text

    cfg = build_config(None, {"NODE_NAME": "n"}, {})
    states = []
    for i, name in enumerate(ALL):
        st = TargetState(cfg.targets[0].__class__(f"n{i}", "http://h/healthz", "http://h/m"))
        m = extract(read_exposition(fixture_bytes(name), reader_prefixes(cfg.passthrough)),
                    cfg.passthrough)
        st.record(PollResult(f"n{i}", 1.7e9, None, 0, None, m, 1.7e9, None, (), ()), cfg)
        states.append(st)
    return render_text(states).decode(), generate_latest(make_registry(lambda: states)).decode()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_written_pages_are_valid() -> None:
    text, om = _pages()
    assert metrics_problems(text) == []  # kube-proxy's own names may lint; nothing else
    assert 'rest_client_requests_total{code="200",host=' in text
    fams = {f.name: f for f in om_parse(om)}
    assert fams["rest_client_requests"].type == "counter"
    assert not math.isnan(fams["go_goroutines"].samples[0].value)
    assert {s.labels["node"] for s in fams["go_goroutines"].samples} == {"n0", "n1", "n2", "n3"}
