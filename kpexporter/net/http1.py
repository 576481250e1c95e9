"""A lean HTTP/1.1 GET for plain ``http://`` URLs: kept-alive plain sockets, one per peer.

Why not httpx here. Measured on loopback against the 84 KB v1.30 page (``benchmarks/``,
``docs/performance.md``): an ``httpx.AsyncClient`` GET costs about 600-900 µs of client CPU
(anyio, httpcore's pool and h11 on every request), more than everything else in a poll put
together, and its pool scans all its connections on every request, which is what hurts at
thousands of targets. This client costs about 200 µs per request, TCP connect included, so a
whole poll (two requests, parse, derive) costs a fraction of prometheus_client's parse alone
of the same page, and one core polls 5,000 kube-proxies every 15 s.

What it does, and no more (kube-proxy's two ports are plain HTTP/1.1 Go servers):

- ``GET`` on a kept-alive connection: each (host, port) keeps at most one idle socket
  between polls, ``max_idle`` in all so descriptors stay bounded (``IdleSockets``: when
  full, a newcomer is closed). At 5,000 nodes two TCP connects and closes a poll were ~8 % of
  the core (``benchmarks/bench_many.py``), and every close left a socket in TIME_WAIT. A kept
  socket is checked before use (a peek: the peer closed it, or sent bytes nobody asked for,
  and it is dropped), and a request whose reused socket turns out dead before a single byte
  of answer is sent again once on a new connection. A response is kept only when it ended
  exactly where its framing says, on HTTP/1.1, without ``Connection: close``.
- The loop's ``sock_connect``/``sock_sendall``/``sock_recv`` on a plain socket, not a
  transport and protocol: in Python 3.11 every closed selector transport is left in a reference
  cycle, and hundreds a second of those kept the cyclic GC doing full collections of the
  whole state (0.5-1 s pauses at 5,000 targets).
- A hostile peer cannot hold the loop or the memory. ``loop.sock_recv`` returns at once while
  data is waiting, so a peer sending as fast as it can would never let the loop run another
  task (nor the deadline fire): every read is followed by a yield to the loop and a check of
  the deadline. Every byte counts against a cap: all response heads together (interim
  ``1xx`` answers included) ``MAX_HEAD``; chunk-size lines, chunk ends and trailers
  ``framing_cap(cap)``; the body on the wire and decoded, ``BoundedBody``.
- Bodies framed by ``Content-Length``, ``Transfer-Encoding: chunked`` or the end of the
  connection; ``gzip``/``deflate`` decoded under the cap.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections import OrderedDict
from typing import Any
from urllib.parse import quote, urlsplit

from kpexporter.memo import Memo
from kpexporter.vocabulary import Reason

from .body import BoundedBody
from .failures import Attempt, failures_to_fetch_errors
from .fetcher import Fetched, FetchError

MAX_HEAD = 64 * 1024
"""All response heads of one request together (status lines, headers, interim answers)."""
MAX_FRAMING = 64 * 1024
"""Chunk framing and trailers allowed on top of ``cap // 32`` (Go writes ~4 KB chunks)."""
MAX_CHUNK_LINE = 1024
RECV_SIZE = 256 * 1024
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"

# Body framing, as RFC 9112 section 6.3 decides it for a response to GET.
_LENGTH, _CHUNKED, _UNTIL_CLOSE, _NONE = range(4)
# Chunked sub-states.
_SIZE, _DATA, _DATA_END, _TRAILER = range(4)


def framing_cap(cap: int) -> int:
    """Bytes of chunk framing and trailers allowed for a body capped at ``cap``."""
    return MAX_FRAMING + cap // 32


def handles(url: str) -> bool:
    """Whether this client takes ``url``: plain HTTP with a host and no credentials."""
    parts = urlsplit(url)
    return (parts.scheme == "http" and bool(parts.hostname) and parts.username is None
            and parts.password is None)


def _bad(message: str) -> FetchError:
    """The peer's bytes are not an HTTP/1.1 response we can read."""
    return FetchError(Reason.READ, message)


def _too_large(message: str) -> FetchError:
    return FetchError(Reason.TOO_LARGE, message)


class ResponseReader:
    """Reads one response from the bytes fed to it: heads, then the body as framed.

    ``feed`` returns True once the response is complete, ``end`` is told when the peer
    closed; both raise ``FetchError`` when the bytes cannot make a response within the caps.
    Pure (no I/O), so the fuzz target drives it directly.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.complete = False
        self.head_buf = bytearray()
        self.head_bytes = 0  # heads read so far, interim answers included
        self.framing_bytes = 0
        self.framing_cap = framing_cap(cap)
        self.status = 0
        self.headers: dict[str, str] = {}
        self.framing = -1  # -1 until the final head is read
        self.remaining = 0  # _LENGTH: body bytes still expected; _CHUNKED: of this chunk
        self.chunk_state = _SIZE
        self.chunk_buf = bytearray()
        self.body: BoundedBody | None = None
        self.version = ""
        self.extra = False  # bytes came after the response's end

    @property
    def reusable(self) -> bool:
        """Whether the connection can carry another request: the response ended where its
        framing says, nothing followed it, and neither side asked to close."""
        if not self.complete or self.extra or self.version != "HTTP/1.1":
            return False
        if self.framing not in (_LENGTH, _CHUNKED, _NONE):
            return False
        return "close" not in (t.strip().lower()
                               for t in self.headers.get("connection", "").split(","))

    def feed(self, data: bytes) -> bool:
        if self.complete:
            self.extra = self.extra or bool(data)
            return True
        if self.framing < 0:
            data = self._head(data)
            if self.complete:
                self.extra = bool(data)
                return True
            if self.framing < 0:
                return False
        if data:
            self._body(data)
        return self.complete

    def end(self, exc: OSError | None) -> None:
        """The peer closed (``exc`` None) or reset the connection: complete, or raise."""
        if self.complete:
            return
        if exc is None and self.framing == _UNTIL_CLOSE:
            self.complete = True
        elif self.framing < 0:
            raise _bad(f"connection lost: {exc}" if exc else "server closed without an answer")
        else:
            raise _bad(f"connection lost mid-body: {exc}" if exc else "body ended early")

    def value(self) -> bytes:
        return self.body.value() if self.body is not None else b""

    # -- heads

    def _head(self, data: bytes) -> bytes:
        """Collect the response head; returns what follows it (the first body bytes)."""
        buf = self.head_buf
        start = max(len(buf) - 3, 0)
        buf += data
        while True:
            end = buf.find(b"\r\n\r\n", start)
            if end < 0:
                if self.head_bytes + len(buf) > MAX_HEAD:
                    raise _too_large(f"response heads over {MAX_HEAD} bytes")
                return b""
            self.head_bytes += end + 4
            if self.head_bytes > MAX_HEAD:
                raise _too_large(f"response heads over {MAX_HEAD} bytes")
            head = bytes(buf[:end])
            del buf[: end + 4]
            if self._parse_head(head):
                rest = bytes(buf)
                buf.clear()
                return rest
            start = 0  # an interim 1xx answer: the real one follows

    def _parse_head(self, head: bytes) -> bool:
        """Status line and headers; False for an interim (1xx) response to skip."""
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if (version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not code.isascii()
                or not code.isdigit()  # isdigit() alone takes "²" (latin-1 0xb2), int() not
                or rest[3:4] not in ("", " ")):
            raise _bad(f"not an HTTP/1.1 status line: {lines[0][:60]!r}")
        status = int(code)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip() or " " in name or "\t" in name:
                raise _bad(f"malformed header line {line[:60]!r}")
            key = name.lower()
            value = value.strip(" \t")
            if key in headers:
                if key == "content-length" and headers[key] != value:
                    raise _bad("conflicting Content-Length headers")
                value = headers[key] + ", " + value
            headers[key] = value
        if 100 <= status < 200:
            if status == 101:
                raise _bad("unexpected 101 Switching Protocols")
            return False
        self.status = status
        self.version = version
        self.headers = headers
        self.body = BoundedBody(headers.get("content-encoding", ""), self.cap)
        te = headers.get("transfer-encoding")
        if status in (204, 304):
            self.framing = _NONE
        elif te is not None:
            if te.strip().lower() != "chunked":
                raise _bad(f"unsupported Transfer-Encoding {te[:40]!r}")
            self.framing = _CHUNKED
        elif "content-length" in headers:
            declared = headers["content-length"].split(",")[0].strip()
            if not declared.isascii() or not declared.isdigit() or len(declared) > 18:
                raise _bad(f"bad Content-Length {declared[:40]!r}")
            self.remaining = int(declared)
            if self.body.over_cap(self.remaining):
                raise _too_large(f"Content-Length {declared} over the {self.cap}-byte cap")
            self.framing = _LENGTH
        else:
            self.framing = _UNTIL_CLOSE
        if self.framing == _NONE or (self.framing == _LENGTH and self.remaining == 0):
            self.complete = True
        return True

    # -- bodies

    def _body(self, data: bytes) -> None:
        assert self.body is not None
        if self.framing == _LENGTH:
            if len(data) >= self.remaining:
                # Bytes past the declared length are the server's problem, not a body.
                self.extra = len(data) > self.remaining
                self.body.feed(data[: self.remaining])
                self.remaining = 0
                self.complete = True
            else:
                self.remaining -= len(data)
                self.body.feed(data)
        elif self.framing == _CHUNKED:
            self._chunked(data)
        elif self.framing == _UNTIL_CLOSE:
            self.body.feed(data)
        # _NONE is complete at its head: feed() saw what followed it

    def _framing(self, n: int) -> None:
        self.framing_bytes += n
        if self.framing_bytes > self.framing_cap:
            raise _too_large(f"chunk framing and trailers over {self.framing_cap} bytes")

    def _chunked(self, data: bytes) -> None:
        assert self.body is not None
        buf = self.chunk_buf
        buf += data
        pos = 0
        while not self.complete:
            if self.chunk_state == _DATA:
                take = min(self.remaining, len(buf) - pos)
                if take <= 0:
                    break
                self.body.feed(bytes(buf[pos : pos + take]))
                pos += take
                self.remaining -= take
                if self.remaining:
                    break
                self.chunk_state = _DATA_END
                continue
            end = buf.find(b"\r\n", pos)
            if end < 0:
                if len(buf) - pos > MAX_CHUNK_LINE:
                    what = "trailer line" if self.chunk_state == _TRAILER else "chunk line"
                    raise _bad(f"{what} over {MAX_CHUNK_LINE} bytes")
                break
            line = bytes(buf[pos:end])
            pos = end + 2
            self._framing(len(line) + 2)
            if self.chunk_state == _DATA_END:
                if line:
                    raise _bad("chunk data longer than its size")
                self.chunk_state = _SIZE
            elif self.chunk_state == _SIZE:
                size = line.split(b";", 1)[0].strip(b" \t")
                if not size or len(size) > 15 or size.strip(b"0123456789abcdefABCDEF"):
                    raise _bad(f"bad chunk size {line[:40]!r}")
                self.remaining = int(size, 16)
                self.chunk_state = _DATA if self.remaining else _TRAILER
            elif not line:  # _TRAILER: an empty line ends the message
                self.complete = True
        del buf[:pos]
        if self.complete and buf:
            self.extra = True


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


def _plan(url: str, accept: str, keep_alive: bool) -> _Plan:
    parts = urlsplit(url)
    if not handles(url):
        raise FetchError(Reason.CONNECT, "not a plain http:// URL without credentials")
    assert parts.hostname is not None
    port = parts.port or 80
    host = parts.hostname
    host_header = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        host_header += f":{port}"
    target = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_PATH_SAFE + "?")
    close = "" if keep_alive else "Connection: close\r\n"
    request = (f"GET {target} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: kpexporter\r\n"
               f"Accept: {accept}\r\nAccept-Encoding: identity\r\n{close}\r\n")
    return _Plan(host, port, request.encode("latin-1", "replace"))


class IdleSockets:
    """Kept-alive sockets, at most one per (host, port) and ``cap`` in all.

    When full, a newcomer is closed rather than the oldest: polls visit every peer in turn,
    so evicting the least recently used would leave no socket to reuse at all, while this
    keeps ``cap`` of them working. Only a socket idle over ``max_age`` (a node gone, most
    likely) makes way."""

    def __init__(self, cap: int, max_age: float = 600.0) -> None:
        self.cap = cap
        self.max_age = max_age
        self._idle: OrderedDict[tuple[str, int], tuple[socket.socket, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._idle)

    def take(self, key: tuple[str, int]) -> socket.socket | None:
        """The peer's idle socket if it still looks usable: nothing to read on it (a closed
        peer reads as end of stream, a chatty one as bytes nobody asked for)."""
        kept = self._idle.pop(key, None)
        if kept is None:
            return None
        sock = kept[0]
        try:
            sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return sock
        except OSError:
            pass
        sock.close()
        return None

    def give(self, key: tuple[str, int], sock: socket.socket) -> None:
        now = time.monotonic()
        old = self._idle.pop(key, None)
        if old is not None:
            old[0].close()
        if len(self._idle) >= self.cap:
            oldest = next(iter(self._idle.values()), None)
            if oldest is None or now - oldest[1] <= self.max_age:
                sock.close()
                return
            self._idle.popitem(last=False)[1][0].close()
        self._idle[key] = (sock, now)

    def clear(self) -> None:
        while self._idle:
            self._idle.popitem()[1][0].close()


class Http1Fetcher:
    """The ``Fetcher`` for plain ``http://`` URLs (see the module docstring).

    ``max_idle``: kept-alive sockets at most (0: a connection per request)."""

    def __init__(self, max_idle: int = 0) -> None:
        self._plans: Memo[tuple[str, str], _Plan] = Memo(65536)
        self.idle = IdleSockets(max_idle)

    async def fetch(self, url: str, *, max_bytes: int, deadline: float,
                    accept: str = "*/*") -> Fetched:
        key = (url, accept)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans.put(key, _plan(url, accept, self.idle.cap > 0))
        attempt = Attempt(deadline)
        reader = ResponseReader(max_bytes)
        async with failures_to_fetch_errors(attempt):
            await _exchange(plan, reader, attempt, self.idle)
        return attempt.fetched(reader.status, reader.value(),
                               reader.headers.get("content-type", ""))

    async def aclose(self) -> None:
        self._plans.clear()
        self.idle.clear()


async def _addresses(plan: _Plan) -> list[tuple[int, tuple[Any, ...]]]:
    """(family, sockaddr) to try in order: the IP itself, or what the resolver says now."""
    if plan.addresses:
        return plan.addresses
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(plan.host, plan.port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise FetchError(Reason.CONNECT,
                         f"cannot resolve {plan.host}: {e.strerror or e}") from None
    return [(family, addr) for family, _, _, _, addr in infos]


async def _connect(plan: _Plan) -> socket.socket:
    loop = asyncio.get_running_loop()
    why = "no address"  # a message, not the exception: that would hold this frame in a cycle
    for family, addr in await _addresses(plan):
        sock = socket.socket(family, socket.SOCK_STREAM)  # EMFILE: connect, in failures.py
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
    raise FetchError(Reason.CONNECT, f"cannot connect to {plan.host}:{plan.port}: {why}")


async def _exchange(plan: _Plan, reader: ResponseReader, attempt: Attempt,
                    idle: IdleSockets) -> None:
    """Send the request, read until ``reader`` has the response; yields after every read.

    On a kept-alive socket that turns out dead before the first byte of an answer (the peer
    closed it meanwhile), the request is sent once more on a new connection."""
    loop = asyncio.get_running_loop()
    key = (plan.host, plan.port)
    sock = idle.take(key)
    reused = sock is not None
    if sock is None:
        sock = await _connect(plan)
    keep = False
    try:
        while True:
            try:
                await loop.sock_sendall(sock, plan.request)
            except OSError as e:
                if not reused:
                    raise FetchError(Reason.READ,
                                     f"connection lost sending the request: {e}") from None
                data = b""
            else:
                try:
                    data = await loop.sock_recv(sock, RECV_SIZE)
                except OSError as e:
                    if not reused:
                        reader.end(e)
                        return
                    data = b""
            if data or not reused:
                break
            sock.close()  # a stale kept-alive socket: once more, on a new one
            sock = await _connect(plan)
            reused = False
        while True:
            if not data:
                reader.end(None)
                return
            if reader.feed(data):
                keep = reader.reusable
                return
            # sock_recv did not wait if data was there: let the loop run, then check the time.
            await asyncio.sleep(0)
            attempt.check()
            try:
                data = await loop.sock_recv(sock, RECV_SIZE)
            except OSError as e:
                reader.end(e)
                return
    finally:
        if keep:
            idle.give(key, sock)
        else:
            sock.close()
