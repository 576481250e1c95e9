"""A throwaway asyncio HTTP server on loopback for client tests (fetch, http1)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

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
