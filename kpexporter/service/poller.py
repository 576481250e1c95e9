"""Polling on a clock: every target once per interval, concurrency bounded.

Why poll instead of fetching at scrape time (the usual exporter rule): sliding windows
and the availability SLI need samples on a regular clock whatever Prometheus's scrape
interval is, and a hung kube-proxy must never slow down ``/metrics``.

One asyncio task per target sleeps until its next slot; many targets start at random
offsets within the first interval, so 5,000 of them are polled at an even ~333 per second
rather than in one burst. The target list can change while running (``set_targets``, fed
by Kubernetes node discovery): new nodes start polling, gone ones stop and their series
leave ``/metrics`` at the next scrape.
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
from collections.abc import Iterable, Sequence

from kpexporter.config.schema import Config, Target
from kpexporter.core.poll import poll_target
from kpexporter.core.result import failed_poll
from kpexporter.core.state import TargetState
from kpexporter.logs import event
from kpexporter.net.fetcher import Fetcher
from kpexporter.net.transports import Transports
from kpexporter.security.connections import DEFAULT_MAX_CONNECTIONS, connection_cap, nofile
from kpexporter.service.discovery import Discovery
from kpexporter.service.sharding import mine
from kpexporter.service.text import target_pieces
from kpexporter.vocabulary import Reason

MANY_TARGETS = 100
"""From this many targets (or with discovery) the poller runs the cyclic GC itself."""
GC_EVERY = 300.0
"""Seconds between full collections while the poller runs the GC."""


def idle_budget(nofile: int, concurrency: int) -> int:
    """Kept-alive sockets to kube-proxies at most: the descriptors left once the server has
    its connection cap and accept batch (``security.connections.connection_cap``), httpx
    its pool, every poll in flight two sockets, and 64 stay for the rest (discovery, logs,
    files). Two per node keeps every connection: 10,000 at 5,000 nodes, far under a
    container's usual 1,048,576; with fewer, that many are kept (``http1.IdleSockets``)."""
    cap, batch = connection_cap(DEFAULT_MAX_CONNECTIONS, nofile)
    return max(0, nofile - cap - batch - min(3 * concurrency, 1000) - 2 * concurrency - 64)


class Poller:
    def __init__(self, cfg: Config, client: Fetcher | None = None,
                 targets: Iterable[Target] | None = None,
                 discovery: Discovery | None = None) -> None:
        """``targets`` defaults to the configured ones; with ``discovery``, to none until its
        first list (``ready`` waits for that list and one poll of each node on it)."""
        self.cfg = cfg
        if targets is None:
            targets = () if discovery is not None else cfg.targets
        targets = mine(targets, cfg.shard)  # with --shard, only this replica's nodes
        self.states: list[TargetState] = [TargetState(t, horizon=cfg.horizon) for t in targets]
        self._client = client
        self._discovery = discovery
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._discovery_task: asyncio.Task[None] | None = None
        self._gc_task: asyncio.Task[None] | None = None
        self._running = False
        self._sem = asyncio.Semaphore(cfg.concurrency)
        self.first_round = asyncio.Event()
        self._pending_first = {st.node for st in self.states}
        self._listed = discovery is None  # the target list is known

    def snapshot(self) -> Sequence[TargetState]:
        """The current targets; a list the poller replaces, never edits (safe to iterate)."""
        return self.states

    @property
    def ready(self) -> bool:
        return self.first_round.is_set()

    async def poll_once(self, st: TargetState) -> None:
        """One poll of one target; never raises.

        Whatever goes wrong is a failed poll: ``poll_target`` turns every fetch failure into
        a reason, and an exception from anything else here (a bug, ``EMFILE`` somewhere
        unexpected) is recorded as reason ``internal`` on both endpoints, so ``up`` is 0 and
        the error counters move. The state logs it once per change, like any failure.
        """
        assert self._client is not None
        started = time.time()
        try:
            async with self._sem:
                result = await poll_target(self._client, st.target, self.cfg,
                                           st.wants_proxy_mode())
            st.record(result, self.cfg)
            target_pieces(st)  # write its /metrics lines now: a scrape then only joins them
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._record_failure(st, started, f"{type(e).__name__}: {e}"[:200])
        finally:
            if not self.first_round.is_set():
                self._pending_first.discard(st.node)
                if not self._pending_first and self._listed:
                    self.first_round.set()

    def _record_failure(self, st: TargetState, started: float, message: str) -> None:
        try:
            st.record(failed_poll(st.node, started, Reason.INTERNAL, message), self.cfg)
            target_pieces(st)
        except Exception as e:  # recording a failure failed too: the state cannot say it
            event(40, "poll_bug", node=st.node, error=f"{type(e).__name__}: {e}"[:200])

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
            self._client = Transports(self.cfg.timeout, min(3 * self.cfg.concurrency, 1000),
                                      idle_budget(nofile(), self.cfg.concurrency))

    async def start(self) -> None:
        await self.open()
        self._running = True
        many = len(self.states) > 1
        for st in self.states:
            self._spawn(st, many)
        if self._discovery is not None:
            self._discovery_task = asyncio.create_task(self._discovery.run(self),
                                                       name="discovery")
        elif not self.states:
            self.first_round.set()
        if (len(self.states) >= MANY_TARGETS or self._discovery is not None) and gc.isenabled():
            self._gc_task = asyncio.create_task(self._collect_garbage(), name="gc")

    async def _collect_garbage(self) -> None:
        """The cyclic GC on our clock instead of its own, for many targets.

        A poll replaces most of its target's objects (~120 tracked per target), so at 5,000
        targets the whole state is re-allocated every interval; with the default thresholds
        every survivor counts toward the next full collection, which then scans ~700,000
        objects: a 0.5-1 s pause every few seconds, 10-15 % of the core, and polls starting
        late. The poll path makes no reference cycles (``http1`` avoids the ones asyncio's
        transports and stored exceptions would make), so reference counting frees it all; a
        full collection every ``GC_EVERY`` seconds reclaims what other code leaves in cycles.
        """
        gc.disable()
        try:
            while True:
                await asyncio.sleep(GC_EVERY)
                gc.collect()
        finally:
            gc.enable()

    def _spawn(self, st: TargetState, spread: bool) -> None:
        # Spread many targets over the interval so load is even, first poll within it.
        offset = random.uniform(0, self.cfg.interval) if spread else 0.0
        self._tasks[st.node] = asyncio.create_task(self._loop(st, offset),
                                                   name=f"poll-{st.node}")

    def set_targets(self, targets: Iterable[Target]) -> tuple[int, int, int]:
        """Poll exactly ``targets`` from now on; returns (added, removed, changed).

        A node already polled keeps its state (histories, counters) even when its URLs
        change (a node re-created under the same name is a kube-proxy restart to the
        windows). Nodes are matched by name; a name given twice keeps its first target.
        """
        wanted: dict[str, Target] = {}
        for t in mine(targets, self.cfg.shard):
            wanted.setdefault(t.node, t)
        current = {st.node: st for st in self.states}
        added = removed = changed = 0
        states: list[TargetState] = []
        for node, target in wanted.items():
            st = current.get(node)
            if st is None:
                st = TargetState(target, horizon=self.cfg.horizon)
                added += 1
                if not self.first_round.is_set():
                    self._pending_first.add(node)
                if self._running:
                    self._spawn(st, spread=True)
            elif st.target != target:
                st.retarget(target)
                changed += 1
            states.append(st)
        for node in current.keys() - wanted.keys():
            removed += 1
            task = self._tasks.pop(node, None)
            if task is not None:
                task.cancel()
            self._pending_first.discard(node)
        self.states = states  # replaced, not edited: a render in progress keeps its list
        self._listed = True
        if not self.first_round.is_set() and not self._pending_first:
            self.first_round.set()
        return added, removed, changed

    async def stop(self) -> None:
        self._running = False
        tasks = list(self._tasks.values())
        for extra in (self._discovery_task, self._gc_task):
            if extra is not None:
                tasks.append(extra)
        self._discovery_task = self._gc_task = None
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        if self._client is not None:
            await self._client.aclose()
