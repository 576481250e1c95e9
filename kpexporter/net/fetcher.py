"""What a transport promises the poll: one GET under a deadline and a byte cap.

``Fetcher`` is the one interface the core polls through; ``kpexporter.net.transports``
picks the implementation for a URL (``http1`` for plain HTTP, ``httpx`` for the rest).
Every implementation reports every failure as a ``FetchError`` whose ``reason`` is the
``kpexporter_poll_errors_total`` label, so the core never sees a transport's own exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from kpexporter.vocabulary import Reason


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

    def __init__(self, reason: Reason, message: str, duration: float = 0.0) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.duration = duration


class Fetcher(Protocol):
    """GET one URL; the answer or a ``FetchError``, by ``deadline`` whatever the peer sends.

    ``deadline`` is a ``time.monotonic()`` instant (the poll's, shared by its requests);
    ``max_bytes`` caps the decoded body, and every other byte of the answer (interim
    responses, heads, chunk framing, trailers) counts against caps of its own.
    """

    async def fetch(self, url: str, *, max_bytes: int, deadline: float,
                    accept: str = "*/*") -> Fetched: ...

    async def aclose(self) -> None: ...
