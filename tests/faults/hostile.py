"""A hostile fake kube-proxy, and the exporter wired to it the way ``serve`` wires it.

``HostileKubeProxy`` listens on two loopback ports like kube-proxy (healthz; metrics and
``/proxyMode``) and answers each endpoint with a switchable ``Behaviour``: a normal answer,
a refused connection, a reset in the middle of the body, a hang, a byte at a time, an endless
chunked body, a gzip bomb, or any bytes at all. Switch between polls with ``set``.

``Exporter`` is a real ``Poller`` plus the real FastAPI app (over ``httpx.ASGITransport``),
polling the hostile server on a short interval; it scrapes ``/metrics`` as Prometheus would
and exposes the per-target state for the tests to look at.

Everything here is bounded: every wait has a deadline and every loop a count.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gzip
import math
import socket
import struct
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from kpexporter.config.schema import Config, build_config
from kpexporter.core.state import TargetState
from kpexporter.service.app import create_app
from kpexporter.service.poller import Poller
from tests.fixtures import fixture_bytes

HEALTHZ, METRICS, PROXY_MODE = "healthz", "metrics", "proxymode"
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
JSON = "application/json"
MAX_HANG = 30.0  # seconds a hung answer waits at most (the exporter gives up far sooner)
MAX_SLOW_BYTES = 2_000  # a slowloris answer stops after this many bytes whatever happens



def fixture_page(name: str) -> bytes:
    """A real captured kube-proxy ``/metrics`` page (``V1_30``, ``V1_8`` ...); skips if absent."""
    return fixture_bytes(name)


# ---------------------------------------------------------------- bodies


def go_time(unix: float, mono: float | None = None) -> str:
    """Go's ``time.Time.String()`` in UTC, as kube-proxy's fmt-era healthz bodies print it."""
    ns = round(unix * 1e9)
    sec, frac = divmod(ns, 1_000_000_000)
    wall = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=sec)
    text = (f"{wall.year:04d}-{wall.month:02d}-{wall.day:02d} "
            f"{wall.hour:02d}:{wall.minute:02d}:{wall.second:02d}")
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    text += " +0000 UTC"
    if mono is not None:
        text += f" m=+{mono:.9f}"
    return text


def healthz_body(now: float | None = None, *, last_updated: float | None = None,
                 eligible: bool = True) -> bytes:
    """A 1.28–1.32 body: ``lastUpdated == currentTime`` on a 200, plus ``nodeEligible``."""
    now = time.time() if now is None else now
    last = now if last_updated is None else last_updated
    return (f'{{"lastUpdated": "{go_time(last, 80.0)}","currentTime": '
            f'"{go_time(now, 80.0)}", "nodeEligible": {str(eligible).lower()}}}').encode()


SYNC_BOUNDS = tuple(0.001 * 2 ** k for k in range(15))


def histogram_page(counts: list[int], *, total: float | None = None,
                   start_time: float = 1.7e9, last_sync: float | None = None,
                   last_queued: float | None = None, raw_values: list[str] | None = None,
                   ) -> bytes:
    """A minimal 1.30-style page with one sync histogram.

    ``counts`` are the 16 cumulative bucket counts (15 bounds + ``+Inf``); ``raw_values``
    replaces them with any text (``NaN``, ``-3``, ``+Inf`` ...) to feed the reader garbage.
    """
    les = [repr(b) for b in SYNC_BOUNDS] + ["+Inf"]
    values = raw_values if raw_values is not None else [str(c) for c in counts]
    assert len(values) == len(les)
    now = time.time()
    last_sync = now - 1 if last_sync is None else last_sync
    last_queued = last_sync - 1 if last_queued is None else last_queued
    name = "kubeproxy_sync_proxy_rules_duration_seconds"
    lines = [f"# HELP {name} SyncProxyRules latency in seconds", f"# TYPE {name} histogram"]
    lines += [f'{name}_bucket{{le="{le}"}} {v}' for le, v in zip(les, values, strict=True)]
    count = values[-1]
    lines += [f"{name}_sum {total if total is not None else 0.01 * len(values)}",
              f"{name}_count {count}",
              "# TYPE kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds gauge",
              f"kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds {last_queued!r}",
              "# TYPE kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge",
              f"kubeproxy_sync_proxy_rules_last_timestamp_seconds {last_sync!r}",
              "# TYPE process_start_time_seconds gauge",
              f"process_start_time_seconds {start_time!r}", ""]
    return "\n".join(lines).encode()


# ---------------------------------------------------------------- behaviours


@dataclass(frozen=True)
class Behaviour:
    """How one endpoint answers. Build with the functions below, not directly."""

    kind: str
    status: int = 200
    body: bytes | Callable[[], bytes] = b""
    content_type: str = TEXT_FORMAT
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0  # slowloris: seconds between bytes
    chunk: int = 0  # endless: bytes per chunk
    limit: int = 0  # endless: total bytes at most
    parts: tuple[bytes, ...] = ()  # raw: written one by one, ``delay`` apart

    def payload(self) -> bytes:
        return self.body() if callable(self.body) else self.body


def answer(body: bytes | Callable[[], bytes], status: int = 200,
           content_type: str = TEXT_FORMAT, headers: tuple[tuple[str, str], ...] = ()
           ) -> Behaviour:
    """A complete answer with a ``Content-Length`` (``body`` may be a callable: fresh bytes)."""
    return Behaviour("answer", status, body, content_type, headers)


def refuse() -> Behaviour:
    """Nothing listens on the endpoint's port: connection refused."""
    return Behaviour("refuse")


def reset_mid_body(body: bytes) -> Behaviour:
    """Announce the whole body, send half of it, then reset the connection (RST)."""
    return Behaviour("reset", body=body)


def hang() -> Behaviour:
    """Read the request, answer nothing (until the client gives up or ``MAX_HANG``)."""
    return Behaviour("hang")


def slowloris(body: bytes, delay: float = 0.05) -> Behaviour:
    """Headers at once, then the body one byte per ``delay`` seconds (a byte a second, sped up)."""
    return Behaviour("slowloris", body=body, delay=delay)


def endless(chunk: int = 64 * 1024, limit: int = 64 * 1024 * 1024) -> Behaviour:
    """A chunked body of ``#`` comment lines with no declared length, ``limit`` bytes at most."""
    return Behaviour("endless", chunk=chunk, limit=limit)


FLOOD_LIMIT = 1024 * 1024 * 1024  # a flood stops after this many bytes whatever happens
CHUNKED_HEAD = (f"HTTP/1.1 200 OK\r\nContent-Type: {TEXT_FORMAT}\r\n"
                "Transfer-Encoding: chunked\r\n\r\n").encode()


def flood(head: bytes, unit: bytes) -> Behaviour:
    """``head``, then ``unit`` again and again as fast as the client reads (``FLOOD_LIMIT``)."""
    return Behaviour("flood", parts=(head, unit), limit=FLOOD_LIMIT)


def endless_interim() -> Behaviour:
    """``HTTP/1.1 100 Continue`` interim answers, never a final one."""
    return flood(b"", b"HTTP/1.1 100 Continue\r\n\r\n")


def endless_trailers() -> Behaviour:
    """A chunked body that ends, then trailer lines that never do."""
    return flood(CHUNKED_HEAD + b"2\r\n# \r\n0\r\n", b"X-Trailer: 1\r\n")


def one_byte_chunks() -> Behaviour:
    """A chunked body of 1-byte chunks that never ends (6 bytes on the wire per byte)."""
    return flood(CHUNKED_HEAD, b"1\r\n#\r\n")


def slow_headers(delay: float = 0.05) -> Behaviour:
    """A status line, then header bytes one per ``delay`` seconds, never the blank line."""
    return Behaviour("slowloris-head", delay=delay)


def raw(*parts: bytes, delay: float = 0.0) -> Behaviour:
    """Any bytes at all as the answer (a malformed response), then the connection closes."""
    return Behaviour("raw", parts=parts, delay=delay)


def gzip_bomb(inflated: int = 64 * 1024 * 1024) -> Behaviour:
    """A small gzip body (``Content-Encoding: gzip``) that inflates to ``inflated`` bytes."""
    bomb = _bomb(inflated)
    return answer(bomb, headers=(("Content-Encoding", "gzip"),))


_BOMBS: dict[int, bytes] = {}


def _bomb(size: int) -> bytes:
    if size not in _BOMBS:
        _BOMBS[size] = gzip.compress(b"#" * size, 9)
    return _BOMBS[size]


# ---------------------------------------------------------------- the server


class HostileKubeProxy:
    """Two loopback listeners, kube-proxy style, each endpoint answering as told."""

    def __init__(self) -> None:
        self.behaviours: dict[str, Behaviour] = {}
        self.requests: Counter[str] = Counter()
        self._servers: dict[str, asyncio.Server | None] = {HEALTHZ: None, METRICS: None}
        self._ports: dict[str, int] = {HEALTHZ: 0, METRICS: 0}
        self._closing = asyncio.Event()
        self._conns: set[asyncio.Task[None]] = set()

    @property
    def healthz_url(self) -> str:
        return f"http://127.0.0.1:{self._ports[HEALTHZ]}/healthz"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self._ports[METRICS]}/metrics"

    async def start(self, healthz: Behaviour, metrics: Behaviour,
                    proxy_mode: Behaviour | None = None) -> None:
        self.behaviours = {HEALTHZ: healthz, METRICS: metrics,
                           PROXY_MODE: proxy_mode or answer(b"iptables", content_type="text/plain")}
        for port_name in (HEALTHZ, METRICS):
            await self._listen(port_name)

    async def set(self, **endpoints: Behaviour) -> None:
        """Switch behaviours, e.g. ``set(metrics=hang())``; takes effect on the next request."""
        for endpoint, b in endpoints.items():
            assert endpoint in (HEALTHZ, METRICS, PROXY_MODE), endpoint
            self.behaviours[endpoint] = b
        for port_name in (HEALTHZ, METRICS):
            refused = self.behaviours[port_name].kind == "refuse"
            if refused and self._servers[port_name] is not None:
                await self._unlisten(port_name)
            elif not refused and self._servers[port_name] is None:
                await self._listen(port_name)

    async def close(self) -> None:
        """Stop listening, let every answer in progress notice and end, cancel stragglers."""
        self._closing.set()
        for port_name in (HEALTHZ, METRICS):
            await self._unlisten(port_name)
        if self._conns:
            await asyncio.wait(list(self._conns), timeout=2.0)
        for t in list(self._conns):
            t.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)

    async def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless the server is closing; True when it is."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)
        return self._closing.is_set()

    async def _listen(self, port_name: str) -> None:
        if self.behaviours.get(port_name, answer(b"")).kind == "refuse" and self._ports[port_name]:
            return
        server = await asyncio.start_server(self._accept, "127.0.0.1", self._ports[port_name],
                                            reuse_address=True)
        self._ports[port_name] = server.sockets[0].getsockname()[1]
        self._servers[port_name] = server
        if self.behaviours.get(port_name, answer(b"")).kind == "refuse":
            await self._unlisten(port_name)  # first start refused: keep the port number only

    async def _unlisten(self, port_name: str) -> None:
        server = self._servers[port_name]
        self._servers[port_name] = None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self._conns.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        path = parts[1].split("?", 1)[0] if len(parts) > 1 else "/"
        endpoint = {"/healthz": HEALTHZ, "/metrics": METRICS, "/proxyMode": PROXY_MODE}.get(path)
        if endpoint is None:
            await _write_answer(writer, 404, b"404 page not found\n", "text/plain", ())
            return
        self.requests[endpoint] += 1
        await self._behave(self.behaviours[endpoint], reader, writer)

    async def _behave(self, b: Behaviour, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        if b.kind in ("answer", "refuse"):  # refuse: a connection already accepted is served
            await _write_answer(writer, b.status, b.payload(), b.content_type, b.headers)
        elif b.kind == "reset":
            body = b.payload()
            writer.write(_head(200, b.content_type, len(body), ()) + body[: len(body) // 2])
            await writer.drain()
            await self._pause(0.01)
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        elif b.kind == "hang":  # until the client gives up (EOF), we close, or MAX_HANG
            waits = [asyncio.ensure_future(self._closing.wait()),
                     asyncio.ensure_future(reader.read(1))]
            await asyncio.wait(waits, timeout=MAX_HANG, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        elif b.kind == "slowloris":
            body = b.payload()
            writer.write(_head(200, b.content_type, len(body), ()))
            await writer.drain()
            for i in range(min(len(body), MAX_SLOW_BYTES)):
                if self._closing.is_set():
                    break
                writer.write(body[i: i + 1])
                await writer.drain()
                if await self._pause(b.delay):
                    break
        elif b.kind == "raw":
            for part in b.parts:
                writer.write(part)
                await writer.drain()
                if b.delay and await self._pause(b.delay):
                    break
        elif b.kind == "endless":
            writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: {TEXT_FORMAT}\r\n"
                         "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode())
            line = b"# " + b"x" * 61 + b"\n"
            chunk = line * max(1, b.chunk // len(line))
            sent = 0
            while sent < b.limit and not self._closing.is_set():
                writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                await writer.drain()
                sent += len(chunk)
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        elif b.kind == "flood":
            head, unit = b.parts
            block = unit * max(1, 65536 // len(unit))
            writer.write(head)
            sent = 0
            while sent < b.limit and not self._closing.is_set():
                writer.write(block)
                await writer.drain()
                sent += len(block)
        elif b.kind == "slowloris-head":
            writer.write(b"HTTP/1.1 200 OK\r\n")
            for _ in range(MAX_SLOW_BYTES):
                writer.write(b"X")
                await writer.drain()
                if await self._pause(b.delay):
                    break
        else:  # pragma: no cover - a typo in a test
            raise AssertionError(f"unknown behaviour {b.kind}")


_REASONS = {200: "OK", 404: "Not Found", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable"}


def _head(status: int, content_type: str, length: int,
          headers: tuple[tuple[str, str], ...]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
             f"Content-Type: {content_type}", f"Content-Length: {length}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _write_answer(writer: asyncio.StreamWriter, status: int, body: bytes,
                        content_type: str, headers: tuple[tuple[str, str], ...]) -> None:
    writer.write(_head(status, content_type, len(body), headers) + body)
    await writer.drain()


# ---------------------------------------------------------------- the exporter under test

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Scrape:
    """One ``/metrics`` answer, parsed as Prometheus would."""

    status: int
    text: str
    series: Series = field(default_factory=dict)

    def value(self, name: str, **labels: str) -> float | None:
        """The value of the one series with ``name`` whose labels include ``labels``."""
        hits = [v for (n, ls), v in self.series.items()
                if n == name and set(labels.items()) <= ls]
        assert len(hits) <= 1, f"{name}{labels}: {len(hits)} series"
        return hits[0] if hits else None

    def values(self, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
        return [(dict(ls), v) for (n, ls), v in self.series.items()
                if n == name and set(labels.items()) <= ls]

    def errors(self, endpoint: str, reason: str) -> float:
        v = self.value("kpexporter_poll_errors_total", endpoint=endpoint, reason=reason)
        return 0.0 if v is None else v


def parse_page(text: str) -> Series:
    out: Series = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f"duplicate series {key}"
            out[key] = s.value
    return out


def exporter_config(kp: HostileKubeProxy, **flags: Any) -> Config:
    base: dict[str, Any] = {"node": "node-h", "healthz_url": kp.healthz_url,
                            "metrics_url": kp.metrics_url, "interval": "0.1",
                            "timeout": "0.4", "listen": "127.0.0.1:0"}
    base.update(flags)
    return build_config(None, {}, base)


class Exporter:
    """A running ``Poller`` and the app that serves its state."""

    SCRAPE_DEADLINE = 5.0  # generous: /metrics must answer while kube-proxy misbehaves

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.poller = Poller(cfg)
        self.app = create_app(self.poller, manage_poller=False)
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                                        base_url="http://exporter")

    @property
    def state(self) -> TargetState:
        return self.poller.states[0]

    async def start(self) -> None:
        await self.poller.start()

    async def stop(self) -> None:
        await self.poller.stop()
        await self.client.aclose()

    async def scrape(self, headers: Mapping[str, str] | None = None) -> Scrape:
        async with asyncio.timeout(self.SCRAPE_DEADLINE):
            r = await self.client.get("/metrics", headers=dict(headers or {}))
        s = Scrape(r.status_code, r.text)
        if r.status_code == 200:
            s.series = parse_page(r.text)
        return s

    async def wait_polls(self, n: int, deadline: float = 10.0,
                         while_waiting: Callable[[], Any] | None = None) -> None:
        """Until ``n`` more polls were recorded; ``while_waiting`` (async) runs between checks."""
        target = self.state.polls + n
        async with asyncio.timeout(deadline):
            for _ in range(100_000):
                if self.state.polls >= target:
                    return
                if while_waiting is not None:
                    await while_waiting()
                await asyncio.sleep(0.01)
        raise AssertionError("poll count did not advance")  # pragma: no cover

    async def settle(self, n: int = 2, deadline: float = 10.0,
                     while_waiting: Callable[[], Any] | None = None) -> None:
        """Let the poll in flight (if any) finish, then ``n`` whole polls under the new rules."""
        await self.wait_polls(1, deadline, while_waiting)
        await self.wait_polls(n, deadline, while_waiting)


@contextlib.asynccontextmanager
async def running(healthz: Behaviour, metrics: Behaviour,
                  **flags: Any) -> AsyncIterator[tuple[HostileKubeProxy, Exporter]]:
    """A hostile kube-proxy and an exporter polling it; both stopped on exit."""
    kp = HostileKubeProxy()
    await kp.start(healthz, metrics)
    exp = Exporter(exporter_config(kp, **flags))
    try:
        await exp.start()
        yield kp, exp
    finally:
        await exp.stop()
        await kp.close()


def footprint(st: TargetState) -> tuple[int, ...]:
    """What a target's state holds: it must not grow while polls keep failing.

    The last poll's error messages count by a bound (each one line of at most 300
    characters), not by their exact length: on a loaded machine a fault can end in either of
    two reasons (``too_large`` or ``timeout``) from one poll to the next."""
    errors = st.last.errors if st.last else ()
    assert all(len(e.message) <= 300 and "\n" not in e.message for e in errors), errors
    return (len(st.histories), sum(len(h) for h in st.histories.values()), len(st.errors),
            len(st.durations))


def finite_or_nan(v: float) -> bool:
    return math.isnan(v) or math.isfinite(v)
