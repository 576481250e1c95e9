"""The HTTP face of ``serve``: /metrics, /healthz, /readyz, /api/v1/targets and /.

Thin: it renders what the poller stored. ``/metrics`` answers 200 whenever the process
is up, also when kube-proxy is down (``kpexporter_up`` says that).
"""

from __future__ import annotations

import gzip
import html
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder

from kpexporter import __version__
from kpexporter.config.schema import redacted
from kpexporter.core.derive import Derived
from kpexporter.core.state import TargetState
from kpexporter.service.openmetrics import make_registry
from kpexporter.service.poller import Poller
from kpexporter.service.text import render_text


def render_metrics(poller: Poller, accept: str | None) -> tuple[bytes, str]:
    """The exposition page: text 0.0.4 by default, OpenMetrics when Accept asks for it.

    The text page comes from ``fastrender`` (the same page as the collector's, cached per
    target); OpenMetrics from the ``prometheus_client`` collector.
    """
    if accept and "application/openmetrics-text" in accept:
        encoder, ctype = choose_encoder(accept)
        return encoder(make_registry(poller.snapshot)), ctype
    return render_text(poller.snapshot()), CONTENT_TYPE_PLAIN_0_0_4


def _num(v: float | None) -> float | str | None:
    if v is None:
        return None
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return v


def derived_json(d: Derived | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {
        "verdict": d.verdict,
        "reasons": list(d.reasons),
        "up": d.up,
        "healthz": {
            "status_code": d.healthz_status, "healthy": d.healthz_healthy,
            "node_eligible": d.node_eligible, "last_updated": _num(d.last_updated),
            "staleness_seconds": _num(d.staleness), "clock_skew_seconds": _num(d.clock_skew),
            "families": [{"ip_family": f.ip_family, "healthy": f.healthy,
                          "staleness_seconds": _num(f.staleness)} for f in d.families],
        },
        "sync": {"last_timestamp_seconds": _num(d.sync_last),
                 "pending_seconds": _num(d.sync_pending)},
        "proxy_mode": d.proxy_mode,
        "summaries": [
            {"name": s.name, "labels": dict(s.labels), "window": s.window,
             "quantiles": {repr(q): _num(v) for q, v in s.quantiles},
             "sum": _num(s.sum), "count": _num(s.count)} for s in d.summaries],
    }


def target_json(st: TargetState) -> dict[str, Any]:
    last = st.last
    return {
        "node": st.node,
        "healthz_url": redacted(st.target.healthz_url),
        "metrics_url": redacted(st.target.metrics_url),
        "polls": st.polls,
        "last_poll": last.started if last else None,
        "last_success": st.last_success,
        "errors": [{"endpoint": e.endpoint, "reason": e.reason, "message": e.message}
                   for e in (last.errors if last else ())],
        "derived": derived_json(st.derived),
    }


def _index(poller: Poller) -> str:
    rows = []
    for st in poller.snapshot():
        d = st.derived
        verdict = d.verdict if d else "not polled yet"
        detail = "; ".join(d.reasons) if d and d.reasons else ""
        stale = "" if d is None or d.sync_pending is None else f"{d.sync_pending:.1f}s"
        rows.append(f"<tr class='{html.escape(verdict)}'><td>{html.escape(st.node)}</td>"
                    f"<td>{html.escape(verdict)}</td>"
                    f"<td>{d.healthz_status if d else ''}</td>"
                    f"<td>{html.escape(d.proxy_mode or '') if d else ''}</td>"
                    f"<td>{stale}</td><td>{html.escape(detail)}</td></tr>")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>kpexporter</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.3em .8em;text-align:left}}
.healthy td:nth-child(2){{color:#2a7}}.unhealthy td:nth-child(2){{color:#c70}}
.unreachable td:nth-child(2){{color:#c22}}</style></head><body>
<h1>kpexporter {html.escape(__version__)}</h1>
<p>kube-proxy health-and-SLO exporter. Endpoints: <a href="/metrics">/metrics</a> ·
<a href="/api/v1/targets">/api/v1/targets</a> · <a href="/healthz">/healthz</a> ·
<a href="/readyz">/readyz</a></p>
<table><tr><th>node</th><th>verdict</th><th>/healthz</th><th>mode</th>
<th>change pending</th><th>why</th></tr>
{''.join(rows)}</table></body></html>"""


def create_app(poller: Poller, manage_poller: bool = True) -> FastAPI:
    """``manage_poller``: start and stop the poller with the app (off when the caller does)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_poller:
            await poller.start()
        try:
            yield
        finally:
            if manage_poller:
                await poller.stop()

    app = FastAPI(title="kpexporter", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False)

    @app.get("/metrics")
    def metrics(request: Request) -> Response:
        body, ctype = render_metrics(poller, request.headers.get("accept"))
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(gzip.compress(body, 1), media_type=ctype,
                            headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
        return Response(body, media_type=ctype)

    @app.get("/healthz")
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok\n")

    @app.get("/readyz")
    def readyz() -> PlainTextResponse:
        if poller.ready:
            return PlainTextResponse("ready\n")
        return PlainTextResponse("waiting for the first poll\n", status_code=503)

    @app.get("/api/v1/targets")
    def targets() -> JSONResponse:
        return JSONResponse({"targets": [target_json(st) for st in poller.snapshot()]})

    @app.get("/")
    def index() -> HTMLResponse:
        return HTMLResponse(_index(poller))

    return app
