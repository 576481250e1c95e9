"""Per-target SLO state: which events each SLO counts, from real pages and polls.

Good and total are checked against ``prometheus_client``'s reading of the same page (the
bucket at ``le`` = threshold, and ``_count``, summed over ``ip_family``); the arithmetic of
windows, burn rates and budgets is checked against promtool in ``tests/stats/test_slo.py``.
"""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

from kpexporter.config.schema import Config, Target, build_config
from kpexporter.config.slos import parse_slos
from kpexporter.core.result import EndpointError, PollResult
from kpexporter.core.slo_state import OBJECTIVES, SLOValue
from kpexporter.core.state import TargetState
from kpexporter.kubeproxy.families import extract
from kpexporter.kubeproxy.healthz import parse_healthz
from kpexporter.promtext.exposition import read_exposition
from kpexporter.vocabulary import Endpoint, Reason
from tests.builders import HEALTHY_128, HEALTHY_128_NOW
from tests.fixtures import V1_8, V1_30, fixture_bytes, fixture_text

SYNC = "kubeproxy_sync_proxy_rules_duration_seconds"
NP = "kubeproxy_network_programming_duration_seconds"


def page(counts: dict[str, tuple[int, int]], family: str = SYNC, le: str = "1.024") -> bytes:
    """A histogram page: per ip_family (good at ``le``, total)."""
    lines = [f"# TYPE {family} histogram"]
    for fam, (good, total) in counts.items():
        lab = f'ip_family="{fam}",' if fam else ""
        lines += [f'{family}_bucket{{{lab}le="0.512"}} {good // 2}',
                  f'{family}_bucket{{{lab}le="{le}"}} {good}',
                  f'{family}_bucket{{{lab}le="+Inf"}} {total}',
                  f"{family}_sum{{{lab[:-1]}}} 1" if lab else f"{family}_sum 1",
                  f"{family}_count{{{lab[:-1]}}} {total}" if lab else f"{family}_count {total}"]
    return ("\n".join(lines) + "\n").encode()


DRAINING_128 = HEALTHY_128.replace(b'"nodeEligible": true', b'"nodeEligible": false')


def poll(body: bytes | None, t: float, status: int = 200, healthz: bytes = HEALTHY_128
         ) -> PollResult:
    h = parse_healthz(healthz, status) if status else None
    m = extract(read_exposition(body)) if body is not None else None
    errors = () if m is not None else (
        EndpointError(Endpoint.METRICS, Reason.CONNECT, "refused"),)
    return PollResult("n", t, h, status, t if h else None, m, t if m else None, "iptables", (),
                      errors)


def run(polls: list[PollResult], cfg: Config | None = None) -> dict[str, SLOValue]:
    cfg = cfg or build_config(None, {"NODE_NAME": "n"}, {})
    st = TargetState(Target("n", "http://h/healthz", "http://h/metrics"))
    for p in polls:
        st.record(p, cfg)
    assert st.slo is not None
    return {v.slo: v for v in st.slo.values}


def reference(text: str, family: str, le: float) -> tuple[float, float]:
    """prometheus_client: sum over series of the bucket at ``le`` and of ``_count``."""
    good = total = 0.0
    for fam in text_string_to_metric_families(text):
        if fam.name == family:
            for s in fam.samples:
                if s.name.endswith("_bucket") and float(s.labels["le"]) == le:
                    good += s.value
                elif s.name.endswith("_count"):
                    total += s.value
    return good, total


def test_latency_events_from_a_real_page() -> None:
    v = run([poll(fixture_bytes(V1_30), HEALTHY_128_NOW)])
    for slo, family, le in (("sync_latency", SYNC, 1.024), ("network_programming_latency", NP,
                                                             30.0)):
        assert (v[slo].good_total, v[slo].events_total) == reference(
            fixture_text(V1_30), family, le)
        assert v[slo].events_total > 0
    assert v["sync_latency"].lifetime_ratio == v["sync_latency"].good_total / v[
        "sync_latency"].events_total


def test_pre_114_page_counts_from_microseconds() -> None:
    v = run([poll(fixture_bytes(V1_8), HEALTHY_128_NOW)])
    good, total = reference(fixture_text(V1_8), "kubeproxy_sync_proxy_rules_latency_microseconds",
                            1024000.0)
    assert (v["sync_latency"].good_total, v["sync_latency"].events_total) == (good, total)
    assert math.isnan(v["network_programming_latency"].events_total)  # no source on 1.8


def test_summed_over_ip_family_and_continuous_across_a_restart() -> None:
    t = HEALTHY_128_NOW
    v = run([poll(page({"IPv4": (90, 100), "IPv6": (5, 10)}), t),
             poll(page({"IPv4": (95, 110), "IPv6": (5, 10)}), t + 15),
             poll(page({"IPv4": (3, 4), "IPv6": (1, 1)}), t + 30)])  # kube-proxy restarted
    s = v["sync_latency"]
    assert (s.good_total, s.events_total) == (95 + 5 + 3 + 1, 110 + 10 + 4 + 1)
    w5 = next(w for w in s.windows if w.window == "5m")
    assert (w5.good, w5.total) == (9.0, 15.0)  # the increase since the first poll
    assert w5.sli == 9 / 15 and w5.burn_rate == (1 - 9 / 15) / (1 - 0.99)


def test_threshold_bucket_written_without_decimals() -> None:
    v = run([poll(page({"": (7, 9)}, NP, "30"), HEALTHY_128_NOW)])
    assert (v["network_programming_latency"].good_total,
            v["network_programming_latency"].events_total) == (7.0, 9.0)


def test_availability_counts_polls_good_when_200_and_nothing_waits() -> None:
    t = HEALTHY_128_NOW
    queued = (b"kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds %d\n"
              b"kubeproxy_sync_proxy_rules_last_timestamp_seconds %d\n")
    polls = [poll(page({"": (1, 1)}), t + i) for i in range(10)]
    polls.append(poll(None, t + 10, status=0))  # unreachable: a bad event
    polls.append(poll(page({"": (1, 1)}) + queued % (t - 120, t - 200), t + 11))  # waited 120 s
    v = run(polls)["availability"]
    assert (v.good_total, v.events_total) == (10.0, 12.0)
    w = v.windows[0]
    assert w.total == 11.0 and w.sli == 9 / 11  # 12 polls, the first is the window's start


def test_a_draining_node_is_no_availability_event_unless_a_change_waits() -> None:
    """503 with nodeEligible false is kube-proxy taking the node out on purpose, not a fault."""
    t = HEALTHY_128_NOW
    queued = (b"kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds %d\n"
              b"kubeproxy_sync_proxy_rules_last_timestamp_seconds %d\n")
    polls = [poll(page({"": (1, 1)}), t + i) for i in range(3)]
    polls += [poll(page({"": (1, 1)}), t + 3 + i, 503, DRAINING_128) for i in range(5)]
    polls.append(poll(page({"": (1, 1)}) + queued % (t - 120, t - 200), t + 9, 503,
                      DRAINING_128))  # draining, and a change waited 120 s: still bad
    polls.append(poll(page({"": (1, 1)}), t + 10, 503,
                      HEALTHY_128.replace(b', "nodeEligible": true', b"")))  # a plain 503
    v = run(polls)["availability"]
    assert (v.good_total, v.events_total) == (3.0, 5.0)


def test_nan_below_min_events_and_disabled_slos_absent() -> None:
    cfg = build_config(None, {"NODE_NAME": "n"}, {})
    slos = parse_slos({"min_events": 50, "network_programming_latency": None})
    from dataclasses import replace
    v = run([poll(page({"": (1, 2)}), HEALTHY_128_NOW),
             poll(page({"": (1, 12)}), HEALTHY_128_NOW + 15)], replace(cfg, slos=slos))
    assert set(v) == {"sync_latency", "availability"}
    assert OBJECTIVES == {"sync_latency": 0.99, "availability": 0.999}
    w = v["sync_latency"].windows[0]
    assert w.total == 10 and math.isnan(w.sli) and math.isnan(w.burn_rate)
    assert math.isnan(v["sync_latency"].budget_remaining)
