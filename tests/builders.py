"""Build poll results from real bodies and pages, without a network."""

from __future__ import annotations

from kpexporter.config.schema import Config, build_config
from kpexporter.core.poll import interpret_healthz, interpret_metrics
from kpexporter.core.result import EndpointError, PollResult
from kpexporter.net.fetcher import Fetched

HEALTHY_128 = (b'{"lastUpdated": "2024-06-21 11:08:45.074765635 +0000 UTC m=+80.277574766",'
               b'"currentTime": "2024-06-21 11:08:45.074765635 +0000 UTC m=+80.277574766", '
               b'"nodeEligible": true}')
HEALTHY_128_NOW = 1718968125.074765635  # its currentTime in Unix seconds


def config(**flags: object) -> Config:
    return build_config(None, {"NODE_NAME": "node-a"}, dict(flags))


def poll_result(healthz: bytes | None, status: int, page: bytes | None, *,
                started: float = HEALTHY_128_NOW, mode: str | None = "iptables",
                passthrough: tuple[str, ...] = ()) -> PollResult:
    errors: list[EndpointError] = []
    h = m = None
    if healthz is not None:
        got = interpret_healthz(Fetched(status, healthz, "application/json", started, 0.002))
        if isinstance(got, EndpointError):
            errors.append(got)
        else:
            h = got
    else:
        errors.append(EndpointError("healthz", "connect", "cannot connect: refused"))
    if page is not None:
        gm = interpret_metrics(Fetched(200, page, "text/plain; version=0.0.4", started, 0.002),
                               passthrough=passthrough)
        if isinstance(gm, EndpointError):
            errors.append(gm)
        else:
            m = gm
    else:
        errors.append(EndpointError("metrics", "connect", "cannot connect: refused"))
    return PollResult("node-a", started, h, status if healthz is not None else 0,
                      started + 0.001 if h else None, m, started + 0.001 if m else None,
                      mode, (("healthz", 0.002), ("metrics", 0.002)), tuple(errors))
