"""The ``Fetcher`` the poller uses: each URL to the one transport that takes it.

Plain ``http://`` (kube-proxy's own ports) goes to the lean ``http1`` client; ``https://``
and URLs with credentials to httpx, whose client is created on first need (most
deployments never need it).
"""

from __future__ import annotations

from kpexporter.memo import Memo

from . import http1
from .fetcher import Fetched, Fetcher
from .httpx_fetcher import HttpxFetcher


class Transports:
    """A ``Fetcher`` that hands each request to ``http1`` or httpx, chosen by its URL."""

    def __init__(self, timeout: float, max_connections: int = 100, max_idle: int = 0) -> None:
        """``max_idle``: kept-alive plain sockets at most (``http1.IdleSockets``)."""
        self._timeout = timeout
        self._max_connections = max_connections
        self._plain = http1.Http1Fetcher(max_idle)
        self._general: HttpxFetcher | None = None
        self._lean: Memo[str, bool] = Memo(65536)

    def for_url(self, url: str) -> Fetcher:
        lean = self._lean.get(url)
        if lean is None:
            lean = self._lean.put(url, http1.handles(url))
        if lean:
            return self._plain
        if self._general is None:
            self._general = HttpxFetcher(self._timeout, self._max_connections)
        return self._general

    async def fetch(self, url: str, *, max_bytes: int, deadline: float,
                    accept: str = "*/*") -> Fetched:
        return await self.for_url(url).fetch(url, max_bytes=max_bytes, deadline=deadline,
                                             accept=accept)

    async def aclose(self) -> None:
        await self._plain.aclose()
        if self._general is not None:
            await self._general.aclose()
            self._general = None
