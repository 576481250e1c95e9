"""Reading a Grafana dashboard's JSON model as Grafana does: panels, targets, variables.

Shared by the structure tests here and the real-Prometheus test in ``tests/e2e``: what a
query becomes once Grafana has substituted its variables is decided in one place.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "dashboards"

_VAR = re.compile(r"\$(?:\{(\w+)(?::[\w]+)?\}|(\w+))")
"""``$name`` or ``${name}`` / ``${name:format}``, as Grafana's template service matches them."""
_LABEL_VALUES = re.compile(r"^label_values\((?:(.+),\s*)?(\w+)\)$", re.S)

GRAFANA_BUILTINS = {"__rate_interval": "15s", "__interval": "5s", "__range": "5m",
                    "__range_s": "300", "__interval_ms": "5000"}
"""Values for Grafana's own variables in a test: what a 1 s-scrape, 5-minute view gives."""


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    ref: str
    expr: str
    instant: bool


def load(path: Path) -> dict[str, Any]:
    model: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return model


def committed() -> dict[str, dict[str, Any]]:
    return {p.name: load(p) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels(model: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows included, the ones inside collapsed rows too."""
    out: list[dict[str, Any]] = []
    for p in model.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []) or [])
    return out


def queries(name: str, model: Mapping[str, Any]) -> Iterator[Query]:
    for p in panels(model):
        for t in p.get("targets", []) or []:
            yield Query(name, p["title"], t["refId"], t["expr"], bool(t.get("instant")))


def variables(model: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in model.get("templating", {}).get("list", [])}


def variable_query(var: Mapping[str, Any]) -> str:
    q = var.get("query", "")
    return str(q["query"] if isinstance(q, dict) else q)


def label_values(var: Mapping[str, Any]) -> tuple[str | None, str]:
    """A query variable's ``label_values(selector, label)`` as (selector or None, label)."""
    m = _LABEL_VALUES.match(variable_query(var).strip())
    assert m, f"variable {var['name']}: not label_values(...): {variable_query(var)!r}"
    return m.group(1), m.group(2)


def expand(expr: str, values: Mapping[str, str]) -> str:
    """``expr`` with Grafana's variables replaced; a name not in ``values`` (or Grafana's
    built-ins) is left as written, as Grafana leaves an unknown variable (so PromQL's own
    ``${1}`` in a ``label_replace`` survives)."""
    known = {**GRAFANA_BUILTINS, **values}

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        return known.get(name, m.group(0))

    return _VAR.sub(sub, expr)


def unexpanded(expr: str) -> list[str]:
    """Variables left in an expanded query (``${1}``-style capture references excepted)."""
    return [m.group(0) for m in _VAR.finditer(expr) if not (m.group(1) or m.group(2)).isdigit()]
