"""What every dashboard query is built from: the resolved config and the label matchers.

Thresholds and windows come from :func:`kpexporter.rules.settings.resolve`, the very
function the rule generator uses, so a panel's threshold line is where its alert fires.
Selectors: kpexporter's own series through ``alerting.selector`` (``job="kpexporter"``),
kube-proxy's passed-through series through ``alerting.passthrough_selector``
(``job="kube-proxy"``), each narrowed by the ``$cluster`` variable (one per
``alerting.cluster_labels`` entry) and, where a panel is per node, ``$node``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kpexporter.config.schema import Config, Window
from kpexporter.config.slos import (
    AVAILABILITY,
    NETWORK_PROGRAMMING_LATENCY,
    SLO,
    SYNC_LATENCY,
)
from kpexporter.rules.promql import num
from kpexporter.rules.settings import RuleSettings, resolve

NODE_VAR = "node"
UP = "kpexporter_up"
"""The node picker's source: every proxy mode, every kube-proxy version, reachable or not."""

OVERVIEW_UID = "kpexporter-overview"
NODE_UID = "kpexporter-node"
PROXY_UID = "kpexporter-proxy"

SLO_TITLES = {
    SYNC_LATENCY: "Rule sync",
    NETWORK_PROGRAMMING_LATENCY: "Network programming",
    AVAILABILITY: "Availability",
}


@dataclass(frozen=True, slots=True)
class Scope:
    settings: RuleSettings
    windows: tuple[Window, ...]  # the exporter's quantile windows
    quantiles: tuple[float, ...]

    @property
    def clusters(self) -> tuple[str, ...]:
        return self.settings.groups

    def _matchers(self, base: str, node: bool, labels: dict[str, str]) -> str:
        parts = [base] if base else []
        parts += [f'{c}=~"${c}"' for c in self.clusters]
        if node:
            parts.append(f'{NODE_VAR}=~"${NODE_VAR}"')
        parts += [f'{k}=~"{v[1:]}"' if v.startswith("~") else f'{k}="{v}"'
                  for k, v in labels.items()]
        return ", ".join(parts)

    def m(self, metric: str, *, node: bool = False, **labels: str) -> str:
        """``metric{job="kpexporter", cluster=~"$cluster"[, node=~"$node"], k="v"}``;
        a value starting with ``~`` is a regex match."""
        return f"{metric}{{{self._matchers(self.settings.selector, node, labels)}}}"

    def p(self, metric: str, *, node: bool = True, **labels: str) -> str:
        """The same for a passed-through kube-proxy series (``passthrough_selector``)."""
        return f"{metric}{{{self._matchers(self.settings.passthrough_selector, node, labels)}}}"

    def p_any(self, names: Sequence[str], *, node: bool = True) -> str:
        """A passed-through selector over several names (``{__name__=~"a|b", ...}``): one
        query for the counter each proxy mode has."""
        names_re = "|".join(names)
        matchers = self._matchers(self.settings.passthrough_selector, node, {})
        return f'{{__name__=~"{names_re}", {matchers}}}'

    def by(self, *labels: str) -> str:
        """``by (cluster, node)``: the cluster labels kept in every aggregation."""
        return f"by ({', '.join(dict.fromkeys((*self.clusters, *labels)))})"

    def slo_title(self, slo: SLO) -> str:
        """``Rule sync ≤ 1.024 s, 99 %``: what the SLO promises, in its own numbers."""
        what = SLO_TITLES.get(slo.name, slo.name)
        limit = f" ≤ {num(slo.threshold)} s" if slo.threshold is not None else ""
        return f"{what}{limit}, {num(round(slo.objective * 100, 9))} %"

    def runbook(self, alert: str) -> str:
        return self.settings.alerting.runbook(alert)

    @property
    def runbook_index(self) -> str:
        return self.settings.alerting.runbook_url


def scope(cfg: Config) -> Scope:
    return Scope(resolve(cfg), cfg.windows, cfg.quantiles)


def budget(slo: SLO) -> str:
    """The SLO's error budget (1 − objective) as PromQL reads it: ``0.01``, not 0.0100…09."""
    return num(round(slo.error_budget, 12))


def qname(q: float) -> str:
    """``0.99`` → ``p99``, ``0.5`` → ``p50``, ``0.999`` → ``p99.9``."""
    return "p" + num(round(q * 100, 9))
