"""Property test: any bytes kube-proxy might send go through the whole pipeline as a result.

``interpret_healthz``/``interpret_metrics`` return a report or an ``EndpointError`` (never
raise), ``derive`` returns a ``Derived``, ``TargetState.record`` folds it in, and the page
rendered from it is a valid exposition without duplicate series, as is the targets JSON.
The inputs: arbitrary bytes, real bodies and pages spliced with garbage, and kube-proxy-like
lines built from the names we read with hostile labels and values.
"""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.exposition import generate_latest

from kpexporter.core.derive import Derived, derive
from kpexporter.core.poll import interpret_healthz, interpret_metrics
from kpexporter.core.result import EndpointError, PollResult
from kpexporter.core.state import TargetState
from kpexporter.kubeproxy.families import HISTOGRAMS, LEGACY_MICROSECOND_HISTOGRAMS
from kpexporter.net.fetcher import Fetched
from kpexporter.service.app import target_json
from kpexporter.service.families import FAMILIES, ProcessScalars
from kpexporter.service.openmetrics import make_registry
from tests.builders import HEALTHY_128, config
from tests.faults.hostile import parse_page
from tests.fixtures import FIXTURES, V1_8, V1_30

SETTINGS = settings(max_examples=int(os.environ.get("KPX_FUZZ_EXAMPLES", "200")),
                    deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _excerpt(name: str) -> bytes:
    path = FIXTURES / name
    if not path.is_file():
        return b""
    lines = path.read_bytes().split(b"\n")
    return b"\n".join(ln for ln in lines if b"kubeproxy_" in ln or b"process_start" in ln)


REAL_PAGES = [p for p in (_excerpt(V1_30), _excerpt(V1_8)) if p]
REAL_BODIES = [
    HEALTHY_128,
    b'{"lastUpdated": "0001-01-01 00:00:00 +0000 UTC","currentTime": '
    b'"2019-09-12 09:58:12.6419133 -0700 PDT m=+1234.500000000"}',
    b'{"lastUpdated":"2025-05-01T10:00:00.5Z","currentTime":"2025-05-01T10:00:01Z",'
    b'"nodeEligible":true,"healthy":true,"status":{"IPv4":{"lastUpdated":'
    b'"2025-05-01T10:00:00.5Z","healthy":true}}}',
]

NAMES = [f"{family}{suffix}" for family in (*HISTOGRAMS.values(),
                                            *LEGACY_MICROSECOND_HISTOGRAMS.values())
         for suffix in ("_bucket", "_sum", "_count")] + [
    "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
    "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
    "kubeproxy_sync_proxy_rules_endpoint_changes_pending", "process_start_time_seconds",
    "kubeproxy_other_total", "go_goroutines"]
VALUES = st.one_of(
    st.sampled_from(["0", "1", "-1", "NaN", "+Inf", "-Inf", "1e308", "-0", "1.7e9", "4e10",
                     "0x1p3", "1_000", "", "1e-320", "9" * 400]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-10, max_value=10**6).map(str),
)
LABEL_NAMES = st.sampled_from(["le", "ip_family", "node", "window", "quantile", "exported_node",
                               "__name__", "a", "le"])
LABEL_VALUES = st.one_of(
    st.sampled_from(["0.001", "0.002", "1", "1.0", "+Inf", "Inf", "NaN", "-1", "IPv4", "IPv6",
                     "", 'a"b', "a\\nb", "\\"]),
    st.text(max_size=8),
)


@st.composite
def sample_line(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(NAMES))
    labels = draw(st.lists(st.tuples(LABEL_NAMES, LABEL_VALUES), max_size=3))
    body = ",".join(f'{k}="{v}"' for k, v in labels)
    ts = draw(st.sampled_from(["", "", " 1700000000000", " -1", " x"]))
    return f"{name}{{{body}}} {draw(VALUES)}{ts}" if labels else f"{name} {draw(VALUES)}{ts}"


@st.composite
def meta_line(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["TYPE", "HELP"]))
    name = draw(st.sampled_from(NAMES)).removesuffix("_bucket")
    typ = draw(st.sampled_from(["histogram", "counter", "gauge", "summary", "untyped", "x", ""]))
    return f"# {kind} {name} {typ}"


kube_proxy_like = st.lists(st.one_of(sample_line(), meta_line(), st.just(""),
                                     st.text(max_size=20)), max_size=40).map(
    lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass"))


@st.composite
def spliced(draw: st.DrawFn, originals: list[bytes]) -> bytes:
    base = draw(st.sampled_from(originals))
    if not base:
        return draw(st.binary(max_size=64))
    at = draw(st.integers(min_value=0, max_value=len(base)))
    cut = draw(st.integers(min_value=0, max_value=min(64, len(base) - at)))
    return base[:at] + draw(st.binary(max_size=16)) + base[at + cut:]


metrics_bodies = st.one_of(st.binary(max_size=512), kube_proxy_like, spliced(REAL_PAGES or [b""]))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
              st.text(max_size=12), st.sampled_from(["2024-06-21 11:08:45 +0000 UTC",
                                                     "2025-05-01T10:00:00Z",
                                                     "0001-01-01 00:00:00 +0000 UTC"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(["lastUpdated", "currentTime",
                                                             "nodeEligible", "healthy",
                                                             "status", "IPv4", "x"]),
                                            inner, max_size=5)),
    max_leaves=10)
healthz_bodies = st.one_of(st.binary(max_size=300), spliced(REAL_BODIES),
                           json_values.map(lambda v: json.dumps(v).encode()))
statuses = st.sampled_from([200, 200, 200, 503, 404, 500, 301, 0, 599])
content_types = st.sampled_from(["text/plain; version=0.0.4", "application/json", "text/html",
                                 "", "application/openmetrics-text; version=1.0.0"])


def poll(healthz: bytes, h_status: int, page: bytes, m_status: int, ctype: str,
         t: float) -> PollResult:
    errors: list[EndpointError] = []
    got_h = interpret_healthz(Fetched(h_status, healthz, "application/json", t, 0.002))
    got_m = interpret_metrics(Fetched(m_status, page, ctype, t, 0.002))
    h = None if isinstance(got_h, EndpointError) else got_h
    m = None if isinstance(got_m, EndpointError) else got_m
    errors += [e for e in (got_h, got_m) if isinstance(e, EndpointError)]
    return PollResult("node-a", t, h, h_status, t + 0.001, m, t + 0.001, "iptables",
                      (("healthz", 0.002), ("metrics", 0.002)), tuple(errors))


PROCESS_LEVEL = tuple(f.name for f in FAMILIES if isinstance(f, ProcessScalars))
"""Families without ``node`` (the remote-write ones appear once any writer ran in the process)."""


@SETTINGS
@given(healthz_bodies, statuses, metrics_bodies, statuses, content_types, metrics_bodies)
def test_any_bytes_give_a_result_and_a_valid_page(healthz: bytes, h_status: int, page: bytes,
                                                  m_status: int, ctype: str,
                                                  page2: bytes) -> None:
    cfg = config()
    first = poll(healthz, h_status, page, m_status, ctype, 1.7e9)
    assert isinstance(derive(first, None, cfg), Derived)
    st_ = TargetState(cfg.targets[0], horizon=cfg.horizon)
    st_.record(first, cfg)
    # A second poll with another page: histories, resets, layout changes, series churn.
    d = st_.record(poll(HEALTHY_128, 200, page2, 200, "text/plain", 1.7e9 + 15), cfg)
    assert isinstance(d, Derived)
    text = generate_latest(make_registry(lambda: [st_])).decode()
    series = parse_page(text)  # valid text format, no duplicate series
    assert {dict(labels).get("node") for (name, labels) in series
            if not name.startswith(PROCESS_LEVEL)} == {"node-a"}
    json.dumps(target_json(st_), allow_nan=False)  # what /api/v1/targets serves
