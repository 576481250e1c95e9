"""Recording rules: cluster-level SLIs per window and the error budget over the period.

Named ``level:metric:operation`` like kubernetes-mixin's: ``cluster_slo`` is the level (kept
labels: the cluster labels and ``slo``), e.g. ``cluster_slo:kpexporter_slo_sli:ratio_rate1h``.

Each SLI is the ratio of the *summed* increases (good events over all events of every node),
not an average of per-node ratios, so a busy node weighs what its events weigh. The exporter's
counters stay continuous across kube-proxy restarts, so ``increase()`` over days is sound.
Windows of a day or more are evaluated in their own, slower group: ``increase()`` over 30 days
of every node's counters each minute would cost more than the answer is worth.
"""

from __future__ import annotations

from kpexporter.config.slos import SLO, SLOWindow
from kpexporter.rules.model import Group, Recording
from kpexporter.rules.promql import by, num, selector
from kpexporter.rules.settings import RuleSettings

GOOD = "kpexporter_slo_good_events_total"
TOTAL = "kpexporter_slo_events_total"
LONG_WINDOW = 86400.0
"""Windows this long or longer go to the slow group."""
SLOW_INTERVAL = "5m"


def events_record(window: str) -> str:
    return f"cluster_slo:kpexporter_slo_events:increase{window}"


def sli_record(window: str) -> str:
    return f"cluster_slo:kpexporter_slo_sli:ratio_rate{window}"


def budget_record(period: str) -> str:
    return f"cluster_slo:kpexporter_slo_error_budget_remaining:ratio{period}"


def _window_rules(s: RuleSettings, w: SLOWindow) -> tuple[Recording, ...]:
    keep = by(s.groups, "slo")
    events = Recording(events_record(w.name),
                       f"sum {keep} (increase({selector(TOTAL, s.selector)}[{w.name}]))")
    sli = Recording(sli_record(w.name),
                    f"sum {keep} (increase({selector(GOOD, s.selector)}[{w.name}]))\n"
                    f"/\n{events_record(w.name)}")
    return events, sli


def _budget_rule(s: RuleSettings, slo: SLO) -> Recording:
    """1 − (bad ratio ÷ allowed bad ratio): 1 untouched, 0 spent, negative overspent."""
    sli = selector(sli_record(s.period.name), "", slo=slo.name)
    return Recording(budget_record(s.period.name),
                     f"1 - (1 - {sli}) / (1 - {num(slo.objective)})",
                     labels=(("slo", slo.name),))  # also tells promtool the rules differ


def recording_groups(s: RuleSettings) -> tuple[Group, ...]:
    windows = sorted({w.name: w for w in (*s.slo_windows, s.period)}.values(),
                     key=lambda w: w.seconds)
    budget = tuple(_budget_rule(s, slo) for slo in s.slos)
    fast: tuple[Recording, ...] = ()
    slow: tuple[Recording, ...] = ()
    for w in windows:
        rules = _window_rules(s, w) + (budget if w.name == s.period.name else ())
        if w.seconds < LONG_WINDOW:
            fast += rules
        else:
            slow += rules
    out = [Group("kpexporter-slo.rules", fast)] if fast else []
    if slow:
        out.append(Group("kpexporter-slo-long.rules", slow, SLOW_INTERVAL))
    return tuple(out)
