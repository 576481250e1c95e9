"""Every benchmark of issue 4, each figure beside its baseline measured in the same run.

Run from the repository root (``make bench``)::

    python benchmarks/run_all.py [--quick] [--nodes 5000]

Prints a progress line per benchmark, then one Markdown table (the one quoted in
``docs/performance.md`` and the README). Medians of several runs throughout; the machine, the
Python and the cores used are printed with it. ``--quick`` runs fewer repetitions and 1,000
nodes instead of 5,000 (a smoke test, not the figures to quote).

The benchmarks, each also runnable alone:

- ``bench_read.py``: the fast reader against prometheus_client's full parse, every captured
  page and a synthetic 1 MB page;
- ``bench_cycle.py``: one whole poll cycle's CPU against prometheus_client's parse alone;
- ``bench_many.py``: the simulator's N nodes against one exporter process, one core each,
  with Prometheus's per-node scrapes running; then against 2 shards (``--shard I/2``);
- ``bench_render.py``: ``/metrics`` render time, fast writer against the collector path;
- ``bench_scrape.py``: one per-node scrape with Prometheus's headers, against
  prometheus_client's OpenMetrics writer, and served as ``serve`` serves it against uvicorn's
  h11 with FastAPI;
- ``bench_memory.py``: RSS after start, growth over 10,000 polls, bytes per target;
- ``bench_connections.py``: memory a silent connection holds on the exporter's port, plain
  and TLS (400 connections; 100 with ``--quick``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import bench_connections
import bench_cycle
import bench_many
import bench_memory
import bench_read
import bench_render
import bench_scrape

from _common import FIXTURES, cores, table


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds < 0.1 else f"{seconds:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, 1,000 nodes")
    parser.add_argument("--nodes", type=int, default=None, help="many-target run size")
    args = parser.parse_args()
    quick = args.quick
    nodes = args.nodes or (1000 if quick else 5000)
    rows: list[tuple[str, ...]] = []
    t_all = time.monotonic()
    available = cores()

    def step(name: str) -> None:
        print(f"[{time.monotonic() - t_all:5.0f}s] {name} ...", file=sys.stderr, flush=True)

    # ---- read path
    step("read path (bench_read)")
    pages = [(p.name, p.read_bytes()) for p in sorted(FIXTURES.glob("*.txt"))]
    base = (FIXTURES / bench_read.BASE_PAGE).read_text()
    pages.append(("synthetic 1 MB", bench_read.synthetic_page(base).encode()))
    worst = ("", float("inf"), 0.0, 0.0)
    worst_cold = ("", float("inf"), 0.0, 0.0)
    for name, data in pages:
        m = bench_read.measure(data, 7 if quick else 31)
        ratio = m["prometheus_client"] / m["read warm"]
        if name == bench_read.BASE_PAGE:
            full = m["prometheus_client"]
            rows.append(("Read path, v1.30 page (84 KB): read + extract",
                         _ms(m["read+extract"]), f"prometheus_client parse {_ms(full)}",
                         f"{full / m['read+extract']:.0f}x faster (goal >= 30x)"))
            rows.append(("Read path, v1.30 page: read + extract + passthrough (default)",
                         _ms(m["+passthrough"]), f"prometheus_client parse {_ms(full)}",
                         f"{full / m['+passthrough']:.0f}x faster"))
            rows.append(("Read path, v1.30 page: cold read (first poll of the process)",
                         _ms(m["read cold"]), f"prometheus_client parse {_ms(full)}",
                         f"{full / m['read cold']:.0f}x faster (goal >= 30x; warm "
                         f"{full / m['read warm']:.0f}x)"))
        if ratio < worst[1]:
            worst = (name, ratio, m["read warm"], m["prometheus_client"])
        cold = m["prometheus_client"] / m["read cold"]
        if cold < worst_cold[1]:
            worst_cold = (name, cold, m["read cold"], m["prometheus_client"])
    rows.append((f"Read path, slowest of {len(pages)} pages ({worst[0][:24]})",
                 _ms(worst[2]), f"prometheus_client parse {_ms(worst[3])}",
                 f"{worst[1]:.0f}x faster (goal >= 30x)"))
    rows.append((f"Read path cold, slowest of {len(pages)} pages ({worst_cold[0][:24]})",
                 _ms(worst_cold[2]), f"prometheus_client parse {_ms(worst_cold[3])}",
                 f"{worst_cold[1]:.0f}x faster (see docs/performance.md)"))

    # ---- poll cycle
    for busy in (False, True):
        step(f"poll cycle, {'busy' if busy else 'idle'} page (bench_cycle)")
        c = bench_cycle.measure(busy, 100 if quick else 200, 3 if quick else 7)
        rows.append((f"Poll cycle CPU, v1.30 page, {'busy' if busy else 'idle'} "
                     f"({'every histogram moves' if busy else 'same page'})",
                     _ms(c["cycle"]), f"prometheus_client parse {_ms(c['parse'])}",
                     f"{c['parse'] / c['cycle']:.1f}x cheaper (goal > 1x)"))

    # ---- many targets
    step(f"{nodes} simulated nodes on loopback (bench_many), ~{(4 if quick else 6) * 15 + 30}s")
    m = bench_many.run(nodes, 15.0, 2 if quick else 3, "churn", verbose=True)
    rows.append((f"{nodes} nodes at 15 s (simulator 'churn'), per-node scrapes running: "
                 "polled every interval",
                 f"{m['min_polled']:.0f} of {nodes} (worst round)", "goal: all",
                 "ok" if m["min_polled"] == nodes else "MISSED"))
    rows.append((f"{nodes} nodes: per-node scrape /metrics?node= (HTTP, gzip, each node "
                 "every 13.5 s)", f"median {_ms(m['node_p50'])}, p99 {_ms(m['node_p99'])}",
                 f"{m['node_bytes'] / 1e3:.1f} kB gzip a node",
                 f"{m['max_node_late']:.0f} answers with a poll older than the interval"))
    rows.append((f"{nodes} nodes at 15 s: exporter CPU", f"{m['cpu_share']:.0%} of one core",
                 "goal: <= 100% of one core",
                 f"{nodes / m['cpu_share']:.0f} targets per core (extrapolated)"))
    rows.append((f"{nodes} nodes: whole /metrics scrape (gzip, while polling)",
                 _ms(m["full_scrape"]), "goal < 1 s",
                 f"{m['full_bytes'] / 1e6:.0f} MB, {m['full_gzip'] / 1e6:.1f} MB gzip"))

    # ---- sharding
    step(f"{nodes} nodes over 2 shards (bench_many --shards 2), ~{(4 if quick else 6) * 15 + 30}s")
    sh = bench_many.run(nodes, 15.0, 2 if quick else 3, "churn", verbose=True, shards=2)
    rows.append((f"{nodes} nodes over 2 shards (--shard 0/2, 1/2): each polled every interval "
                 "by exactly one", f"{sh['min_polled']:.0f} of {nodes} polled, "
                 f"{sh['max_twice']:.0f} on both (worst round)", "goal: all, none on both",
                 "ok" if sh["min_polled"] == nodes and sh["max_twice"] == 0 else "MISSED"))
    rows.append((f"{nodes} nodes over 2 shards: exporter CPU (both)",
                 f"{sh['cpu_share']:.0%} of one core", f"one process: {m['cpu_share']:.0%}",
                 f"whole /metrics of a shard {_ms(sh['full_scrape'])}, "
                 f"{sh['full_bytes'] / 2e6:.0f} MB"))

    # ---- render
    step("render (bench_render)")
    one = bench_render.measure(1, 8 if quick else 20)
    rows.append(("Render /metrics, one target (after a poll)", _ms(one["fast"]),
                 f"collector path {_ms(one['collector'])}",
                 f"{one['collector'] / one['fast']:.0f}x faster (goal <= 5 ms)"))
    many = bench_render.measure(nodes, 2 if quick else 3, 1)
    rows.append((f"Render, {nodes} targets, every line rewritten (no pre-write)",
                 _ms(many["fast"]), f"collector path {_ms(many['collector'])}",
                 f"{many['collector'] / many['fast']:.0f}x faster, same page: "
                 f"{bool(many['same'])}"))
    rows.append((f"Render /metrics?node=, one node of {nodes} (after its poll)",
                 _ms(many["node"]), f"whole page {_ms(many['fast'])}",
                 f"{many['node_bytes'] / 1e3:.1f} kB"))

    # ---- one per-node scrape, as Prometheus asks for it
    step("per-node scrape (bench_scrape), ~20s")
    sc = bench_scrape.in_process(200, 1000 if quick else 4000)
    rows.append(("Per-node scrape: page as Prometheus asks (OpenMetrics, gzip), one node",
                 _ms(sc["page"]), f"prometheus_client writer {_ms(sc['collector'])}",
                 f"{sc['collector'] / sc['page']:.0f}x faster, {sc['bytes'] / 1e3:.1f} kB"))
    n_req = 1000 if quick else 4000
    quick_cpu, h11_cpu = (bench_scrape.served(200, n_req, p) for p in ("serve", "h11"))
    rows.append(("Per-node scrape served as `serve` does (quick path, uvloop): server CPU",
                 _ms(quick_cpu), f"uvicorn h11 + FastAPI {_ms(h11_cpu)}",
                 f"{h11_cpu / quick_cpu:.1f}x cheaper"))

    # ---- memory
    step("memory: RSS after start (bench_memory)")
    start = bench_memory.rss_after_start()
    rows.append(("RSS after start, one target", f"{start['rss']:.1f} MB",
                 f"same imports alone {start['baseline']:.1f} MB", "goal <= 60 MB"))
    polls = 3000 if quick else 10_000
    for busy in (False, True):
        step(f"memory: {polls} polls, {'busy' if busy else 'idle'} page")
        g = bench_memory.growth(polls, busy)
        marks = list(g)
        first, last = marks[0], marks[-1]
        note = f"{g[last] - g[first]:+.1f} MB from poll {first} to {last}"
        if busy and len(marks) > 2:
            note = (f"{g[last] - g[marks[1]]:+.1f} MB from poll {marks[1]} to {last}, once the "
                    "history is at its cap (4,096 snapshots a series)")
        rows.append((f"RSS over {polls} polls, {'busy' if busy else 'idle'} page",
                     " -> ".join(f"{g[k]:.1f}" for k in marks) + " MB",
                     "at polls " + ", ".join(marks), note))
    step("memory: bytes per target")
    targets = 20 if quick else 100
    for windows in ("5m,1h", "5m"):
        idle_d = bench_memory.target_bytes(targets, False, windows)
        busy_d = bench_memory.target_bytes(targets, True, windows)
        idle, busy_b = idle_d["total"], busy_d["total"]
        rows.append((f"Bytes per target, windows {windows}, history full",
                     f"{idle / 1024:.0f} KiB idle, {busy_b / 1024:.0f} KiB busy",
                     "(tracemalloc, retained)",
                     f"{nodes} targets: {idle * nodes / 2**20:.0f}-{busy_b * nodes / 2**20:.0f}"
                     " MiB"))
        rows.append((f"  of which the window history (stats/windows.py), windows {windows}",
                     f"{idle_d['windows'] / 1024:.1f} KiB idle, "
                     f"{busy_d['windows'] / 1024:.1f} KiB busy", "(tracemalloc, retained)",
                     "goal <= 16 KiB idle, <= 64 KiB busy"))

    step("memory: SLO history per target")
    slo_idle, slo_busy = (bench_memory.slo_bytes_per_target(b) for b in (False, True))
    rows.append(("SLO history per target, default slos (5m,30m,1h,6h; 15 s polls), full",
                 f"{slo_idle / 1024:.0f} KiB idle, {slo_busy / 1024:.0f} KiB busy",
                 "(tracemalloc, retained)",
                 f"{nodes} targets: {slo_idle * nodes / 2**20:.0f}-"
                 f"{slo_busy * nodes / 2**20:.0f} MiB"))

    conns = 100 if quick else 400
    step(f"memory: {conns} silent connections, plain and TLS (bench_connections), ~15s")
    for label, before, during, after, per in bench_connections.run(conns):
        rows.append((f"Connections: {conns} x {label}", f"{per:.0f} KiB a connection "
                     f"(RSS {during:.1f} MB held)", f"RSS before {before:.1f} MB",
                     f"{after:.1f} MB after they closed (see docs/performance.md)"))

    print()
    print(f"kpexporter benchmarks, {time.strftime('%Y-%m-%d')}: Python "
          f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs "
          f"(cores {available}), {'quick run' if quick else 'full run'}, "
          f"{time.monotonic() - t_all:.0f}s")
    print()
    print(table(rows, ("figure", "measured", "baseline (same run)", "ratio / goal")))


if __name__ == "__main__":
    main()
