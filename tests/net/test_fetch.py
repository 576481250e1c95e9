"""The httpx transport (``https://``, URLs with credentials): deadlines, caps, decompression.

Driven over plain HTTP with credentials in the URL, which ``Transports`` sends to httpx.
"""

from __future__ import annotations

import asyncio
import gzip
import time

import pytest

from kpexporter.net.fetcher import FetchError
from kpexporter.net.httpx_fetcher import HttpxFetcher
from kpexporter.net.transports import Transports
from tests.loopback import (
    Handler,
    failure,
    hang,
    read_head,
    reset_mid_body,
    respond,
    serve,
    slowloris,
)


async def get(handler: Handler, *, timeout: float = 2.0, cap: int = 1000) -> bytes:
    async for url in serve(handler):
        fetcher = HttpxFetcher(timeout)
        try:
            f = await fetcher.fetch(url.replace("http://", "http://u:p@"), max_bytes=cap,
                                    deadline=time.monotonic() + timeout)
        finally:
            await fetcher.aclose()
        return f.body
    raise AssertionError("unreachable")


async def reason(handler: Handler, **kw: float) -> str:
    return await failure(get(handler, **kw))  # type: ignore[arg-type]


def test_the_selector_picks_by_url() -> None:
    t = Transports(1.0)
    plain = t.for_url("http://127.0.0.1:10249/metrics")
    assert t.for_url("http://10.0.0.1/healthz") is plain
    assert isinstance(t.for_url("https://10.0.0.1/metrics"), HttpxFetcher)
    assert isinstance(t.for_url("http://u:p@10.0.0.1/metrics"), HttpxFetcher)


async def test_plain_body() -> None:
    assert await get(respond(b"hello")) == b"hello"


async def test_body_over_cap_is_too_large() -> None:
    assert await reason(respond(b"x" * 5000), cap=1000) == "too_large"


async def test_chunked_body_over_cap_stops_reading() -> None:
    async def h(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(100):
            writer.write(b"200\r\n" + b"y" * 512 + b"\r\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()
    assert await reason(h, cap=4096) == "too_large"


async def test_gzip_bomb_stops_at_cap() -> None:
    bomb = gzip.compress(b"\0" * 50_000_000)  # ~50 KB compressed, 50 MB inflated
    assert await reason(respond(bomb, extra="Content-Encoding: gzip\r\n"), cap=100_000) == \
        "too_large"


async def test_gzip_small_body_is_decoded() -> None:
    body = gzip.compress(b"metric 1\n")
    assert await get(respond(body, extra="Content-Encoding: gzip\r\n")) == b"metric 1\n"


async def test_slowloris_hits_the_overall_deadline() -> None:
    assert await reason(slowloris, timeout=0.5) == "timeout"


async def test_endless_interim_answers_end_at_the_deadline() -> None:
    async def h(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        try:
            for _ in range(1_000_000):
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" * 1000)
                await writer.drain()
        except ConnectionError:
            pass
    assert await reason(h, timeout=0.5) == "timeout"


async def test_hang_is_timeout() -> None:
    assert await reason(hang, timeout=0.3) == "timeout"


async def test_connection_refused_is_connect() -> None:
    fetcher = HttpxFetcher(1.0)
    with pytest.raises(FetchError) as e:
        await fetcher.fetch("http://127.0.0.1:1/healthz", max_bytes=100,
                            deadline=time.monotonic() + 1.0)
    await fetcher.aclose()
    assert e.value.reason == "connect"


async def test_reset_mid_body_is_read_error() -> None:
    assert await reason(reset_mid_body) == "read"
