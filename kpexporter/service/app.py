"""The HTTP face of ``serve``: /metrics, /healthz, /readyz, /api/v1/targets and /.

Thin: it renders what the poller stored. ``/metrics`` answers 200 whenever the process
is up, also when kube-proxy is down (``up`` says that); ``/metrics?node=NAME`` (repeatable)
answers only those nodes' series plus the process-level ones, so each node can be its own
scrape target (the multi-target exporter convention). Every GET route answers ``HEAD``
with the same headers and no body.
"""

from __future__ import annotations

import asyncio
import gzip
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from urllib.parse import parse_qsl

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kpexporter import __version__
from kpexporter.core.state import TargetState
from kpexporter.security.quick import Answer
from kpexporter.service.api import target_json
from kpexporter.service.history import PageHistory
from kpexporter.service.openmetrics import make_registry
from kpexporter.service.page import index_html
from kpexporter.service.poller import Poller
from kpexporter.service.text import CONTENT_TYPE, render_openmetrics, render_text

__all__ = ["MetricsFirst", "MetricsPage", "accepts_gzip", "create_app", "render_metrics",
           "target_json"]


def render_metrics(poller: Poller, accept: str | None,
                   states: Sequence[TargetState] | None = None) -> tuple[bytes, str]:
    """The exposition page: text 0.0.4 by default, OpenMetrics when Accept asks for it.

    ``states``: the targets to show (default: all of the poller's). Both come from
    ``service.text`` (lines cached per target); OpenMetrics with another version or escaping
    than 1.0.0 and ``underscores`` (what Prometheus asks for), or with a family that writer
    treats apart, from the ``prometheus_client`` collector.
    """
    chosen = poller.snapshot() if states is None else states
    if accept and "application/openmetrics-text" in accept:
        encoder, ctype = choose_encoder(accept)
        if _prometheus_openmetrics(encoder):
            page = render_openmetrics(chosen)
            if page is not None:
                return page, ctype
        return encoder(make_registry(lambda: chosen)), ctype
    return render_text(chosen), CONTENT_TYPE


def _prometheus_openmetrics(encoder: object) -> bool:
    """Whether ``choose_encoder`` picked the OpenMetrics writer as it does for Prometheus's
    Accept header (1.0.0, names escaped with underscores): the page ``render_openmetrics``
    writes."""
    return (getattr(encoder, "func", None) is generate_openmetrics
            and getattr(encoder, "keywords", None) == {"escaping": "underscores",
                                                        "version": "1.0.0"})


def accepts_gzip(header: str | None) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (RFC 9110 §12.5.3).

    Codings are comma-separated tokens with an optional ``q`` weight; ``q=0`` refuses one;
    ``*`` stands for any coding not named; a token is matched whole (``nogzip`` is not gzip).
    """
    if not header:
        return False
    star: float | None = None
    for item in header.split(","):
        coding, *params = (p.strip() for p in item.split(";"))
        q = 1.0
        for p in params:
            name, _, value = p.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:  # also NaN: not a weight, so not an acceptance
                    q = 0.0
        coding = coding.lower()
        if coding in ("gzip", "x-gzip"):
            return q > 0
        if coding == "*":
            star = q
    return star is not None and star > 0


class NodeIndex:
    """The poller's targets by node name, rebuilt when the poller replaces its list."""

    def __init__(self, poller: Poller) -> None:
        self._poller = poller
        self._of: Sequence[TargetState] | None = None
        self._by_node: dict[str, tuple[int, TargetState]] = {}

    def select(self, nodes: Sequence[str]) -> list[TargetState] | str:
        """The states of ``nodes`` in the poller's order, or the first name not polled here."""
        states = self._poller.snapshot()
        if states is not self._of:
            self._by_node = {}
            for i, st in enumerate(states):
                self._by_node.setdefault(st.node, (i, st))
            self._of = states
        found = []
        for n in dict.fromkeys(nodes):
            hit = self._by_node.get(n)
            if hit is None:
                return n
            found.append(hit)
        return [st for _, st in sorted(found, key=lambda x: x[0])]


class HeadAsGet:
    """Answer ``HEAD`` on every GET route: route it as GET, send the headers, drop the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_headers_only)


_VARY = (b"vary", b"Accept-Encoding")
_GZIP = (b"content-encoding", b"gzip")
_PLAIN_TEXT = (b"content-type", b"text/plain; charset=utf-8")


class MetricsPage:
    """``/metrics``: the answer to a scrape, from the ASGI app or from the quick path.

    A node's page (``?node=``) is written right on the loop: a dict look-up and a few kB
    joined, cheaper than the hop to a worker thread, whose GIL hand-offs would slow the polls
    down. The whole page is written in a worker thread.
    """

    def __init__(self, poller: Poller) -> None:
        self.poller = poller
        self.by_node = NodeIndex(poller)

    def nodes_answer(self, nodes: Sequence[str], accept: str | None,
                     encoding: str | None) -> Answer:
        """The page of ``nodes``, or 404 naming the first one not polled here."""
        chosen = self.by_node.select(nodes)
        if isinstance(chosen, str):
            return 404, [_PLAIN_TEXT], f"unknown node: {chosen!r}\n".encode()
        body, headers = _page(self.poller, accept, encoding, chosen)
        return 200, headers, body

    async def whole_answer(self, accept: str | None, encoding: str | None) -> Answer:
        body, headers = await run_in_threadpool(_page, self.poller, accept, encoding, None)
        return 200, headers, body

    def quick(self, method: str, target: bytes, headers: Mapping[bytes, bytes]) -> (
            Answer | None):
        """For ``security.quick``: a node's page; None for anything else (the ASGI way)."""
        path, _, query = target.partition(b"?")
        if path != b"/metrics" or not query:
            return None
        nodes = _nodes(query)
        if not nodes:
            return None
        accept, encoding = headers.get(b"accept"), headers.get(b"accept-encoding")
        return self.nodes_answer(nodes, None if accept is None else accept.decode("latin-1"),
                                 None if encoding is None else encoding.decode("latin-1"))


def _nodes(query: bytes) -> list[str]:
    """The ``node`` parameters, as Starlette reads a query string."""
    return [v for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True)
            if k == "node"]


class MetricsFirst:
    """``GET``/``HEAD /metrics`` answered before FastAPI's routing, every other request passed on.

    Why: at 5,000 nodes Prometheus's per-node jobs make ~370 scrapes a second, and FastAPI's
    request machinery (a ``Request``, dependency solving, a ``Response`` sent through each
    middleware's ``send`` wrapper) cost more than writing and gzipping the node's page
    (``benchmarks/bench_scrape.py``). This is the ``/metrics`` route itself, not a cache: the
    same page, status codes and headers, ``HEAD`` included. Another method is answered 405.
    """

    def __init__(self, app: ASGIApp, page: MetricsPage) -> None:
        self.app = app
        self.page = page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/metrics":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await _answer(send, (405, [_PLAIN_TEXT, (b"allow", b"GET, HEAD")],
                                 b"method not allowed\n"), method)
            return
        accept = encoding = None
        for name, value in scope["headers"]:
            if name == b"accept" and accept is None:
                accept = value.decode("latin-1")
            elif name == b"accept-encoding" and encoding is None:
                encoding = value.decode("latin-1")
        query = scope["query_string"]
        nodes = _nodes(query) if query else []
        if nodes:
            answer = self.page.nodes_answer(nodes, accept, encoding)
        else:
            answer = await self.page.whole_answer(accept, encoding)
        await _answer(send, answer, method)


def _page(poller: Poller, accept: str | None, encoding: str | None,
          states: Sequence[TargetState] | None) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The page as sent and its headers: gzipped when ``Accept-Encoding`` allows it."""
    body, ctype = render_metrics(poller, accept, states)
    headers = [(b"content-type", ctype.encode("latin-1")), _VARY]
    if accepts_gzip(encoding):
        body = gzip.compress(body, 1)
        headers.append(_GZIP)
    return body, headers


async def _answer(send: Send, answer: Answer, method: str) -> None:
    status, headers, body = answer
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


def create_app(poller: Poller, manage_poller: bool = True,
               history: PageHistory | None = None) -> FastAPI:
    """``manage_poller``: start and stop the poller with the app (off when the caller does).
    ``history``: the charts' memory of ``/`` (default: the last hour, sampled while the app
    runs)."""
    charts = history if history is not None else PageHistory(poller.cfg)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_poller:
            await poller.start()
        sampler = asyncio.create_task(charts.run(poller), name="page-history")
        try:
            yield
        finally:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
            if manage_poller:
                await poller.stop()

    app = FastAPI(title="kpexporter", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False)
    app.add_middleware(HeadAsGet)
    app.state.metrics = metrics = MetricsPage(poller)  # serve hands its quick to uvicorn
    app.add_middleware(MetricsFirst, page=metrics)  # added last: the outermost

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
        states = poller.snapshot()
        charts.sample(states)
        return HTMLResponse(index_html(states, history=charts,
                                       refresh=max(5, math.ceil(poller.cfg.interval))))

    return app
