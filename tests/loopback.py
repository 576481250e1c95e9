"""A throwaway asyncio HTTP server on loopback for client tests (fetch, http1), and the
answers both clients are tested against: well-formed ones and the hostile ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from kpexporter.net.fetcher import FetchError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(handler: Handler, path: str = "/x") -> AsyncIterator[str]:
    """Yield the URL of a server answering with ``handler``; closed afterwards."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}{path}"
    finally:
        server.close()


async def read_head(reader: asyncio.StreamReader) -> bytes:
    """The request head, up to and including the blank line."""
    return await reader.readuntil(b"\r\n\r\n")


async def failure(fetch: Awaitable[object]) -> str:
    """The reason of the ``FetchError`` that ``fetch`` must raise."""
    with pytest.raises(FetchError) as e:
        await fetch
    return e.value.reason


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
    """A response with a Content-Length; ``extra`` is more header lines, each ending CRLF."""
    return raw(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}"
               "Content-Type: text/plain\r\n\r\n".encode() + body)


async def slowloris(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A 100-byte body a byte every 0.1 s: every read makes progress, the whole takes 10 s."""
    await read_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    for _ in range(100):
        writer.write(b"x")
        await writer.drain()
        await asyncio.sleep(0.1)
    writer.close()


async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept, then say nothing for 10 s."""
    await asyncio.sleep(10)


async def reset_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A few bytes of the body it announced, then a TCP reset."""
    await read_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
    await writer.drain()
    writer.transport.abort()
