"""Memory: RSS after start for one target, its growth over 10,000 polls, bytes per target.

Run from the repository root::

    python benchmarks/bench_memory.py [--polls 10000] [--targets 100]

- RSS after start: ``kpexporter serve`` polling one fake kube-proxy (the captured v1.30 page,
  ``_static_server.py``) every 0.5 s, read from /proc once it is ready and has polled a few
  times. Baseline: a Python process that imports what ``serve`` imports and nothing else.
- Growth: the same, polling every 2 ms, RSS at 1,000, 5,000 and ``--polls`` polls; once with
  the same page every poll (``idle``), once with one more observation in every histogram every
  poll (``busy``: each poll is a new window snapshot, so the history grows until its cap of
  4,096 snapshots per series, reached at poll 4,096, then stays flat).
- Bytes per target: in this process, ``--targets`` targets each fed the longest window's worth
  of 15 s polls (default windows 5m,1h: 241 polls; also with ``--windows 5m``) of the v1.30
  page, idle and busy, their ``/metrics`` lines written; ``tracemalloc``'s retained bytes per
  target, and the part of it allocated in ``stats/windows.py`` (the window history).
"""

from __future__ import annotations

import argparse
import gc
import re
import sys
import time
import tracemalloc
import urllib.request
from collections.abc import Callable

from _common import (
    Child,
    cores,
    fixture,
    free_port,
    pinned,
    process_rss_mb,
    static_kube_proxy,
    wait_for,
)
from kpexporter.config.schema import build_config

_POLLS = re.compile(rb'^kpexporter_poll_duration_seconds_count\{endpoint="healthz",[^}]*\} (\S+)',
                    re.M)
_IMPORTS = ("import kpexporter.cli, kpexporter.service.poller, kpexporter.service.app, uvicorn, "
            "fastapi, httpx, prometheus_client, yaml, sys; print('ready', flush=True); "
            "sys.stdin.read()")


def _cores() -> tuple[int | None, int | None]:
    cs = cores()
    return (cs[0], cs[1]) if len(cs) > 1 else (None, None)


def _polls(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        m = _POLLS.search(r.read())
    return int(float(m.group(1))) if m else 0


def _serve(healthz: str, metrics: str, interval: str, core: int | None) -> tuple[Child, int]:
    port = free_port()
    child = Child([*pinned(core), sys.executable, "-m", "kpexporter", "serve", "--node", "bench",
                   "--healthz-url", healthz, "--metrics-url", metrics, "--interval", interval,
                   "--listen", f"127.0.0.1:{port}", "--log-level", "error"], stdout=None)

    def ready() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
            return bool(r.status == 200)

    wait_for(ready, 60, "exporter /readyz")
    return child, port


def rss_after_start() -> dict[str, float]:
    here, other = _cores()
    base = Child([*pinned(here), sys.executable, "-c", _IMPORTS])
    try:
        base.line(60)
        baseline = process_rss_mb(base.pid)
    finally:
        base.stop()
    with static_kube_proxy(core=other) as (healthz, metrics):
        child, port = _serve(healthz, metrics, "0.5", here)
        try:
            wait_for(lambda: _polls(port) >= 4, 30, "four polls")
            rss = process_rss_mb(child.pid)
        finally:
            child.stop()
    return {"rss": rss, "baseline": baseline}


def growth(polls: int, busy: bool) -> dict[str, float]:
    """RSS (MB) at 1,000, 5,000 and ``polls`` polls of one target, 2 ms apart."""
    here, other = _cores()
    marks = sorted({1000, min(5000, polls), polls})
    out: dict[str, float] = {}
    with static_kube_proxy(busy=busy, core=other) as (healthz, metrics):
        child, port = _serve(healthz, metrics, "0.002", here)
        try:
            for mark in marks:
                wait_for(lambda m=mark: _polls(port) >= m, 600, f"{mark} polls")
                out[str(mark)] = process_rss_mb(child.pid)
        finally:
            child.stop()
    return out


def bytes_per_target(targets: int, busy: bool, windows: str = "5m,1h") -> float:
    """Retained bytes per target after the longest window's worth of 15 s polls."""
    return target_bytes(targets, busy, windows)["total"]


def target_bytes(targets: int, busy: bool, windows: str = "5m,1h") -> dict[str, float]:
    """Retained bytes per target after the longest window's worth of 15 s polls: ``total``,
    and ``windows``, the part allocated by ``stats/windows.py`` (the histories, and the
    window increases the derived summaries keep)."""
    import bench_render  # the same feeding of real polls as the render benchmark

    from kpexporter.service.text import target_pieces
    cfg = build_config(None, {}, {"node": "x", "log_level": "error", "windows": windows})
    page = fixture()
    rounds = int(cfg.horizon / 15) + 1
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        states = bench_render.targets(targets, cfg)
        feed: Callable[[int], None]
        if busy:
            def feed(k: int) -> None:
                bench_render.poll_round(states, page, k, cfg)
        else:
            result = bench_render.poll(page, bench_render.T0)
            from dataclasses import replace

            def feed(k: int) -> None:
                for i, st in enumerate(states):
                    t = bench_render.T0 + 15 * k + i * 0.003
                    st.record(replace(result, started=t, healthz_midpoint=t,
                                      metrics_midpoint=t), cfg)
        for k in range(rounds):
            feed(k)
            for st in states:
                target_pieces(st)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        snap = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(True, "*/kpexporter/stats/windows.py")])
        in_windows = sum(stat.size for stat in snap.statistics("filename"))
    finally:
        tracemalloc.stop()
    return {"total": (after - before) / targets, "windows": in_windows / targets}


def slo_bytes_per_target(busy: bool, targets: int = 20, interval: float = 15.0) -> float:
    """Retained bytes of one target's SLO state (``core.slo_state``) once its history is full:
    the default SLOs and windows (5m, 30m, 1h, 6h), 6 h of ``interval`` polls of the v1.30
    page, idle (only availability moves) or busy (every histogram moves every poll)."""
    import bench_render

    from _common import busy_page
    from kpexporter.core.derive import derive
    from kpexporter.core.slo_state import SLOState
    cfg = build_config(None, {}, {"node": "x", "log_level": "error"})
    page = fixture()
    rounds = int(cfg.slos.horizon / interval) + 1
    results = [bench_render.poll(busy_page(page, k if busy else 0), bench_render.T0)
               for k in range(rounds if busy else 1)]
    derived = derive(results[0], None, cfg)
    from dataclasses import replace
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        states = [SLOState(cfg.slos) for _ in range(targets)]
        for k in range(rounds):
            r = replace(results[k % len(results)], started=bench_render.T0 + interval * k)
            for st in states:
                st.record(r, derived, cfg.pending_threshold)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return (after - before) / targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--polls", type=int, default=10_000)
    parser.add_argument("--targets", type=int, default=100)
    args = parser.parse_args()
    start = rss_after_start()
    print(f"RSS after start, one target: {start['rss']:.1f} MB (goal <= 60; the same imports "
          f"alone: {start['baseline']:.1f} MB)")
    for busy in (False, True):
        t = time.monotonic()
        g = growth(args.polls, busy)
        print(f"{'busy' if busy else 'idle'} page, RSS by polls: "
              + ", ".join(f"{k}: {v:.1f} MB" for k, v in g.items())
              + f"  ({time.monotonic() - t:.0f}s)")
    for windows in ("5m,1h", "5m"):
        for busy in (False, True):
            b = target_bytes(args.targets, busy, windows)
            print(f"windows {windows}, {'busy' if busy else 'idle'}: {b['total'] / 1024:.0f} KiB "
                  f"retained per target once the history is full, {b['windows'] / 1024:.1f} KiB "
                  "of it the window history")
    for busy in (False, True):
        b = slo_bytes_per_target(busy)
        print(f"SLO history, default slos (windows 5m,30m,1h,6h; 15 s polls), "
              f"{'busy' if busy else 'idle'}: {b / 1024:.0f} KiB retained per target")


if __name__ == "__main__":
    main()
