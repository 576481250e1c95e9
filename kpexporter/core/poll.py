"""One poll of one kube-proxy: fetch its endpoints, parse what came back.

The interpretation of a response (``interpret_*``) is pure and separate from the
fetching, so ``check``, ``serve`` and the tests read kube-proxy the same way.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from kpexporter.config.schema import Config, Target
from kpexporter.kubeproxy.families import KubeProxyMetrics, extract
from kpexporter.kubeproxy.healthz import HealthzParseError, HealthzReport, parse_healthz
from kpexporter.net.fetch import HEALTHZ, METRICS, PROXY_MODE, Fetched, Fetcher, FetchError, fetch
from kpexporter.promtext.exposition import read_exposition

METRICS_ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1"


@dataclass(frozen=True, slots=True)
class EndpointError:
    endpoint: str
    reason: str
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
    durations: tuple[tuple[str, float], ...]
    errors: tuple[EndpointError, ...]

    @property
    def up(self) -> bool:
        return self.healthz is not None and self.metrics is not None


def interpret_healthz(f: Fetched) -> HealthzReport | EndpointError:
    """200 and 503 carry a body to parse; anything else is an ``http_status`` error."""
    if f.status not in (200, 503):
        return EndpointError(HEALTHZ, "http_status", f"HTTP {f.status} from /healthz")
    try:
        return parse_healthz(f.body, f.status)
    except HealthzParseError as e:
        return EndpointError(HEALTHZ, "parse", str(e))


def _looks_like_exposition(body: bytes) -> bool:
    head = body.lstrip()[:1]
    return head == b"" or head == b"#" or head.isalpha() or head in (b"_", b":")


def interpret_metrics(f: Fetched) -> KubeProxyMetrics | EndpointError:
    """A page is unreadable as a whole when it is not the text format at all (HTML, JSON)."""
    if f.status != 200:
        return EndpointError(METRICS, "http_status", f"HTTP {f.status} from /metrics")
    if "html" in f.content_type.lower() or not _looks_like_exposition(f.body):
        return EndpointError(METRICS, "parse",
                             "not a Prometheus text-format page "
                             f"(Content-Type {f.content_type or 'none'!r})")
    m = extract(read_exposition(f.body))
    if m.bad_lines and not m.histograms and not m.last_sync and m.process_start_time is None:
        first = m.errors[0] if m.errors else "no valid line"
        return EndpointError(METRICS, "parse", f"no readable kube-proxy series: {first}")
    return m


def interpret_proxy_mode(f: Fetched) -> str | EndpointError:
    if f.status != 200:
        return EndpointError(PROXY_MODE, "http_status", f"HTTP {f.status} from /proxyMode")
    text = f.body.decode("utf-8", "replace").strip()
    if not text or len(text) > 32 or not text.replace("-", "").replace("_", "").isalnum():
        return EndpointError(PROXY_MODE, "parse", f"unexpected /proxyMode body {text[:40]!r}")
    return text


async def _get(client: httpx.AsyncClient | Fetcher, url: str, endpoint: str, cfg: Config,
               cap: int, accept: str = "*/*") -> Fetched | EndpointError:
    try:
        return await fetch(client, url, timeout=cfg.timeout, cap=cap, accept=accept)
    except FetchError as e:
        return EndpointError(endpoint, e.reason, e.message, e.duration)


async def poll_target(client: httpx.AsyncClient | Fetcher, target: Target, cfg: Config,
                      want_proxy_mode: bool) -> PollResult:
    """Fetch healthz, metrics (and /proxyMode when asked) concurrently, and interpret them."""
    started = time.time()
    jobs = [
        _get(client, target.healthz_url, HEALTHZ, cfg, cfg.max_healthz_bytes),
        _get(client, target.metrics_url, METRICS, cfg, cfg.max_body_bytes, METRICS_ACCEPT),
    ]
    if want_proxy_mode:
        jobs.append(_get(client, target.proxy_mode_url, PROXY_MODE, cfg, 1024))
    answers = await asyncio.gather(*jobs)
    errors: list[EndpointError] = []
    durations: list[tuple[str, float]] = []

    def take(ans: Fetched | EndpointError, endpoint: str) -> Fetched | None:
        if isinstance(ans, EndpointError):
            errors.append(ans)
            if ans.duration is not None:
                durations.append((endpoint, ans.duration))
            return None
        durations.append((endpoint, ans.duration))
        return ans

    healthz = metrics = None
    mode = None
    status = 0
    h_mid = m_mid = None
    if (fh := take(answers[0], HEALTHZ)) is not None:
        status, h_mid = fh.status, fh.midpoint
        got = interpret_healthz(fh)
        if isinstance(got, EndpointError):
            errors.append(got)
        else:
            healthz = got
    if (fm := take(answers[1], METRICS)) is not None:
        m_mid = fm.midpoint
        gotm = interpret_metrics(fm)
        if isinstance(gotm, EndpointError):
            errors.append(gotm)
        else:
            metrics = gotm
    if want_proxy_mode and (fp := take(answers[2], PROXY_MODE)) is not None:
        gotp = interpret_proxy_mode(fp)
        if isinstance(gotp, EndpointError):
            errors.append(gotp)
        else:
            mode = gotp
    return PollResult(target.node, started, healthz, status, h_mid, metrics, m_mid, mode,
                      tuple(durations), tuple(errors))
