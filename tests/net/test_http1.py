"""The poller's transports against real loopback servers, well-behaved and hostile.

They keep the ``Fetcher`` contract: the body, or a ``FetchError`` whose reason is the
``kpexporter_poll_errors_total`` label (``timeout``, ``connect``, ``read``, ``too_large``,
``http_status``), within the deadline and the caps, whatever the server sends. ``Transports``
sends plain ``http://`` to the lean ``http1`` client and URLs with credentials to httpx.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import time
import zlib
from collections.abc import AsyncIterator

import pytest

from kpexporter.net.fetcher import Fetched, FetchError
from kpexporter.net.http1 import MAX_HEAD
from kpexporter.net.transports import Transports
from tests.loopback import (
    Handler,
    failure,
    hang,
    raw,
    read_head,
    reset_mid_body,
    respond,
    serve,
    slowloris,
)


def serve_q(handler: Handler) -> AsyncIterator[str]:
    return serve(handler, "/x?y=1")


def chunked(*chunks: bytes, trailer: bytes = b"", extra: str = "") -> Handler:
    body = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(c), c) for c in chunks)
    return raw(f"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n{extra}\r\n".encode() + body
               + b"0\r\n" + trailer + b"\r\n")


def within(timeout: float) -> float:
    return time.monotonic() + timeout


async def get(handler: Handler, *, timeout: float = 2.0, cap: int = 1000,
              url_suffix: str = "") -> Fetched:
    async for url in serve_q(handler):
        client = Transports(timeout)
        try:
            return await client.fetch(url + url_suffix, deadline=within(timeout), max_bytes=cap)
        finally:
            await client.aclose()
    raise AssertionError("unreachable")


async def reason(handler: Handler, **kw: float) -> str:
    return await failure(get(handler, **kw))  # type: ignore[arg-type]


async def test_plain_body_status_and_content_type() -> None:
    f = await get(respond(b"hello", "503 Service Unavailable"))
    assert (f.status, f.body, f.content_type) == (503, b"hello", "text/plain")
    assert f.duration >= 0


async def test_the_request_it_sends() -> None:
    seen: list[bytes] = []

    async def h(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_head(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    async for url in serve_q(h):
        client = Transports(2.0)
        f = await client.fetch(url, deadline=within(2.0), max_bytes=10,
                               accept="text/plain;version=0.0.4")
        assert f.body == b"ok"
    head = seen[0].decode()
    assert head.startswith("GET /x?y=1 HTTP/1.1\r\n")
    for line in ("Host: 127.0.0.1:", "Connection: close", "Accept-Encoding: identity",
                 "Accept: text/plain;version=0.0.4", "User-Agent: kpexporter"):
        assert f"\r\n{line}" in head


async def test_chunked_with_extensions_and_trailers() -> None:
    f = await get(chunked(b"ab", b"c" * 300, b"d", trailer=b"X-Trailer: 1\r\n"))
    assert f.body == b"ab" + b"c" * 300 + b"d"


async def test_chunked_delivered_a_byte_at_a_time() -> None:
    data = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n")

    async def h(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        for i in range(len(data)):
            writer.write(data[i:i + 1])
            await writer.drain()
        writer.close()

    assert (await get(h)).body == b"hello!"


async def test_body_until_close_and_interim_answers() -> None:
    assert (await get(raw(b"HTTP/1.0 200 OK\r\n\r\nall of it"))).body == b"all of it"
    f = await get(raw(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
                      b"\r\nz"))
    assert f.body == b"z"
    f = await get(raw(b"HTTP/1.1 204 No Content\r\n\r\n", then_close=False))
    assert (f.status, f.body) == (204, b"")


async def test_bytes_past_the_declared_length_are_not_the_body() -> None:
    assert (await get(raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"))).body == b"ok"


async def test_over_the_cap() -> None:
    assert await reason(respond(b"x" * 5000), cap=1000) == "too_large"  # declared
    assert await reason(chunked(*[b"y" * 512] * 100), cap=4096) == "too_large"
    assert await reason(raw(b"HTTP/1.1 200 OK\r\n\r\n" + b"z" * 5000), cap=1000) == "too_large"


async def test_gzip_decoded_under_the_cap() -> None:
    small = gzip.compress(b"metric 1\n")
    assert (await get(respond(small, extra="Content-Encoding: gzip\r\n"))).body == b"metric 1\n"
    deflated = zlib.compress(b"metric 2\n")
    f = await get(respond(deflated, extra="Content-Encoding: deflate\r\n"))
    assert f.body == b"metric 2\n"
    bomb = gzip.compress(b"\0" * 50_000_000)
    assert await reason(respond(bomb, extra="Content-Encoding: gzip\r\n"), cap=100_000) == \
        "too_large"
    assert await reason(respond(b"x", extra="Content-Encoding: br\r\n")) == "http_status"


async def test_deadlines() -> None:
    assert await reason(slowloris, timeout=0.5) == "timeout"
    assert await reason(hang, timeout=0.3) == "timeout"


async def test_connection_refused() -> None:
    client = Transports(1.0)
    with pytest.raises(FetchError) as e:
        await client.fetch("http://127.0.0.1:1/healthz", deadline=within(1.0), max_bytes=100)
    assert e.value.reason == "connect"


async def test_broken_answers_are_read_errors() -> None:
    cases: list[Handler] = [
        reset_mid_body,
        raw(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"),  # closed early
        raw(b""),  # closed without a word
        raw(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"),
        raw(b"HTTP/1.1 2000 OK\r\n\r\n"),
        raw(b"HTTP/1.1 200 OK\r\n folded: header\r\n\r\n"),
        raw(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
        raw(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
        raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n"),
        raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 5000),
        raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"),  # cut short
        raw(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"),
    ]
    for handler in cases:
        assert await reason(handler) == "read"


async def test_urls_with_credentials_go_through_httpx_with_basic_auth() -> None:
    seen: list[bytes] = []

    async def h(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_head(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    async for url in serve_q(h):
        client = Transports(2.0)
        try:
            f = await client.fetch(url.replace("http://", "http://user:pw@"),
                                   deadline=within(2.0), max_bytes=10)
        finally:
            await client.aclose()
        assert f.body == b"ok"
    assert b"Authorization: Basic " + base64.b64encode(b"user:pw") in seen[0] or \
        b"authorization: Basic " + base64.b64encode(b"user:pw") in seen[0]


async def test_many_concurrent_requests_each_get_their_own_answer() -> None:
    async def echo_path(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        path = head.split(b" ")[1]
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(path), path))
        await writer.drain()
        writer.close()

    async for url in serve_q(echo_path):
        client = Transports(5.0)
        base = url.split("/x")[0]
        got = await asyncio.gather(*(client.fetch(f"{base}/n{i}", deadline=within(5.0),
                                                  max_bytes=100)
                                     for i in range(200)))
        assert [f.body for f in got] == [f"/n{i}".encode() for i in range(200)]


# -- every byte counts against a cap, and a flooding peer never holds the loop


def flood(head: bytes, unit: bytes, *, limit: int = 64 * 1024 * 1024) -> Handler:
    """``head``, then ``unit`` over and over as fast as the socket takes it (bounded)."""
    async def h(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(head)
        block = unit * max(1, 65536 // len(unit))
        sent = 0
        try:
            while sent < limit:
                writer.write(block)
                await writer.drain()
                sent += len(block)
        except ConnectionError:
            pass
        writer.close()
    return h


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
FLOODS = {
    "endless-100-continue": flood(b"", b"HTTP/1.1 100 Continue\r\n\r\n"),
    "endless-trailers": flood(CHUNKED_HEAD + b"1\r\nx\r\n0\r\n", b"X-Trailer: 1\r\n"),
    "one-byte-chunks": flood(CHUNKED_HEAD, b"1\r\nx\r\n"),
    "empty-chunk-extensions": flood(CHUNKED_HEAD, b"1;a=b\r\nx\r\n"),
    "headers-forever": flood(b"HTTP/1.1 200 OK\r\n", b"X-A: b\r\n"),
}


@pytest.mark.parametrize("name", FLOODS)
async def test_floods_stop_at_a_cap_without_starving_the_loop(name: str) -> None:
    """Each flood ends as ``too_large`` (a cap on heads or framing, not the deadline), and
    another task keeps running while the peer sends as fast as it can."""
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        assert await reason(FLOODS[name], timeout=30.0, cap=1_000_000) == "too_large"
    finally:
        stop.set()
        await task
    assert ticks > 10  # the loop ran the other task during the flood


async def test_response_heads_are_capped_together() -> None:
    one = b"HTTP/1.1 103 Early Hints\r\nLink: " + b"a" * 1000 + b"\r\n\r\n"
    n = MAX_HEAD // len(one) + 1
    final = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    assert await reason(raw(one * n + final)) == "too_large"
    assert (await get(raw(one * (n - 2) + final))).body == b"ok"
    assert await reason(raw(b"HTTP/1.1 200 OK\r\nX: " + b"a" * (MAX_HEAD + 10),
                            then_close=False)) == "too_large"


async def test_bytes_after_a_compressed_body_count_on_the_wire() -> None:
    body = gzip.compress(b"metric 1\n") + b"\0" * 200_000
    handler = raw(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n" + body)
    assert await reason(handler, cap=1000) == "too_large"


async def test_a_deadline_holds_while_the_peer_trickles_a_head() -> None:
    async def slow_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        for _ in range(200):
            writer.write(b"X")
            await writer.drain()
            await asyncio.sleep(0.05)

    assert await reason(slow_head, timeout=0.3) == "timeout"


class KeepAliveServer:
    """Answers requests on kept-alive connections; counts connections and requests, and can
    close each connection after ``close_after`` answers, or append ``extra`` bytes."""

    def __init__(self, response: bytes, close_after: int = 0, extra: bytes = b"") -> None:
        self.response, self.close_after, self.extra = response, close_after, extra
        self.connections = 0
        self.heads: list[bytes] = []

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        answered = 0
        try:
            while True:
                head = await read_head(reader)
                if not head:
                    return
                self.heads.append(head)
                writer.write(self.response + self.extra)
                await writer.drain()
                answered += 1
                if answered == self.close_after:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
OK_CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"


async def fetch_times(server: KeepAliveServer, n: int, pause: float = 0.0) -> list[bytes]:
    bodies = []
    async for url in serve_q(server):
        client = Transports(2.0, max_idle=4)
        try:
            for _ in range(n):
                bodies.append((await client.fetch(url, deadline=within(2.0), max_bytes=10)).body)
                await asyncio.sleep(pause)
        finally:
            await client.aclose()
    return bodies


@pytest.mark.parametrize("response", [OK, OK_CHUNKED])
async def test_kept_alive_one_connection_for_many_polls(response: bytes) -> None:
    server = KeepAliveServer(response)
    assert await fetch_times(server, 5) == [b"ok"] * 5
    assert server.connections == 1 and len(server.heads) == 5
    assert b"Connection: close" not in server.heads[0]


async def test_a_peer_that_closed_its_idle_connection_costs_nothing() -> None:
    server = KeepAliveServer(OK, close_after=1)  # Go's IdleTimeout, at once
    assert await fetch_times(server, 4, pause=0.05) == [b"ok"] * 4
    assert server.connections == 4


@pytest.mark.parametrize(("response", "extra"), [
    (OK, b"surprise"),  # bytes after the response: never reused
    (OK.replace(b"200 OK\r\n", b"200 OK\r\nConnection: close\r\n"), b""),
    (OK.replace(b"HTTP/1.1", b"HTTP/1.0"), b""),
])
async def test_a_connection_is_reused_only_when_it_ended_cleanly(response: bytes,
                                                                 extra: bytes) -> None:
    server = KeepAliveServer(response, extra=extra)
    assert await fetch_times(server, 3) == [b"ok"] * 3
    assert server.connections == 3


async def test_a_kept_socket_dead_at_the_first_read_is_retried_once() -> None:
    """The peer closes right after reading the next request (a race with its idle timeout):
    the request goes again on a new connection, and the poll does not fail."""
    answered: list[int] = []

    async def h(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answered.append(0)
        await read_head(reader)
        writer.write(OK)
        await writer.drain()
        if len(answered) == 1:
            await read_head(reader)  # the second request on this connection: no answer
        writer.close()

    bodies = []
    async for url in serve_q(h):
        client = Transports(2.0, max_idle=4)
        try:
            for _ in range(2):
                bodies.append((await client.fetch(url, deadline=within(2.0), max_bytes=10)).body)
        finally:
            await client.aclose()
    assert bodies == [b"ok", b"ok"] and len(answered) == 2


def test_idle_sockets_are_bounded_and_keep_the_ones_they_have() -> None:
    import socket

    from kpexporter.net.http1 import IdleSockets
    idle = IdleSockets(2)
    pairs = [socket.socketpair() for _ in range(4)]
    for a, _ in pairs:
        a.setblocking(False)
    for i, (a, _) in enumerate(pairs[:3]):
        idle.give(("h", i), a)
    assert len(idle) == 2 and pairs[2][0].fileno() == -1  # full: the newcomer is closed
    pairs[1][1].close()  # the peer of ("h", 1) went away
    assert idle.take(("h", 1)) is None and idle.take(("h", 0)) is pairs[0][0]
    stale = IdleSockets(1, max_age=0.0)
    stale.give(("h", 0), pairs[0][0])
    stale.give(("h", 3), pairs[3][0])  # the old one idled past max_age: it makes way
    assert pairs[0][0].fileno() == -1 and stale.take(("h", 3)) is pairs[3][0]
    IdleSockets(0).give(("h", 9), pairs[3][0])
    assert pairs[3][0].fileno() == -1
    for _, b in pairs:
        b.close()
