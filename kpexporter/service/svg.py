"""Small line charts as inline SVG, drawn by the server: no script, nothing fetched.

Pure functions from numbers to markup, so the page is readable with JavaScript off, in a
text browser's "view source", and in a screenshot. A chart is a fixed-size ``<svg>`` with a
y axis from 0 to a rounded maximum (the threshold always in view), one ``<polyline>`` per
unbroken run of a series (NaN breaks a line; +Inf is drawn at the top edge), a lone point as
a ``<circle>``, and the threshold as a dashed line.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["PALETTE", "Line", "fmt", "line_chart", "nice_max"]

PALETTE = ("#2b6cb0", "#dd6b20", "#805ad5", "#2f855a", "#b83280")
WIDTH, HEIGHT = 300, 90
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 34, 6, 8, 14


@dataclass(frozen=True, slots=True)
class Line:
    label: str
    color: str
    points: Sequence[tuple[float, float]]  # (unix time, value)


def nice_max(v: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k at or above ``v`` (1 for nothing to show)."""
    if not math.isfinite(v) or v <= 0:
        return 1.0
    exp = math.floor(math.log10(v))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        top = m * 10.0**exp
        if top >= v * (1 - 1e-12):
            return top
    return 10.0 ** (exp + 1)  # pragma: no cover - the loop ends at 10 × 10^exp


def fmt(v: float, unit: str) -> str:
    """A value for people: ``850 ms``, ``1.5 s``, ``3.2×``, ``+Inf``, ``–`` for NaN."""
    if math.isnan(v):
        return "–"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if unit == "s":
        if v == 0:
            return "0 s"
        if abs(v) < 1:
            return f"{v * 1000:.3g} ms"
        if abs(v) < 120:
            return f"{v:.3g} s"
        return f"{v / 60:.3g} min"
    text = f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"
    return text + "×" if unit == "x" else text


def _runs(points: Sequence[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    """Unbroken runs of drawable points (NaN ends a run)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for t, v in points:
        if math.isnan(v):
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append((t, v))
    return [r for r in runs if r]


def line_chart(title: str, lines: Sequence[Line], t0: float, t1: float, *, unit: str,
               thresholds: Sequence[tuple[float, str]] = (), cap: float | None = None) -> str:
    """An ``<svg>`` of ``lines`` over [t0, t1]; ``data-points`` counts the points drawn.

    ``thresholds``: dashed lines (value, what it means), always in view. ``cap``: the y axis
    never goes above it (a burn rate of 1000 would flatten everything that matters; values
    above are drawn on the top edge, and the legend says them)."""
    finite = [v for ln in lines for _, v in ln.points if math.isfinite(v)]
    top = nice_max(max([*finite, *(v * 1.1 for v, _ in thresholds)], default=0.0))
    if cap is not None:
        top = min(top, nice_max(cap))
    span = max(t1 - t0, 1e-9)
    plot_w, plot_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM

    def xy(t: float, v: float) -> str:
        x = PAD_LEFT + plot_w * min(max((t - t0) / span, 0.0), 1.0)
        y = PAD_TOP + plot_h * (1 - min(max(v, 0.0), top) / top)
        return f"{x:.1f},{y:.1f}"

    parts = [f'<rect class="plot" x="{PAD_LEFT}" y="{PAD_TOP}" width="{plot_w}" '
             f'height="{plot_h}"/>',
             f'<text class="axis" x="{PAD_LEFT - 3}" y="{PAD_TOP + 4}" '
             f'text-anchor="end">{html.escape(fmt(top, unit))}</text>',
             f'<text class="axis" x="{PAD_LEFT - 3}" y="{PAD_TOP + plot_h}" '
             f'text-anchor="end">0</text>',
             f'<text class="axis" x="{PAD_LEFT}" y="{HEIGHT - 2}">'
             f'-{html.escape(_ago(span))}</text>',
             f'<text class="axis" x="{WIDTH - PAD_RIGHT}" y="{HEIGHT - 2}" '
             'text-anchor="end">now</text>']
    for value, meaning in thresholds:
        y = xy(t0, value).split(",")[1]
        parts.append(f'<line class="threshold" x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" '
                     f'y1="{y}" y2="{y}"><title>{html.escape(meaning)}</title></line>')
    drawn = 0
    for ln in lines:
        for run in _runs(ln.points):
            drawn += len(run)
            if len(run) == 1:
                x, y = xy(*run[0]).split(",")
                parts.append(f'<circle class="series" cx="{x}" cy="{y}" r="2" '
                             f'fill="{ln.color}"/>')
            else:
                pts = " ".join(xy(t, v) for t, v in run)
                parts.append(f'<polyline class="series" points="{pts}" stroke="{ln.color}"/>')
    if not drawn:
        parts.append(f'<text class="empty" x="{PAD_LEFT + plot_w / 2:.1f}" '
                     f'y="{PAD_TOP + plot_h / 2 + 3:.1f}" text-anchor="middle">no data</text>')
    label = html.escape(title, quote=True)
    return (f'<svg class="chart" role="img" aria-label="{label}" data-points="{drawn}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{label}</title>'
            + "".join(parts) + "</svg>")


def _ago(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"
