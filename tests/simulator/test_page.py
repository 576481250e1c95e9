"""The generated /metrics pages against the real captures and research §2."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kpexporter.simulator.bodies import NS
from kpexporter.simulator.model import NodeConfig, NodeModel
from kpexporter.simulator.page import go_float, proxy_mode_body, render_metrics
from kpexporter.simulator.scenarios import policy_for
from kpexporter.simulator.versions import Version

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "kube-proxy"
T0 = 1_714_040_000 * NS


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text() + "\n"


def page_for(minor: int, mode: str = "iptables", families: tuple[str, ...] = ("IPv4",),
             scenario: str = "healthy", at_s: int = 60) -> tuple[NodeModel, str]:
    cfg = NodeConfig(version=Version(minor), mode=mode, ip_families=families, uptime_s=900)
    model = NodeModel(cfg, policy_for(scenario), T0)
    return model, render_metrics(model, T0 + at_s * NS)


def kubeproxy_shape(text: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """name -> (type, le layout) for every kubeproxy_ family; parses with prometheus_client."""
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for fam in text_string_to_metric_families(text):
        if not fam.name.startswith("kubeproxy_"):
            continue
        les = tuple(dict.fromkeys(
            s.labels["le"] for s in fam.samples if s.name.endswith("_bucket")
        ))
        out[fam.name] = (fam.type, les)
    return out


def raw_le(text: str, family: str) -> list[str]:
    """The le values exactly as written (the parser would normalise them)."""
    prefix = family + "_bucket{"
    les = []
    for line in text.splitlines():
        if line.startswith(prefix) and "ip_family=\"IPv6\"" not in line:
            les.append(line.split('le="')[1].split('"')[0])
    return les


def help_lines(text: str) -> set[str]:
    return {line for line in text.splitlines() if line.startswith("# HELP kubeproxy_")}


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.001, "0.001"), (16.384, "16.384"), (1.0, "1"), (60.0, "60"), (1024000.0, "1.024e+06"),
     (16384000.0, "1.6384e+07"), (512000.0, "512000"), (1.7140402714481494e9,
     "1.7140402714481494e+09"), (1048576.0, "1.048576e+06"), (0.0001, "0.0001"),
     (1e-05, "1e-05"), (float("inf"), "+Inf"), (0.0, "0"), (0.454639356, "0.454639356"),
     (1.8446744073709552e19, "1.8446744073709552e+19"), (2.171e-06, "2.171e-06"),
     (-3.5, "-3.5"), (100.0, "100")],
)
def test_go_float(value: float, text: str) -> None:
    assert go_float(value) == text


def test_v130_iptables_has_exactly_the_fixture_kubeproxy_families() -> None:
    real = fixture("beats-metricbeat-v1.30.0-iptables-minikube.txt")
    _, page = page_for(30)
    assert kubeproxy_shape(page) == kubeproxy_shape(real)
    assert help_lines(page) == help_lines(real)
    for fam in ("kubeproxy_sync_proxy_rules_duration_seconds",
                "kubeproxy_network_programming_duration_seconds"):
        assert raw_le(page, fam) == raw_le(real, fam)


def test_v130_page_is_sorted_and_has_runtime_families() -> None:
    _, page = page_for(30)
    names = [line.split()[2] for line in page.splitlines() if line.startswith("# TYPE")]
    assert names == sorted(names)
    for needed in ("go_goroutines", "process_start_time_seconds", "rest_client_requests_total",
                   "kubernetes_build_info"):
        assert needed in names
    assert 'git_version="v1.30.0"' in page


def test_v113_has_only_the_microsecond_histogram() -> None:
    real = fixture("datadog-v1.8.3-iptables-latency-microseconds.txt")
    _, page = page_for(13)
    shape = kubeproxy_shape(page)
    assert set(shape) == {"kubeproxy_sync_proxy_rules_latency_microseconds"}
    assert shape == kubeproxy_shape(real)
    fam = "kubeproxy_sync_proxy_rules_latency_microseconds"
    assert raw_le(page, fam) == raw_le(real, fam)
    assert "# HELP kubeproxy_sync_proxy_rules_latency_microseconds SyncProxyRules latency\n" in page


def test_v114_adds_seconds_and_network_programming_with_old_buckets() -> None:
    _, page = page_for(14)
    shape = kubeproxy_shape(page)
    assert "kubeproxy_sync_proxy_rules_latency_microseconds" in shape
    assert "kubeproxy_sync_proxy_rules_duration_seconds" in shape
    assert shape["kubeproxy_network_programming_duration_seconds"][1][-2] == "524.288"


def test_v121_matches_the_kind_fixture_family_set() -> None:
    real = fixture("datadog-v1.21.1-iptables-kind.txt")
    _, page = page_for(21)
    assert kubeproxy_shape(page).keys() == kubeproxy_shape(real).keys()
    assert help_lines(page) == help_lines(real)


def test_ipvs_after_131_has_no_iptables_only_families() -> None:
    _, page = page_for(31, mode="ipvs")
    shape = kubeproxy_shape(page)
    for absent in ("kubeproxy_sync_full_proxy_rules_duration_seconds",
                   "kubeproxy_sync_partial_proxy_rules_duration_seconds",
                   "kubeproxy_sync_proxy_rules_iptables_total",
                   "kubeproxy_sync_proxy_rules_iptables_last",
                   "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures",
                   "kubeproxy_iptables_ct_state_invalid_dropped_packets"):
        assert absent not in shape
    assert "kubeproxy_sync_proxy_rules_iptables_restore_failures" in shape
    assert proxy_mode_body(page_for(31, mode="ipvs")[0]) == b"ipvs"


def test_ipvs_before_131_still_registers_full_and_partial_at_zero() -> None:
    _, page = page_for(30, mode="ipvs")
    assert "kubeproxy_sync_full_proxy_rules_duration_seconds_count 0\n" in page
    assert "kubeproxy_sync_proxy_rules_iptables_total" not in page  # a Vec never set


def test_nftables_has_its_own_failure_counters() -> None:
    _, page = page_for(31, mode="nftables")
    shape = kubeproxy_shape(page)
    assert "kubeproxy_sync_proxy_rules_nftables_sync_failures" in shape
    assert "kubeproxy_sync_proxy_rules_nftables_cleanup_failures" in shape
    assert "kubeproxy_sync_proxy_rules_iptables_restore_failures" not in shape
    assert "kubeproxy_sync_full_proxy_rules_duration_seconds" not in shape


def test_v131_iptables_adds_the_nfacct_collectors() -> None:
    shape = kubeproxy_shape(page_for(31)[1])
    assert "kubeproxy_iptables_ct_state_invalid_dropped_packets" in shape
    assert "kubeproxy_iptables_localhost_nodeports_accepted_packets" in shape


def test_v133_dual_stack_labels_per_family_series_only() -> None:
    model, page = page_for(33, families=("IPv4", "IPv6"))
    for fam in ("kubeproxy_sync_proxy_rules_duration_seconds_count",
                "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                "kubeproxy_network_programming_duration_seconds_count",
                "kubeproxy_sync_proxy_rules_iptables_restore_failures_total"):
        assert f'{fam}{{ip_family="IPv4"}}' in page
        assert f'{fam}{{ip_family="IPv6"}}' in page
    assert 'kubeproxy_sync_proxy_rules_iptables_total{ip_family="IPv4",table="nat"}' in page
    assert 'kubeproxy_sync_proxy_rules_duration_seconds_bucket{ip_family="IPv6",le="0.001"}' in page
    assert "\nkubeproxy_sync_proxy_rules_endpoint_changes_pending " in page
    assert "\nkubeproxy_sync_proxy_rules_service_changes_total " in page
    # healthz/livez counters appear only after the first probe
    assert "kubeproxy_proxy_healthz_total" not in page
    model.probe("/healthz", T0 + 61 * NS)
    page = render_metrics(model, T0 + 62 * NS)
    assert 'kubeproxy_proxy_healthz_total{code="200"} 1\n' in page
    assert "kubeproxy_proxy_livez_total" not in page
    assert 'kubeproxy_conntrack_reconciler_sync_duration_seconds_count{ip_family="IPv4"}' in page


def test_pre133_dual_stack_merges_into_unlabelled_series() -> None:
    _, page = page_for(30, families=("IPv4", "IPv6"))
    assert "ip_family" not in page
    assert "\nkubeproxy_sync_proxy_rules_duration_seconds_count " in page


def test_gzip_free_page_is_stable_for_a_seed() -> None:
    assert page_for(30)[1] == page_for(30)[1]
