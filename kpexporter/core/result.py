"""What one poll of one kube-proxy produced: pure data, no I/O (``poll.py`` fetches it).

The core's pure parts (``derive``, ``state``) read these; keeping them apart from
``poll.py`` keeps the network layer out of their imports.
"""

from __future__ import annotations

from dataclasses import dataclass

from kpexporter.kubeproxy.families import KubeProxyMetrics
from kpexporter.kubeproxy.healthz import HealthzReport
from kpexporter.vocabulary import Endpoint, Reason


@dataclass(frozen=True, slots=True)
class EndpointError:
    endpoint: Endpoint
    reason: Reason
    message: str
    duration: float | None = None  # set when a request was made and failed


@dataclass(frozen=True, slots=True)
class PollResult:
    node: str
    started: float  # exporter wall clock at the start of the poll
    healthz: HealthzReport | None
    healthz_status: int  # 0 when no HTTP answer
    healthz_midpoint: float | None
    metrics: KubeProxyMetrics | None
    metrics_midpoint: float | None
    proxy_mode: str | None  # None when not fetched this time or failed
    durations: tuple[tuple[Endpoint, float], ...]
    errors: tuple[EndpointError, ...]

    @property
    def up(self) -> bool:
        return self.healthz is not None and self.metrics is not None


def failed_poll(node: str, started: float, reason: Reason, message: str) -> PollResult:
    """A poll that got nothing: both endpoints failed for ``reason`` (e.g. ``internal``)."""
    errors = (EndpointError(Endpoint.HEALTHZ, reason, message),
              EndpointError(Endpoint.METRICS, reason, message))
    return PollResult(node, started, None, 0, None, None, None, None, (), errors)
