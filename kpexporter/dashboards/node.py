"""Dashboard 2, "kube-proxy node detail": one node (or a few) in depth.

Answers: what does /healthz say and since when; is a rule change waiting, how long since the
last sync, is the node's clock off; how long syncs and network programming take (each
quantile over each of the exporter's windows, against the SLO threshold); how often it
syncs and fails; which proxy mode; which SLO is burning on this node; and whether kpexporter
itself can poll it.
"""

from __future__ import annotations

from grafana_foundation_sdk.models import common as cm

from kpexporter.config import alerting as alerts
from kpexporter.config.slos import NETWORK_PROGRAMMING_LATENCY, SYNC_LATENCY
from kpexporter.dashboards.board import Board
from kpexporter.dashboards.scope import NODE_UID, Scope, qname
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
    state_timeline,
    steps,
    timeseries,
    value_text,
)
from kpexporter.rules.alerts import RESTORE_FAILURE_COUNTERS
from kpexporter.rules.promql import num

HISTOGRAMS = (
    ("kpexporter_sync_proxy_rules_duration_seconds", "Rule sync duration", SYNC_LATENCY,
     alerts.SYNC_LATENCY_HIGH),
    ("kpexporter_network_programming_duration_seconds", "Network programming latency",
     NETWORK_PROGRAMMING_LATENCY, alerts.NETWORK_PROGRAMMING_LATENCY_HIGH),
)


def _health(s: Scope, lay: Layout) -> None:
    lay.row("Health")
    lay.add(state_timeline(PanelSpec(
        "/healthz answer", "none", [Target(s.m("kpexporter_healthz_status_code", node=True),
                                           "{{node}}")],
        "The HTTP status of each /healthz poll: 200 kube-proxy's rules are current; 503 a "
        "change waited longer than kube-proxy's healthTimeout, or the node is draining; "
        "0 no answer.",
        mappings=value_text(("200", "200 OK", OK), ("503", "503", BAD),
                            ("0", "no answer", BAD)),
        thresholds=steps(BAD, (200, OK), (201, BAD)),
        links=[link(f"Runbook: {alerts.UNHEALTHY}", s.runbook(alerts.UNHEALTHY))])), 12, 6)
    lay.add(stat(PanelSpec(
        "Proxy mode", "none", [Target(s.m("kpexporter_proxy_mode_info", node=True),
                                      "{{mode}}", instant=True)],
        "From kube-proxy's /proxyMode.", thresholds=steps(INFO)),
        text_mode=cm.BigValueTextMode.NAME), 4, 6)
    lay.add(stat(PanelSpec(
        "Reached", "none", [Target(s.m("kpexporter_up", node=True), "{{node}}", instant=True)],
        "Whether kpexporter's last poll read both of kube-proxy's endpoints (a 503 counts "
        "as read).", mappings=value_text(("1", "reached", OK), ("0", "unreachable", BAD)),
        thresholds=steps(BAD, (1, OK)),
        links=[link(f"Runbook: {alerts.UNREACHABLE}", s.runbook(alerts.UNREACHABLE))])),
        4, 6)
    lay.add(stat(PanelSpec(
        "Node eligible", "none",
        [Target(s.m("kpexporter_healthz_node_eligible", node=True), "{{node}}", instant=True)],
        "The /healthz body's nodeEligible (1.28+): false while the node is being deleted or "
        "drained, when its 503 is expected. Empty before 1.28.",
        mappings=value_text(("1", "eligible", OK), ("0", "draining", INFO)),
        thresholds=steps(INFO, (1, OK)))), 4, 6)
    limit = s.settings.pending_threshold
    lay.add(timeseries(PanelSpec(
        "Pending rule change and healthz staleness", "s",
        [Target(s.m("kpexporter_sync_pending_seconds", node=True), "{{node}} change pending"),
         Target(s.m("kpexporter_healthz_staleness_seconds", node=True),
                "{{node}} healthz staleness")],
        "How long the oldest queued rule change has waited unsynced (0: none waiting), and "
        "currentTime - lastUpdated from /healthz (0 by construction on a 200 before 1.33). "
        f"The dashed line is the stuck threshold ({num(limit)} s).",
        thresholds=steps(OK, (limit, BAD)), min=0,
        links=[link(f"Runbook: {alerts.RULES_SYNC_STUCK}",
                    s.runbook(alerts.RULES_SYNC_STUCK))]), threshold_lines=True), 12, 7)
    lay.add(timeseries(PanelSpec(
        "Time since the last sync", "s",
        [Target(f"time() - {s.m('kpexporter_sync_last_timestamp_seconds', node=True)}",
                "{{node}}")],
        "Seconds since kube-proxy last synced its rules. Idle iptables and nftables proxies "
        "re-sync only hourly, so up to about an hour is healthy: alert on the pending "
        "change, not on this.", min=0)), 6, 7)
    skew = s.settings.alerting.clock_skew_threshold
    lay.add(timeseries(PanelSpec(
        "Clock skew", "s", [Target(s.m("kpexporter_clock_skew_seconds", node=True), "{{node}}")],
        "kube-proxy's clock minus kpexporter's. Network programming latency is measured "
        "against the control plane's clock, so a skewed node reports it wrong. Dashed: "
        f"±{num(skew)} s.", thresholds=steps(BAD, (-skew, OK), (skew, BAD)),
        links=[link(f"Runbook: {alerts.CLOCK_SKEW}", s.runbook(alerts.CLOCK_SKEW))]),
        threshold_lines=True), 6, 7)


def _latency(s: Scope, lay: Layout) -> None:
    lay.row("Sync and network programming latency")
    limits = {SYNC_LATENCY: s.settings.sync_threshold,
              NETWORK_PROGRAMMING_LATENCY: s.settings.network_programming_threshold}
    for metric, title, slo, alert in HISTOGRAMS:
        limit = limits[slo]
        for w in s.windows:
            lay.add(timeseries(PanelSpec(
                f"{title} ({w.name} window)", "s",
                [Target(s.m(metric, node=True, window=w.name, quantile=repr(q)),
                        f"{{{{node}}}} {qname(q)} {{{{ip_family}}}}") for q in s.quantiles],
                f"Quantiles of kube-proxy's histogram over the last {w.name}, computed by "
                "kpexporter between its polls (no recording rule needed). Dashed: the "
                f"{slo} SLO threshold, {num(limit)} s.",
                thresholds=steps(OK, (limit, BAD)), min=0,
                links=[link(f"Runbook: {alert}", s.runbook(alert))]),
                threshold_lines=True), 12, 8)
    lay.add(timeseries(PanelSpec(
        "Rule syncs per second", "ops",
        [Target(f"{s.m('kpexporter_sync_proxy_rules_duration_seconds_count', node=True, window=w.name)}"  # noqa: E501
                f" / {num(w.seconds)}", f"{{{{node}}}} over {w.name}") for w in s.windows],
        "Syncs in each window divided by its length: kube-proxy syncs on changes (and "
        "hourly when idle).", min=0)), 12, 7)
    lay.add(timeseries(PanelSpec(
        "Rule-apply failures per second", "ops",
        [Target(f"sum {s.by('node')} (rate({s.p_any(RESTORE_FAILURE_COUNTERS)}"
                "[$__rate_interval]))", "{{node}}")],
        "iptables-restore (iptables, ipvs modes) or nft (nftables) failures, from kube-proxy's "
        "own counters (pass-through): rules that were not applied.",
        thresholds=steps(OK, (1e-9, BAD)), min=0,
        links=[link(f"Runbook: {alerts.RESTORE_FAILURES}",
                    s.runbook(alerts.RESTORE_FAILURES))]), bars=True), 12, 7)


def _slos(s: Scope, lay: Layout) -> None:
    lay.row("SLOs on this node")
    factors = sorted({r.factor for r in s.settings.burn_rates})
    th = steps(OK, *zip(factors, [WARN] * (len(factors) - 1) + [BAD], strict=True))
    slos = s.settings.slos
    width = max(24 // max(len(slos), 1), 6)
    for slo in slos:
        lay.add(timeseries(PanelSpec(
            f"Burn rate: {s.slo_title(slo)}", "x",
            [Target(s.m("kpexporter_slo_burn_rate", node=True, slo=slo.name),
                    "{{node}} {{window}}")],
            "The exporter's burn rate over each of its SLO windows (NaN, a gap, with fewer "
            "events than slos.min_events). Dashed: the burn-rate alerts' factors.",
            thresholds=th, min=0,
            links=[link(f"Runbook: {alerts.ERROR_BUDGET_BURN}",
                        s.runbook(alerts.ERROR_BUDGET_BURN))]), threshold_lines=True), width, 7)
    lay.add(timeseries(PanelSpec(
        "Error budget left", "percentunit",
        [Target(s.m("kpexporter_slo_error_budget_remaining_ratio", node=True),
                "{{node}} {{slo}}")],
        "Per SLO, 1 - burn rate over the exporter's longest SLO window (the cluster's budget "
        "over the whole period is on the overview).",
        thresholds=steps(BAD, (0, WARN), (0.25, OK)), max=1)), 12, 7)
    lay.add(timeseries(PanelSpec(
        "SLI by window", "percentunit",
        [Target(s.m("kpexporter_slo_sli_ratio", node=True), "{{node}} {{slo}} {{window}}")],
        "Good events / all events over each window.", max=1)), 12, 7)


def _polls(s: Scope, lay: Layout) -> None:
    lay.row("kpexporter's polls")
    lay.add(timeseries(PanelSpec(
        "Poll duration p99", "s",
        [Target(f"histogram_quantile(0.99, sum {s.by('node', 'endpoint', 'le')} (rate("
                f"{s.m('kpexporter_poll_duration_seconds_bucket', node=True)}"
                "[$__rate_interval])))", "{{node}} {{endpoint}}")],
        "How long kube-proxy takes to answer kpexporter, per endpoint.", min=0)), 8, 7)
    lay.add(timeseries(PanelSpec(
        "Poll errors per second", "ops",
        [Target(f"sum {s.by('node', 'endpoint', 'reason')} (rate("
                f"{s.m('kpexporter_poll_errors_total', node=True)}[$__rate_interval]))",
                "{{node}} {{endpoint}} {{reason}}")],
        "Failed requests to kube-proxy by endpoint and reason (timeout, connect, "
        "http_status, parse, …).", thresholds=steps(OK, (1e-9, BAD)), min=0,
        links=[link(f"Runbook: {alerts.UNREACHABLE}", s.runbook(alerts.UNREACHABLE))]),
        bars=True), 8, 7)
    lay.add(timeseries(PanelSpec(
        "Since the last successful poll", "s",
        [Target(f"time() - {s.m('kpexporter_last_success_timestamp_seconds', node=True)}",
                "{{node}}")],
        "Seconds since a poll last read both endpoints: about the poll interval when all "
        "is well.", min=0)), 8, 7)


def node_detail(s: Scope) -> Board:
    lay = Layout()
    _health(s, lay)
    _latency(s, lay)
    _slos(s, lay)
    _polls(s, lay)
    return Board(NODE_UID, "kube-proxy node detail", __doc__ or "", lay, node_variable=True)
