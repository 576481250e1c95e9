"""A dashboard from its panels: variables, links, and the JSON Grafana imports.

Every dashboard gets the same frame: the ``$datasource`` variable (no datasource UID is ever
written, so the JSON imports into any Grafana and provisions as it is), one variable per
cluster label (``All`` = ``.*``, which also matches series without the label, so a
single-cluster Prometheus needs nothing), ``$node`` where panels are per node (from
``kpexporter_up``, which every proxy mode and version has), a dropdown of the other
kpexporter dashboards (by tag, keeping time range and variables) and the runbooks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

from kpexporter.dashboards.scope import NODE_UID, NODE_VAR, UP, Scope
from kpexporter.dashboards.style import (
    DATASOURCE_VAR,
    TAG,
    Layout,
    datasource_variable,
    link,
    query_variable,
)

MIN_GRAFANA = "10.0.0"
REFRESH = "30s"


@dataclass(frozen=True, slots=True)
class Board:
    uid: str
    title: str
    description: str
    layout: Layout
    node_variable: bool


def node_link(s: Scope) -> db.DashboardLink:
    """A value's link to the node-detail dashboard for that row's ``node``."""
    keep = "&".join([f"${{{DATASOURCE_VAR}:queryparam}}",
                     *(f"${{{c}:queryparam}}" for c in s.clusters), "${__url_time_range}"])
    return (db.DashboardLink("Node detail: ${__data.fields.node}").type(
        dm.DashboardLinkType.LINK).url(f"/d/{NODE_UID}/?var-{NODE_VAR}=${{__data.fields.node}}"
                                       f"&{keep}"))


def _variables(s: Scope, node: bool) -> list[Any]:
    out: list[Any] = [datasource_variable()]
    up = s.m(UP)
    for c in s.clusters:
        base = f"{UP}{{{s.settings.selector}}}" if s.settings.selector else UP
        out.append(query_variable(c, c.capitalize(), f"label_values({base}, {c})",
                                  all_value=".*"))
    if node:
        out.append(query_variable(NODE_VAR, "Node", f"label_values({up}, {NODE_VAR})",
                                  all_value=".+"))
    return out


def _summary(doc: str) -> str:
    """The module docstring's second paragraph (what the dashboard answers), on one line."""
    paragraphs = doc.strip().split("\n\n")
    return " ".join(paragraphs[min(1, len(paragraphs) - 1)].replace("``", "").split())


def build(board: Board, s: Scope) -> dict[str, Any]:
    """The dashboard as Grafana's JSON model (a dict, ready for ``json.dumps``)."""
    d = (db.Dashboard(board.title).uid(board.uid).description(_summary(board.description))
         .tags([TAG, "kube-proxy"]).time("now-1h", "now").refresh(REFRESH).timezone("browser")
         .tooltip(dm.DashboardCursorSync.CROSSHAIR)
         .timepicker(db.TimePicker().refresh_intervals(
             ["10s", "30s", "1m", "5m", "15m", "30m", "1h"]))
         .variables(_variables(s, board.node_variable))
         .links([db.DashboardLink("kpexporter dashboards").type(dm.DashboardLinkType.DASHBOARDS)
                 .tags([TAG]).as_dropdown(True).include_vars(True).keep_time(True),
                 link("Runbooks", s.runbook_index)]))
    board.layout.apply(d)
    out: dict[str, Any] = json.loads(json.dumps(d.build(), cls=JSONEncoder))
    for panel in out["panels"]:
        if panel.get("options") is None and panel["type"] != "row":
            panel["options"] = {}
    out["__requires"] = [
        {"type": "grafana", "id": "grafana", "name": "Grafana", "version": MIN_GRAFANA},
        {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
        *({"type": "panel", "id": t, "name": t, "version": ""}
          for t in sorted({p["type"] for p in out["panels"] if p["type"] != "row"})),
    ]
    return out
