"""The ``alerting:`` section: what ``kpexporter rules`` needs beyond the exporter's own settings.

Thresholds the exporter already has are not repeated: the RulesSyncStuck threshold defaults to
``pending_threshold``, the latency thresholds to the SLO thresholds, the event guard to
``slos.min_events`` (each resolved by the rule generator from the whole config). Everything
here is about how Prometheus should judge the series: which scrape job they come from, which
labels tell clusters apart, how long a condition must hold, where the runbook lives.

    alerting:
      selector: 'job="kpexporter"'    # matchers for kpexporter's own series (and its `up`)
      passthrough_selector: 'job="kube-proxy"'  # for kube-proxy's series kpexporter passes through
      cluster_labels: [cluster]       # aggregated over when present; harmless when absent
      runbook_url: https://…/docs/runbooks.md
      pending_threshold: 60s          # default: the exporter's pending_threshold
      clock_skew_threshold: 5s
      for: {KubeProxyUnhealthy: 5m}   # per alert; 0s fires at the first evaluation
      severity: {KubeProxyUnhealthy: critical}
      labels: {team: network}         # added to every alert
      burn_rates:                     # the multi-window multi-burn-rate table
        - {severity: critical, long: 1h, short: 5m, factor: 14.4, for: 2m}
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

from kpexporter.config.durations import format_duration, parse_duration
from kpexporter.config.slos import SLOWindow

EXPORTER_DOWN = "KubeProxyExporterDown"
EXPORTER_ABSENT = "KubeProxyExporterAbsent"
UNREACHABLE = "KubeProxyUnreachable"
UNHEALTHY = "KubeProxyUnhealthy"
RULES_SYNC_STUCK = "KubeProxyRulesSyncStuck"
SYNC_LATENCY_HIGH = "KubeProxySyncLatencyHigh"
NETWORK_PROGRAMMING_LATENCY_HIGH = "KubeProxyNetworkProgrammingLatencyHigh"
RESTORE_FAILURES = "KubeProxyRestoreFailures"
CLOCK_SKEW = "KubeProxyClockSkew"
ERROR_BUDGET_BURN = "KubeProxyErrorBudgetBurn"

ALERT_NAMES = (EXPORTER_DOWN, EXPORTER_ABSENT, UNREACHABLE, UNHEALTHY, RULES_SYNC_STUCK,
               SYNC_LATENCY_HIGH, NETWORK_PROGRAMMING_LATENCY_HIGH, RESTORE_FAILURES,
               CLOCK_SKEW)
"""Every alert but the burn-rate ones (whose ``for`` and severity are per burn-rate row)."""

DEFAULT_RUNBOOK_URL = "https://github.com/kpexporter/kpexporter/blob/main/docs/runbooks.md"

_DEFAULT_FOR = {
    EXPORTER_DOWN: 900.0, EXPORTER_ABSENT: 900.0, UNREACHABLE: 900.0,  # kubernetes-mixin's 15m
    UNHEALTHY: 300.0, RULES_SYNC_STUCK: 300.0,
    SYNC_LATENCY_HIGH: 900.0, NETWORK_PROGRAMMING_LATENCY_HIGH: 900.0,
    RESTORE_FAILURES: 600.0, CLOCK_SKEW: 900.0,
}
_DEFAULT_SEVERITY = {
    EXPORTER_DOWN: "warning", EXPORTER_ABSENT: "critical", UNREACHABLE: "warning",
    UNHEALTHY: "warning", RULES_SYNC_STUCK: "critical",
    SYNC_LATENCY_HIGH: "warning", NETWORK_PROGRAMMING_LATENCY_HIGH: "warning",
    RESTORE_FAILURES: "warning", CLOCK_SKEW: "warning",
}


@dataclass(frozen=True, slots=True)
class BurnRateAlert:
    """One row of the SRE workbook's table: both windows above ``factor`` × the budget."""

    severity: str
    long: SLOWindow
    short: SLOWindow
    factor: float
    for_seconds: float


def _row(severity: str, long: str, short: str, factor: float, for_: str) -> BurnRateAlert:
    lw, sw = parse_duration(long), parse_duration(short)
    return BurnRateAlert(severity, SLOWindow(long, lw), SLOWindow(short, sw), factor,
                         parse_duration(for_))


DEFAULT_BURN_RATES: tuple[BurnRateAlert, ...] = (
    _row("critical", "1h", "5m", 14.4, "2m"),  # page: 2 % of a 30 d budget in 1 h
    _row("critical", "6h", "30m", 6.0, "15m"),  # page: 5 % in 6 h
    _row("warning", "1d", "2h", 3.0, "1h"),  # ticket: 10 % in 1 d
    _row("warning", "3d", "6h", 1.0, "3h"),  # ticket: 10 % in 3 d
)
"""kubernetes-mixin's apiserver table (SRE workbook, plus its 1d/2h row)."""


_TEN_MINUTES = SLOWindow("10m", 600.0)


@dataclass(frozen=True, slots=True)
class AlertingConfig:
    selector: str = 'job="kpexporter"'
    # deploy/ scrapes the pass-through (kubeproxy_*) as job="kube-proxy", for kubernetes-mixin
    passthrough_selector: str = 'job="kube-proxy"'
    cluster_labels: tuple[str, ...] = ("cluster",)
    runbook_url: str = DEFAULT_RUNBOOK_URL
    pending_threshold: float | None = None  # None: the exporter's pending_threshold
    clock_skew_threshold: float = 5.0
    sync_latency_threshold: float | None = None  # None: slos.sync_latency.threshold
    network_programming_threshold: float | None = None  # None: that SLO's threshold
    latency_window: str | None = None  # None: the exporter's shortest window
    restore_failures_window: SLOWindow = _TEN_MINUTES
    min_events: int | None = None  # None: slos.min_events
    # (alert, value) pairs, not dicts: Config is frozen and hashable all the way down
    for_seconds: tuple[tuple[str, float], ...] = tuple(_DEFAULT_FOR.items())
    severities: tuple[tuple[str, str], ...] = tuple(_DEFAULT_SEVERITY.items())
    labels: tuple[tuple[str, str], ...] = ()
    burn_rates: tuple[BurnRateAlert, ...] = DEFAULT_BURN_RATES

    def for_(self, alert: str) -> float:
        return dict(self.for_seconds)[alert]

    def severity(self, alert: str) -> str:
        return dict(self.severities)[alert]

    def runbook(self, alert: str) -> str:
        """The alert's section of the runbook (GitHub's heading anchor: the name lowercased)."""
        return f"{self.runbook_url}#{alert.lower()}"


DEFAULT_ALERTING = AlertingConfig()

_KEYS = ("selector", "passthrough_selector", "cluster_labels", "runbook_url", "pending_threshold",
         "clock_skew_threshold", "sync_latency_threshold", "network_programming_threshold",
         "latency_window", "restore_failures_window", "min_events", "for", "severity",
         "labels", "burn_rates")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_MATCHER = r'\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*'
_SELECTOR = re.compile(rf"(?:{_MATCHER}(?:,{_MATCHER})*,?\s*)?")
_SEVERITY = re.compile(r"[a-z][a-z0-9_-]*")


def _duration(raw: Any, allow_zero: bool = False) -> float:
    if isinstance(raw, bool):
        raise ValueError(f"must be a duration such as 30s or 5m, got {raw!r}")
    text = str(raw).strip()
    if allow_zero and text in ("0", "0s", "0.0"):
        return 0.0
    if isinstance(raw, int | float) and not (math.isfinite(raw) and raw > 0):
        raise ValueError(f"must be a positive duration, got {raw!r}")
    return parse_duration(text)


def _window(raw: Any) -> SLOWindow:
    secs = _duration(raw)
    return SLOWindow(format_duration(secs), secs)


def _selector(raw: Any) -> str:
    if not isinstance(raw, str) or not _SELECTOR.fullmatch(raw):
        raise ValueError(f'must be PromQL label matchers such as job="kpexporter", got {raw!r}')
    return raw.strip().rstrip(",").strip()


def _label_names(raw: Any) -> tuple[str, ...]:
    items = [raw] if isinstance(raw, str) else raw
    if items is None:
        return ()
    if not isinstance(items, list) or not all(
            isinstance(i, str) and _LABEL_NAME.fullmatch(i) for i in items):
        raise ValueError("must be a list of label names such as [cluster]")
    if "node" in items or "slo" in items:
        raise ValueError("node and slo are always kept: list only the labels above a node")
    return tuple(dict.fromkeys(items))


def _url(raw: Any) -> str:
    if not isinstance(raw, str) or not re.fullmatch(r"https?://\S+", raw) or "#" in raw:
        raise ValueError(f"must be an http(s) URL without a #fragment, got {raw!r}")
    return raw


def _per_alert(raw: Any, parse: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError(f"must be a mapping of alert name to value ({ALERT_NAMES[0]}: …)")
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in ALERT_NAMES:
            raise ValueError(f"{name}: unknown alert (known: {', '.join(ALERT_NAMES)}; the "
                             f"{ERROR_BUDGET_BURN} rows are set under burn_rates)")
        try:
            out[name] = parse(value)
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None
    return out


def _severity(raw: Any) -> str:
    if not isinstance(raw, str) or not _SEVERITY.fullmatch(raw):
        raise ValueError(f"must be a severity such as critical, warning or info, got {raw!r}")
    return raw


def _labels(raw: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, dict):
        raise ValueError("must be a mapping of label name to value")
    out: dict[str, str] = {}
    for k, v in raw.items():
        if not isinstance(k, str) or not _LABEL_NAME.fullmatch(k) or k.startswith("__"):
            raise ValueError(f"{k!r}: not a label name")
        if k in ("severity", "alertname", "node", "slo"):
            raise ValueError(f"{k}: set by the rules themselves")
        if not isinstance(v, str | int | float) or isinstance(v, bool):
            raise ValueError(f"{k}: must be a string")
        out[k] = str(v)
    return tuple(sorted(out.items()))


def _positive_int(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise ValueError(f"must be a positive integer, got {raw!r}")
    return raw


_ROW_KEYS = ("severity", "long", "short", "factor", "for")


def _burn_rates(raw: Any) -> tuple[BurnRateAlert, ...]:
    if not isinstance(raw, list) or not raw:
        raise ValueError("must be a non-empty list of {severity, long, short, factor, for}")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ValueError(f"[{i}]: must be a mapping")
        for key in item:
            if key not in _ROW_KEYS:
                raise ValueError(f"[{i}].{key}: unknown key (known: {', '.join(_ROW_KEYS)})")
        for key in _ROW_KEYS:
            if key not in item:
                raise ValueError(f"[{i}].{key}: required")
        try:
            severity = _severity(item["severity"])
            long, short = _window(item["long"]), _window(item["short"])
            factor = item["factor"]
            if isinstance(factor, bool) or not isinstance(factor, int | float) or not (
                    math.isfinite(factor) and factor > 0):
                raise ValueError(f"factor: must be a positive number, got {factor!r}")
            for_ = _duration(item["for"], allow_zero=True)
        except ValueError as e:
            raise ValueError(f"[{i}]: {e}") from None
        if short.seconds >= long.seconds:
            raise ValueError(f"[{i}]: short ({short.name}) must be shorter than long "
                             f"({long.name})")
        out.append(BurnRateAlert(severity, long, short, float(factor), for_))
    return tuple(out)


_PARSERS: dict[str, Any] = {
    "selector": _selector,
    "passthrough_selector": _selector,
    "cluster_labels": _label_names,
    "runbook_url": _url,
    "pending_threshold": _duration,
    "clock_skew_threshold": _duration,
    "sync_latency_threshold": _duration,
    "network_programming_threshold": _duration,
    "latency_window": lambda v: _window(v).name,
    "restore_failures_window": _window,
    "min_events": _positive_int,
    "labels": _labels,
    "burn_rates": _burn_rates,
}


def parse_alerting(raw: Any) -> AlertingConfig:
    """The ``alerting:`` mapping → :class:`AlertingConfig`; ValueError names the key."""
    if raw is None:
        return DEFAULT_ALERTING
    if not isinstance(raw, dict):
        raise ValueError(f"must be a mapping (keys: {', '.join(_KEYS)})")
    cfg = DEFAULT_ALERTING
    for key, value in raw.items():
        if key not in _KEYS:
            raise ValueError(f"{key}: unknown key (known: {', '.join(_KEYS)})")
        try:
            if key == "for":
                given = _per_alert(value, lambda v: _duration(v, allow_zero=True))
                cfg = replace(cfg, for_seconds=tuple({**dict(cfg.for_seconds), **given}.items()))
            elif key == "severity":
                given = _per_alert(value, _severity)
                cfg = replace(cfg, severities=tuple({**dict(cfg.severities), **given}.items()))
            else:
                cfg = replace(cfg, **{key: _PARSERS[key](value)})
        except ValueError as e:
            raise ValueError(f"{key}: {e}") from None
    return cfg
