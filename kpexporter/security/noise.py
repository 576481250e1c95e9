"""Noise any client can cause at will, logged once per 10 s per kind with a count.

Malformed requests, WebSocket upgrades (uvicorn warns once or twice per request), connections
refused or evicted at the cap, accept failures when descriptors run out (asyncio logs a
traceback each time): 5,000 anonymous requests wrote 7,500 lines before (issue 10).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from kpexporter.logs import _FIELDS, event

__all__ = ["LOG_INTERVAL", "LogThrottle", "ThrottleFilter", "accept_error_handler"]

LOG_INTERVAL = 10.0
_MAX_KEYS = 256


class LogThrottle:
    """At most one line per key every ``interval`` seconds; ``admit`` returns how many lines
    were held back since the last one (None: hold this one back too). Time is passed in."""

    def __init__(self, interval: float = LOG_INTERVAL) -> None:
        self._interval = interval
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def admit(self, key: str, now: float) -> int | None:
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        if last is None and len(self._last) >= _MAX_KEYS:  # keys are messages: stay bounded
            self._last = {k: t for k, t in self._last.items() if now - t < self._interval}
            self._held = {k: n for k, n in self._held.items() if k in self._last}
        self._last[key] = now
        return self._held.pop(key, 0)


class ThrottleFilter(logging.Filter):
    """Rate-limits uvicorn's per-request warnings, which any anonymous client can trigger."""

    def __init__(self, throttle: LogThrottle) -> None:
        super().__init__()
        self._throttle = throttle

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        held = self._throttle.admit(record.getMessage(), time.monotonic())
        if held is None:
            return False
        if held:
            setattr(record, _FIELDS, {**getattr(record, _FIELDS, {}), "suppressed": held})
        return True


def accept_error_handler(
    throttle: LogThrottle, loop: asyncio.AbstractEventLoop, context: dict[str, Any]
) -> None:
    """One line per 10 s for accept failures (out of descriptors or memory), no traceback;
    asyncio already retries the accept a second later. Anything else: asyncio's default."""
    message = str(context.get("message", ""))
    if not message.startswith("socket.accept()"):
        loop.default_exception_handler(context)
        return
    held = throttle.admit("accept_failed", time.monotonic())
    if held is not None:
        exc = context.get("exception")
        event(logging.WARNING, "accept_failed", error=f"{type(exc).__name__}: {exc}",
              note="retrying; connections are capped below the descriptor limit",
              suppressed=held)
