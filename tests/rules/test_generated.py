"""Rules rendered from a non-default config behave as that config says, judged by promtool.

A user who changes a threshold, an objective, the scrape job or the cluster labels gets rules
that agree: the rendered files pass ``promtool check rules`` and fire (``ALERTS``) exactly where
the new numbers put the edge.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from kpexporter.config.schema import build_config
from kpexporter.rules.render import render
from tests.promtool import have_promtool, promtool_path, run_promtool_tests, skip_reason

pytestmark = pytest.mark.skipif(not have_promtool(), reason=skip_reason())

CONFIG = """\
pending_threshold: 120
slos:
  sync_latency: {objective: 0.995}
  min_events: 5
alerting:
  selector: 'job="kube-proxy"'
  cluster_labels: []
  for: {KubeProxyRulesSyncStuck: 0s, KubeProxyUnhealthy: 1m}
  burn_rates:
    - {severity: critical, long: 1h, short: 5m, factor: 14.4, for: 0s}
"""


def rendered(tmp_path: Path, text: str = CONFIG) -> list[str]:
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(text, encoding="utf-8")
    out = []
    for name, body in render(build_config(cfg_path, {}, {})).items():
        (tmp_path / name).write_text(body, encoding="utf-8")
        out.append(str(tmp_path / name))
    return out


def firing(expr_filter: str, at: str, labels: list[str]) -> dict[str, Any]:
    expr = f'ALERTS{{alertstate="firing", {expr_filter}}}'
    return {"expr": f"count by (node, slo) ({expr})", "eval_time": at,
            "exp_samples": [{"labels": lab, "value": 1} for lab in labels]}


def test_rendered_from_a_custom_config_pass_promtool_check(tmp_path: Path) -> None:
    exe = promtool_path()
    assert exe is not None
    proc = subprocess.run([exe, "check", "rules", *rendered(tmp_path)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_thresholds_objective_selector_and_for_come_from_the_config(tmp_path: Path) -> None:
    files = rendered(tmp_path)
    job = 'job="kube-proxy", instance="i1"'
    doc = {"rule_files": files, "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [
            # pending 100 s is under the configured 120 s; 130 s is over it, at once (for: 0s)
            {"series": f'kpexporter_sync_pending_seconds{{{job}, node="under"}}',
             "values": "100x10"},
            {"series": f'kpexporter_sync_pending_seconds{{{job}, node="over"}}',
             "values": "130x10"},
            # the default job is not read any more
            {"series": 'kpexporter_sync_pending_seconds{job="kpexporter", node="elsewhere"}',
             "values": "900x10"},
            # 8 % of syncs slow: over 14.4 x (1 - 0.995) = 7.2 %, under 14.4 x 1 % = 14.4 %
            {"series": f'kpexporter_slo_events_total{{{job}, node="a", slo="sync_latency"}}',
             "values": "0+100x10"},
            {"series": f'kpexporter_slo_good_events_total{{{job}, node="a", slo="sync_latency"}}',
             "values": "0+92x10"},
            # the same for availability, whose objective (99.9 %) makes 8 % a page too
            {"series": f'kpexporter_slo_events_total{{{job}, node="a", slo="availability"}}',
             "values": "0+100x10"},
            {"series": f'kpexporter_slo_good_events_total{{{job}, node="a", slo="availability"}}',
             "values": "0+92x10"},
        ],
        "promql_expr_test": [
            firing('alertname="KubeProxyRulesSyncStuck"', "1m", ['{node="over"}']),
            firing('alertname="KubeProxyErrorBudgetBurn"', "5m",
                   ['{slo="sync_latency"}', '{slo="availability"}']),
        ],
    }]}
    run_promtool_tests(doc, tmp_path)


def test_the_minimum_event_guard_comes_from_the_config(tmp_path: Path) -> None:
    files = rendered(tmp_path)
    sel = 'job="kube-proxy", node="a", slo="sync_latency"'
    doc = {"rule_files": files, "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        # one event a minute, every one bad: 5 in the 5m window, the configured min_events
        "input_series": [
            {"series": f"kpexporter_slo_events_total{{{sel}}}", "values": "0+1x20"},
            {"series": f"kpexporter_slo_good_events_total{{{sel}}}", "values": "0x20"}],
        "promql_expr_test": [
            firing('alertname="KubeProxyErrorBudgetBurn"', "10m", ['{slo="sync_latency"}'])],
    }]}
    run_promtool_tests(doc, tmp_path)
    # with the default guard (10 events) the same series stay silent
    files = rendered(tmp_path, CONFIG.replace("  min_events: 5\n", ""))
    doc["rule_files"] = files
    doc["tests"][0]["promql_expr_test"] = [{
        "expr": 'ALERTS{alertname="KubeProxyErrorBudgetBurn"}', "eval_time": "10m",
        "exp_samples": []}]
    run_promtool_tests(doc, tmp_path)
