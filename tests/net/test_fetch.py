"""fetch(): deadlines, caps and bounded decompression against a real local server."""

from __future__ import annotations

import asyncio
import gzip

import pytest

from kpexporter.net.fetch import FetchError, fetch, new_client
from tests.loopback import Handler, read_head, serve


def respond(body: bytes, status: str = "200 OK", extra: str = "") -> Handler:
    async def h(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}"
                     "Content-Type: text/plain\r\n\r\n".encode() + body)
        await writer.drain()
        writer.close()
    return h


async def get(handler: Handler, *, timeout: float = 2.0, cap: int = 1000) -> bytes:
    async for url in serve(handler):
        async with new_client(timeout) as client:
            f = await fetch(client, url, timeout=timeout, cap=cap)
            return f.body
    raise AssertionError("unreachable")


async def test_plain_body() -> None:
    assert await get(respond(b"hello")) == b"hello"


async def test_body_over_cap_is_too_large() -> None:
    with pytest.raises(FetchError) as e:
        await get(respond(b"x" * 5000), cap=1000)
    assert e.value.reason == "too_large"


async def test_chunked_body_over_cap_stops_reading() -> None:
    async def h(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(100):
            writer.write(b"200\r\n" + b"y" * 512 + b"\r\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()
    with pytest.raises(FetchError) as e:
        await get(h, cap=4096)
    assert e.value.reason == "too_large"


async def test_gzip_bomb_stops_at_cap() -> None:
    bomb = gzip.compress(b"\0" * 50_000_000)  # ~50 KB compressed, 50 MB inflated
    with pytest.raises(FetchError) as e:
        await get(respond(bomb, extra="Content-Encoding: gzip\r\n"), cap=100_000)
    assert e.value.reason == "too_large"


async def test_gzip_small_body_is_decoded() -> None:
    body = gzip.compress(b"metric 1\n")
    assert await get(respond(body, extra="Content-Encoding: gzip\r\n")) == b"metric 1\n"


async def test_slowloris_hits_the_overall_deadline() -> None:
    async def h(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(100):
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.1)
        writer.close()
    with pytest.raises(FetchError) as e:
        await get(h, timeout=0.5)
    assert e.value.reason == "timeout"


async def test_hang_is_timeout() -> None:
    async def h(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)
    with pytest.raises(FetchError) as e:
        await get(h, timeout=0.3)
    assert e.value.reason == "timeout"


async def test_connection_refused_is_connect() -> None:
    async with new_client(1.0) as client:
        with pytest.raises(FetchError) as e:
            await fetch(client, "http://127.0.0.1:1/healthz", timeout=1.0, cap=100)
    assert e.value.reason == "connect"


async def test_reset_mid_body_is_read_error() -> None:
    async def h(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
        await writer.drain()
        writer.transport.abort()
    with pytest.raises(FetchError) as e:
        await get(h)
    assert e.value.reason == "read"
