"""derive(): verdicts, staleness, pending and summaries from real bodies and pages."""

from __future__ import annotations

import math

import pytest

from kpexporter.core.derive import LIFETIME, derive
from tests.builders import HEALTHY_128, HEALTHY_128_NOW, config, poll_result
from tests.fixtures import fixture_bytes

V130 = "beats-metricbeat-v1.30.0-iptables-minikube.txt"


def page_with(last_sync: float, last_queued: float) -> bytes:
    return (
        "# TYPE kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge\n"
        f"kubeproxy_sync_proxy_rules_last_timestamp_seconds {last_sync!r}\n"
        "# TYPE kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds gauge\n"
        f"kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds {last_queued!r}\n"
    ).encode()


def test_healthy_real_page_and_body() -> None:
    cfg = config()
    d = derive(poll_result(HEALTHY_128, 200, fixture_bytes(V130)), None, cfg)
    assert d.verdict == "healthy" and d.exit_code == 0 and d.up
    assert d.healthz_healthy and d.node_eligible is True
    assert d.staleness == 0.0  # lastUpdated == currentTime on a 200 before 1.33
    assert d.clock_skew == pytest.approx(-0.001, abs=1e-6)
    names = {s.name for s in d.summaries}
    assert names == {"sync_proxy_rules_duration_seconds", "sync_full_proxy_rules_duration_seconds",
                     "sync_partial_proxy_rules_duration_seconds",
                     "network_programming_duration_seconds"}
    assert {s.window for s in d.summaries} == {LIFETIME, "5m", "1h"}
    for s in d.summaries:
        if s.window == LIFETIME:
            assert s.count > 0
        else:  # one poll: no increase yet
            assert s.count == 0 and all(math.isnan(v) for _, v in s.quantiles)


def test_lifetime_summary_is_the_quantile_of_the_scraped_buckets() -> None:
    """The expected values come from the page by hand, not from the code under test.

    The capture's sync histogram (lines 610-627) holds 3 syncs: 1 in (0.008, 0.016] and 2 in
    (0.064, 0.128] (cumulative 1 at le=0.064, 3 at le=0.128); _sum 0.209962232. Prometheus's
    histogram_quantile takes rank = q x count and interpolates linearly inside the bucket
    that reaches it: p50 rank 1.5 -> 0.064 + 0.064 x (1.5 - 1) / 2 = 0.08; p90 rank 2.7 ->
    0.064 + 0.064 x 1.7 / 2 = 0.1184; p99 rank 2.97 -> 0.064 + 0.064 x 1.97 / 2 = 0.12704.
    """
    d = derive(poll_result(HEALTHY_128, 200, fixture_bytes(V130)), None, config())
    s = next(s for s in d.summaries
             if s.name == "sync_proxy_rules_duration_seconds" and s.window == LIFETIME)
    assert [q for q, _ in s.quantiles] == [0.5, 0.9, 0.99]
    assert [v for _, v in s.quantiles] == pytest.approx([0.08, 0.1184, 0.12704], rel=1e-12)
    assert (s.sum, s.count) == (0.209962232, 3.0)


def test_queued_change_pending_on_kube_proxys_clock() -> None:
    now = HEALTHY_128_NOW
    r = poll_result(HEALTHY_128, 200, page_with(now - 100, now - 30))
    d = derive(r, None, config())
    # kube-proxy's clock = exporter clock at the metrics midpoint + measured skew
    assert d.sync_pending == pytest.approx(30.0, abs=0.01)
    assert d.verdict == "healthy"  # 30 s < 60 s threshold
    d = derive(poll_result(HEALTHY_128, 200, page_with(now - 100, now - 90)), None, config())
    assert d.verdict == "unhealthy" and d.exit_code == 1
    # One poll shows only the newest queued time: the wait is at least 90 s (now − queued)
    # and at most 100 s (now − last sync), and the text says it is a lower bound.
    assert "queued rule change has waited ≥ 90.0s" in d.reasons[0]
    assert d.sync_pending == pytest.approx(90.0, abs=0.01)
    assert d.sync_pending_max == pytest.approx(100.0, abs=0.01)


def test_no_pending_when_synced_after_queue() -> None:
    now = HEALTHY_128_NOW
    d = derive(poll_result(HEALTHY_128, 200, page_with(now - 10, now - 3000)), None, config())
    assert d.sync_pending == 0.0 and d.sync_last == now - 10


def test_draining_503_is_unhealthy_but_named() -> None:
    body = (b'{"lastUpdated": "2024-06-21 11:08:40 +0000 UTC m=+75.200000000",'
            b'"currentTime": "2024-06-21 11:08:45.074765635 +0000 UTC m=+80.277574766", '
            b'"nodeEligible": false}')
    d = derive(poll_result(body, 503, fixture_bytes(V130)), None, config())
    assert d.up and not d.healthz_healthy and d.verdict == "unhealthy"
    assert d.node_eligible is False
    assert "node not eligible" in d.reasons[0]
    assert d.staleness == pytest.approx(5.074765635)


def test_never_synced_is_infinitely_stale() -> None:
    body = (b'{"lastUpdated": "0001-01-01 00:00:00 +0000 UTC",'
            b'"currentTime": "2024-06-21 11:08:45.074765635 +0000 UTC m=+80.277574766"}')
    d = derive(poll_result(body, 503, fixture_bytes(V130)), None, config())
    assert d.staleness == math.inf and d.last_updated is None
    assert "never synced" in d.reasons[0]


def test_unreachable_healthz_is_exit_2() -> None:
    d = derive(poll_result(None, 0, fixture_bytes(V130)), None, config())
    assert d.verdict == "unreachable" and d.exit_code == 2 and not d.up
    assert d.reasons == ("healthz: cannot connect: refused",)


def test_html_metrics_page_is_unparseable() -> None:
    r = poll_result(HEALTHY_128, 200, b"<html><body>502 Bad Gateway</body></html>")
    d = derive(r, None, config())
    assert d.verdict == "unreachable"
    assert r.errors[0].reason == "parse"


def test_userspace_page_has_no_summaries_but_is_up() -> None:
    page = fixture_bytes("datadog-v1.21.1-userspace-kind-no-kubeproxy-metrics.txt")
    d = derive(poll_result(HEALTHY_128, 200, page), None, config())
    assert d.up and d.summaries == () and d.sync_pending is None


def test_pending_follows_the_oldest_queued_change_not_the_newest() -> None:
    """Under churn kube-proxy's last_queued keeps moving; a stuck node must still grow."""
    from kpexporter.config.schema import Target
    from kpexporter.core.state import TargetState
    cfg = config()
    st = TargetState(Target("node-a", cfg.healthz_url, cfg.metrics_url), horizon=cfg.horizon)
    now = HEALTHY_128_NOW
    pendings = []
    for step in range(5):  # a new change every 10 s, no sync since now-100
        t = now + 10 * step
        r = poll_result(HEALTHY_128, 200, page_with(now - 100, t - 1), started=t)
        pendings.append(st.record(r, cfg).sync_pending)
    # The healthz body is the same every poll, so kube-proxy's clock (exporter clock +
    # measured skew) stays at `now`: the wait is measured from the FIRST queued time seen
    # (now-1), not from the newest one (which is later than `now` after the first poll).
    assert st.queued_since == {(): now - 1}
    assert pendings == [pytest.approx(1.0, abs=0.01)] * 5
    r = poll_result(HEALTHY_128, 200, page_with(now + 45, now + 39), started=now + 50)
    st.record(r, cfg)
    assert st.queued_since == {}  # a sync after the queued change clears it
