"""The /metrics page: contract names, promtool lint, text and OpenMetrics."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kpexporter.config.schema import Target
from kpexporter.core.state import TargetState
from kpexporter.service.app import render_metrics
from tests.builders import HEALTHY_128, HEALTHY_128_NOW, config, poll_result
from tests.fixtures import fixture_bytes


def v130() -> bytes:
    return fixture_bytes("beats-metricbeat-v1.30.0-iptables-minikube.txt")


class _Poller:
    def __init__(self, states: list[TargetState]) -> None:
        self.states = states

    def snapshot(self) -> list[TargetState]:
        return self.states


def polled_state(healthz: bytes | None = HEALTHY_128, status: int = 200,
                 page: bytes | str | None = "v130") -> TargetState:
    cfg = config()
    st = TargetState(Target("node-a", cfg.healthz_url, cfg.metrics_url), horizon=cfg.horizon)
    st.record(poll_result(healthz, status, v130() if page == "v130" else page), cfg)
    return st


def page_text(states: list[TargetState], accept: str | None = None) -> str:
    return render_metrics(_Poller(states), accept)[0].decode()  # type: ignore[arg-type]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_contract_series_are_present() -> None:
    text = page_text([polled_state()])
    got = samples(text)
    node = ("node", "node-a")
    for name in ("kpexporter_up", "kpexporter_healthz_healthy", "kpexporter_healthz_status_code",
                 "kpexporter_healthz_node_eligible", "kpexporter_healthz_staleness_seconds",
                 "kpexporter_healthz_last_updated_timestamp_seconds",
                 "kpexporter_clock_skew_seconds", "kpexporter_sync_last_timestamp_seconds",
                 "kpexporter_sync_pending_seconds"):
        assert (name, frozenset({node})) in got, name
    assert got[("kpexporter_up", frozenset({node}))] == 1.0
    assert got[("kpexporter_healthz_status_code", frozenset({node}))] == 200.0
    assert ("kpexporter_proxy_mode_info", frozenset({node, ("mode", "iptables")})) in got
    q = frozenset({node, ("window", "lifetime"), ("quantile", "0.99")})
    assert ("kpexporter_sync_proxy_rules_duration_seconds", q) in got
    assert ("kpexporter_network_programming_duration_seconds_count",
            frozenset({node, ("window", "5m")})) in got
    assert ("kpexporter_build_info", frozenset({("version", "0.1.0")})) in got
    assert "kpexporter_poll_errors_total{" in text
    assert " # " not in text.replace("# HELP", "").replace("# TYPE", "")


def test_down_kube_proxy_still_renders_up_zero() -> None:
    text = page_text([polled_state(healthz=None, page=None)])
    got = samples(text)
    assert got[("kpexporter_up", frozenset({("node", "node-a")}))] == 0.0
    assert got[("kpexporter_healthz_status_code", frozenset({("node", "node-a")}))] == 0.0
    assert not any(name.startswith("kpexporter_sync_proxy") for name, _ in got)
    errs = got[("kpexporter_poll_errors_total", frozenset(
        {("node", "node-a"), ("endpoint", "healthz"), ("reason", "connect")}))]
    assert errs == 1.0


def test_openmetrics_when_asked() -> None:
    body, ctype = render_metrics(_Poller([polled_state()]),  # type: ignore[arg-type]
                                 "application/openmetrics-text;version=1.0.0")
    assert ctype.startswith("application/openmetrics-text")
    assert body.decode().endswith("# EOF\n")


@pytest.mark.promtool
@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
@pytest.mark.parametrize("kind", ["healthy", "down", "never-polled"])
def test_promtool_check_metrics_accepts_the_page(kind: str) -> None:
    if kind == "healthy":
        states = [polled_state()]
    elif kind == "down":
        states = [polled_state(healthz=None, page=None)]
    else:
        cfg = config()
        states = [TargetState(Target("node-a", cfg.healthz_url, cfg.metrics_url))]
    text = page_text(states)
    out = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_windows_follow_polls() -> None:
    cfg = config()
    st = TargetState(Target("node-a", cfg.healthz_url, cfg.metrics_url), horizon=cfg.horizon)
    page = v130()
    st.record(poll_result(HEALTHY_128, 200, page, started=HEALTHY_128_NOW), cfg)
    bumped = page.replace(b'kubeproxy_sync_proxy_rules_duration_seconds_count ',
                          b'kubeproxy_sync_proxy_rules_duration_seconds_count_x ')
    assert bumped != page  # sanity: the family is on the page
    st.record(poll_result(HEALTHY_128, 200, page, started=HEALTHY_128_NOW + 15), cfg)
    d = st.derived
    assert d is not None
    five = [s for s in d.summaries if s.window == "5m"]
    assert five and all(s.count == 0 for s in five)  # same page twice: nothing happened


def test_openmetrics_and_text_pages_carry_the_same_samples() -> None:
    """The OpenMetrics page (prometheus_client's encoder over the table) read with the
    OpenMetrics parser says what the cached text page says, sample for sample."""
    from prometheus_client.openmetrics.parser import (
        text_string_to_metric_families as om_families,
    )
    states = [polled_state(), polled_state(healthz=None, page=None)]
    states[1].target = Target("node-b", states[1].target.healthz_url,
                              states[1].target.metrics_url)
    om = page_text(states, "application/openmetrics-text;version=1.0.0")

    def flat(families: object) -> list[tuple[str, tuple[tuple[str, str], ...], str]]:
        return [(s.name, tuple(sorted(s.labels.items())), repr(s.value))
                for f in families for s in f.samples]  # type: ignore[attr-defined]

    assert flat(om_families(om)) == flat(text_string_to_metric_families(page_text(states)))
