"""The ``Fetcher`` for what ``http1`` does not take: ``https://`` and URLs with credentials.

httpx's own timeouts are per socket operation (a server trickling a byte a second would
never trip them): the overall deadline is ``failures.py``'s, as for ``http1``. anyio yields
to the loop on every read, so a fast peer cannot starve it; h11 bounds each head and
trailer block (16 KiB), and ``BoundedBody`` the body.
"""

from __future__ import annotations

import httpx

from kpexporter.vocabulary import Reason

from .body import BoundedBody
from .failures import Attempt, failures_to_fetch_errors
from .fetcher import Fetched, FetchError


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


class HttpxFetcher:
    """GETs through one ``httpx.AsyncClient`` (TLS, basic auth from the URL, keep-alive)."""

    def __init__(self, timeout: float, max_connections: int = 100) -> None:
        self._client = new_client(timeout, max_connections)

    async def fetch(self, url: str, *, max_bytes: int, deadline: float,
                    accept: str = "*/*") -> Fetched:
        attempt = Attempt(deadline)
        async with failures_to_fetch_errors(attempt), \
                self._client.stream("GET", url, headers={"Accept": accept}) as resp:
            body = BoundedBody(resp.headers.get("content-encoding", ""), max_bytes)
            declared = resp.headers.get("content-length")
            if declared is not None and declared.isdigit() and body.over_cap(int(declared)):
                raise FetchError(Reason.TOO_LARGE,
                                 f"Content-Length {declared} over the {max_bytes}-byte cap")
            async for chunk in resp.aiter_raw():
                body.feed(chunk)
                attempt.check()
            return attempt.fetched(resp.status_code, body.value(),
                                   resp.headers.get("content-type", ""))

    async def aclose(self) -> None:
        await self._client.aclose()
