"""A lean HTTP/1.1 GET for the poll path: one connection per request, plain non-blocking sockets.

Why not httpx here. Measured on loopback against the 84 KB v1.30 page (``benchmarks/``,
``docs/performance.md``): an ``httpx.AsyncClient`` GET costs about 600-900 µs of client CPU
(anyio, httpcore's pool and h11 on every request), more than everything else in a poll put
together, and its pool scans all its connections on every request, which is what hurts at
thousands of targets. This client costs about 200 µs per request, TCP connect included, so a
whole poll (two requests, parse, derive) costs a fraction of prometheus_client's parse alone
of the same page, and one core polls 5,000 kube-proxies every 15 s.

What it does, and no more (kube-proxy's two ports are plain HTTP/1.1 Go servers):

- ``GET`` with ``Connection: close``: no pool, no keep-alive, nothing to go stale between polls
  15 s apart, and no idle sockets (two per target would be 10,000 descriptors at 5,000 nodes,
  on both sides). Keep-alive would save ~150 µs per request; not worth those.
- The loop's ``sock_connect``/``sock_sendall``/``sock_recv`` on a plain socket, not a
  transport and protocol: in Python 3.11 every closed selector transport is left in a reference
  cycle, and hundreds a second of those kept the cyclic GC doing full collections of the
  whole state (0.5-1 s pauses at 5,000 targets).
- Bodies framed by ``Content-Length``, ``Transfer-Encoding: chunked`` or the end of the
  connection; ``gzip``/``deflate`` we did not ask for, decoded under the cap (a bomb stops at
  the cap); the response head bounded to 64 KB, a chunk-size line to 1 KB.
- The same contract as :func:`kpexporter.net.fetch.fetch`: one overall deadline, the body cap, and
  :class:`~kpexporter.net.fetch.FetchError` with the same reasons (``timeout``, ``connect``,
  ``read``, ``too_large``, ``http_status`` for an unsupported encoding).

Anything else (``https://``, a URL with credentials) goes to httpx, created on first need.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from kpexporter.net.fetch import Fetched, FetchError, _Decoder, fetch, new_client

MAX_HEAD = 64 * 1024
RECV_SIZE = 256 * 1024
MAX_CHUNK_LINE = 1024
_URL_CACHE_LIMIT = 65536
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"

# Body framing, as RFC 9112 section 6.3 decides it for a response to GET.
_LENGTH, _CHUNKED, _UNTIL_CLOSE, _NONE = range(4)
# Chunked sub-states.
_SIZE, _DATA, _DATA_END, _TRAILER = range(4)


class _BadResponse(Exception):
    """The server's bytes are not an HTTP/1.1 response we can read (reason ``read``)."""


def _bare(e: FetchError) -> FetchError:
    """``e`` without traceback or context: stored, it must not keep the frames (and with
    them this response) alive in a reference cycle."""
    e.__context__ = None
    return e.with_traceback(None)


class _Done:
    """Whether the response is complete (``error`` None) or failed (``error`` set)."""

    __slots__ = ("error", "finished")

    def __init__(self) -> None:
        self.finished = False
        self.error: FetchError | None = None

    def done(self) -> bool:
        return self.finished


class _Response:
    """Reads one response from the bytes fed to it: head, then the body as framed.

    ``done`` is set once, when the body is complete or with the ``FetchError`` that ended it.
    """

    def __init__(self, cap: int) -> None:
        self.done = _Done()
        self.cap = cap
        self.head_buf = bytearray()
        self.status = 0
        self.headers: dict[str, str] = {}
        self.framing = -1  # -1 until the head is read
        self.remaining = 0  # _LENGTH: body bytes still expected; _CHUNKED: of this chunk
        self.chunk_state = _SIZE
        self.chunk_buf = bytearray()
        self.decoder: _Decoder | None = None
        self.parts: list[bytes] = []
        self.size = 0

    # -- fed by the caller

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        try:
            if self.framing < 0:
                data = self._head(data)
                if self.framing < 0 or self.done.done():
                    return
            if data:
                self._body(data)
        except FetchError as e:
            self._finish(_bare(e))
        except _BadResponse as e:
            self._finish(FetchError("read", str(e)))

    def connection_lost(self, exc: Exception | None) -> None:
        """The server closed (``exc`` None) or reset the connection."""
        self._ended(exc)

    # -- parsing

    def _head(self, data: bytes) -> bytes:
        """Collect the response head; returns what follows it (the first body bytes)."""
        buf = self.head_buf
        start = max(len(buf) - 3, 0)
        buf += data
        while True:
            end = buf.find(b"\r\n\r\n", start)
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise _BadResponse(f"response head over {MAX_HEAD} bytes")
                return b""
            if end > MAX_HEAD:
                raise _BadResponse(f"response head over {MAX_HEAD} bytes")
            head = bytes(buf[:end])
            rest = bytes(buf[end + 4 :])
            if not self._parse_head(head):  # an interim 1xx answer: the real one follows
                buf[:] = rest
                start = 0
                continue
            buf.clear()
            return rest

    def _parse_head(self, head: bytes) -> bool:
        """Status line and headers; False for an interim (1xx) response to skip."""
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if (version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not code.isascii()
                or not code.isdigit()  # isdigit() alone takes "²" (latin-1 0xb2), int() not
                or rest[3:4] not in ("", " ")):
            raise _BadResponse(f"not an HTTP/1.1 status line: {lines[0][:60]!r}")
        status = int(code)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip() or " " in name or "\t" in name:
                raise _BadResponse(f"malformed header line {line[:60]!r}")
            key = name.lower()
            value = value.strip(" \t")
            if key in headers:
                if key == "content-length" and headers[key] != value:
                    raise _BadResponse("conflicting Content-Length headers")
                value = headers[key] + ", " + value
            headers[key] = value
        if 100 <= status < 200:
            if status == 101:
                raise _BadResponse("unexpected 101 Switching Protocols")
            return False
        self.status = status
        self.headers = headers
        self.decoder = _Decoder(headers.get("content-encoding", ""))
        te = headers.get("transfer-encoding")
        if status in (204, 304):
            self.framing = _NONE
        elif te is not None:
            if te.strip().lower() != "chunked":
                raise _BadResponse(f"unsupported Transfer-Encoding {te[:40]!r}")
            self.framing = _CHUNKED
        elif "content-length" in headers:
            declared = headers["content-length"].split(",")[0].strip()
            if not declared.isascii() or not declared.isdigit() or len(declared) > 18:
                raise _BadResponse(f"bad Content-Length {declared[:40]!r}")
            self.remaining = int(declared)
            if self.remaining > self.cap and self.decoder._z is None:  # identity
                raise FetchError("too_large", f"Content-Length {declared} over the "
                                 f"{self.cap}-byte cap")
            self.framing = _LENGTH
        else:
            self.framing = _UNTIL_CLOSE
        if self.framing == _NONE or (self.framing == _LENGTH and self.remaining == 0):
            self._finish(None)
        return True

    def _body(self, data: bytes) -> None:
        if self.framing == _LENGTH:
            if len(data) >= self.remaining:
                # Bytes past the declared length are the server's problem, not a body.
                self._keep(data[: self.remaining])
                self.remaining = 0
                self._finish(None)
            else:
                self.remaining -= len(data)
                self._keep(data)
        elif self.framing == _CHUNKED:
            self._chunked(data)
        elif self.framing == _UNTIL_CLOSE:
            self._keep(data)
        # _NONE: whatever follows a 204/304 is ignored

    def _chunked(self, data: bytes) -> None:
        buf = self.chunk_buf
        buf += data
        pos = 0
        while not self.done.done():
            if self.chunk_state == _DATA:
                take = min(self.remaining, len(buf) - pos)
                if take <= 0:
                    break
                self._keep(bytes(buf[pos : pos + take]))
                pos += take
                self.remaining -= take
                if self.remaining:
                    break
                self.chunk_state = _DATA_END
                continue
            end = buf.find(b"\r\n", pos)
            if end < 0:
                if len(buf) - pos > MAX_CHUNK_LINE:
                    raise _BadResponse("chunk line too long")
                break
            line = bytes(buf[pos:end])
            pos = end + 2
            if self.chunk_state == _DATA_END:
                if line:
                    raise _BadResponse("chunk data longer than its size")
                self.chunk_state = _SIZE
            elif self.chunk_state == _SIZE:
                size = line.split(b";", 1)[0].strip(b" \t")
                if not size or len(size) > 15 or size.strip(b"0123456789abcdefABCDEF"):
                    raise _BadResponse(f"bad chunk size {line[:40]!r}")
                self.remaining = int(size, 16)
                self.chunk_state = _DATA if self.remaining else _TRAILER
            elif not line:  # _TRAILER: an empty line ends the message
                self._finish(None)
        del buf[:pos]
        if len(buf) > MAX_CHUNK_LINE and self.chunk_state == _TRAILER:
            raise _BadResponse("trailer section too long")

    def _keep(self, data: bytes) -> None:
        assert self.decoder is not None
        data = self.decoder.feed(data, self.cap - self.size)
        self.size += len(data)
        if self.size > self.cap:
            raise FetchError("too_large", f"body over the {self.cap}-byte cap")
        self.parts.append(data)

    def _ended(self, exc: Exception | None) -> None:
        """The server closed (or reset) the connection."""
        if self.done.done():
            return
        if exc is None and self.framing == _UNTIL_CLOSE:
            self._finish(None)
        elif self.framing < 0:
            why = f"connection lost: {exc}" if exc else "server closed without an answer"
            self._finish(FetchError("read", why))
        else:
            why = f"connection lost mid-body: {exc}" if exc else "body ended early"
            self._finish(FetchError("read", why))

    def _finish(self, error: FetchError | None) -> None:
        if not self.done.finished:
            self.done.finished = True
            self.done.error = error


class _Plan:
    """What a URL needs, worked out once: where to connect and the request bytes."""

    __slots__ = ("addresses", "host", "port", "request")

    def __init__(self, host: str, port: int, request: bytes) -> None:
        self.host = host
        self.port = port
        self.request = request
        self.addresses: list[tuple[int, tuple[Any, ...]]] = []
        """The socket address when ``host`` is an IP (a name is resolved at each request)."""
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return
        if ip.version == 4:
            self.addresses = [(socket.AF_INET, (host, port))]
        else:
            self.addresses = [(socket.AF_INET6, (host, port, 0, 0))]


def _plan(url: str, accept: str) -> _Plan | None:
    """None when the URL is not plain HTTP without credentials (httpx takes it then)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.username or parts.password:
        return None
    port = parts.port or 80
    host = parts.hostname
    host_header = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        host_header += f":{port}"
    target = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_PATH_SAFE + "?")
    request = (f"GET {target} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: kpexporter\r\n"
               f"Accept: {accept}\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n")
    return _Plan(host, port, request.encode("latin-1", "replace"))


class Http1Client:
    """The poller's HTTP client: lean plain-HTTP GETs, httpx for the rest.

    Use one per process; ``aclose`` releases the httpx client if one was needed.
    """

    def __init__(self, timeout: float, max_connections: int = 100) -> None:
        self._timeout = timeout
        self._max_connections = max_connections
        self._plans: dict[tuple[str, str], _Plan | None] = {}
        self._fallback: httpx.AsyncClient | None = None

    async def fetch(self, url: str, *, timeout: float, cap: int, accept: str = "*/*") -> Fetched:
        """GET ``url``; raises FetchError(reason) like :func:`kpexporter.net.fetch.fetch`."""
        key = (url, accept)
        try:
            plan = self._plans[key]
        except KeyError:
            if len(self._plans) >= _URL_CACHE_LIMIT:
                self._plans.clear()
            plan = self._plans[key] = _plan(url, accept)
        if plan is None:
            if self._fallback is None:
                self._fallback = new_client(self._timeout, self._max_connections)
            return await fetch(self._fallback, url, timeout=timeout, cap=cap, accept=accept)
        return await _get(plan, timeout, cap)

    async def aclose(self) -> None:
        if self._fallback is not None:
            await self._fallback.aclose()
            self._fallback = None


async def _addresses(plan: _Plan) -> list[tuple[int, tuple[Any, ...]]]:
    """(family, sockaddr) to try in order: the IP itself, or what the resolver says now."""
    if plan.addresses:
        return plan.addresses
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(plan.host, plan.port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise FetchError("connect", f"cannot resolve {plan.host}: {e.strerror or e}") from None
    return [(family, addr) for family, _, _, _, addr in infos]


async def _connect(plan: _Plan) -> socket.socket:
    loop = asyncio.get_running_loop()
    why = "no address"  # a message, not the exception: that would hold this frame in a cycle
    for family, addr in await _addresses(plan):
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, addr)
            return sock
        except OSError as e:
            sock.close()
            why = e.strerror or str(e)
        except BaseException:
            sock.close()
            raise
    raise FetchError("connect", f"cannot connect to {plan.host}:{plan.port}: {why}")


async def _get(plan: _Plan, timeout: float, cap: int) -> Fetched:
    """Plain sockets and the loop's ``sock_*`` calls: no transport objects, which in Python
    3.11 each leave a reference cycle behind (hundreds a second for the cyclic GC to find)."""
    loop = asyncio.get_running_loop()
    started = time.time()
    t0 = time.monotonic()
    response = _Response(cap)
    sock: socket.socket | None = None
    try:
        async with asyncio.timeout(timeout):
            sock = await _connect(plan)
            try:
                await loop.sock_sendall(sock, plan.request)
            except OSError as e:
                raise FetchError("read", f"connection lost sending the request: {e}") from None
            while not response.done.finished:
                try:
                    data = await loop.sock_recv(sock, RECV_SIZE)
                except OSError as e:
                    response.connection_lost(e)
                    break
                if data:
                    response.data_received(data)
                else:
                    response.connection_lost(None)
    except FetchError as e:
        e.duration = time.monotonic() - t0
        raise
    except TimeoutError:
        raise FetchError("timeout", f"no complete answer within {timeout:g}s",
                         time.monotonic() - t0) from None
    finally:
        if sock is not None:
            sock.close()
    error, response.done.error = response.done.error, None
    if error is not None:
        error.duration = time.monotonic() - t0
        try:
            raise error
        finally:
            del error  # no frame -> error -> traceback -> frame cycle
    return Fetched(response.status, b"".join(response.parts),
                   response.headers.get("content-type", ""), started, time.monotonic() - t0)
