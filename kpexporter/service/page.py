"""``/``: the page an on-call engineer opens first on a node.

Worst first: one card per node with its verdict and why (the problems ``core.verdict``
found, in its words), and three small charts of the last hour from the exporter's own
history (``service.history``): how long a rule change has waited, the rule-sync p99 over
each window against the SLO threshold, and each SLO's burn rate. Below, the table of every
node: the families of ``service.families`` that name a ``column``, in the table's order.

Server-drawn inline SVG, no script, nothing fetched from anywhere: readable with JavaScript
off and on a node with no internet; ``<meta http-equiv="refresh">`` reloads it.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from kpexporter import __version__
from kpexporter.core.state import TargetState
from kpexporter.promtext.floats import non_finite
from kpexporter.service.families import FAMILIES, Scalars, Table
from kpexporter.service.history import PageHistory, row
from kpexporter.service.svg import PALETTE, Line, fmt, line_chart

__all__ = ["MAX_CARDS", "index_html"]

MAX_CARDS = 50
"""Cards (with charts) for at most this many nodes, worst first; the table lists them all."""
ORDER = {"unreachable": 0, "unhealthy": 1, "healthy": 2}
OK_BURN = 1.0
"""Burn rate 1 spends the error budget exactly over the SLO period: the chart's line."""


def _cell(fam: Scalars, st: TargetState) -> str:
    rows = fam.read(st)
    if not rows:
        return ""
    values, v = rows[0]
    if fam.info:
        return values[-1]
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    special = non_finite(v)
    if special is not None:
        return special
    return f"{v:.1f}s" if fam.name.endswith("_seconds") else f"{v:g}"


def _verdict(st: TargetState) -> str:
    return st.derived.verdict if st.derived is not None else "not polled yet"


def _why(st: TargetState) -> str:
    d = st.derived
    if d is None:
        return "<p class='why'>Waiting for the first poll.</p>"
    if d.reasons:
        return "<ul class='why'>" + "".join(f"<li>{html.escape(r)}</li>" for r in d.reasons) + (
            "</ul>")
    said = [f"/healthz {d.healthz_status}"]
    if d.sync_pending is not None:
        said.append("no rule change waiting" if d.sync_pending == 0
                    else f"oldest change waiting {fmt(d.sync_pending, 's')}")
    if d.proxy_mode:
        said.append(f"mode {d.proxy_mode}")
    return f"<p class='why'>{html.escape(' · '.join(said))}</p>"


def _legend(lines: Sequence[Line], unit: str) -> str:
    items = []
    for ln in lines:
        last = next((v for _, v in reversed(ln.points) if not math.isnan(v)), math.nan)
        items.append(f"<li><i style='background:{ln.color}'></i>{html.escape(ln.label)} "
                     f"<b>{html.escape(fmt(last, unit))}</b></li>")
    return "<ul class='legend'>" + "".join(items) + "</ul>"


def _figure(caption: str, chart: str, lines: Sequence[Line], unit: str) -> str:
    return (f"<figure><figcaption>{html.escape(caption)}</figcaption>{chart}"
            f"{_legend(lines, unit)}</figure>")


def _charts(st: TargetState, history: PageHistory, now: float) -> str:
    samples = list(history.get(st.node))
    current = row(st, history.columns)
    if current is not None and (not samples or current[0] > samples[-1][0]):
        samples.append(current)  # the newest poll, even between stored samples
    if not samples:
        return "<p class='nochart'>No history yet.</p>"
    cols = history.columns
    t0 = now - history.span

    def series(i: int) -> list[tuple[float, float]]:
        return [(s[0], s[i]) for s in samples if s[0] >= t0]

    pending = [Line("waiting", PALETTE[0], series(1))]
    limit = history.pending_threshold
    figs = [_figure("Oldest rule change waiting", line_chart(
        f"{st.node}: oldest rule change waiting, seconds", pending, t0, now, unit="s",
        thresholds=[(limit, f"stuck above {limit:g} s")]), pending, "s")]
    q = f"p{cols.quantile * 100:g}"
    syncs = [Line(f"{q} {w}", PALETTE[i % len(PALETTE)], series(2 + i))
             for i, w in enumerate(cols.windows)]
    sync_limit = history.sync_threshold
    figs.append(_figure(f"Rule sync {q} per window", line_chart(
        f"{st.node}: rule sync {q} per window, seconds", syncs, t0, now, unit="s",
        thresholds=[(sync_limit, f"SLO threshold {sync_limit:g} s")]
        if sync_limit is not None else []), syncs, "s"))
    base = 2 + len(cols.windows)
    burns = [Line(slo.replace("_", " "), PALETTE[i % len(PALETTE)], series(base + i))
             for i, slo in enumerate(cols.slos)]
    if burns:
        figs.append(_figure(f"SLO burn rate ({cols.slo_window})", line_chart(
            f"{st.node}: SLO burn rate over {cols.slo_window}", burns, t0, now, unit="x",
            thresholds=[(OK_BURN, "1×: the budget lasts exactly the period"),
                        (history.page_burn, f"{history.page_burn:g}×: the fastest "
                         "burn-rate alert's factor")],
            cap=history.page_burn * 1.25), burns, "x"))
    return "<div class='charts'>" + "".join(figs) + "</div>"


def _card(st: TargetState, history: PageHistory | None, now: float) -> str:
    verdict = _verdict(st)
    cls = verdict.replace(" ", "-")
    charts = _charts(st, history, now) if history is not None else ""
    return (f"<article class='node {html.escape(cls)}' id='node-{html.escape(st.node)}'>"
            f"<h2>{html.escape(st.node)} <span class='verdict'>{html.escape(verdict)}</span>"
            f"</h2>{_why(st)}{charts}</article>")


def _ordered(states: Sequence[TargetState]) -> list[TargetState]:
    return sorted(states, key=lambda st: (ORDER.get(_verdict(st), 3), st.node))


def _table(states: Sequence[TargetState], table: Table) -> str:
    columns = [f for f in table if isinstance(f, Scalars) and f.column]
    rows = []
    for st in states:
        d = st.derived
        verdict = _verdict(st)
        detail = "; ".join(d.reasons) if d and d.reasons else ""
        cells = "".join(f"<td>{html.escape(_cell(f, st))}</td>" for f in columns)
        rows.append(f"<tr class='{html.escape(verdict.replace(' ', '-'))}'>"
                    f"<td><a href='#node-{html.escape(st.node)}'>{html.escape(st.node)}</a></td>"
                    f"<td>{html.escape(verdict)}</td>{cells}<td>{html.escape(detail)}</td></tr>")
    heads = "".join(f"<th>{html.escape(f.column or '')}</th>" for f in columns)
    return (f"<table><tr><th>node</th><th>verdict</th>{heads}<th>why</th></tr>"
            f"{''.join(rows)}</table>")


STYLE = """
body{font-family:system-ui,sans-serif;margin:1.2em 2em;color:#1a202c;background:#f7fafc}
h1{font-size:1.4em;margin:0}header p{margin:.3em 0 1em;color:#4a5568}
.counts b{padding:.1em .5em;border-radius:.3em;color:#fff}
.counts .healthy{background:#2f855a}.counts .unhealthy{background:#c05621}
.counts .unreachable{background:#c53030}
.nodes{display:grid;grid-template-columns:repeat(auto-fill,minmax(980px,1fr));gap:1em}
article.node{background:#fff;border:1px solid #e2e8f0;border-left:6px solid #a0aec0;
border-radius:.4em;padding:.6em 1em}
article.healthy{border-left-color:#2f855a}article.unhealthy{border-left-color:#c05621}
article.unreachable{border-left-color:#c53030}
h2{font-size:1.1em;margin:.2em 0}.verdict{font-size:.8em;padding:.1em .5em;border-radius:.3em;
color:#fff;background:#718096;vertical-align:middle}
.healthy .verdict{background:#2f855a}.unhealthy .verdict{background:#c05621}
.unreachable .verdict{background:#c53030}
.why{margin:.3em 0 .5em;color:#2d3748}ul.why{padding-left:1.2em}
.charts{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}
figcaption{font-size:.8em;color:#4a5568}
svg.chart .plot{fill:#f7fafc;stroke:#e2e8f0}svg.chart .axis{font-size:9px;fill:#718096}
svg.chart .series{fill:none;stroke-width:1.5}svg.chart circle.series{stroke:none}
svg.chart .empty{font-size:10px;fill:#a0aec0}
svg.chart .threshold{stroke:#c53030;stroke-dasharray:4 3;stroke-width:1}
ul.legend{list-style:none;padding:0;margin:.1em 0;font-size:.75em;color:#4a5568}
ul.legend li{display:inline-block;margin-right:.8em}
ul.legend i{display:inline-block;width:.8em;height:.8em;margin-right:.3em;border-radius:2px}
table{border-collapse:collapse;background:#fff;margin-top:.5em}
td,th{padding:.3em .8em;text-align:left;border-bottom:1px solid #e2e8f0;font-size:.9em}
tr.healthy td:nth-child(2){color:#2f855a}tr.unhealthy td:nth-child(2){color:#c05621}
tr.unreachable td:nth-child(2){color:#c53030}
footer{margin-top:1.5em;font-size:.85em;color:#4a5568}
"""


def index_html(states: Sequence[TargetState], table: Table = FAMILIES, *,
               history: PageHistory | None = None, now: float | None = None,
               refresh: int = 15) -> str:
    """The page; ``history`` for the charts (none: cards without charts)."""
    now = time.time() if now is None else now
    ordered = _ordered(states)
    counts = {v: sum(1 for st in states if _verdict(st) == v) for v in ORDER}
    summary = " ".join(f"<b class='{v}'>{n} {v}</b>" for v, n in counts.items() if n)
    polled = [st.last.started for st in states if st.last is not None]
    last = (datetime.fromtimestamp(max(polled), UTC).strftime("%H:%M:%S UTC")
            if polled else "none yet")
    cards = "".join(_card(st, history, now) for st in ordered[:MAX_CARDS])
    bad = counts["unhealthy"] + counts["unreachable"]
    more = (f"<p>{len(ordered) - MAX_CARDS} more nodes in the table below.</p>"
            if len(ordered) > MAX_CARDS else "")
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{int(refresh)}">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>kpexporter: {bad} not healthy of {len(states)}</title>
<style>{STYLE}</style></head><body>
<header><h1>kpexporter {html.escape(__version__)}: kube-proxy health</h1>
<p class="counts">{len(states)} nodes: {summary or "none"} · last poll {last} ·
refreshes every {int(refresh)} s</p></header>
<section class="nodes">{cards}</section>{more}
<h2>All nodes</h2>
{_table(ordered, table)}
<footer>kube-proxy health-and-SLO exporter. Endpoints: <a href="/metrics">/metrics</a> ·
<a href="/api/v1/targets">/api/v1/targets</a> · <a href="/healthz">/healthz</a> ·
<a href="/readyz">/readyz</a></footer></body></html>"""
