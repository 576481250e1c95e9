"""The ``slos:`` section: what "good" means for each SLO, and the windows to judge it over.

One definition read by the exporter (SLI, burn rate, error budget), by ``kpexporter rules``
(burn-rate alerts, recording rules) and by ``kpexporter dashboards`` (thresholds), so a user
who changes an objective regenerates rules and dashboards that agree with the exporter.

Latency thresholds must be one of kube-proxy's own bucket bounds: "good" is read from the
bucket ``le`` = threshold, and a threshold between two bounds has no bucket to read (the
SLI would silently be the next bound's). It is refused at load, naming the nearest bounds.

    slos:
      windows: [5m, 30m, 1h, 6h]   # SLI and burn-rate windows the exporter computes
      min_events: 10               # fewer events in a window: NaN, not a 100 % burn
      period: 30d                  # the error-budget period of the rules and dashboards
      sync_latency: {objective: 0.99, threshold: 1.024}
      network_programming_latency: {objective: 0.99, threshold: 30}
      availability: {objective: 0.999}
      # an SLO set to null (or enabled: false) is switched off
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from kpexporter.config.durations import format_duration, parse_duration
from kpexporter.config.values import Window, windows

SYNC_LATENCY = "sync_latency"
NETWORK_PROGRAMMING_LATENCY = "network_programming_latency"
AVAILABILITY = "availability"
SLO_NAMES = (SYNC_LATENCY, NETWORK_PROGRAMMING_LATENCY, AVAILABILITY)

SYNC_BOUNDS: tuple[float, ...] = tuple(round(0.001 * 2**k, 3) for k in range(15))
"""kube-proxy's rule-sync histogram bounds: 0.001·2^k, k = 0..14 (1 ms .. 16.384 s)."""

NETWORK_PROGRAMMING_BOUNDS: tuple[float, ...] = (
    0.0, 0.25, 0.5, *map(float, range(1, 60)), *map(float, range(60, 120, 5)),
    *map(float, range(120, 301, 30)))
"""kube-proxy's network-programming histogram bounds (pkg/proxy/metrics)."""

SLOWindow = Window
"""An SLO window: the same canonical ``(name, seconds)`` pair as a quantile window."""

SOURCE_HISTOGRAM = {
    SYNC_LATENCY: "kubeproxy_sync_proxy_rules_duration_seconds",
    NETWORK_PROGRAMMING_LATENCY: "kubeproxy_network_programming_duration_seconds",
}
"""The kube-proxy histogram each latency SLO counts its events from."""


@dataclass(frozen=True, slots=True)
class SLO:
    name: str
    objective: float  # the target ratio of good events, 0 < objective < 1
    threshold: float | None = None  # seconds; latency SLOs only (a bucket bound)
    enabled: bool = True

    @property
    def error_budget(self) -> float:
        """The allowed ratio of bad events (1 − objective): burn rate 1 spends it exactly."""
        return 1.0 - self.objective


def _default_slos() -> tuple[SLO, ...]:
    return (SLO(SYNC_LATENCY, 0.99, 1.024), SLO(NETWORK_PROGRAMMING_LATENCY, 0.99, 30.0),
            SLO(AVAILABILITY, 0.999))


@dataclass(frozen=True, slots=True)
class SLOConfig:
    slos: tuple[SLO, ...] = field(default_factory=_default_slos)
    windows: tuple[SLOWindow, ...] = (SLOWindow("5m", 300.0), SLOWindow("30m", 1800.0),
                                      SLOWindow("1h", 3600.0), SLOWindow("6h", 21600.0))
    min_events: int = 10
    period: SLOWindow = field(default_factory=lambda: SLOWindow("30d", 2592000.0))

    @property
    def enabled(self) -> tuple[SLO, ...]:
        return tuple(s for s in self.slos if s.enabled)

    def get(self, name: str) -> SLO | None:
        return next((s for s in self.slos if s.name == name and s.enabled), None)

    @property
    def horizon(self) -> float:
        """How much history the windows need."""
        return max((w.seconds for w in self.windows), default=0.0)


DEFAULT_SLOS = SLOConfig()

_SLO_KEYS = ("objective", "threshold", "enabled")
_TOP_KEYS = ("windows", "min_events", "period", *SLO_NAMES)


def nearest_bounds(value: float, bounds: tuple[float, ...]) -> tuple[float | None, float | None]:
    below = max((b for b in bounds if b < value), default=None)
    above = min((b for b in bounds if b > value), default=None)
    return below, above


def _objective(raw: Any) -> float:
    if isinstance(raw, str) and raw.strip().endswith("%"):
        try:
            value = float(raw.strip()[:-1]) / 100.0
        except ValueError:
            raise ValueError(f"must be a ratio such as 0.99 or a percentage such as 99%, "
                             f"got {raw!r}") from None
    elif isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(raw)
    else:
        raise ValueError(f"must be a ratio such as 0.99 or a percentage such as 99%, got {raw!r}")
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise ValueError(f"must be between 0 and 1 (exclusive), got {raw!r}")
    return value


def _threshold(name: str, raw: Any) -> float:
    if isinstance(raw, bool):
        raise ValueError(f"must be seconds, got {raw!r}")
    value = float(raw) if isinstance(raw, int | float) else parse_duration(str(raw))
    bounds = SYNC_BOUNDS if name == SYNC_LATENCY else NETWORK_PROGRAMMING_BOUNDS
    if any(math.isclose(value, b, rel_tol=1e-12, abs_tol=1e-12) for b in bounds):
        return next(b for b in bounds if math.isclose(value, b, rel_tol=1e-12, abs_tol=1e-12))
    below, above = nearest_bounds(value, bounds)
    near = " and ".join(f"{b:g}" for b in (below, above) if b is not None)
    raise ValueError(f"{value:g}s is not a bucket bound of {SOURCE_HISTOGRAM[name]} "
                     f"(nearest: {near})")


def _one_slo(name: str, raw: Any, default: SLO) -> SLO:
    if raw is None:
        return replace(default, enabled=False)
    if not isinstance(raw, dict):
        raise ValueError("must be a mapping such as {objective: 0.99}")
    for key in raw:
        if key not in _SLO_KEYS or (key == "threshold" and name == AVAILABILITY):
            allowed = [k for k in _SLO_KEYS if not (k == "threshold" and name == AVAILABILITY)]
            raise ValueError(f"{key}: unknown key (known: {', '.join(allowed)})")
    slo = default
    try:
        if "objective" in raw:
            slo = replace(slo, objective=_objective(raw["objective"]))
    except ValueError as e:
        raise ValueError(f"objective: {e}") from None
    try:
        if "threshold" in raw:
            slo = replace(slo, threshold=_threshold(name, raw["threshold"]))
    except ValueError as e:
        raise ValueError(f"threshold: {e}") from None
    if "enabled" in raw:
        if not isinstance(raw["enabled"], bool):
            raise ValueError(f"enabled: must be true or false, got {raw['enabled']!r}")
        slo = replace(slo, enabled=raw["enabled"])
    return slo


def parse_slos(raw: Any) -> SLOConfig:
    """The ``slos:`` mapping → :class:`SLOConfig`; ValueError names the key (after ``slos.``)."""
    if raw is None:
        return DEFAULT_SLOS
    if not isinstance(raw, dict):
        raise ValueError("must be a mapping (windows, min_events, period, and one key per SLO: "
                         f"{', '.join(SLO_NAMES)})")
    cfg = DEFAULT_SLOS
    for key, value in raw.items():
        if key not in _TOP_KEYS:
            raise ValueError(f"{key}: unknown key (known: {', '.join(_TOP_KEYS)})")
        try:
            if key == "windows":
                cfg = replace(cfg, windows=windows(value))
            elif key == "min_events":
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ValueError(f"must be a positive integer, got {value!r}")
                cfg = replace(cfg, min_events=value)
            elif key == "period":
                secs = parse_duration(str(value))
                cfg = replace(cfg, period=SLOWindow(format_duration(secs), secs))
            else:
                default = next(s for s in DEFAULT_SLOS.slos if s.name == key)
                one = _one_slo(key, value, default)
                cfg = replace(cfg, slos=tuple(one if s.name == key else s for s in cfg.slos))
        except ValueError as e:
            raise ValueError(f"{key}.{e}" if str(e).split(":")[0] in (*_SLO_KEYS,)
                             else f"{key}: {e}") from None
    return cfg
