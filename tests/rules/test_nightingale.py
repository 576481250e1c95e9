"""The committed ``alerts/nightingale/``: the rules of ``alerts/*.yaml`` as Nightingale (n9e)
alert and recording rules, in the shape of n9e's own built-in integration files, with every
``prom_ql`` the YAML's ``expr`` and valid for Prometheus's parser (``promtool check rules``)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from kpexporter.config.durations import parse_duration
from kpexporter.config.schema import build_config
from kpexporter.rules import nightingale
from tests import nightingale as n9e
from tests.promtool import assert_promtool_accepts, have_promtool, skip_reason

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "alerts"
N9E_DIR = ALERTS / "nightingale"
needs_promtool = pytest.mark.skipif(not have_promtool(), reason=skip_reason())

SEVERITY = {"critical": 1, "warning": 2, "info": 3}
"""n9e's severities (models.AlertRule: 1 Emergency, 2 Warning, 3 Notice), as its YAML importer
maps Prometheus's words."""
SERVER_SIDE = {"id", "group_id", "create_at", "create_by", "update_at", "update_by", "uuid",
               "notify_groups_obj", "extra_config"}
"""Keys of n9e's built-in rules that n9e assigns or fills itself (ids, audit fields, the
built-in payload's uuid, the resolved notify groups) or that configure n9e features beyond a
Prometheus rule (escalation, aggregation): an import does without them."""
RECORDING_EXTRA = {"datasource_ids": "models.RecordingRule.DatasourceIdsJson (recording_rule.go)"}


def committed(name: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = n9e.load(N9E_DIR / name)
    return rules


def _yaml_rules() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    alerts: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    for path in sorted(ALERTS.glob("*.yaml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                (alerts if "alert" in rule else records).append({**rule, "_group": group})
    return alerts, records


ALERT_RULES = committed(nightingale.ALERTS_JSON)
RECORDING_RULES = committed(nightingale.RECORDING_JSON)


def test_vendored_files_are_the_recorded_bytes() -> None:
    """The copies of n9e's files are the ones SOURCES.md describes (sha256)."""
    sources = (n9e.DATA / "SOURCES.md").read_text(encoding="utf-8")
    for path in (n9e.ALERTS, n9e.BOARD, n9e.RECORDING):
        rel = path.relative_to(n9e.DATA).as_posix()
        row = next(line for line in sources.splitlines() if line.startswith(f"| `{rel}`"))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert f"`{digest}`" in row, rel


def test_committed_files_are_the_rendering_of_the_defaults() -> None:
    """Fails on drift: regenerate with ``kpexporter rules --format nightingale -o
    alerts/nightingale`` (``make rules``)."""
    n9e.assert_committed(N9E_DIR, nightingale.render(build_config(None, {}, {})), "make rules")


def test_the_command_writes_the_committed_files(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kpexporter", "rules", "--format", "nightingale", "-o",
         str(tmp_path / "out")], capture_output=True, text=True, timeout=60, cwd=REPO,
        env={"PATH": "/usr/bin:/bin"}, check=False)
    assert proc.returncode == 0, proc.stderr
    for path in sorted(N9E_DIR.glob("*")):
        assert (tmp_path / "out" / path.name).read_bytes() == path.read_bytes()
    printed = subprocess.run(
        [sys.executable, "-m", "kpexporter", "rules", "--format", "nightingale"],
        capture_output=True, text=True, timeout=60, cwd=REPO, env={"PATH": "/usr/bin:/bin"},
        check=False)
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout) == {p.name: n9e.load(p) for p in N9E_DIR.glob("*")}


def test_every_alerting_rule_of_the_yaml_is_one_n9e_rule_with_its_expr() -> None:
    alerts, _ = _yaml_rules()
    assert len(ALERT_RULES) == len(alerts) > 0
    for ours, rule in zip(ALERT_RULES, alerts, strict=True):
        assert ours["prom_ql"] == rule["expr"], ours["name"]
        assert ours["rule_config"]["queries"] == [
            {"prom_ql": rule["expr"], "severity": ours["severity"]}]
        assert ours["name"] == rule["alert"] or ours["name"].startswith(rule["alert"] + " ")
        assert ours["severity"] == SEVERITY[rule["labels"]["severity"]]
        assert ours["severities"] == [ours["severity"]]
        for_ = rule["for"]
        assert ours["prom_for_duration"] == (0 if for_ == "0s" else parse_duration(for_))
        interval = rule["_group"].get("interval")
        assert ours["prom_eval_interval"] == (
            parse_duration(interval) if interval else nightingale.DEFAULT_EVAL_INTERVAL)
        assert ours["annotations"] == rule["annotations"]
        assert ours["runbook_url"] == rule["annotations"]["runbook_url"]
        assert ours["note"] == rule["annotations"]["summary"]
        tags = dict(t.split("=", 1) for t in ours["append_tags"])
        assert tags == {k: v for k, v in rule["labels"].items() if k != "severity"}


def test_every_recording_rule_of_the_yaml_is_one_n9e_recording_rule() -> None:
    _, records = _yaml_rules()
    assert len(RECORDING_RULES) == len(records) > 0
    for ours, rule in zip(RECORDING_RULES, records, strict=True):
        assert ours["name"] == rule["record"]
        assert ours["prom_ql"] == rule["expr"]
        interval = rule["_group"].get("interval")
        assert ours["prom_eval_interval"] == (
            parse_duration(interval) if interval else nightingale.DEFAULT_EVAL_INTERVAL)
        assert dict(t.split("=", 1) for t in ours["append_tags"]) == rule.get("labels", {})


def test_alert_rules_have_the_shape_of_n9e_builtin_rules() -> None:
    builtin = n9e.load(n9e.ALERTS)
    theirs = set().union(*(r.keys() for r in builtin))
    query_keys = {k for r in builtin for q in r["rule_config"]["queries"] for k in q}
    for ours in ALERT_RULES:
        assert n9e.shape_problems(ours, builtin, where=f"{ours['name']}: ") == []
        assert theirs - set(ours) <= SERVER_SIDE, theirs - set(ours) - SERVER_SIDE
        for q in ours["rule_config"]["queries"]:
            assert set(q) == query_keys
            assert n9e.shape_problems(q, builtin[0]["rule_config"]["queries"]) == []
        assert ours["cate"] == "prometheus" and ours["prod"] == "metric"


def test_alert_rules_pass_n9e_verify() -> None:
    """What ``AlertRule.Verify`` / ``ValidateRuleConfig`` refuse (models/alert_rule.go)."""
    names = Counter(r["name"] for r in ALERT_RULES)
    assert [n for n, c in names.items() if c > 1] == [], "n9e keeps one rule per name"
    for r in ALERT_RULES:
        assert r["name"].strip() == r["name"] and r["name"] and not n9e.dangerous(r["name"])
        assert r["severity"] in (1, 2, 3)
        assert all(q["severity"] in (1, 2, 3) and q["prom_ql"].strip()
                   for q in r["rule_config"]["queries"])
        assert len(r["enable_stimes"]) == len(r["enable_etimes"]) == len(
            [d for d in r["enable_days_of_weeks"] if d])
        assert all(re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", t)
                   for t in r["enable_stimes"] + r["enable_etimes"])
        keys = [t.split("=", 1)[0] for t in r["append_tags"]]
        assert all("=" in t and " " not in t for t in r["append_tags"])
        assert len(keys) == len(set(keys)) and all(n9e.LABEL_NAME.match(k) for k in keys)
        assert r["prom_eval_interval"] > 0


def test_recording_rules_have_the_shape_of_n9e_builtin_recording_rules() -> None:
    builtin = n9e.load(n9e.RECORDING)
    theirs = set().union(*(r.keys() for r in builtin))
    for ours in RECORDING_RULES:
        assert n9e.shape_problems(ours, builtin, RECORDING_EXTRA, f"{ours['name']}: ") == []
        assert theirs <= set(ours)
        assert n9e.METRIC_NAME.match(ours["name"]), ours["name"]  # RecordingRule.Verify
        for tag in ours["append_tags"]:
            key, _, _ = tag.partition("=")
            assert n9e.LABEL_NAME.match(key) and " " not in tag, tag


@needs_promtool
def test_every_prom_ql_parses_in_prometheus(tmp_path: Path) -> None:
    """Every n9e ``prom_ql`` (alerting and recording) as a recording rule: ``promtool check
    rules`` runs Prometheus's parser over each one."""
    exprs = [r["prom_ql"] for r in ALERT_RULES + RECORDING_RULES]
    exprs += [q["prom_ql"] for r in ALERT_RULES for q in r["rule_config"]["queries"]]
    rules = [{"record": f"nightingale:prom_ql:{i}", "expr": e} for i, e in enumerate(exprs)]
    assert_promtool_accepts(rules, tmp_path / "n9e.yaml")


def test_a_custom_config_gives_unique_names_and_its_own_severities(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("alerting:\n  severity: {KubeProxyUnhealthy: critical}\n"
                    "  labels: {team: net work}\n  burn_rates:\n"
                    "    - {severity: page, long: 1h, short: 5m, factor: 14.4, for: 0s}\n"
                    "    - {severity: notice, long: 6h, short: 30m, factor: 6, for: 15m}\n",
                    encoding="utf-8")
    rules = nightingale.n9e_rules(build_config(path, {}, {}))[nightingale.ALERTS_JSON]
    by_name = {r["name"]: r for r in rules}
    assert len(by_name) == len(rules)
    assert by_name["KubeProxyUnhealthy"]["severity"] == 1
    burns = [r for r in rules if r["name"].startswith("KubeProxyErrorBudgetBurn ")]
    assert {r["severity"] for r in burns} == {1, 3}
    assert {r["prom_for_duration"] for r in burns} == {0, 900}
    assert all("team=network" in r["append_tags"] for r in rules)
