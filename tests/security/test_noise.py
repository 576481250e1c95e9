"""Noise a client can cause at will is logged once per 10 s per kind, with a count."""

from __future__ import annotations

import logging
import socket

import pytest

from kpexporter.security.noise import LogThrottle
from tests.security.conftest import (
    BOUND,
    Serve,
)


def test_log_throttle_counts_what_it_held_back() -> None:
    throttle = LogThrottle(interval=10)
    assert throttle.admit("a", 0.0) == 0
    assert [throttle.admit("a", t) for t in (1.0, 2.0, 9.9)] == [None, None, None]
    assert throttle.admit("b", 5.0) == 0  # keys are independent
    assert throttle.admit("a", 10.0) == 3
    assert throttle.admit("a", 20.5) == 0


# --- noise -------------------------------------------------------------------------------------

_MALFORMED = b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"
_UPGRADE = (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")


def _send_and_drain(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=BOUND) as s:
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        return data


def test_anonymous_noise_writes_a_few_warning_lines_not_thousands(
    serve: Serve, caplog: pytest.LogCaptureFixture,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    running = serve(None)
    requests = [_MALFORMED, _UPGRADE] * 2500
    with caplog.at_level(logging.WARNING), ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda r: _send_and_drain(running.port, r), requests))
    assert sum(a.startswith(b"HTTP/1.1 400") for a in answers) == 2500
    assert sum(a.startswith(b"HTTP/1.1 200") for a in answers) == 2500
    warnings = [r for r in caplog.records if r.name == "uvicorn.error"
                and r.levelno == logging.WARNING]
    # Before: 7,500 lines (one per malformed request, two per upgrade). Now one line per
    # kind per 10 s; the next line carries the count of those held back.
    kinds = {r.getMessage() for r in warnings}
    assert 1 <= len(kinds) <= 3 and len(warnings) <= 2 * len(kinds)
