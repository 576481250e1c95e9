"""Small PromQL builders shared by the recording and alerting rules.

Only what every Prometheus-compatible ruler evaluates (Prometheus 2.x, Thanos, Mimir): no
``@`` modifier, no subqueries, no experimental functions.
"""

from __future__ import annotations

from kpexporter.config.durations import format_duration


def num(value: float) -> str:
    """A float as PromQL reads it back exactly (``1.024``, ``14.4``, ``60``)."""
    return f"{int(value)}" if float(value).is_integer() else repr(float(value))


def dur(seconds: float) -> str:
    """Seconds as a Prometheus duration (``300`` → ``5m``; ``0`` → ``0s``)."""
    return format_duration(seconds)


def selector(metric: str, base: str, **labels: str) -> str:
    """``metric{base,k="v",...}``; just ``metric`` when there are no matchers."""
    parts = [p for p in (base, *(f'{k}="{v}"' for k, v in labels.items())) if p]
    return f"{metric}{{{', '.join(parts)}}}" if parts else metric


def by(groups: tuple[str, ...], *labels: str) -> str:
    """``by (cluster, node)``: the cluster labels first, then ``labels`` (no duplicates)."""
    return f"by ({', '.join(dict.fromkeys((*groups, *labels)))})"


def on(groups: tuple[str, ...], *labels: str) -> str:
    return f"on ({', '.join(dict.fromkeys((*groups, *labels)))})"


def indent(expr: str, spaces: int = 2) -> str:
    pad = " " * spaces
    return "\n".join(pad + line if line else line for line in expr.splitlines())
