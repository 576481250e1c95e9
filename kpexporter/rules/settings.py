"""Every number the rules need, resolved from the one config the exporter reads.

``alerting:`` leaves some values unset to mean "what the exporter uses": the RulesSyncStuck
threshold is ``pending_threshold``, the latency thresholds are the SLO thresholds, the event
guard is ``slos.min_events``. Resolving them here, once, is what keeps exporter and rules in
agreement; a combination no rule can be written for is a :class:`ConfigError` naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass

from kpexporter.config.alerting import AlertingConfig, BurnRateAlert
from kpexporter.config.schema import Config, ConfigError
from kpexporter.config.slos import NETWORK_PROGRAMMING_LATENCY, SLO, SYNC_LATENCY, SLOWindow

LATENCY_QUANTILE = 0.99
"""The latency alerts read the exporter's windowed p99."""
DEFAULT_SYNC_THRESHOLD = 1.024
DEFAULT_NETWORK_PROGRAMMING_THRESHOLD = 30.0


@dataclass(frozen=True, slots=True)
class RuleSettings:
    alerting: AlertingConfig
    selector: str
    passthrough_selector: str  # kube-proxy's own series, as kpexporter passes them through
    groups: tuple[str, ...]  # the cluster labels every aggregation keeps
    pending_threshold: float
    sync_threshold: float
    network_programming_threshold: float
    latency_window: str
    min_events: int
    slos: tuple[SLO, ...]
    period: SLOWindow
    burn_rates: tuple[BurnRateAlert, ...]

    @property
    def slo_windows(self) -> tuple[SLOWindow, ...]:
        """Every window a burn-rate alert reads, shortest first (the period is separate)."""
        seen = {w.name: w for r in self.burn_rates for w in (r.long, r.short)}
        return tuple(sorted(seen.values(), key=lambda w: w.seconds))


def _threshold(slo: SLO | None, override: float | None, default: float) -> float:
    if override is not None:
        return override
    if slo is not None and slo.threshold is not None:
        return slo.threshold
    return default


def resolve(cfg: Config) -> RuleSettings:
    a = cfg.alerting
    if LATENCY_QUANTILE not in cfg.quantiles:
        raise ConfigError(f"quantiles: the latency alerts read the exporter's p99; add "
                          f"{LATENCY_QUANTILE!r} (have {', '.join(map(repr, cfg.quantiles))})")
    names = [w.name for w in cfg.windows]
    if a.latency_window is None:
        window = min(cfg.windows, key=lambda w: w.seconds).name
    elif a.latency_window in names:
        window = a.latency_window
    else:
        raise ConfigError(f"alerting: latency_window: {a.latency_window} is not one of the "
                          f"exporter's windows ({', '.join(names)})")
    slos = cfg.slos
    period = slos.period
    longest = max((r.long for r in a.burn_rates), key=lambda w: w.seconds)
    if longest.seconds > period.seconds:
        raise ConfigError(f"alerting: burn_rates: a {longest.name} window is longer than the "
                          f"error-budget period slos.period ({period.name})")
    return RuleSettings(
        alerting=a,
        selector=a.selector,
        passthrough_selector=a.passthrough_selector,
        groups=a.cluster_labels,
        pending_threshold=(a.pending_threshold if a.pending_threshold is not None
                           else cfg.pending_threshold),
        sync_threshold=_threshold(slos.get(SYNC_LATENCY), a.sync_latency_threshold,
                                  DEFAULT_SYNC_THRESHOLD),
        network_programming_threshold=_threshold(
            slos.get(NETWORK_PROGRAMMING_LATENCY), a.network_programming_threshold,
            DEFAULT_NETWORK_PROGRAMMING_THRESHOLD),
        latency_window=window,
        min_events=a.min_events if a.min_events is not None else slos.min_events,
        slos=slos.enabled,
        period=period,
        burn_rates=a.burn_rates,
    )
