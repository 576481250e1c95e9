"""The dashboards as JSON text with a stable form: the same config gives the same bytes."""

from __future__ import annotations

import json
from collections.abc import Callable

from kpexporter.config.schema import Config
from kpexporter.dashboards.board import Board, build
from kpexporter.dashboards.node import node_detail
from kpexporter.dashboards.overview import overview
from kpexporter.dashboards.proxy import proxy
from kpexporter.dashboards.scope import Scope, scope

FILES: dict[str, Callable[[Scope], Board]] = {
    "kube-proxy-health-slo.json": overview,
    "kube-proxy-node-detail.json": node_detail,
    "kube-proxy-mixin-proxy.json": proxy,
}
"""File name → the dashboard it holds, in the order they are listed."""


def to_json(model: object) -> str:
    return json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render(cfg: Config) -> dict[str, str]:
    """Every dashboard's JSON text, by file name."""
    s = scope(cfg)
    return {name: to_json(build(make(s), s)) for name, make in FILES.items()}
