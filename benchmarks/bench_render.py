"""``/metrics`` render time: the fast text writer against the prometheus_client collector path.

Run from the repository root::

    python benchmarks/bench_render.py [--targets N] [--runs R]

In this process, no network: targets are fed real polls of the captured v1.30 page (through
the same ``interpret_*`` and ``TargetState.record`` as ``serve``), every poll more
observations in every histogram (the worst case: every summary of every target changes between
two scrapes), 100 different pages per round and each target's own poll times (so values do not
repeat across targets more than they would). After each round of polls, a scrape is timed
(``time.process_time``):

- ``fast``: ``kpexporter.service.text.render_text`` (what ``/metrics`` serves),
- ``collector``: ``generate_latest`` over ``service.openmetrics.make_registry`` (the
  OpenMetrics path, and the text path before the cached writer); for many targets it is
  timed once, it is slow.

Prints medians and the ratio; also checks that both pages are the same bytes. Last, a
per-node page (``/metrics?node=``) of one target out of the many, written after its poll.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from prometheus_client.exposition import generate_latest

from _common import HEALTHZ_1_28, busy_page, fixture, median
from kpexporter.config.schema import Config, Target, build_config
from kpexporter.core.poll import interpret_healthz, interpret_metrics
from kpexporter.core.result import PollResult
from kpexporter.core.state import TargetState
from kpexporter.net.fetcher import Fetched
from kpexporter.service.openmetrics import make_registry
from kpexporter.service.text import render_text

T0 = 1718968125.0


def poll(page: bytes, started: float) -> PollResult:
    """One successful poll of a 1.28-style healthz and ``page``, as ``poll_target`` builds it."""
    h = interpret_healthz(Fetched(200, HEALTHZ_1_28, "application/json", started, 0.002))
    m = interpret_metrics(Fetched(200, page, "text/plain; version=0.0.4", started, 0.004))
    assert not isinstance(h, Exception) and not isinstance(m, Exception)
    return PollResult("n", started, h, 200, started + 0.001, m, started + 0.002, "iptables",
                      (("healthz", 0.002), ("metrics", 0.004)), ())  # type: ignore[arg-type]


def targets(n: int, cfg: Config) -> list[TargetState]:
    return [TargetState(Target(f"node-{i:05d}", f"http://10.0.{i // 250}.{i % 250}:10256/healthz",
                               f"http://10.0.{i // 250}.{i % 250}:10249/metrics"),
                        horizon=cfg.horizon) for i in range(n)]


VARIANTS = 100


def poll_round(states: list[TargetState], base: bytes, k: int, cfg: Config) -> None:
    """Round ``k``: every target polled once, its own time, one of 100 different pages."""
    pages = [poll(busy_page(base, k * VARIANTS + g), T0) for g in range(min(len(states),
                                                                            VARIANTS))]
    for i, st in enumerate(states):
        started = T0 + 15 * k + i * 0.003  # spread over the interval, as the poller does
        r = pages[i % len(pages)]
        st.record(replace(r, started=started, healthz_midpoint=started + 0.001,
                          metrics_midpoint=started + 0.002), cfg)


def cpu(fn: Callable[[], Any]) -> float:
    gc.collect()
    t = time.process_time()
    fn()
    return time.process_time() - t


def measure(n: int, runs: int, collector_runs: int | None = None) -> dict[str, float]:
    """Median CPU seconds per scrape for ``n`` targets, each scrape after a round of polls."""
    cfg = build_config(None, {}, {"node": "x", "log_level": "error"})
    base = fixture()
    states = targets(n, cfg)
    poll_round(states, base, 0, cfg)
    render_text(states)  # the first scrape writes every per-target constant
    fast: list[float] = []
    slow: list[float] = []
    collector_runs = runs if collector_runs is None else collector_runs
    for k in range(1, runs + 1):
        poll_round(states, base, k, cfg)
        fast.append(cpu(lambda: render_text(states)))
        if k <= collector_runs:
            slow.append(cpu(lambda: generate_latest(make_registry(lambda: states))))
    page = render_text(states)
    same = page == generate_latest(make_registry(lambda: states))
    one = states[n // 2]  # /metrics?node=: one node's page out of n, after its poll
    per_node: list[float] = []
    for k in range(runs + 1, runs + 6):
        poll_round([one], base, k, cfg)
        per_node.append(cpu(lambda: render_text([one])))
    return {"targets": n, "fast": median(fast), "collector": median(slow), "bytes": len(page),
            "series": page.count(b"\n") - page.count(b"\n#"), "same": float(same),
            "node": median(per_node), "node_bytes": len(render_text([one]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for n, collector_runs in ((1, args.runs * 4), (args.targets, 1)):
        m = measure(n, args.runs * (4 if n == 1 else 1), collector_runs)
        print(f"{n:5d} target(s): fast {m['fast'] * 1e3:8.2f} ms   collector "
              f"{m['collector'] * 1e3:8.1f} ms   x{m['collector'] / m['fast']:.0f}   "
              f"{m['series']:.0f} series, {m['bytes'] / 1e6:.1f} MB, same page: "
              f"{bool(m['same'])}")
    print(f"per-node page (?node=, one of {m['targets']:.0f}): {m['node'] * 1e3:.2f} ms, "
          f"{m['node_bytes'] / 1e3:.1f} kB")


if __name__ == "__main__":
    main()
