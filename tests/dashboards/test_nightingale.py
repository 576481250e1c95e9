"""The committed ``dashboards/nightingale/``: the boards of ``dashboards/*.json`` as Nightingale
(n9e) boards, in the shape of n9e's own built-in board, with every target's ``expr`` the Grafana
panel's PromQL and valid for Prometheus's parser once n9e has substituted its variables."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from kpexporter.config.schema import build_config
from kpexporter.dashboards import nightingale
from tests import nightingale as n9e
from tests.dashboards.grafana import (
    DASHBOARDS,
    REPO,
    committed,
    expand,
    label_values,
    panels,
    unexpanded,
    variables,
)
from tests.promtool import assert_promtool_accepts, have_promtool, skip_reason

N9E_DIR = DASHBOARDS / "nightingale"
needs_promtool = pytest.mark.skipif(not have_promtool(), reason=skip_reason())

GRAFANA = committed()
BOARDS = {p.name: n9e.load(p) for p in sorted(N9E_DIR.glob("*.json"))}
NAMES = sorted(BOARDS)
BUILTIN = n9e.load(n9e.BOARD)

N9E_UNITS = {"none", "sishort", "short", "bitsSI", "bytesSI", "bitsIEC", "bytesIEC", "ops",
             "reqps", "percent", "percentUnit", "seconds", "milliseconds", "microseconds",
             "nanoseconds"}
"""Unit values n9e's unit picker offers (n9e/fe UnitPicker/utils.tsx and grafanaImport/units.ts;
the ones a conversion of Grafana's could give)."""
TYPES = {"row", "timeseries", "stat", "table"}
"""n9e panel types (n9e/fe dashboard/types.ts ``IType``) the boards use."""

# Keys n9e's built-in board lacks but n9e's own board model declares (n9e/fe, SOURCES.md).
BOARD_EXTRA = {"ident": "models.Board / boardForm (router_board.go), the import dialog"}
PANEL_EXTRA = {"description": "IPanel.description (types.ts)",
               "maxPerRow": "IPanel.maxPerRow (types.ts)"}
TARGET_EXTRA = {"instant": "ITarget.instant (types.ts)"}
OPTIONS_EXTRA = {"valueMappings": "IOptions.valueMappings (types.ts)",
                 "thresholdsStyle": "built-in Linux/dashboards/exporter-detail.json"}
STAT_EXTRA = {"calc": "IStatStyles.calc", "graphMode": "IStatStyles.graphMode",
              "textSize": "IStatStyles.textSize",
              "orientation": "built-in Linux/dashboards/exporter-detail.json"}
TABLE_CUSTOM = {"showHeader", "colorMode", "calc", "displayMode", "columns", "sortColumn",
                "sortOrder", "linkMode", "links"}
"""The legacy table's ``custom`` (ITableStyles; upgradeTableToNG.test.ts)."""
ROW_KEYS = {"type", "id", "name", "collapsed", "layout", "panels"}
"""A row as n9e's built-in boards and its Grafana importer write it."""
VAR_EXTRA = {"label": "IVariable.label (VariableConfig/definition.ts)"}


def builtin_panels(kind: str) -> list[dict[str, Any]]:
    return [p for p in BUILTIN["configs"]["panels"] if p["type"] == kind]


def pairs(name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each n9e panel with the Grafana panel it was made from (same order)."""
    ours = BOARDS[name]["configs"]["panels"]
    theirs = panels(GRAFANA[name])
    assert len(ours) == len(theirs), name
    return list(zip(ours, theirs, strict=True))


def test_committed_files_are_the_rendering_of_the_defaults() -> None:
    """Fails on drift: regenerate with ``kpexporter dashboards --format nightingale -o
    dashboards/nightingale`` (``make dashboards``)."""
    n9e.assert_committed(N9E_DIR, nightingale.render(build_config(None, {}, {})), "make dashboards")


def test_one_board_per_grafana_dashboard_and_the_command_writes_them(tmp_path: Path) -> None:
    assert sorted(GRAFANA) == NAMES
    proc = subprocess.run(
        [sys.executable, "-m", "kpexporter", "dashboards", "--format", "nightingale", "-o",
         str(tmp_path / "out")], capture_output=True, text=True, timeout=60, cwd=REPO,
        env={"PATH": "/usr/bin:/bin"}, check=False)
    assert proc.returncode == 0, proc.stderr
    for name in NAMES:
        assert (tmp_path / "out" / name).read_bytes() == (N9E_DIR / name).read_bytes()
    printed = subprocess.run(
        [sys.executable, "-m", "kpexporter", "dashboards", "--format", "nightingale"],
        capture_output=True, text=True, timeout=60, cwd=REPO, env={"PATH": "/usr/bin:/bin"},
        check=False)
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout) == BOARDS


@pytest.mark.parametrize("name", NAMES)
def test_every_target_is_the_grafana_panels_promql(name: str) -> None:
    for ours, theirs in pairs(name):
        assert ours["name"] == theirs["title"]
        if theirs["type"] == "row":
            assert ours["type"] == "row"
            continue
        assert [(t["refId"], t["expr"]) for t in ours["targets"]] == [
            (t["refId"], t["expr"]) for t in theirs["targets"]], theirs["title"]
        for o, g in zip(ours["targets"], theirs["targets"], strict=True):
            assert o["legend"] == ("" if g["legendFormat"] == "__auto" else g["legendFormat"])
            assert bool(o.get("instant")) == bool(g.get("instant"))
        assert ours["description"] == theirs["description"]


@pytest.mark.parametrize("name", NAMES)
def test_layout_units_and_thresholds_follow_the_grafana_panel(name: str) -> None:
    for ours, theirs in pairs(name):
        grid = {k: ours["layout"][k] for k in ("h", "w", "x", "y")}
        assert grid == theirs["gridPos"], ours["name"]
        if theirs["type"] == "row":
            continue
        defaults = theirs["fieldConfig"]["defaults"]
        std = ours["options"]["standardOptions"]
        assert std["util"] in N9E_UNITS, (ours["name"], std["util"])
        for key in ("min", "max", "decimals"):
            assert std.get(key) == defaults.get(key), (ours["name"], key)
        steps = [s["value"] for s in ours["options"]["thresholds"]["steps"]]
        assert steps == [s["value"] for s in defaults["thresholds"]["steps"]], ours["name"]
        assert all(re.fullmatch(r"#[0-9A-F]{6}", s["color"])
                   for s in ours["options"]["thresholds"]["steps"]), ours["name"]


@pytest.mark.parametrize("name", NAMES)
def test_variables_are_n9e_label_values_on_the_datasource_variable(name: str) -> None:
    theirs = variables(GRAFANA[name])
    ours = {v["name"]: v for v in BOARDS[name]["configs"]["var"]}
    assert list(ours) == list(theirs)
    assert ours["datasource"]["type"] == "datasource"
    assert ours["datasource"]["definition"] == "prometheus"
    for var_name, v in ours.items():
        if v["type"] != "query":
            continue
        g = theirs[var_name]
        selector, label = label_values(g)
        assert v["definition"] == f"label_values({selector}, {label})"
        assert v["datasource"] == {"cate": "prometheus", "value": "${datasource}"}
        assert (v["allOption"], v["allValue"], v["multi"]) == (
            g["includeAll"], g["allValue"], g["multi"])
    used = {m for p in BOARDS[name]["configs"]["panels"] for t in p.get("targets", [])
            for m in re.findall(r"\$\{?(\w+)", t["expr"])}
    assert used - set(ours) <= {"__rate_interval", "__range", "1"}, used - set(ours)


@pytest.mark.parametrize("name", NAMES)
def test_board_has_the_shape_of_n9e_builtin_board(name: str) -> None:
    board = BOARDS[name]
    assert n9e.shape_problems(board, [BUILTIN], BOARD_EXTRA) == []
    assert set(board["configs"]) <= set(BUILTIN["configs"])
    assert board["configs"]["version"] == BUILTIN["configs"]["version"]
    builtin_layout = BUILTIN["configs"]["panels"][0]["layout"]
    for p in board["configs"]["panels"]:
        where = f"{name} {p['name']}: "
        assert set(p["layout"]) == set(builtin_layout), where
        if p["type"] == "row":
            assert set(p) == ROW_KEYS, where
            continue
        kind = builtin_panels(p["type"]) or builtin_panels("timeseries")
        assert n9e.shape_problems(p, kind, PANEL_EXTRA, where) == []
        for t in p["targets"]:
            assert n9e.shape_problems(t, [t for b in kind for t in b["targets"]],
                                      TARGET_EXTRA, where) == []
        assert n9e.shape_problems(p["options"], [b["options"] for b in
                                                 builtin_panels("timeseries")],
                                  OPTIONS_EXTRA, where) == []
        if p["type"] == "timeseries":
            assert set(p["custom"]) == set(builtin_panels("timeseries")[0]["custom"]), where
        elif p["type"] == "stat":
            assert n9e.shape_problems(p["custom"], [b["custom"] for b in kind],
                                      STAT_EXTRA, where) == []
        else:
            assert set(p["custom"]) <= TABLE_CUSTOM, where
    for v in board["configs"]["var"]:
        same = [b for b in BUILTIN["configs"]["var"] if b["type"] == v["type"]]
        assert n9e.shape_problems(v, same, VAR_EXTRA, f"{name} ${v['name']}: ") == []


@pytest.mark.parametrize("name", NAMES)
def test_board_passes_n9e_import_checks(name: str) -> None:
    """n9e's board ``Verify`` (no dangerous name), the import dialog's ident rule, and its
    ``validateDashboardConfig``: string ``id``/``type``, numeric layout, ``layout.i == id``."""
    board = BOARDS[name]
    assert board["name"] and not n9e.dangerous(board["name"])
    assert re.fullmatch(r"[a-zA-Z0-9-]+", board["ident"])
    assert board["ident"] == GRAFANA[name]["uid"]
    ps = board["configs"]["panels"]
    assert len({p["id"] for p in ps}) == len(ps)
    for p in ps:
        assert isinstance(p["id"], str) and p["id"] and p["type"] in TYPES
        assert p["layout"]["i"] == p["id"]
        assert all(isinstance(p["layout"][k], int) for k in ("h", "w", "x", "y"))
        assert p["layout"]["x"] + p["layout"]["w"] <= 24
        if p["type"] != "row":
            assert p["datasourceCate"] == "prometheus"
            assert p["datasourceValue"] == "${datasource}"
    for v in board["configs"]["var"]:
        assert v["name"] and v["type"]


def test_links_reach_the_other_boards_and_the_runbooks() -> None:
    idents = {b["ident"] for b in BOARDS.values()}
    for name, board in BOARDS.items():
        urls = [lk["url"] for lk in board["configs"]["links"]]
        others = idents - {board["ident"]}
        assert {u.removeprefix("/dashboards/") for u in urls if u.startswith("/dashboards/")
                } == others, name
        assert any("runbooks.md" in u for u in urls)
    node = BOARDS["kube-proxy-health-slo.json"]
    tables = [p for p in node["configs"]["panels"] if p["type"] == "table"]
    assert tables and all(
        any(lk["url"].startswith("/dashboards/kpexporter-node?node=${__field.labels.node}")
            for lk in t["custom"].get("links", [])) for t in tables)


def _n9e_expand(expr: str, board: Mapping[str, Any]) -> str:
    """``expr`` as n9e sends it with every variable at its all-value (``.*``/``.+``)."""
    values = {v["name"]: v.get("allValue", "") for v in board["configs"]["var"]
              if v["type"] == "query"}
    return expand(expr, values)


@needs_promtool
def test_every_query_parses_in_prometheus(tmp_path: Path) -> None:
    """Each target and each variable's selector, n9e's variables substituted, as a recording
    rule: ``promtool check rules`` runs Prometheus's parser over every one."""
    rules: list[dict[str, str]] = []
    for board in BOARDS.values():
        for p in board["configs"]["panels"]:
            for t in p.get("targets", []):
                expr = _n9e_expand(t["expr"], board)
                assert not unexpanded(expr), (p["name"], expr)
                rules.append({"record": f"nightingale:query:{len(rules)}", "expr": expr})
        for v in board["configs"]["var"]:
            if v["type"] == "query":
                selector = re.fullmatch(r"label_values\((.+),\s*\w+\)", v["definition"])
                assert selector is not None, v["definition"]
                rules.append({"record": f"nightingale:variable:{len(rules)}",
                              "expr": _n9e_expand(selector.group(1), board)})
    assert_promtool_accepts(rules, tmp_path / "n9e-queries.yaml")
