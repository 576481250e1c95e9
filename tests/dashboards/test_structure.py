"""The committed dashboards as Grafana sees them: ids, grid, datasource, units, variables,
links, and thresholds that follow the same config as the rules."""

from __future__ import annotations

import json
import re
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
import yaml

from kpexporter.config.schema import build_config
from kpexporter.dashboards import render
from kpexporter.rules.render import render as render_rules
from tests.dashboards.grafana import (
    REPO,
    committed,
    label_values,
    panels,
    queries,
    variables,
)

DASHBOARDS = committed()
NAMES = sorted(DASHBOARDS)
DS_UID = "${datasource}"


def test_three_dashboards_are_committed() -> None:
    assert len(NAMES) == 3, NAMES
    assert len({d["uid"] for d in DASHBOARDS.values()}) == 3
    assert len({d["title"] for d in DASHBOARDS.values()}) == 3


@pytest.mark.parametrize("name", NAMES)
def test_panel_ids_are_unique(name: str) -> None:
    ids = [p["id"] for p in panels(DASHBOARDS[name])]
    assert len(ids) == len(set(ids)), sorted(ids)
    assert all(isinstance(i, int) and i > 0 for i in ids)


@pytest.mark.parametrize("name", NAMES)
def test_no_two_panels_overlap_and_all_fit_the_grid(name: str) -> None:
    boxes = [(p["title"], p["gridPos"]) for p in panels(DASHBOARDS[name])]
    for title, g in boxes:
        assert g["w"] > 0 and g["h"] > 0 and g["x"] >= 0 and g["y"] >= 0, title
        assert g["x"] + g["w"] <= 24, f"{title} runs off the 24-column grid: {g}"
    for (t1, a), (t2, b) in combinations(boxes, 2):
        apart = (a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"]
                 or a["y"] + a["h"] <= b["y"] or b["y"] + b["h"] <= a["y"])
        assert apart, f"{t1!r} {a} overlaps {t2!r} {b}"


def _datasources(node: Any) -> list[Any]:
    """Every ``datasource`` value anywhere in the model."""
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "datasource":
                found.append(v)
            found += _datasources(v)
    elif isinstance(node, list):
        for v in node:
            found += _datasources(v)
    return found


@pytest.mark.parametrize("name", NAMES)
def test_every_panel_and_target_reads_through_the_datasource_variable(name: str) -> None:
    model = DASHBOARDS[name]
    ds = variables(model)["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    for p in panels(model):
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": DS_UID}, p["title"]
        assert p["targets"], f"{p['title']}: no query"
        for t in p["targets"]:
            assert t["datasource"] == {"type": "prometheus", "uid": DS_UID}, p["title"]
    # No hard-coded datasource anywhere: each reference is the variable.
    for ref in _datasources(model):
        assert ref == {"type": "prometheus", "uid": DS_UID}, ref
    assert "__inputs" not in model  # the variable works for UI import and provisioning alike


@pytest.mark.parametrize("name", NAMES)
def test_every_panel_has_a_unit_and_a_description(name: str) -> None:
    for p in panels(DASHBOARDS[name]):
        if p["type"] == "row":
            continue
        assert p["fieldConfig"]["defaults"].get("unit"), f"{p['title']}: no unit"
        assert p.get("description"), f"{p['title']}: says nothing about what it answers"


@pytest.mark.parametrize("name", NAMES)
def test_ref_ids_are_unique_per_panel_and_queries_are_non_empty(name: str) -> None:
    for p in panels(DASHBOARDS[name]):
        refs = [t["refId"] for t in p.get("targets", [])]
        assert len(refs) == len(set(refs)) and all(refs), p["title"]
    assert all(q.expr.strip() for q in queries(name, DASHBOARDS[name]))


def test_the_node_picker_reads_a_series_every_proxy_mode_has() -> None:
    """Not an iptables-only family (the mixin's nftables complaint): ``kpexporter_up``."""
    for name in NAMES:
        var = variables(DASHBOARDS[name]).get("node")
        uses_node = any("$node" in q.expr for q in queries(name, DASHBOARDS[name]))
        assert (var is not None) == uses_node, name
        if var is not None:
            selector, label = label_values(var)
            assert label == "node" and selector is not None
            assert selector.startswith("kpexporter_up{"), selector
            assert var["includeAll"] and var["multi"]


@pytest.mark.parametrize("name", NAMES)
def test_cluster_variable_matches_series_without_the_label(name: str) -> None:
    var = variables(DASHBOARDS[name])["cluster"]
    assert label_values(var)[1] == "cluster"
    assert var["includeAll"] and var["allValue"] == ".*"
    assert all('cluster=~"$cluster"' in q.expr for q in queries(name, DASHBOARDS[name]))


@pytest.mark.parametrize("name", NAMES)
def test_histogram_quantiles_aggregate_by_le(name: str) -> None:
    """The mixin's "Rules Sync Latency" bug: ``histogram_quantile`` over raw series."""
    for q in queries(name, DASHBOARDS[name]):
        for m in re.finditer(r"histogram_quantile\(([^,]+),\s*(\w+)", q.expr):
            assert m.group(2) == "sum", f"{q.panel}: {q.expr}"
            assert re.search(r"sum by \([^)]*\ble\)", q.expr), f"{q.panel}: {q.expr}"


def _runbook_anchors() -> set[str]:
    text = (REPO / "docs" / "runbooks.md").read_text(encoding="utf-8")
    return {h.strip().lower() for h in re.findall(r"^## (.+)$", text, re.M)}


def _links(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "links" and isinstance(v, list):
                found += v
            found += _links(v)
    elif isinstance(node, list):
        for v in node:
            found += _links(v)
    return found


@pytest.mark.parametrize("name", NAMES)
def test_links_reach_the_other_dashboards_and_existing_runbook_sections(name: str) -> None:
    model = DASHBOARDS[name]
    top = model["links"]
    assert any(lk["type"] == "dashboards" and lk["tags"] == ["kpexporter"]
               and lk["includeVars"] and lk["keepTime"] for lk in top)
    assert all("kpexporter" in d["tags"] for d in DASHBOARDS.values())
    anchors = _runbook_anchors()
    runbooks = [lk["url"] for lk in _links(model) if "runbooks.md" in lk.get("url", "")]
    assert runbooks
    for url in runbooks:
        if "#" in url:
            assert url.split("#", 1)[1] in anchors, url
    node_uid = DASHBOARDS["kube-proxy-node-detail.json"]["uid"]
    for lk in _links(model):
        if "/d/" in lk.get("url", ""):
            assert lk["url"].startswith(f"/d/{node_uid}/"), lk["url"]


def test_the_overview_links_its_worst_node_tables_to_the_node_detail() -> None:
    model = DASHBOARDS["kube-proxy-health-slo.json"]
    tables = [p for p in panels(model) if p["type"] == "table"]
    assert tables
    for t in tables:
        urls = [lk["url"] for lk in t["fieldConfig"]["defaults"].get("links", [])]
        assert any("var-node=${__data.fields.node}" in u for u in urls), t["title"]


def _panel(model: dict[str, Any], title: str) -> dict[str, Any]:
    found = [p for p in panels(model) if p["title"] == title]
    assert len(found) == 1, (title, [p["title"] for p in panels(model)])
    return found[0]


def _steps(panel: dict[str, Any]) -> list[float]:
    return [s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
            if s["value"] is not None]


CUSTOM = """\
pending_threshold: 30s
quantiles: [0.5, 0.99]
windows: [2m, 10m]
slos:
  sync_latency: {objective: 0.995, threshold: 0.512}
  availability: null
alerting:
  clock_skew_threshold: 2s
  cluster_labels: [cluster, region]
  runbook_url: https://example.org/runbooks.md
"""


def _alert_exprs(files: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for text in files.values():
        for g in yaml.safe_load(text)["groups"]:
            out |= {r["alert"]: r["expr"] for r in g["rules"] if "alert" in r}
    return out


def test_thresholds_follow_the_config_the_rules_read(tmp_path: Path) -> None:
    """One config: the dashboards draw their lines where the rules' alerts fire."""
    path = tmp_path / "kpexporter.yaml"
    path.write_text(CUSTOM)
    cfg = build_config(path, {}, {})
    boards = {k: json.loads(v) for k, v in render(cfg).items()}
    alerts = _alert_exprs(render_rules(cfg, "test"))
    node = boards["kube-proxy-node-detail.json"]
    sync = _panel(node, "Rule sync duration (2m window)")
    assert _steps(sync) == [0.512]
    assert re.search(r">\s*0\.512\b", alerts["KubeProxySyncLatencyHigh"])
    assert [t["expr"].count('quantile="') for t in sync["targets"]] == [1, 1]
    pending = _panel(node, "Pending rule change and healthz staleness")
    assert _steps(pending) == [30]
    assert re.search(r">\s*30\b", alerts["KubeProxyRulesSyncStuck"])
    assert _steps(_panel(node, "Clock skew")) == [-2, 2]
    assert re.search(r">\s*2\b", alerts["KubeProxyClockSkew"])
    overview = boards["kube-proxy-health-slo.json"]
    rows = [p["title"] for p in panels(overview) if p["type"] == "row"]
    assert "SLO: Rule sync ≤ 0.512 s, 99.5 %" in rows
    assert not any("Availability" in r for r in rows)  # switched off: no panels
    stuck = _panel(overview, "Stuck")
    assert "> 30)" in stuck["targets"][0]["expr"]
    for board in boards.values():
        assert set(variables(board)) >= {"datasource", "cluster", "region"}
        for p in panels(board):
            for t in p.get("targets", []):
                assert 'region=~"$region"' in t["expr"], (p["title"], t["expr"])
        for lk in _links(board):
            if "runbooks.md" in lk.get("url", ""):
                assert lk["url"].startswith("https://example.org/runbooks.md")
    burn = _panel(overview, "Rule sync: burn rate")
    assert "/ 0.005" in burn["targets"][0]["expr"]  # 1 - 0.995, written as PromQL reads it
