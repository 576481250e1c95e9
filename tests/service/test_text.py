"""The cached text writer serves the collector's page, byte for byte, in both formats.

Each case renders the same states twice, with ``service.text.render_text`` (what ``/metrics``
serves) and with ``generate_latest`` over the ``prometheus_client`` collector
(``service.openmetrics``): the bytes must be equal, and so must what
``prometheus_client.parser`` reads from them, family by family and sample by sample (NaN
equal to NaN). The same for OpenMetrics: ``render_openmetrics`` against prometheus_client's
OpenMetrics writer as it runs for Prometheus's Accept header. promtool must accept the page.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from kpexporter.config.schema import DEFAULT_PASSTHROUGH, Target
from kpexporter.core.result import EndpointError, PollResult
from kpexporter.core.state import TargetState
from kpexporter.service.openmetrics import make_registry
from kpexporter.service.text import render_openmetrics, render_text
from tests.builders import HEALTHY_128, HEALTHY_128_NOW, config, poll_result
from tests.fixtures import ALL, V1_30, fixture_bytes

Parsed = list[tuple[str, str, str, list[tuple[str, tuple[tuple[str, str], ...], str]]]]

HEALTHY_133 = (b'{"lastUpdated":"2025-05-01T10:00:00Z","currentTime":"2025-05-01T10:00:01Z",'
               b'"nodeEligible":true,"healthy":true,"status":{"IPv4":{"lastUpdated":'
               b'"2025-05-01T10:00:00.5Z","healthy":true},"IPv6":{"lastUpdated":'
               b'"0001-01-01T00:00:00Z","healthy":false}}}')
NEVER_SYNCED = (b'{"lastUpdated": "0001-01-01 00:00:00 +0000 UTC","currentTime": '
                b'"2024-06-21 11:08:45.074765635 +0000 UTC m=+80.277574766"}')
SYNC = "kubeproxy_sync_proxy_rules_duration_seconds"


def page_133(extra: int = 0, label: str = "IPv4") -> bytes:
    """A 1.33-style page: the sync histogram per ip_family (``label`` may be hostile)."""
    lines = [f"# TYPE {SYNC} histogram"]
    for fam, base in ((label, 3), ("IPv6", 1)):
        cum = 0
        for i, le in enumerate(("0.001", "0.002", "0.004", "0.008", "+Inf")):
            cum += base if i >= 2 else 0
            cum += extra if le == "+Inf" else 0
            lines.append(f'{SYNC}_bucket{{ip_family="{fam}",le="{le}"}} {cum}')
        lines.append(f'{SYNC}_sum{{ip_family="{fam}"}} {0.01 * (cum + 1)}')
        lines.append(f'{SYNC}_count{{ip_family="{fam}"}} {cum}')
    lines += ["# TYPE kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge",
              f'kubeproxy_sync_proxy_rules_last_timestamp_seconds{{ip_family="{label}"}} 1.7e9',
              "# TYPE kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds gauge",
              f'kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds{{ip_family="{label}"}}'
              " 1.7000001e9", "process_start_time_seconds 1.69e9", ""]
    return "\n".join(lines).encode()


def parsed(text: str) -> Parsed:
    out: Parsed = []
    for f in text_string_to_metric_families(text):
        samples = [(s.name, tuple(sorted(s.labels.items())), floatToGoString(s.value))
                   for s in f.samples]
        out.append((f.name, f.type, f.documentation, samples))
    return out


PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                     "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
"""The Accept header of Prometheus's scrapes (scrape/scrape.go, 2.x)."""


def assert_same_page(states: list[TargetState]) -> str:
    fast = render_text(states).decode()
    slow = generate_latest(make_registry(lambda: states)).decode()
    assert parsed(fast) == parsed(slow)
    assert fast == slow  # byte for byte
    assert_same_openmetrics(states)
    return fast


def assert_same_openmetrics(states: list[TargetState]) -> bytes:
    writer, _ = choose_encoder(PROMETHEUS_ACCEPT)
    fast = render_openmetrics(states)
    assert fast is not None
    assert fast == writer(make_registry(lambda: states))  # byte for byte
    return fast


def state(node: str = "node-a") -> TargetState:
    cfg = config()
    return TargetState(Target(node, cfg.healthz_url, cfg.metrics_url), horizon=cfg.horizon)


def recorded(results: list[PollResult], node: str = "node-a") -> TargetState:
    st_ = state(node)
    for r in results:
        st_.record(r, config())
    return st_


def test_every_fixture_page() -> None:
    for name in ALL:
        for passthrough in ((), DEFAULT_PASSTHROUGH, ("*",)):  # ("*",): every family on it
            st_ = recorded([poll_result(HEALTHY_128, 200, fixture_bytes(name),
                                        passthrough=passthrough)])
            assert_same_page([st_])


def test_down_never_polled_503_and_never_synced() -> None:
    states = [
        recorded([poll_result(None, 0, None)], "down"),
        state("never-polled"),
        recorded([poll_result(HEALTHY_128, 503, fixture_bytes(V1_30))], "draining"),
        recorded([poll_result(NEVER_SYNCED, 503, None)], "never-synced"),
    ]
    text = assert_same_page(states)
    assert 'kpexporter_healthz_staleness_seconds{node="never-synced"} +Inf' in text


def test_1_33_families_and_windows_over_many_polls() -> None:
    results = [poll_result(HEALTHY_133, 200, page_133(k), started=HEALTHY_128_NOW + 15 * k)
               for k in range(6)]
    st_ = recorded(results)
    text = assert_same_page([st_])
    assert 'ip_family="IPv6"' in text and 'window="5m"' in text


def test_hostile_label_values_and_clashing_labels() -> None:
    evil = 'I"P\\v4\nx'
    escaped = evil.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    page = page_133(label=escaped)
    page = page.replace(b'{ip_family="IPv6",le=',
                        b'{node="other",quantile="q",ip_family="IPv6",le=')
    st_ = recorded([poll_result(HEALTHY_133, 200, page)], node='no"de\\\n1')
    text = assert_same_page([st_])
    assert "exported_node" in text and "exported_quantile" in text
    assert f'ip_family="{escaped}"' in text and 'node="no\\"de\\\\\\n1"' in text


def test_lines_are_rewritten_when_and_only_when_the_target_changed() -> None:
    cfg = config()
    a, b = state("a"), state("b")
    base = fixture_bytes(V1_30)
    for k in range(3):
        for st_ in (a, b):
            st_.record(poll_result(HEALTHY_128, 200, base, started=HEALTHY_128_NOW + 15 * k),
                       cfg)
        assert_same_page([a, b])
    first = render_text([a, b])
    assert render_text([a, b]) == first
    # Only a change that bumps ``version`` (every ``record``) rewrites the lines: state edited
    # behind the writer's back is not seen (the poller never does that).
    a.errors[("metrics", "timeout")] += 1
    assert render_text([a, b]) == first
    a.record(poll_result(HEALTHY_128, 200, base, started=HEALTHY_128_NOW + 60), cfg)
    assert render_text([a, b]) != first
    assert_same_page([a, b])
    assert_same_page([b])  # a removed target is gone, the other unchanged


@st.composite
def poll_sequences(draw: Any) -> list[tuple[int, PollResult]]:
    """Random polls of two targets: pages moving or not, outages, 503s, resets."""
    out = []
    t = HEALTHY_128_NOW
    count = 0
    for _ in range(draw(st.integers(1, 8))):
        t += draw(st.sampled_from([1.0, 15.0, 400.0]))
        kind = draw(st.sampled_from(["same", "more", "reset", "down", "503", "133", "errors"]))
        if kind == "more":
            count += draw(st.integers(1, 5))
        elif kind == "reset":
            count = 0
        if kind == "down":
            r = poll_result(None, 0, None, started=t)
        elif kind == "503":
            r = poll_result(NEVER_SYNCED, 503, page_133(count), started=t)
        elif kind == "133":
            r = poll_result(HEALTHY_133, 200, page_133(count), started=t)
        else:
            r = poll_result(HEALTHY_128, 200, page_133(count), started=t, mode=None)
            if kind == "errors":
                r = replace(r, errors=(EndpointError("metrics", "parse", "x"),),
                            durations=(("healthz", 7.5), ("proxymode", 0.0001)))
        out.append((draw(st.integers(0, 1)), r))
    return out


@settings(max_examples=60, deadline=None)
@given(poll_sequences())
def test_random_poll_sequences_render_the_collector_page(steps: list[tuple[int, Any]]) -> None:
    cfg = config()
    states = [state("a"), state("b")]
    for i, r in steps:
        states[i].record(r, cfg)
        assert_same_page(states)


def test_a_targets_lines_go_with_it() -> None:
    import gc

    from kpexporter.service import text
    a, b = recorded([poll_result(HEALTHY_128, 200, fixture_bytes(V1_30))], "a"), state("b")
    render_text([a, b])
    assert {id(a), id(b)} <= set(text._TEXT)
    key = id(a)
    del a
    gc.collect()
    assert key not in text._TEXT and id(b) in text._TEXT


def test_a_renamed_target_is_rewritten() -> None:
    a = recorded([poll_result(HEALTHY_128, 200, fixture_bytes(V1_30))], "a")
    assert 'node="a"' in render_text([a]).decode()
    a.retarget(Target("b", a.target.healthz_url, a.target.metrics_url))
    text = assert_same_page([a])
    assert 'node="a"' not in text and 'node="b"' in text


@pytest.mark.promtool
@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_fast_page() -> None:
    states = [recorded([poll_result(HEALTHY_128, 200, fixture_bytes(n))], f"n{i}")
              for i, n in enumerate(ALL)]
    states.append(recorded([poll_result(HEALTHY_133, 200, page_133(2))], "n133"))
    states.append(recorded([poll_result(None, 0, None)], "down"))
    states.append(state("never"))
    text = render_text(states).decode()
    out = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_openmetrics_help_with_quotes_and_families_that_writer_treats_apart() -> None:
    page = (b'# HELP kubeproxy_odd_total A "quoted" \\ help\n# TYPE kubeproxy_odd_total counter\n'
            b'kubeproxy_odd_total 3\n')
    st_ = recorded([poll_result(HEALTHY_128, 200, page, passthrough=DEFAULT_PASSTHROUGH)])
    assert b'# HELP kubeproxy_odd A \\"quoted\\" \\\\ help\n' in assert_same_openmetrics([st_])
    untyped = recorded([poll_result(HEALTHY_128, 200, b"kubeproxy_plain 1\n",
                                    passthrough=DEFAULT_PASSTHROUGH)])
    assert b"# TYPE kubeproxy_plain unknown\n" in assert_same_openmetrics([untyped])
    colon = b"# TYPE kubeproxy:rate gauge\nkubeproxy:rate 1\n"
    odd = recorded([poll_result(HEALTHY_128, 200, colon, passthrough=("kubeproxy*",))])
    assert b'kubeproxy:rate{node="node-a"} 1.0' in render_text([odd])
    assert render_openmetrics([odd]) is None  # the collector writes it (its own way)
