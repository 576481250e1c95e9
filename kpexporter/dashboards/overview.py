"""Dashboard 1, "kube-proxy health & SLO": the whole cluster on one screen.

Answers, top to bottom: how many kube-proxies are fine and how many are not (and in which
way: unhealthy, stuck, draining, unreachable); is each SLO met over its period, how much
error budget is left and how fast it burns (the alerts' windows, the alerts' factors);
which nodes are the worst. Every cluster number is computed from the raw counters, as the
recording rules compute it, so the dashboard works before any rule is loaded.
"""

from __future__ import annotations

from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models.dashboard import ValueMapping

from kpexporter.config import alerting as alerts
from kpexporter.config.slos import SLO
from kpexporter.dashboards.board import Board, node_link
from kpexporter.dashboards.scope import OVERVIEW_UID, SLO_TITLES, Scope, budget, qname
from kpexporter.dashboards.style import (
    BAD,
    INFO,
    OK,
    WARN,
    Layout,
    PanelSpec,
    Target,
    link,
    stat,
    steps,
    table,
    timeseries,
    value_text,
)
from kpexporter.rules.alerts import RESTORE_FAILURE_COUNTERS
from kpexporter.rules.promql import num

LONG_WINDOW = 86400.0
"""Burn-rate windows this long are shown as numbers, not as lines: ``increase()`` over days
at every step of a graph costs more than the line is worth (the rules evaluate them slowly
too)."""
GOOD = "kpexporter_slo_good_events_total"
TOTAL = "kpexporter_slo_events_total"


def states(s: Scope) -> dict[str, tuple[str, str]]:
    """Each node state's PromQL (one series per node in it) and what it means."""
    up, healthy = s.m("kpexporter_up"), s.m("kpexporter_healthz_healthy")
    pending, eligible = s.m("kpexporter_sync_pending_seconds"), s.m(
        "kpexporter_healthz_node_eligible")
    limit = num(s.settings.pending_threshold)
    return {
        "Healthy": (f"{healthy} == 1 unless {pending} > {limit}",
                    "/healthz answered 200 and no queued rule change has waited longer than "
                    f"{limit} s."),
        "Unhealthy": (f"{healthy} == 0 and {up} == 1 unless {eligible} == 0",
                      "Reached, but /healthz answered 503 (and the node is not being "
                      "drained): kube-proxy says its rules are out of date."),
        "Stuck": (f"{pending} > {limit}",
                  f"A queued rule change has waited longer than {limit} s "
                  "(pending_threshold): the sync loop is not keeping up or hangs."),
        "Draining": (f"{eligible} == 0",
                     "nodeEligible false (1.28+): the node is being deleted or drained; "
                     "its 503 is not a kube-proxy fault."),
        "Unreachable": (f"{up} == 0",
                        "kpexporter could not read kube-proxy's endpoints (see the node "
                        "detail's poll errors)."),
    }


STATE_COLOURS = {"Healthy": OK, "Unhealthy": BAD, "Stuck": BAD, "Draining": INFO,
                 "Unreachable": BAD}
STATE_RUNBOOK = {"Unhealthy": alerts.UNHEALTHY, "Stuck": alerts.RULES_SYNC_STUCK,
                 "Unreachable": alerts.UNREACHABLE}


def _ratio(s: Scope, slo: SLO, window: str) -> str:
    """Good events over all events of every node in ``window`` (events, not node average)."""
    good = s.m(GOOD, slo=slo.name)
    total = s.m(TOTAL, slo=slo.name)
    return (f"sum(increase({good}[{window}])) / sum(increase({total}[{window}]))")


def burn(s: Scope, slo: SLO, window: str) -> str:
    return f"(1 - {_ratio(s, slo, window)}) / {budget(slo)}"


def _nodes(s: Scope, lay: Layout) -> None:
    lay.row("Nodes")
    found = states(s)
    lay.add(stat(PanelSpec(
        "Nodes", "none", [Target(f"count({s.m('kpexporter_up')})", instant=True)],
        "kube-proxies kpexporter polls (every node with a kpexporter_up series).",
        thresholds=steps(INFO))), 4, 4)
    for name, (expr, why) in found.items():
        colour = STATE_COLOURS[name]
        th = steps(OK) if name == "Healthy" else steps(OK, (1, colour))
        runbook = STATE_RUNBOOK.get(name)
        links = [link(f"Runbook: {runbook}", s.runbook(runbook))] if runbook else []
        lay.add(stat(PanelSpec(name, "none", [Target(f"count({expr}) or vector(0)",
                                                     instant=True)], why, thresholds=th,
                               links=links)), 4, 4)
    lay.add(timeseries(PanelSpec(
        "Nodes by state", "none",
        [Target(f"count({expr}) or vector(0)", name) for name, (expr, _) in found.items()
         if name != "Healthy"],
        "How many nodes were in each bad state over time: when did it start, is it "
        "spreading. A stuck node is usually also unhealthy (503) once kube-proxy's own "
        "healthTimeout passes.", min=0, decimals=0)), 12, 8)
    worst = (f"(({found['Unreachable'][0]}) * 0 + 4) or (({found['Stuck'][0]}) * 0 + 3) "
             f"or (({found['Unhealthy'][0]}) * 0 + 2) or (({found['Draining'][0]}) * 0 + 1)"
             f" or ({s.m('kpexporter_up')} * 0)")
    lay.add(table(PanelSpec(
        "Nodes by verdict (worst first)", "none",
        [Target(f"max {s.by('node')} ({worst})", instant=True, table=True)],
        "Every node with its worst state: 4 unreachable, 3 stuck, 2 unhealthy (503), "
        "1 draining, 0 healthy. Click a node for its detail.",
        mappings=_verdicts(), thresholds=steps(OK, (1, INFO), (2, BAD)),
        data_links=[node_link(s)])), 12, 8)


def _verdicts() -> list[ValueMapping]:
    return value_text(("0", "healthy", OK), ("1", "draining", INFO), ("2", "unhealthy", BAD),
                      ("3", "stuck", BAD), ("4", "unreachable", BAD))


def _slo(s: Scope, lay: Layout, slo: SLO) -> None:
    period = s.settings.period.name
    title = s.slo_title(slo)
    short = SLO_TITLES.get(slo.name, slo.name)
    lay.row(f"SLO: {title}")
    objective = slo.objective
    lay.add(stat(PanelSpec(
        f"{short}: SLI over {period}", "percentunit",
        [Target(_ratio(s, slo, period), instant=True)],
        f"Good events / all events of every node over the SLO period ({period}); the "
        f"objective is {num(round(objective * 100, 9))} %.",
        thresholds=steps(BAD, (objective, OK)), decimals=3)), 4, 6)
    lay.add(stat(PanelSpec(
        f"{short}: error budget left ({period})", "percentunit",
        [Target(f"1 - {burn(s, slo, period)}", instant=True)],
        "1 - (1 - SLI) / (1 - objective) over the period: 100 % untouched, 0 spent, "
        "negative overspent.", thresholds=steps(BAD, (0, WARN), (0.25, OK)), decimals=1,
        links=[link(f"Runbook: {alerts.ERROR_BUDGET_BURN}",
                    s.runbook(alerts.ERROR_BUDGET_BURN))])), 4, 6)
    rows = s.settings.burn_rates
    factors = sorted({r.factor for r in rows})
    colours = [WARN] * (len(factors) - 1) + [BAD]
    th = steps(OK, *zip(factors, colours, strict=True))
    windows = s.settings.slo_windows
    lay.add(timeseries(PanelSpec(
        f"{short}: burn rate", "x", [Target(burn(s, slo, w.name), w.name) for w in windows
                           if w.seconds < LONG_WINDOW],
        "How fast the error budget is spent, over each window the burn-rate alerts read: "
        f"1 spends exactly the budget in {period}. The dashed lines are the alerts' "
        "factors (" + ", ".join(f"{r.severity} {num(r.factor)}x over {r.long.name} and "
                                f"{r.short.name}" for r in rows) + ").",
        thresholds=th, min=0), threshold_lines=True), 10, 6)
    lay.add(stat(PanelSpec(
        f"{short}: burn rate by window", "x",
        [Target(burn(s, slo, w.name), w.name, instant=True) for w in windows],
        "The burn rate now over each alert window (the long ones too).", thresholds=th,
        decimals=2), text_mode=cm.BigValueTextMode.VALUE_AND_NAME, background=False), 6, 6)


def _worst(s: Scope, lay: Layout) -> None:
    lay.row("Worst nodes")
    shortest = min(s.windows, key=lambda w: w.seconds).name
    q = max(s.quantiles)
    slo_budget = s.m("kpexporter_slo_error_budget_remaining_ratio")
    lay.add(table(PanelSpec(
        "Least error budget left", "percentunit",
        [Target(f"bottomk(10, {slo_budget})", instant=True, table=True)],
        "Per node and SLO, the exporter's own budget over its longest SLO window "
        "(kpexporter_slo_error_budget_remaining_ratio).",
        thresholds=steps(BAD, (0, WARN), (0.25, OK)), data_links=[node_link(s)]),
        descending=False), 6, 8)
    sync = s.m("kpexporter_sync_proxy_rules_duration_seconds", quantile=repr(q),
               window=shortest)
    lay.add(table(PanelSpec(
        f"Slowest rule syncs ({qname(q)} over {shortest})", "s",
        [Target(f"topk(10, {sync})", instant=True, table=True)],
        f"Per node, the exporter's windowed {qname(q)} of kube-proxy's rule sync.",
        thresholds=steps(OK, (s.settings.sync_threshold, BAD)),
        data_links=[node_link(s)])), 6, 8)
    lay.add(table(PanelSpec(
        "Longest-waiting rule changes", "s",
        [Target(f"topk(10, {s.m('kpexporter_sync_pending_seconds')})", instant=True,
                table=True)],
        "Per node, how long the oldest queued change has waited unsynced.",
        thresholds=steps(OK, (s.settings.pending_threshold, BAD)), data_links=[node_link(s)])),
        6, 8)
    lay.add(table(PanelSpec(
        "Most rule-apply failures in range", "none",
        [Target(f"topk(10, sum {s.by('node')} (increase("
                f"{s.p_any(RESTORE_FAILURE_COUNTERS, node=False)}[$__range])))",
                instant=True, table=True)],
        "iptables-restore (iptables, ipvs) or nft (nftables) failures over the dashboard's "
        "time range, from kube-proxy's own counters (pass-through).",
        thresholds=steps(OK, (1, BAD)), data_links=[node_link(s)])), 6, 8)


def overview(s: Scope) -> Board:
    lay = Layout()
    _nodes(s, lay)
    for slo in s.settings.slos:
        _slo(s, lay, slo)
    _worst(s, lay)
    return Board(OVERVIEW_UID, "kube-proxy health & SLO", __doc__ or "", lay,
                 node_variable=False)
