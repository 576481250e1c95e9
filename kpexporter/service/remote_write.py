"""Push: every poll's series to remote-write receivers, delivered like Prometheus's queue.

What is sent. After each poll of a target, that target's samples as ``/metrics`` would show
them (``service.series`` walks the family table), stamped with the poll's start time, plus
the process-level samples and a synthetic ``up`` per job, as Prometheus's own remote write
would forward a scrape. Labels added as a scrape would add them: ``job`` (``kpexporter`` for
``kpexporter_*`` series, ``kube-proxy`` for kube-proxy's own passed-through series, the
selectors of ``alerts/`` and of the kubernetes-mixin), ``instance`` (``NODE:PORT``, the
address Prometheus would scrape), then each receiver's ``external_labels`` (which may
override ``job`` and ``instance`` but never a series' own label; a series label that
clashes with ``job``/``instance`` becomes ``exported_*``). Staleness markers as Prometheus
writes them: a series of a target's previous poll that its next poll lacks gets one
:data:`STALE_NAN` sample at the new poll's timestamp, and when a target leaves the state list
(discovery dropped the node, the shard changed) each series of its last poll gets one at the
time of that collect (the process-level samples are tracked the same way, though their set
only grows today); so the receiver ends them at once, not after its 5-minute lookback.

How. One queue per receiver, bounded by ``queue.capacity`` samples: when full, the oldest
are dropped and counted (``kpexporter_remote_write_samples_dropped_total{reason=
"queue_full"}``). One sender task per receiver takes batches of at most
``max_samples_per_send`` (a partial batch once its oldest sample waited
``batch_send_deadline``), encodes and compresses them in a worker thread, and POSTs them one
at a time, in order: a 2xx is sent, a 5xx/429/no answer is retried with exponential backoff
(``min_backoff`` doubling to ``max_backoff``, or the receiver's ``Retry-After`` if longer)
while newer samples queue up behind it, any other answer fails the batch. Nothing here waits
on a receiver in the poll loop or in ``/metrics``: collecting is a walk over the states after
each poll, and every request is awaited only by its own sender task.

Lost in an outage: nothing while the samples made during it fit in ``capacity`` (at one
target, the default 20,000 holds ~33 polls of a busy dual-stack page with the default
pass-through, ~600 samples each: 8 minutes at 15 s, ~10 MB); beyond that, the oldest. On
shutdown the queues get ``FLUSH_SECONDS`` to drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import struct
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from kpexporter.config.remote_write import RemoteWrite
from kpexporter.config.schema import Config, redacted
from kpexporter.core.state import TargetState
from kpexporter.logs import event
from kpexporter.net.remote_write import RemoteWriteClient
from kpexporter.promtext.writerequest import Sample, compress, encode, series_labels
from kpexporter.service.families import PREFIX
from kpexporter.service.remote_write_stats import ReceiverStats, receiver
from kpexporter.service.series import SeriesSample, process_samples, target_samples

__all__ = ["FLUSH_SECONDS", "PASSTHROUGH_JOB", "STALE_NAN", "Outbox", "RemoteWriter", "expand_env",
           "labelled"]

FLUSH_SECONDS = 5.0
_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
PASSTHROUGH_JOB = "kube-proxy"
"""``job`` of kube-proxy's own series: the kubernetes-mixin's selector."""
OWN_JOB = "kpexporter"
STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
"""Prometheus's staleness marker (``value.StaleNaN`` in ``prometheus/model/value``): a NaN
with these exact bits, which a receiver stores as "the series ended here" rather than as a
value (any other NaN is an ordinary sample). Built from the bits because ``float("nan")``
has other ones; passed through unchanged as a protobuf double, never computed with."""

_Key = tuple[str, tuple[tuple[str, str], ...]]
"""A series before :func:`labelled`: (sample name, its labels sorted)."""


def _key(sample: SeriesSample) -> _Key:
    return sample[0], tuple(sorted(sample[1].items()))


def _stale(keys: frozenset[_Key]) -> list[SeriesSample]:
    return [(name, dict(labels), STALE_NAN) for name, labels in sorted(keys)]


def labelled(samples: Sequence[SeriesSample], ts_ms: int, target: dict[str, str],
             external: Sequence[tuple[str, str]]) -> list[Sample]:
    """Remote-write samples: ``target`` labels (job, instance) and ``external`` labels added
    as Prometheus adds them (a clashing series label becomes ``exported_*``; an external
    label never overrides a series label)."""
    out = []
    for name, labels, value in samples:
        own = name.startswith(PREFIX) or (name == "up" and "node" not in labels)
        job = target["job"] if own else PASSTHROUGH_JOB
        pairs = dict(labels)
        for key, v in (("job", job), ("instance", target["instance"])):
            if key in pairs:
                exported = "exported_" + key
                while exported in pairs:
                    exported = "exported_" + exported
                pairs[exported] = pairs.pop(key)
            pairs[key] = v
        for key, v in external:
            if key not in ("job", "instance"):
                pairs.setdefault(key, v)
        out.append(Sample(series_labels(name, pairs), value, ts_ms))
    return out


def expand_env(value: str, env: Mapping[str, str]) -> str:
    """``${VAR}`` in an external label's value becomes the variable's value ("" when unset),
    as Prometheus's ``expand-external-labels``: one config for a DaemonSet, each pod's
    ``${NODE_NAME}`` its own; ``$$`` is a literal ``$``."""
    return _ENV_REF.sub(lambda m: "$" if m[0] == "$$" else env.get(m[1], ""), value)


class Outbox:
    """One receiver's bounded FIFO of samples (no I/O): drops the oldest beyond capacity."""

    def __init__(self, capacity: int, stats: ReceiverStats) -> None:
        self.capacity = capacity
        self.stats = stats
        self._items: deque[tuple[float, Sample]] = deque()  # (enqueued at, sample)
        self.in_flight = 0
        self.wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, samples: Sequence[Sample], now: float) -> int:
        """Queue ``samples``; returns how many of the oldest were dropped to make room."""
        self._items.extend((now, s) for s in samples)
        over = len(self._items) - self.capacity
        if over > 0:
            for _ in range(over):
                self._items.popleft()
            self.stats.dropped["queue_full"] += over
        self.stats.pending = len(self._items) + self.in_flight
        self.wake.set()
        return max(over, 0)

    def oldest(self) -> float | None:
        return self._items[0][0] if self._items else None

    def take(self, n: int) -> list[Sample]:
        batch = [self._items.popleft()[1] for _ in range(min(n, len(self._items)))]
        self.in_flight = len(batch)
        self.stats.pending = len(self._items) + self.in_flight
        return batch

    def done(self) -> None:
        self.in_flight = 0
        self.stats.pending = len(self._items)


class _Sender:
    """Sends one receiver's outbox in order; retries as the module docstring says."""

    def __init__(self, rw: RemoteWrite, instance: str) -> None:
        ext = {k: expand_env(v, os.environ) for k, v in rw.external_labels}
        rw = replace(rw, external_labels=tuple(sorted(ext.items())))
        self.rw = rw
        self.target = {"job": ext.get("job", OWN_JOB), "instance": ext.get("instance", instance)}
        self.flushing = False  # send partial batches at once (shutdown)
        self.url = redacted(rw.url)
        self.stats = receiver(self.url)
        self.outbox = Outbox(rw.queue.capacity, self.stats)
        self.client = RemoteWriteClient(rw)
        self._failing = ""  # the problem last logged ("" while sends succeed)

    async def _next_batch(self) -> list[Sample]:
        q = self.rw.queue
        box = self.outbox
        while True:
            oldest = box.oldest()
            if oldest is not None:
                wait = oldest + q.batch_send_deadline - time.time()
                if len(box) >= q.max_samples_per_send or wait <= 0 or self.flushing:
                    return box.take(q.max_samples_per_send)
            else:
                wait = None
            box.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(box.wake.wait(), wait)

    async def run(self) -> None:
        while True:
            batch = await self._next_batch()
            await self.deliver(batch)

    async def deliver(self, batch: list[Sample]) -> None:
        """Send one batch until it is delivered or hopeless (never raises but cancellation)."""
        q = self.rw.queue
        try:
            body = await asyncio.to_thread(lambda: compress(encode(batch)))
            backoff = q.min_backoff
            while True:
                answer = await self.client.post(body, time.time())
                if answer.delivered:
                    self.stats.sent += len(batch)
                    self.stats.last_send = time.time()
                    if self._failing:
                        event(20, "remote_write_recovered", url=self.url)
                        self._failing = ""
                    return
                if answer.message != self._failing:  # log a change, not every retry
                    self._failing = answer.message
                    event(30, "remote_write_problem", url=self.url, status=answer.status,
                          retrying=answer.retry, error=answer.message)
                if not answer.retry:
                    self.stats.failed += len(batch)
                    return
                await asyncio.sleep(max(backoff, answer.retry_after or 0.0))
                backoff = min(backoff * 2, q.max_backoff)
        finally:
            self.outbox.done()


class RemoteWriter:
    """Collects each poll's samples into every receiver's outbox; runs the senders."""

    def __init__(self, cfg: Config, states: Callable[[], Sequence[TargetState]],
                 instance: str | None = None) -> None:
        self.cfg = cfg
        self.states = states
        instance = instance or f"{cfg.node}:{cfg.listen_port}"
        self.senders = [_Sender(rw, instance) for rw in cfg.remote_write]
        self._seen: weakref.WeakKeyDictionary[TargetState, int] = weakref.WeakKeyDictionary()
        # The series of each node's last collected poll (and of the last process-level
        # samples): only the last, so what goes stale next is known and memory stays bounded.
        self._last: dict[str, frozenset[_Key]] = {}
        self._last_own: frozenset[_Key] = frozenset()
        self._tasks: list[asyncio.Task[None]] = []
        self.tick = min(1.0, cfg.interval / 4)

    def collect(self) -> int:
        """Queue the samples of every target polled since the last call, with staleness
        markers for the series that went away (module docstring); returns how many samples
        (per receiver) were queued."""
        fresh: list[tuple[int, list[SeriesSample]]] = []
        present: set[str] = set()
        for st in self.states():
            present.add(st.node)
            last = st.last
            if last is None or self._seen.get(st) == st.version:
                continue
            self._seen[st] = st.version
            samples = list(target_samples(st))
            if self.cfg.passthrough:  # up{job="kube-proxy"}: was kube-proxy read
                d = st.derived
                samples.append(("up", {"node": st.node},
                                1.0 if d is not None and d.up else 0.0))
            keys = frozenset(map(_key, samples))
            samples += _stale(self._last.get(st.node, frozenset()) - keys)
            self._last[st.node] = keys
            fresh.append((round(last.started * 1000), samples))
        now = time.time()
        gone: list[SeriesSample] = []
        for node in [n for n in self._last if n not in present]:
            gone += _stale(self._last.pop(node))
        if not fresh and not gone:
            return 0
        own: list[SeriesSample] = []
        if fresh:
            ts = max(t for t, _ in fresh)
            own = [("up", {}, 1.0), *process_samples()]
            keys = frozenset(map(_key, own))
            own += _stale(self._last_own - keys)
            self._last_own = keys
        n = 0
        for s in self.senders:
            batch: list[Sample] = []
            for t, samples in sorted(fresh, key=lambda f: f[0]):
                batch += labelled(samples, t, s.target, s.rw.external_labels)
            if own:
                batch += labelled(own, ts, s.target, s.rw.external_labels)
            batch += labelled(gone, round(now * 1000), s.target, s.rw.external_labels)
            s.outbox.put(batch, now)
            n = len(batch)
        return n

    async def run(self) -> None:
        """Collect after every poll and send, until cancelled (then :meth:`close`)."""
        self._tasks = [asyncio.create_task(s.run(), name=f"remote-write {s.url}")
                       for s in self.senders]
        while True:
            self.collect()
            await asyncio.sleep(self.tick)

    async def close(self, flush: float = FLUSH_SECONDS) -> None:
        """Give the queues ``flush`` seconds to drain, then stop."""
        self.collect()
        for s in self.senders:
            s.flushing = True
            s.outbox.wake.set()
        deadline = time.monotonic() + flush
        while (any(len(s.outbox) or s.outbox.in_flight for s in self.senders)
               and time.monotonic() < deadline and all(not t.done() for t in self._tasks)):
            await asyncio.sleep(0.05)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for s in self.senders:
            await s.client.aclose()
