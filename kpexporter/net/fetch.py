"""Fetching bytes from kube-proxy: the only network I/O on the poll path.

Every request runs under an overall deadline (httpx's timeouts are per socket operation,
so a server trickling one byte a second would never trip them) and a body-size cap that
also bounds decompressed size (a gzip bomb stops at the cap, not in memory).
"""

from __future__ import annotations

import asyncio
import time
import zlib
from dataclasses import dataclass
from typing import Protocol

import httpx

# Polled endpoints, the ``endpoint`` label.
HEALTHZ = "healthz"
METRICS = "metrics"
PROXY_MODE = "proxymode"


@dataclass(frozen=True, slots=True)
class Fetched:
    status: int
    body: bytes
    content_type: str
    started: float  # exporter wall clock (Unix seconds) when the request was sent
    duration: float  # seconds, monotonic

    @property
    def midpoint(self) -> float:
        """Our best estimate of the wall time at which the server produced its answer."""
        return self.started + self.duration / 2


class FetchError(Exception):
    """A failed request; ``reason`` is the ``kpexporter_poll_errors_total`` label."""

    def __init__(self, reason: str, message: str, duration: float = 0.0) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.duration = duration


def new_client(timeout: float, max_connections: int = 100) -> httpx.AsyncClient:
    """One shared client: keep-alive to each kube-proxy, no proxies from the environment."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_connections=max_connections,
                            max_keepalive_connections=max_connections),
        trust_env=False,
        follow_redirects=False,
        headers={"Accept-Encoding": "identity", "User-Agent": "kpexporter"},
    )


class _Decoder:
    """Bounded decompression of ``gzip``/``deflate`` bodies we did not ask for."""

    def __init__(self, encoding: str) -> None:
        enc = encoding.strip().lower()
        if enc in ("", "identity"):
            self._z = None
        elif enc in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif enc == "deflate":
            self._z = zlib.decompressobj()
        else:
            raise FetchError("http_status", f"unsupported Content-Encoding {encoding!r}")

    def feed(self, chunk: bytes, room: int) -> bytes:
        if self._z is None:
            return chunk
        try:
            out = self._z.decompress(chunk, room + 1)
        except zlib.error as e:
            raise FetchError("read", f"corrupt compressed body: {e}") from None
        if self._z.unconsumed_tail:
            # More output than ``room`` would allow: the caller will report too_large.
            out += b"\0"
        return out


class Fetcher(Protocol):
    """A client with its own GET (the poller's lean one, ``kpexporter.net.http1.Http1Client``)."""

    async def fetch(self, url: str, *, timeout: float, cap: int,
                    accept: str = "*/*") -> Fetched: ...


async def fetch(client: httpx.AsyncClient | Fetcher, url: str, *, timeout: float, cap: int,
                accept: str = "*/*") -> Fetched:
    """GET ``url``; raises FetchError(reason) on timeout, refusal, or a body over ``cap``."""
    if not isinstance(client, httpx.AsyncClient):
        return await client.fetch(url, timeout=timeout, cap=cap, accept=accept)
    started = time.time()
    t0 = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            async with client.stream("GET", url, headers={"Accept": accept}) as resp:
                decoder = _Decoder(resp.headers.get("content-encoding", ""))
                declared = resp.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > cap \
                        and decoder._z is None:
                    raise FetchError("too_large", f"Content-Length {declared} over the "
                                     f"{cap}-byte cap")
                parts: list[bytes] = []
                size = 0
                async for chunk in resp.aiter_raw():
                    data = decoder.feed(chunk, cap - size)
                    size += len(data)
                    if size > cap:
                        raise FetchError("too_large", f"body over the {cap}-byte cap")
                    parts.append(data)
                return Fetched(resp.status_code, b"".join(parts),
                               resp.headers.get("content-type", ""), started,
                               time.monotonic() - t0)
    except FetchError as e:
        e.duration = time.monotonic() - t0
        raise
    except TimeoutError:
        raise FetchError("timeout", f"no complete answer within {timeout:g}s",
                         time.monotonic() - t0) from None
    except httpx.TimeoutException:
        raise FetchError("timeout", f"timed out after {timeout:g}s",
                         time.monotonic() - t0) from None
    except httpx.ConnectError as e:
        raise FetchError("connect", f"cannot connect: {_short(e)}",
                         time.monotonic() - t0) from None
    except httpx.HTTPError as e:
        raise FetchError("read", f"{type(e).__name__}: {_short(e)}",
                         time.monotonic() - t0) from None
    except OSError as e:
        raise FetchError("connect", f"{type(e).__name__}: {e}", time.monotonic() - t0) from None


def _short(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return text.splitlines()[0][:200]
