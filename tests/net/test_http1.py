"""The poller's lean HTTP/1.1 client against real loopback servers, well-behaved and hostile.

It must keep :func:`kpexporter.net.fetch.fetch`'s contract: the body, or a ``FetchError`` whose
reason is the ``kpexporter_poll_errors_total`` label (``timeout``, ``connect``, ``read``,
``too_large``, ``http_status``), within the deadline and the cap, whatever the server sends.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import zlib
from collections.abc import AsyncIterator

import pytest

from kpexporter.net.fetch import Fetched, FetchError
from kpexporter.net.http1 import MAX_HEAD, Http1Client
from tests.loopback import Handler, read_head, serve


def serve_q(handler: Handler) -> AsyncIterator[str]:
    return serve(handler, "/x?y=1")

def raw(data: bytes, *, then_close: bool = True) -> Handler:
    """Answer any request with exactly ``data``."""
    async def h(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(data)
        await writer.drain()
        if then_close:
            writer.close()
    return h


def respond(body: bytes, status: str = "200 OK", extra: str = "") -> Handler:
    return raw(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}"
               "Content-Type: text/plain\r\n\r\n".encode() + body)


def chunked(*chunks: bytes, trailer: bytes = b"", extra: str = "") -> Handler:
    body = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(c), c) for c in chunks)
    return raw(f"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n{extra}\r\n".encode() + body
               + b"0\r\n" + trailer + b"\r\n")


async def get(handler: Handler, *, timeout: float = 2.0, cap: int = 1000,
              url_suffix: str = "") -> Fetched:
    async for url in serve_q(handler):
        client = Http1Client(timeout)
        try:
            return await client.fetch(url + url_suffix, timeout=timeout, cap=cap)
        finally:
            await client.aclose()
    raise AssertionError("unreachable")


async def reason(handler: Handler, **kw: float) -> str:
    with pytest.raises(FetchError) as e:
        await get(handler, **kw)  # type: ignore[arg-type]
    return e.value.reason


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
        client = Http1Client(2.0)
        f = await client.fetch(url, timeout=2.0, cap=10, accept="text/plain;version=0.0.4")
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
    async def slowloris(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(100):
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.1)
        writer.close()

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)

    assert await reason(slowloris, timeout=0.5) == "timeout"
    assert await reason(hang, timeout=0.3) == "timeout"


async def test_connection_refused() -> None:
    client = Http1Client(1.0)
    with pytest.raises(FetchError) as e:
        await client.fetch("http://127.0.0.1:1/healthz", timeout=1.0, cap=100)
    assert e.value.reason == "connect"


async def test_broken_answers_are_read_errors() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
        await writer.drain()
        writer.transport.abort()

    cases: list[Handler] = [
        reset,
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
        raw(b"HTTP/1.1 200 OK\r\nX: " + b"a" * (MAX_HEAD + 10), then_close=False),
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
        client = Http1Client(2.0)
        try:
            f = await client.fetch(url.replace("http://", "http://user:pw@"), timeout=2.0,
                                   cap=10)
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
        client = Http1Client(5.0)
        base = url.split("/x")[0]
        got = await asyncio.gather(*(client.fetch(f"{base}/n{i}", timeout=5.0, cap=100)
                                     for i in range(200)))
        assert [f.body for f in got] == [f"/n{i}".encode() for i in range(200)]
