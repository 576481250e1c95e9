"""Alerting rules: kube-proxy's health, latency and failures per node, and SLO burn rates.

Per-node alerts keep the cluster labels and ``node`` (``max by (cluster, node)``), so two
exporters polling one kube-proxy, or HA Prometheus pairs behind Thanos, give one alert per
node; on a single-cluster Prometheus without a ``cluster`` label the ``by`` simply keeps
nothing more. Each alert's description names the node and the value it fired on, and its
``runbook_url`` points at its section of ``docs/runbooks.md``.

Choices (documented in the runbook):

- A draining node (``nodeEligible`` false) answers 503 on purpose, to move load-balancer
  traffic away: KubeProxyUnhealthy is silent for it. A real fault on a draining node still
  shows as KubeProxyRulesSyncStuck, which does not look at healthz.
- Nothing alerts on the age of the last sync: an idle iptables/nftables kube-proxy re-syncs
  only hourly. KubeProxyRulesSyncStuck reads how long a *queued* change has waited.
- Latency alerts read the exporter's windowed p99 only when the window holds at least
  ``min_events`` syncs: one slow sync in an idle hour is not a p99.
"""

from __future__ import annotations

from kpexporter.config import alerting as names
from kpexporter.config.alerting import BurnRateAlert
from kpexporter.config.slos import SLO
from kpexporter.rules.model import Alert, Group
from kpexporter.rules.promql import by, dur, num, on, selector
from kpexporter.rules.recording import events_record, sli_record
from kpexporter.rules.settings import LATENCY_QUANTILE, RuleSettings

RESTORE_FAILURE_COUNTERS = (
    "kubeproxy_sync_proxy_rules_iptables_restore_failures_total",  # iptables and ipvs modes
    "kubeproxy_sync_proxy_rules_nftables_sync_failures_total",  # nftables mode
)
"""kube-proxy's "rules were not applied" counters, as re-exposed by the pass-through (with
``node``). The iptables partial-restore counter is left out: every partial failure is also
counted in the restore counter."""


def _where(s: RuleSettings) -> str:
    """`` (cluster X)`` in a description, for each cluster label the alert has."""
    return "".join(f"{{{{ with $labels.{g} }}}} ({g} {{{{ . }}}}){{{{ end }}}}"
                   for g in s.groups)


def _alert(s: RuleSettings, name: str, expr: str, summary: str, description: str,
           extra_labels: tuple[tuple[str, str], ...] = (), for_: float | None = None,
           severity: str | None = None, runbook: str | None = None) -> Alert:
    a = s.alerting
    labels = (("severity", severity or a.severity(name)), *extra_labels, *a.labels)
    return Alert(
        alert=name, expr=expr,
        for_=dur(a.for_(name) if for_ is None else for_),
        labels=labels,
        annotations=(("summary", summary), ("description", description),
                     ("runbook_url", a.runbook(runbook or name))))


def _exporter_down(s: RuleSettings) -> Alert:
    up = selector("up", s.selector)
    return _alert(
        s, names.EXPORTER_DOWN, f"{up} == 0",
        "Prometheus cannot scrape kpexporter.",
        "Prometheus cannot scrape kpexporter at {{ $labels.instance }}"
        "{{ with $labels.node }} on node {{ . }}{{ end }}" + _where(s) +
        " (up = {{ $value }}): kube-proxy there is not watched.")


def _exporter_absent(s: RuleSettings) -> Alert:
    """kubernetes-mixin's KubeProxyDown intent, per cluster: no target up at all.

    ``absent(up{…})`` alone stays silent when every target exists but is down (mixin #1120);
    the first half fires then, with the number of targets as value; ``or on ()`` adds the
    ``absent()`` only when the first half is empty (no target discovered anywhere)."""
    up = selector("up", s.selector)
    expr = (f"(\n  count {by(s.groups)} ({up})\n  unless {on(s.groups)}\n  ({up} == 1)\n)\n"
            f"or on ()\nabsent({up} == 1)")
    return _alert(
        s, names.EXPORTER_ABSENT, expr,
        "No kpexporter target is up: kube-proxy is not watched anywhere.",
        "No kpexporter target is up" + _where(s) + ": {{ $value }} known target(s), all "
        "down, or none discovered at all. No kube-proxy alert below can fire.")


def _unreachable(s: RuleSettings) -> Alert:
    expr = f"max {by(s.groups, 'node')} ({selector('kpexporter_up', s.selector)}) == 0"
    return _alert(
        s, names.UNREACHABLE, expr,
        "kpexporter cannot read kube-proxy.",
        "kpexporter cannot read kube-proxy's /healthz or /metrics on node {{ $labels.node }}"
        + _where(s) + " (kpexporter_up = {{ $value }}); kpexporter_poll_errors_total says why.")


def _unhealthy(s: RuleSettings) -> Alert:
    keep = by(s.groups, "node")
    code = selector("kpexporter_healthz_status_code", s.selector)
    eligible = selector("kpexporter_healthz_node_eligible", s.selector)
    expr = (f"max {keep} ({code} != 200 > 0)\nunless {on(s.groups, 'node')}\n"
            f"max {keep} ({eligible} == 0)")
    return _alert(
        s, names.UNHEALTHY, expr,
        "kube-proxy reports itself unhealthy.",
        "kube-proxy on node {{ $labels.node }}" + _where(s) + " answers /healthz with HTTP "
        "{{ $value }} and the node is not draining: a queued rule change is overdue "
        "(kube-proxy's own healthTimeout).")


def _stuck(s: RuleSettings) -> Alert:
    t = s.pending_threshold
    pending = selector("kpexporter_sync_pending_seconds", s.selector)
    return _alert(
        s, names.RULES_SYNC_STUCK, f"max {by(s.groups, 'node')} ({pending}) > {num(t)}",
        "kube-proxy is not programming queued rule changes.",
        "A Service/EndpointSlice change queued on node {{ $labels.node }}" + _where(s) +
        " has waited {{ $value | humanizeDuration }} without being programmed "
        f"(threshold {dur(t)}): traffic to changed Services may go to old endpoints.")


def _latency(s: RuleSettings, name: str, family: str, threshold: float, what: str) -> Alert:
    w = s.latency_window
    p99 = selector(family, s.selector, quantile=repr(LATENCY_QUANTILE), window=w)
    count = selector(f"{family}_count", s.selector, window=w)
    expr = (f"max {by(s.groups, 'node')} (\n  {p99}\n  and ignoring (quantile)\n"
            f"  {count} >= {s.min_events}\n) > {num(threshold)}")
    return _alert(
        s, name, expr,
        f"kube-proxy's {what} p99 is above {num(threshold)}s.",
        f"The p99 of kube-proxy's {what} on node {{{{ $labels.node }}}}" + _where(s) +
        f" over the last {w} is {{{{ $value | humanizeDuration }}}} (threshold "
        f"{num(threshold)}s, from at least {s.min_events} events).")


def _restore_failures(s: RuleSettings) -> Alert:
    w = s.alerting.restore_failures_window.name
    keep = by(s.groups, "node")
    parts = [f"sum {keep} (increase({selector(c, s.passthrough_selector)}[{w}]))"
             for c in RESTORE_FAILURE_COUNTERS]
    expr = "(\n  " + "\n  or\n  ".join(parts) + "\n) > 0"
    return _alert(
        s, names.RESTORE_FAILURES, expr,
        "kube-proxy fails to apply its rules.",
        "kube-proxy on node {{ $labels.node }}" + _where(s) + " failed to apply its rules "
        f"{{{{ $value | humanize }}}} time(s) in the last {w} (iptables-restore, or nft in "
        "nftables mode): Service changes are not reaching the data path.")


def _clock_skew(s: RuleSettings) -> Alert:
    t = s.alerting.clock_skew_threshold
    skew = selector("kpexporter_clock_skew_seconds", s.selector)
    return _alert(
        s, names.CLOCK_SKEW, f"max {by(s.groups, 'node')} (abs({skew})) > {num(t)}",
        "kube-proxy's clock differs from kpexporter's.",
        "kube-proxy's clock on node {{ $labels.node }}" + _where(s) + " is off by "
        f"{{{{ $value | humanizeDuration }}}} from kpexporter's (threshold {num(t)}s): "
        "network-programming latency and staleness there are off by as much.")


def _burn(s: RuleSettings, slo: SLO, row: BurnRateAlert) -> Alert:
    """Both windows burn faster than ``factor`` and the short one holds enough events."""
    limit = f"({num(row.factor)} * (1 - {num(slo.objective)}))"
    match = on(s.groups, "slo")
    long = selector(sli_record(row.long.name), "", slo=slo.name)
    short = selector(sli_record(row.short.name), "", slo=slo.name)
    events = selector(events_record(row.short.name), "", slo=slo.name)
    expr = (f"1 - {long} > {limit}\nand {match}\n1 - {short} > {limit}\nand {match}\n"
            f"{events} >= {s.min_events}")
    percent = f"{slo.objective * 100:g}%"
    return _alert(
        s, names.ERROR_BUDGET_BURN, expr,
        f"kube-proxy's {slo.name} SLO is burning its error budget {num(row.factor)}x too fast.",
        f"The {slo.name} SLO (objective {percent})" + _where(s) + " has an error ratio of "
        f"{{{{ $value | humanizePercentage }}}} over {row.long.name}, and over {row.short.name} "
        f"too: more than {num(row.factor)} times its budget, which at this pace is spent in "
        f"{dur(s.period.seconds / row.factor)}. Per node: kpexporter_slo_burn_rate.",
        extra_labels=(("slo", slo.name), ("long", row.long.name), ("short", row.short.name)),
        for_=row.for_seconds, severity=row.severity)


def alert_groups(s: RuleSettings) -> tuple[Group, ...]:
    health = (
        _exporter_down(s), _exporter_absent(s), _unreachable(s), _unhealthy(s), _stuck(s),
        _latency(s, names.SYNC_LATENCY_HIGH, "kpexporter_sync_proxy_rules_duration_seconds",
                 s.sync_threshold, "rule-sync latency"),
        _latency(s, names.NETWORK_PROGRAMMING_LATENCY_HIGH,
                 "kpexporter_network_programming_duration_seconds",
                 s.network_programming_threshold, "network-programming latency"),
        _restore_failures(s), _clock_skew(s),
    )
    burn = tuple(_burn(s, slo, row) for slo in s.slos for row in s.burn_rates)
    groups = [Group("kpexporter-kube-proxy", health)]
    if burn:
        groups.append(Group("kpexporter-slo-burn", burn))
    return tuple(groups)
