"""The ``alerting:`` section and ``kpexporter rules``' answers to bad configs: one line naming
the key, exit 64, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kpexporter.config.alerting import DEFAULT_ALERTING, parse_alerting
from kpexporter.config.schema import ConfigError, build_config

REPO = Path(__file__).resolve().parents[2]


def rules(tmp_path: Path, config: str, *extra: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.yaml"
    path.write_text(config, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "kpexporter", "rules", "--config", str(path), *extra],
        capture_output=True, text=True, timeout=60, cwd=REPO, env={"PATH": "/usr/bin:/bin"},
        check=False)


def test_no_section_is_the_defaults() -> None:
    assert parse_alerting(None) == DEFAULT_ALERTING
    assert build_config(None, {}, {}).alerting == DEFAULT_ALERTING


def test_settings_are_read() -> None:
    a = parse_alerting({
        "selector": 'job="kube-proxy", namespace=~"kube-.*"', "cluster_labels": ["region"],
        "pending_threshold": "2m", "for": {"KubeProxyUnhealthy": "0s"},
        "severity": {"KubeProxyUnhealthy": "critical"}, "labels": {"team": "net"},
        "burn_rates": [{"severity": "critical", "long": "1h", "short": "5m", "factor": 14.4,
                        "for": "2m"}]})
    assert a.selector == 'job="kube-proxy", namespace=~"kube-.*"'
    assert a.cluster_labels == ("region",)
    assert a.pending_threshold == 120.0
    assert a.for_("KubeProxyUnhealthy") == 0.0
    assert a.for_("KubeProxyRulesSyncStuck") == DEFAULT_ALERTING.for_("KubeProxyRulesSyncStuck")
    assert a.severity("KubeProxyUnhealthy") == "critical"
    assert a.labels == (("team", "net"),)
    assert len(a.burn_rates) == 1 and a.burn_rates[0].long.seconds == 3600.0
    hash(build_config(None, {}, {}))  # Config stays hashable with the section in it


@pytest.mark.parametrize(("raw", "message"), [
    ({"sellector": 'job="x"'}, "sellector: unknown key"),
    ({"selector": "job=x"}, "selector: must be PromQL label matchers"),
    ({"cluster_labels": ["node"]}, "cluster_labels: node and slo are always kept"),
    ({"runbook_url": "docs/runbooks.md"}, "runbook_url: must be an http(s) URL"),
    ({"for": {"KubeProxyDown": "5m"}}, "for: KubeProxyDown: unknown alert"),
    ({"for": {"KubeProxyUnhealthy": "soon"}}, "for: KubeProxyUnhealthy: not a duration"),
    ({"severity": {"KubeProxyUnhealthy": "PAGE!"}}, "severity: KubeProxyUnhealthy: must be"),
    ({"labels": {"severity": "x"}}, "labels: severity: set by the rules themselves"),
    ({"burn_rates": [{"severity": "critical", "long": "5m", "short": "1h", "factor": 2,
                      "for": "1m"}]}, "burn_rates: [0]: short (1h) must be shorter"),
    ({"burn_rates": [{"severity": "critical"}]}, "burn_rates: [0].long: required"),
    ({"min_events": 0}, "min_events: must be a positive integer"),
    ("yes", "must be a mapping"),
])
def test_bad_values_name_the_key(raw: object, message: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_alerting(raw)
    assert message in str(e.value)


def test_through_the_file_loader_the_field_is_named(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("alerting: {clock_skew_threshold: -1}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="alerting: clock_skew_threshold: "):
        build_config(path, {}, {})


@pytest.mark.parametrize(("config", "message"), [
    ("alerting: {for: {KubeProxyDown: 5m}}\n", "alerting: for: KubeProxyDown: unknown alert"),
    ("quantiles: [0.5, 0.9]\n", "quantiles: the latency alerts read the exporter's p99"),
    ("alerting: {latency_window: 10m}\n", "alerting: latency_window: 10m is not one of"),
    ("slos: {period: 1d}\n", "alerting: burn_rates: a 3d window is longer than"),
    ("slos: {sync_latency: {objective: 2}}\n", "slos: sync_latency.objective"),
])
def test_bad_config_is_one_line_and_exit_64(tmp_path: Path, config: str, message: str) -> None:
    proc = rules(tmp_path, config)
    assert proc.returncode == 64, proc.stdout + proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_unwritable_output_dir_is_exit_64(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x", encoding="utf-8")
    proc = rules(tmp_path, "{}\n", "-o", str(tmp_path / "file" / "sub"))
    assert proc.returncode == 64 and "cannot write" in proc.stderr, proc.stderr
