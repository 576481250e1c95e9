"""The simulator's HTTP side: kube-proxy's two ports for N nodes, answering like Go's net/http.

Why a hand-written HTTP/1.1 server on ``asyncio.Protocol`` and not uvicorn: ``--nodes 5000``
means 10,000 listening sockets in one process, and the exporter under test must see Go's exact
status lines, header set and ``404 page not found\\n``. A protocol object per connection and a
plain listening socket per port keep 5,000 idle nodes at a few MB; nothing runs until a request
comes, and only then is that node's model built or advanced (lazily).

Time scale. A real Prometheus scrapes the simulator, so every timestamp kube-proxy reports (body
times, ``*_timestamp_seconds``, ``process_start_time_seconds``, ``Date``) stays on the wall clock
(plus the node's skew in ``clock-skew``). ``--time-scale K`` instead shortens the *durations of
behaviour* K-fold: syncPeriod (so the 503 threshold 2 x syncPeriod), minSyncPeriod, the hourly
iptables/nftables re-sync, restart and flap intervals, start-up delay; and multiplies the change
rate by K. Latencies the model measures from its own timeline are reported unscaled (x K).

This module is the only place that reads a clock (``time.time_ns``).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import gzip
import ipaddress
import json
import resource
import socket
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from kpexporter.simulator.bodies import NS
from kpexporter.simulator.model import NodeConfig, NodeModel
from kpexporter.simulator.page import CONTENT_TYPE, proxy_mode_body, render_metrics
from kpexporter.simulator.scenarios import SCENARIOS, policy_for
from kpexporter.simulator.versions import Version

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            431: "Request Header Fields Too Large", 500: "Internal Server Error",
            503: "Service Unavailable"}
_MAX_HEADER = 64 * 1024
_MAX_BODY = 64 * 1024
_NOT_FOUND = b"404 page not found\n"
_TEXT = "text/plain; charset=utf-8"


def now_ns() -> int:
    """The simulator's one clock."""
    return time.time_ns()


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    """Headers the handler set (Go writes them sorted, before Date and Content-Length)."""
    sniffed: str | None = None
    """A Content-Type Go would sniff (written after Content-Length, like net/http does)."""
    date_ns: int | None = None


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


Handler = Callable[[Request], Response]


def not_found() -> Response:
    return Response(404, _NOT_FOUND, [("Content-Type", _TEXT), ("X-Content-Type-Options",
                                                                   "nosniff")])


def _serialize(resp: Response, head_only: bool, close: bool) -> bytes:
    reason = _REASONS.get(resp.status, "Unknown")
    lines = [f"HTTP/1.1 {resp.status} {reason}"]
    lines += [f"{k}: {v}" for k, v in sorted(resp.headers)]
    stamp = (resp.date_ns if resp.date_ns is not None else now_ns()) / NS
    lines.append("Date: " + email.utils.formatdate(stamp, usegmt=True))
    lines.append(f"Content-Length: {len(resp.body)}")
    if resp.sniffed:
        lines.append(f"Content-Type: {resp.sniffed}")
    if close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + resp.body


class HttpProtocol(asyncio.Protocol):
    """Minimal HTTP/1.1 server connection: keep-alive, pipelining, Content-Length bodies."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not isinstance(asyncio.Transport): uvloop's transports do not derive from it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.transport is not None and not self.transport.is_closing():
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > _MAX_HEADER:
                    self._send(Response(431, b"431 Request Header Fields Too Large"), False, True)
                return
            try:
                req, consumed, close = self._parse(end)
            except ValueError:
                self._send(Response(400, b"400 Bad Request"), False, True)
                return
            if consumed > len(self.buf):
                return  # body still arriving
            del self.buf[:consumed]
            try:
                resp = self.handler(req)
            except Exception as exc:  # a bug in the simulator must not kill the connection loop
                resp = Response(500, f"simulator error: {exc!r}\n".encode(),
                                [("Content-Type", _TEXT)])
            self._send(resp, req.method == "HEAD", close)

    def _parse(self, end: int) -> tuple[Request, int, bool]:
        head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        parts = head[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise ValueError("bad request line")
        method, target, proto = parts
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise ValueError("bad header")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or "0")
        if length < 0 or length > _MAX_BODY:
            raise ValueError("bad length")
        conn = headers.get("connection", "").lower()
        close = conn == "close" or (proto == "HTTP/1.0" and conn != "keep-alive")
        url = urllib.parse.urlsplit(target)
        start = end + 4
        body = bytes(self.buf[start : start + length])
        req = Request(method, url.path, urllib.parse.parse_qs(url.query), headers, body)
        return req, start + length, close

    def _send(self, resp: Response, head_only: bool, close: bool) -> None:
        if self.transport is None:
            return
        self.transport.write(_serialize(resp, head_only, close))
        if close:
            self.transport.close()


@dataclass
class SimNodeRuntime:
    """One simulated node: its lazily built model and its two request handlers."""

    config: NodeConfig
    scenario: str
    start_ns: int
    clock_skew_s: float
    model_: NodeModel | None = None
    initial: str | None = None
    switches: list[tuple[str, int]] = field(default_factory=list)
    """Scenario switches made before anyone asked this node: replayed when it is built."""

    @property
    def model(self) -> NodeModel:
        if self.model_ is None:
            first = self.initial or self.scenario
            model = NodeModel(self.config, policy_for(first, self.clock_skew_s), self.start_ns)
            for name, at in self.switches:
                model.set_scenario(policy_for(name, self.clock_skew_s), at)
            self.switches.clear()
            self.model_ = model
        return self.model_

    def set_scenario(self, name: str, at_ns: int) -> None:
        policy = policy_for(name, self.clock_skew_s)  # validates before touching state
        if self.model_ is None:  # keep 5,000 idle nodes cheap: switch lazily
            self.initial = self.initial or self.scenario
            self.switches.append((name, at_ns))
        else:
            self.model_.set_scenario(policy, at_ns)
        self.scenario = name

    def healthz_port(self, req: Request) -> Response:
        now = now_ns()
        model = self.model
        probe = model.probe(req.path, now)
        if probe is None:
            return not_found()
        headers = [("Content-Type", "application/json")]
        if model.version.has_nosniff:
            headers.append(("X-Content-Type-Options", "nosniff"))
        return Response(probe.status, probe.body, headers, date_ns=now + model.skew_ns)

    def metrics_port(self, req: Request, control: Callable[[Request], Response]) -> Response:
        now = now_ns()
        if req.path.startswith("/sim/"):
            return control(req)
        model = self.model
        date = now + model.skew_ns
        if req.path == "/metrics":
            body = render_metrics(model, now).encode()
            headers = [("Content-Type", CONTENT_TYPE)]
            if "gzip" in req.headers.get("accept-encoding", ""):
                body = gzip.compress(body, compresslevel=1, mtime=0)
                headers.append(("Content-Encoding", "gzip"))
            return Response(200, body, headers, date_ns=date)
        if req.path == "/proxyMode":
            return Response(200, proxy_mode_body(model), sniffed=_TEXT, date_ns=date)
        if req.path == "/healthz":
            return Response(200, b"ok", [("Content-Type", _TEXT),
                                         ("X-Content-Type-Options", "nosniff")], date_ns=date)
        return not_found()


def _json(status: int, obj: object) -> Response:
    return Response(status, (json.dumps(obj, indent=1) + "\n").encode(),
                    [("Content-Type", "application/json")])


class Cluster:
    """All simulated nodes of one process, their listeners and the control endpoint."""

    def __init__(self, nodes: list[SimNodeRuntime]) -> None:
        self.nodes = nodes
        self.servers: list[asyncio.base_events.Server] = []

    def set_scenario(self, name: str, node: int | None = None) -> None:
        policy_for(name)  # ValueError before anything changes
        at = now_ns()
        targets = self.nodes if node is None else [self.nodes[node]]
        for n in targets:
            n.set_scenario(name, at)

    def control(self, index: int, req: Request) -> Response:
        """``/sim/scenario[?name=X[&node=all]]``, ``/sim/state``, ``/sim/change[?kind=service]``."""
        node = self.nodes[index]
        params = dict(req.query)
        if req.method == "POST" and req.body:
            params.update(urllib.parse.parse_qs(req.body.decode("utf-8", "replace")))
        arg = {k: v[-1] for k, v in params.items() if v}
        if req.path == "/sim/state":
            return _json(200, node.model.state(now_ns()))
        if req.path == "/sim/scenario":
            if "name" not in arg:
                return _json(200, {"node": node.config.name, "scenario": node.scenario,
                                   "scenarios": list(SCENARIOS)})
            try:
                self.set_scenario(arg["name"], None if arg.get("node") == "all" else index)
            except ValueError as exc:
                return _json(400, {"error": str(exc)})
            return _json(200, {"node": "all" if arg.get("node") == "all" else node.config.name,
                               "scenario": arg["name"]})
        if req.path == "/sim/change":
            if req.method not in ("POST", "PUT"):
                return _json(405, {"error": "POST to inject a change"})
            kind = arg.get("kind", "endpoint")
            if kind not in ("endpoint", "service"):
                return _json(400, {"error": "kind must be endpoint or service"})
            family = arg.get("family")
            if family is not None and family not in node.config.ip_families:
                return _json(400, {"error": f"family must be one of {node.config.ip_families}"})
            node.model.queue_change(now_ns(), kind, family)
            return _json(200, {"node": node.config.name, "queued": kind})
        return not_found()

    async def listen(self, binds: list[tuple[str, int, str, int]]) -> list[tuple[int, int]]:
        """Open both ports of every node; returns the bound (healthz, metrics) ports."""
        loop = asyncio.get_running_loop()
        ports: list[tuple[int, int]] = []
        try:
            for i, (h_host, h_port, m_host, m_port) in enumerate(binds):
                node = self.nodes[i]
                hz = _listening_socket(h_host, h_port)
                srv = await loop.create_server(_factory(node.healthz_port), sock=hz)
                self.servers.append(srv)
                ms = _listening_socket(m_host, m_port)
                srv = await loop.create_server(_factory(self._metrics_handler(i)), sock=ms)
                self.servers.append(srv)
                ports.append((hz.getsockname()[1], ms.getsockname()[1]))
        except BaseException:
            await self.close()
            raise
        return ports

    def _metrics_handler(self, index: int) -> Handler:
        node = self.nodes[index]

        def control(req: Request) -> Response:
            return self.control(index, req)

        def handle(req: Request) -> Response:
            return node.metrics_port(req, control)

        return handle

    async def close(self) -> None:
        for srv in self.servers:
            srv.close()
        for srv in self.servers:
            with contextlib.suppress(Exception):
                await srv.wait_closed()
        self.servers.clear()


def _factory(handler: Handler) -> Callable[[], HttpProtocol]:
    def make() -> HttpProtocol:
        return HttpProtocol(handler)

    return make


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def raise_fd_limit(needed: int) -> None:
    """Many nodes need many sockets: lift the soft RLIMIT_NOFILE to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise OSError(f"need {needed} file descriptors but RLIMIT_NOFILE allows {soft}; "
                      "use fewer --nodes or raise the hard limit (ulimit -Hn)")


def node_config(index: int, version: Version, mode: str, families: tuple[str, ...],
                seed: int, time_scale: float) -> NodeConfig:
    return NodeConfig(name=f"node-{index}", version=version, mode=mode, ip_families=families,
                      seed=seed, time_scale=time_scale)
