"""The one place where a request's deadline is kept and its failures get their reasons.

Both transports run their whole exchange (connect, send, every read) inside
``failures_to_fetch_errors``: the deadline holds for all of it, and whatever escapes (a timeout,
an ``OSError`` such as ``EMFILE`` from ``socket()``, an httpx error) leaves as a
``FetchError`` with a reason and the time spent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx

from kpexporter.vocabulary import Reason

from .fetcher import Fetched, FetchError


class Attempt:
    """One request's clocks: the wall time it started, its monotonic start and deadline."""

    __slots__ = ("deadline", "started", "t0")

    def __init__(self, deadline: float) -> None:
        self.started = time.time()
        self.t0 = time.monotonic()
        self.deadline = deadline

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def check(self) -> None:
        """Raise ``TimeoutError`` once past the deadline (a busy peer never lets it fire)."""
        if time.monotonic() >= self.deadline:
            raise TimeoutError

    def fetched(self, status: int, body: bytes, content_type: str) -> Fetched:
        return Fetched(status, body, content_type, self.started, self.elapsed())


def _short(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return text.splitlines()[0][:200]


@contextlib.asynccontextmanager
async def failures_to_fetch_errors(attempt: Attempt) -> AsyncIterator[None]:
    """Run the body under ``attempt``'s deadline; map every failure to a ``FetchError``."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout_at(loop.time() + (attempt.deadline - time.monotonic())):
            yield
    except FetchError as e:
        e.duration = attempt.elapsed()
        raise
    except (TimeoutError, httpx.TimeoutException):
        # No number in the message: it must read the same every poll (one log line per
        # change), and the time left when the request started varies with the loop's load.
        raise FetchError(Reason.TIMEOUT, "no complete answer before the poll's deadline "
                         "(timeout)", attempt.elapsed()) from None
    except httpx.ConnectError as e:
        raise FetchError(Reason.CONNECT, f"cannot connect: {_short(e)}",
                         attempt.elapsed()) from None
    except httpx.HTTPError as e:
        raise FetchError(Reason.READ, f"{type(e).__name__}: {_short(e)}",
                         attempt.elapsed()) from None
    except OSError as e:  # socket() out of descriptors (EMFILE), no buffers (ENOBUFS) ...
        raise FetchError(Reason.CONNECT, f"{type(e).__name__}: {_short(e)}",
                         attempt.elapsed()) from None
