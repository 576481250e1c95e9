"""The same dashboards as Nightingale (n9e) boards: n9e's board JSON, configs version 3.0.0.

Converted from the Grafana model :func:`kpexporter.dashboards.board.build` makes (the very
dicts ``dashboards/*.json`` are written from), so every target's ``expr`` is the Grafana
panel's PromQL byte for byte and the layout is the same 24-column grid. The shape is the one
n9e's own built-in boards have (``integrations/<Name>/dashboards/*.json`` in
github.com/ccfos/nightingale: ``name``, ``ident``, ``tags``, ``configs`` with ``var`` and
``panels``) and the one its "Import dashboard JSON" takes; the mapping follows n9e's own
Grafana importer (``convertDashboardGrafanaToN9E`` in github.com/n9e/fe) where it has one:

- variables: the data-source variable (``prometheus``) and each ``label_values(...)`` query
  variable with its all-value (``.*`` / ``.+``) and multi-select, reading ``${datasource}``;
- panels: title, description, header links, grid position, targets (``refId``, ``expr``,
  ``legend``, ``instant``), unit (``standardOptions.util``), min/max/decimals, thresholds
  (Grafana's colour names as n9e's hex), value mappings (``special``), legend and tooltip;
- timeseries → timeseries (bars, dashed threshold lines), stat → stat, table → n9e's table
  (``labelsOfSeriesToRows``, sorted by value, the node column linking to the node board),
  state-timeline (which n9e lacks) → timeseries of the same query;
- the Grafana tag dropdown of the other kpexporter dashboards → one link per other board.

What n9e has no field for is dropped: Grafana's legend calcs beyond n9e's, table column
hiding, cell colouring and ``$__url_time_range`` in links.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from kpexporter.config.schema import Config
from kpexporter.dashboards.board import Board, build
from kpexporter.dashboards.render import FILES
from kpexporter.dashboards.scope import NODE_UID, NODE_VAR, Scope, scope
from kpexporter.dashboards.style import DATASOURCE_VAR
from kpexporter.rules.nightingale import to_json

CONFIGS_VERSION = "3.0.0"
"""n9e's board format (``DASHBOARD_VERSION``; what its Grafana importer writes)."""
PANEL_VERSION = "3.0.0"
DATASOURCE_VALUE = f"${{{DATASOURCE_VAR}}}"
_ID_NAMESPACE = uuid.UUID("6b1f2c1e-4d0a-5c8e-9a57-6b7065787072")
"""n9e panels are identified by UUIDs; derived from board and panel id, they stay stable."""

UNITS = {
    "none": "none", "short": "sishort", "s": "seconds", "ms": "milliseconds",
    "percent": "percent", "percentunit": "percentUnit", "bytes": "bytesIEC",
    "decbytes": "bytesSI", "ops": "ops", "reqps": "reqps", "x": "none",
}
"""Grafana unit → n9e ``standardOptions.util`` (the values of n9e's unit picker). n9e has no
"times" unit: a burn rate (Grafana ``x``) is a plain number."""
COLOURS = {"green": "#73BF69", "orange": "#FF9830", "red": "#F2495C", "blue": "#5794F2",
           "yellow": "#FADE2A", "purple": "#B877D9", "text": "#8E8E8E"}
"""Grafana's named colours as the hex n9e's Grafana importer turns them into."""
TEXT_MODES = {"value_and_name": "valueAndName", "name": "valueAndName", "value": "value"}
N9E_NAME_MAP = {"&": "and"}
"""n9e refuses ``&`` (and ``<>'"``) in a board name."""


def _uid(board: str, panel: int) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, f"{board}/{panel}"))


def _layout(grid: Mapping[str, int], ident: str, *, resizable: bool = True) -> dict[str, Any]:
    return {"h": grid["h"], "w": grid["w"], "x": grid["x"], "y": grid["y"], "i": ident,
            "isResizable": resizable}


def _colour(name: str) -> str:
    return COLOURS.get(name, name)


def _thresholds(defaults: Mapping[str, Any]) -> dict[str, Any]:
    steps = defaults.get("thresholds", {}).get("steps", [])
    out = []
    for i, s in enumerate(steps):
        step = {"color": _colour(s["color"]), "value": s["value"]}
        if i == 0 and s["value"] is None:
            step["type"] = "base"
        out.append(step)
    return {"mode": "absolute", "steps": out}


def _number(text: str) -> int | float | str:
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() else value


def _mappings(defaults: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for m in defaults.get("mappings", []):
        if m.get("type") != "value":
            continue
        for value, result in sorted(m["options"].items(), key=lambda kv: kv[1].get("index", 0)):
            out.append({"type": "special", "match": {"special": _number(value)},
                        "result": {"text": result.get("text", ""),
                                   "color": _colour(result.get("color", ""))}})
    return out


def _standard(defaults: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"util": UNITS.get(defaults.get("unit", "none"), "none")}
    for key in ("min", "max", "decimals"):
        if defaults.get(key) is not None:
            out[key] = defaults[key]
    return out


def _links(links: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"title": lk["title"], "url": lk["url"], "targetBlank": bool(lk.get("targetBlank"))}
            for lk in links if lk.get("type", "link") == "link"]


def _target(t: Mapping[str, Any]) -> dict[str, Any]:
    legend = t.get("legendFormat", "")
    out: dict[str, Any] = {"refId": t["refId"], "expr": t["expr"],
                           "legend": "" if legend == "__auto" else legend}
    if t.get("instant"):
        out["instant"] = True
    return out


def _timeseries(p: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    defaults = p["fieldConfig"]["defaults"]
    custom = defaults.get("custom", {})
    stacked = custom.get("stacking", {}).get("mode", "none") == "normal"
    style = {
        "drawStyle": "bars" if custom.get("drawStyle") == "bars" else "lines",
        "lineInterpolation": "linear",
        "lineWidth": custom.get("lineWidth", 1),
        "fillOpacity": custom.get("fillOpacity", 10) / 100,
        "gradientMode": "none",
        "stack": "normal" if stacked else "off",
        "scaleDistribution": {"type": "linear"},
        "spanNulls": bool(custom.get("spanNulls", False)),
    }
    legend = p["options"].get("legend", {})
    dashed = custom.get("thresholdsStyle", {}).get("mode", "off") != "off"
    options = {
        "legend": {"displayMode": "table" if legend.get("displayMode") == "table" else "list",
                   "placement": "bottom", "calcs": list(legend.get("calcs", []))},
        "tooltip": {"mode": "all", "sort": "desc"},
        "standardOptions": _standard(defaults),
        "thresholds": _thresholds(defaults),
        "thresholdsStyle": {"mode": "dashed" if dashed else "off"},
    }
    return style, options


def _stat(p: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    defaults = p["fieldConfig"]["defaults"]
    o = p["options"]
    mode = o.get("textMode", "auto")
    if mode == "auto":  # Grafana shows the series name only when it has one
        mode = "value_and_name" if any(_target(t)["legend"] for t in p["targets"]) else "value"
    style = {
        "textMode": TEXT_MODES.get(mode, "value"),
        "colorMode": "background" if o.get("colorMode") == "background" else "value",
        "calc": o.get("reduceOptions", {}).get("calcs", ["lastNotNull"])[0],
        "graphMode": "none",
        "orientation": "auto",
        "textSize": {},
    }
    options = {"standardOptions": _standard(defaults), "thresholds": _thresholds(defaults),
               "valueMappings": _mappings(defaults)}
    return style, options


def _node_link(url: str) -> bool:
    return url.startswith(f"/d/{NODE_UID}/")


def _table(p: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    defaults = p["fieldConfig"]["defaults"]
    sort = (p["options"].get("sortBy") or [{"displayName": "value", "desc": True}])[0]
    style: dict[str, Any] = {
        "showHeader": bool(p["options"].get("showHeader", True)),
        "colorMode": "value",
        "calc": "lastNotNull",
        "displayMode": "labelsOfSeriesToRows",
        "columns": [],
        "sortColumn": sort["displayName"],
        "sortOrder": "descend" if sort.get("desc") else "ascend",
    }
    links = [lk for lk in defaults.get("links", []) if _node_link(lk.get("url", ""))]
    if links:  # the Grafana data link to the node board, as n9e's table links spell it
        style["linkMode"] = "appendLinkColumn"
        style["links"] = [{
            "title": "Node detail",
            "url": f"/dashboards/{NODE_UID}?{NODE_VAR}=${{__field.labels.{NODE_VAR}}}"
                   f"&{DATASOURCE_VAR}={DATASOURCE_VALUE}",
        }]
    options = {"standardOptions": _standard(defaults), "thresholds": _thresholds(defaults),
               "valueMappings": _mappings(defaults)}
    return style, options


CONVERTERS: dict[str, tuple[str, Callable[[Mapping[str, Any]],
                                          tuple[dict[str, Any], dict[str, Any]]]]] = {
    "timeseries": ("timeseries", _timeseries),
    "state-timeline": ("timeseries", _timeseries),
    "stat": ("stat", _stat),
    "table": ("table", _table),
}
"""Grafana panel type → n9e panel type and the converter of its style and options."""


def _panel(p: Mapping[str, Any], board: str) -> dict[str, Any]:
    pid = _uid(board, p["id"])
    if p["type"] == "row":  # n9e's ``collapsed: true`` is an open row (its importer negates)
        return {"type": "row", "id": pid, "name": p["title"],
                "collapsed": not p.get("collapsed", False),
                "layout": _layout(p["gridPos"], pid, resizable=False), "panels": []}
    kind, convert = CONVERTERS[p["type"]]
    custom, options = convert(p)
    return {
        "version": PANEL_VERSION,
        "id": pid,
        "type": kind,
        "name": p["title"],
        "description": p.get("description", ""),
        "links": _links(p.get("links", [])),
        "layout": _layout(p["gridPos"], pid),
        "datasourceCate": "prometheus",
        "datasourceValue": DATASOURCE_VALUE,
        "targets": [_target(t) for t in p["targets"]],
        "options": options,
        "custom": custom,
        "maxPerRow": 4,
    }


def _variable(v: Mapping[str, Any]) -> dict[str, Any]:
    if v["type"] == "datasource":
        return {"name": v["name"], "type": "datasource", "definition": v["query"],
                "defaultValue": ""}
    query = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
    return {"name": v["name"], "label": v.get("label", v["name"]), "type": "query",
            "definition": query,
            "datasource": {"cate": "prometheus", "value": DATASOURCE_VALUE},
            "allOption": bool(v.get("includeAll")), "allValue": v.get("allValue", ""),
            "multi": bool(v.get("multi")), "reg": ""}


def board_name(title: str) -> str:
    for bad, good in N9E_NAME_MAP.items():
        title = title.replace(bad, good)
    return title


def convert(model: Mapping[str, Any], others: list[tuple[str, str]]) -> dict[str, Any]:
    """A Grafana dashboard model as an n9e board; ``others`` (name, ident) are linked."""
    ident = model["uid"]
    links = [{"title": name, "url": f"/dashboards/{other}", "targetBlank": False}
             for name, other in others if other != ident]
    links += _links(model.get("links", []))
    return {
        "name": board_name(model["title"]),
        "ident": ident,
        "tags": " ".join(model.get("tags", [])),
        "configs": {
            "version": CONFIGS_VERSION,
            "links": links,
            "var": [_variable(v) for v in model["templating"]["list"]],
            "panels": [_panel(p, ident) for p in model["panels"]],
        },
    }


def boards(cfg: Config) -> dict[str, dict[str, Any]]:
    """n9e file name → board, one per file of ``dashboards/`` (same names)."""
    s: Scope = scope(cfg)
    made: dict[str, Board] = {name: make(s) for name, make in FILES.items()}
    models = {name: build(b, s) for name, b in made.items()}
    others = [(board_name(m["title"]), m["uid"]) for m in models.values()]
    return {name: convert(m, others) for name, m in models.items()}


def render(cfg: Config) -> dict[str, str]:
    """Every n9e board's JSON text, by file name (what n9e's "Import" takes)."""
    return {name: to_json(b) for name, b in boards(cfg).items()}
