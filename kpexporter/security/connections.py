"""Per-connection limits on the exporter's own port: the protocol stack every connection gets.

gate (admission against the cap) → TLS (asyncio's ``SSLProtocol``, a 16 KiB read buffer and a
handshake timeout) → uvicorn's HTTP/1.1 protocol with its idle timer armed from the start.
Figures: docs/performance.md, "Connections".
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from asyncio import sslproto
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from typing import Any, cast

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from kpexporter.logs import event
from kpexporter.security.noise import LogThrottle
from kpexporter.security.quick import QuickAnswer, parse_request, response_bytes

__all__ = [
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "Admission",
    "ConnectionLimits",
    "Gate",
    "IdleH11",
    "TLSGate",
    "TLSProtocol",
    "connection_cap",
    "nofile",
]

DEFAULT_HANDSHAKE_TIMEOUT = 5.0
DEFAULT_IDLE_TIMEOUT = 5  # uvicorn's keep-alive default, now also before the first request
DEFAULT_MAX_CONNECTIONS = 512
_TLS_READ_SIZE = 16 * 1024  # a full TLS record; asyncio reads 256 KiB per connection


@dataclass(frozen=True)
class ConnectionLimits:
    """What one client can hold on the exporter's port; the defaults are the README's."""

    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    idle_timeout: int = DEFAULT_IDLE_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS


def connection_cap(max_connections: int, nofile: int) -> tuple[int, int]:
    """(live-connection cap, accept batch) for a descriptor limit of ``nofile``.

    A quarter of the descriptors (at least 64) stay free for polling kube-proxy, discovery, logs
    and the accept batch in flight, so connections can never starve the poller of sockets.
    """
    reserve = max(64, nofile // 4)
    cap = max(1, min(max_connections, nofile - reserve))
    batch = max(16, min(2048, (nofile - cap) // 4))
    return cap, batch


def nofile() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


class IdleH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with the keep-alive timer running from the start, and the
    quick path (``security.quick``) in front of h11 when ``quick`` is set."""

    quick: QuickAnswer | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # uvicorn arms this only after a response: a client that never sends a request
        # would otherwise hold the connection (and its memory) for good.
        self._arm_idle_timer()

    def _arm_idle_timer(self) -> None:
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def data_received(self, data: bytes) -> None:
        quick = self.quick
        if quick is None or not self._between_requests():
            super().data_received(data)
            return
        request = parse_request(data)
        answer = None
        if request is not None:
            try:
                answer = quick(*request)
            except Exception:  # a bug: the ASGI way answers (a 500, logged, if it fails again)
                answer = None
        if request is None or answer is None:
            super().data_received(data)
            return
        self._unset_keepalive_if_required()
        self.transport.write(response_bytes(answer, request[0] == "HEAD",
                                            self.server_state.default_headers))
        self._arm_idle_timer()

    def _between_requests(self) -> bool:
        """h11 holds nothing of a request (both sides idle: no request read, no response
        owed) and the client reads what it is sent: a quick answer then leaves the
        connection exactly as h11 would have."""
        conn = self.conn
        return (conn.our_state is h11.IDLE and conn.their_state is h11.IDLE
                and not conn.trailing_data[0] and not self.flow.write_paused
                and not self.transport.is_closing())


class TLSProtocol(sslproto.SSLProtocol):
    max_size = _TLS_READ_SIZE


class Admission:
    """Live connections against the cap, shared by every connection of one server.

    At the cap, a new connection takes the place of the oldest one that is not serving a
    request (idle, mid-handshake, or still sending its request head): a flood of idle
    connections then cannot lock Prometheus out, it only recycles itself. Only when every
    connection is busy is the newcomer refused.
    """

    _SCAN = 64  # connections looked at for one eviction: at the cap an accept stays O(1)

    def __init__(self, cap: int, throttle: LogThrottle) -> None:
        self.cap = cap
        self.live: OrderedDict[Gate, None] = OrderedDict()  # oldest first
        self._throttle = throttle

    def admit(self, gate: Gate) -> bool:
        if len(self.live) >= self.cap:
            victim = next((g for g in islice(self.live, self._SCAN) if g.idle()), None)
            if victim is None:
                self._note("refused")
                return False
            self.release(victim)
            victim.evict()
            self._note("evicted")
        self.live[gate] = None
        return True

    def release(self, gate: Gate) -> None:
        self.live.pop(gate, None)

    def _note(self, what: str) -> None:
        held = self._throttle.admit(f"max_connections_{what}", time.monotonic())
        if held is not None:
            event(logging.WARNING, "max_connections_reached", max_connections=self.cap,
                  connection=what, suppressed=held)


class Gate(asyncio.Protocol):
    """Outermost protocol: admits the connection (or closes it at once), then delegates."""

    def __init__(
        self, admission: Admission, make_inner: Callable[[], tuple[Any, H11Protocol]]
    ) -> None:
        self._admission = admission
        self._make_inner = make_inner
        self._inner: Any = None
        self._http: H11Protocol | None = None
        self._transport: asyncio.BaseTransport | None = None

    def idle(self) -> bool:
        """Not serving a request: no request head parsed yet, or its response sent."""
        cycle = self._http.cycle if self._http is not None else None
        return cycle is None or cycle.response_complete

    def evict(self) -> None:
        """Close now and free the protocols now: the transport reports the loss only after
        the rest of the accept batch, so a burst would otherwise hold a batch's worth."""
        transport, inner = self._transport, self._inner
        self._inner = self._http = self._transport = None
        if transport is not None:
            transport.abort()  # type: ignore[attr-defined]
        if inner is not None:
            inner.connection_lost(None)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._admission.admit(self):
            transport.abort()  # type: ignore[attr-defined]
            return
        self._transport = transport
        self._inner, self._http = self._make_inner()
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._admission.release(self)
        if self._inner is not None:
            self._inner.connection_lost(exc)
        self._inner = self._http = self._transport = None

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return cast(bool | None, self._inner.eof_received())

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class TLSGate(Gate, asyncio.BufferedProtocol):
    """The gate in front of asyncio's TLS protocol, which reads into its own buffer."""

    def get_buffer(self, sizehint: int) -> Any:
        return self._inner.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self._inner.buffer_updated(nbytes)
