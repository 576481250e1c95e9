"""Polling on a clock: every target once per interval, concurrency bounded.

Why poll instead of fetching at scrape time (the usual exporter rule): sliding windows
and the availability SLI need samples on a regular clock whatever Prometheus's scrape
interval is, and a hung kube-proxy must never slow down ``/metrics``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence

import httpx

from kpexporter.config import Config
from kpexporter.fetch import new_client
from kpexporter.logs import event
from kpexporter.poll import poll_target
from kpexporter.state import TargetState


class Poller:
    def __init__(self, cfg: Config, client: httpx.AsyncClient | None = None) -> None:
        self.cfg = cfg
        self.states: list[TargetState] = [TargetState(t, horizon=cfg.horizon)
                                          for t in cfg.targets]
        self._client = client
        self._tasks: list[asyncio.Task[None]] = []
        self._sem = asyncio.Semaphore(cfg.concurrency)
        self.first_round = asyncio.Event()
        self._pending_first = len(self.states)

    def snapshot(self) -> Sequence[TargetState]:
        return self.states

    @property
    def ready(self) -> bool:
        return self.first_round.is_set()

    async def poll_once(self, st: TargetState) -> None:
        """One poll of one target; never raises (a bug is logged, not fatal)."""
        assert self._client is not None
        try:
            async with self._sem:
                result = await poll_target(self._client, st.target, self.cfg,
                                           st.wants_proxy_mode())
            st.record(result, self.cfg)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug in our own code: keep polling, say so once per poll
            event(40, "poll_bug", node=st.node, error=f"{type(e).__name__}: {e}")
        finally:
            if not self.first_round.is_set():
                self._pending_first -= 1
                if self._pending_first <= 0:
                    self.first_round.set()

    async def _loop(self, st: TargetState, offset: float) -> None:
        interval = self.cfg.interval
        await asyncio.sleep(offset)
        next_at = time.monotonic()
        while True:
            await self.poll_once(st)
            next_at += interval
            now = time.monotonic()
            if next_at < now:  # overran: skip the missed slots rather than bunch up
                missed = int((now - next_at) // interval) + 1
                next_at += missed * interval
            await asyncio.sleep(next_at - now)

    async def open(self) -> None:
        """Create the shared HTTP client (``check`` polls without starting the loops)."""
        if self._client is None:
            self._client = new_client(self.cfg.timeout, min(self.cfg.concurrency * 3, 1000))

    async def start(self) -> None:
        await self.open()
        many = len(self.states) > 1
        for st in self.states:
            # Spread many targets over the interval so load is even, first poll within it.
            offset = random.uniform(0, self.cfg.interval) if many else 0.0
            self._tasks.append(asyncio.create_task(self._loop(st, offset),
                                                   name=f"poll-{st.node}"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._client is not None:
            await self._client.aclose()
