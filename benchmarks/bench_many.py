"""Many targets on one core: the simulator's N nodes against one exporter process, on loopback.

Run from the repository root::

    python benchmarks/bench_many.py [--nodes 5000] [--interval 15] [--rounds 3]
                                    [--scenario churn]

- ``kpexporter simulate --nodes N --spread addresses``: N simulated kube-proxies on
  consecutive loopback addresses 127.X.0.1, 127.X.0.2, ... (X picked free), 2,000 to a
  process (each node holds four descriptors: two listeners, two kept-alive connections),
  pinned to the second core when there is one.
- ``kpexporter serve`` with a config file listing the N targets, pinned to the first core.
- After the first round of polls and one more interval, Prometheus's per-node scrapes start:
  every node's ``/metrics?node=NAME`` once per ``--scrape-interval`` (default: 0.9 × the poll
  interval, so that every node is scraped within every round), spread evenly, from 48
  keep-alive connections with Prometheus's headers (``Accept``: OpenMetrics first,
  ``Accept-Encoding: gzip``); each answer's
  ``kpexporter_last_success_timestamp_seconds`` (the start of the node's last good poll) is
  its poll age. Then for ``--rounds`` intervals: the exporter's CPU over the interval
  (/proc, user+system) and that round's per-node answers: a node *polled every interval*
  answered with a poll at most one interval (+1 s) old, and none of its answers was older.
- Last, one scrape of the whole ``/metrics`` of each exporter, timed, with each node's poll
  age at that instant (the baseline: the way it was scraped before per-node scrapes).
- ``--shards S``: S exporter processes, ``--shard I/S`` each, on the same target list, shard I
  pinned to core I mod the cores (a core per replica, as on a cluster), the simulator and the
  scraping client left to the scheduler; each node must be on exactly one shard's page,
  polled within the interval, and each per-node scrape goes to the shard that polls the node
  (``service.sharding.shard_of``, what the sharded overlay's ``hashmod`` computes).

The baseline beside each figure is the goal: every node polled each interval, ``/metrics`` in
under 1 s, one core. ``targets per core`` extrapolates the measured CPU share linearly.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import http.client
import ipaddress
import random
import re
import socket
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

from _common import (
    PROMETHEUS_ACCEPT,
    Child,
    cores,
    pin_self,
    pinned,
    process_cpu,
    process_rss_mb,
    wait_for,
)
from kpexporter.service.sharding import shard_of

_LAST = re.compile(rb'^kpexporter_last_success_timestamp_seconds\{node="([^"]+)"\} (\S+)$', re.M)
SIM_NODES = 2000
"""Simulated nodes per simulator process."""
_UP = re.compile(rb'^kpexporter_up\{node="[^"]+"\} 1\.0$', re.M)


def free_block(nodes: int) -> ipaddress.IPv4Address:
    """A 127.X.0.1 whose next ``nodes`` addresses are loopback and free on 10256 and 10249."""
    for _ in range(50):
        first = ipaddress.IPv4Address(f"127.{random.randint(2, 250)}.0.1")
        if not (first + nodes - 1).is_loopback:
            continue
        try:
            for probe in (first, first + nodes - 1):
                for port in (10256, 10249):
                    with socket.socket() as s:
                        s.bind((str(probe), port))
        except OSError:
            continue
        return first
    raise RuntimeError("no free loopback block")


def scrape(port: int) -> tuple[float, bytes]:
    """(seconds, gzip body) of one scrape of the exporter, as Prometheus does it."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                 headers={"Accept": PROMETHEUS_ACCEPT,
                                          "Accept-Encoding": "gzip"})
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as r:
        data = r.read()
        assert r.headers.get("Content-Encoding", "") == "gzip"
    return time.perf_counter() - t, data


class NodeScrapes:
    """Prometheus scraping every node as its own target: ``/metrics?node=NAME`` of each node
    once per ``period`` seconds, at evenly spread times, from ``conns`` keep-alive
    connections (threads), each answer's poll age noted."""

    def __init__(self, ports: dict[str, int], period: float, conns: int = 48) -> None:
        self.ports, self.period, self.conns = ports, period, conns
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.samples: list[tuple[str, float, float, int, float]] = []  # node, at, s, bytes, age
        self.errors = 0
        self.threads = [threading.Thread(target=self._run, args=(k,), daemon=True)
                        for k in range(conns)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)

    def take(self) -> list[tuple[str, float, float, int, float]]:
        with self.lock:
            out, self.samples = self.samples, []
        return out

    def _run(self, k: int) -> None:
        names = sorted(self.ports)[k::self.conns]
        random.Random(k).shuffle(names)
        gap = self.period / max(len(names), 1)
        conns: dict[int, http.client.HTTPConnection] = {}
        next_at = time.monotonic() + random.Random(k).uniform(0, gap)
        while not self.stop.is_set():
            for node in names:
                delay = next_at - time.monotonic()
                if delay > 0 and self.stop.wait(delay):
                    return
                next_at = max(next_at + gap, time.monotonic() - self.period)
                port = self.ports[node]
                conn = conns.get(port)
                if conn is None:
                    conn = conns[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                t = time.perf_counter()
                try:
                    conn.request("GET", f"/metrics?node={quote(node)}",
                                 headers={"Accept": PROMETHEUS_ACCEPT,
                                          "Accept-Encoding": "gzip"})
                    r = conn.getresponse()
                    body = r.read()
                    took = time.perf_counter() - t
                    now = time.time()
                    page = gzip.decompress(body) if r.getheader("Content-Encoding") == "gzip" \
                        else body
                    m = _LAST.search(page) if r.status == 200 else None
                    age = now - float(m.group(2)) if m else float("inf")
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conns.pop(port, None)
                    with self.lock:
                        self.errors += 1
                    continue
                with self.lock:
                    self.samples.append((node, now, took, len(body), age))


def run(nodes: int = 5000, interval: float = 15.0, rounds: int = 3,
        scenario: str = "churn", verbose: bool = True, shards: int = 1,
        node_scrapes: bool = True, scrape_interval: float | None = None,
        concurrency: int = 64) -> dict[str, float]:
    cs = cores()
    exporter_core, sim_core = (cs[0], cs[1]) if len(cs) > 1 else (None, None)
    if shards > 1:  # a core per shard, as a replica would have; the load generators float
        sim_core = None
    pin_self(sim_core)  # this process (scrapes, regexes) stays off the exporter's core
    first = free_block(nodes)
    py = __import__("sys").executable
    work = Path(tempfile.mkdtemp(prefix="kpx-bench-many-"))
    # Each simulated node holds two listening sockets and, with the exporter's keep-alive,
    # two connections: processes of SIM_NODES nodes stay far under a descriptor limit
    # (20,000 on some machines), as real kube-proxies are each their own process.
    sims = [Child([*pinned(sim_core), py, "-m", "kpexporter", "simulate", "--nodes",
                   str(min(SIM_NODES, nodes - start)), "--spread", "addresses", "--host",
                   str(first + start), "--scenario", scenario],
                  log=work / f"simulator-{start}.log")
            for start in range(0, nodes, SIM_NODES)]
    exporters: list[Child] = []
    scrapes: NodeScrapes | None = None
    try:
        t0 = time.monotonic()
        for sim in sims:
            while not sim.line(300).startswith("metrics:"):
                pass
        started = time.monotonic() - t0
        cfg = work / "targets.yaml"
        with cfg.open("w") as f:
            f.write(f"interval: {interval}\nlog_level: warning\nconcurrency: {concurrency}\n"
                    "targets:\n")
            for i in range(nodes):
                h = first + i
                f.write(f"  - {{node: node-{i}, healthz_url: 'http://{h}:10256/healthz', "
                        f"metrics_url: 'http://{h}:10249/metrics'}}\n")
        ports = []
        for i in range(shards):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                ports.append(s.getsockname()[1])
            shard = ["--shard", f"{i}/{shards}"] if shards > 1 else []
            core = cs[i % len(cs)] if shards > 1 and len(cs) > 1 else exporter_core
            exporters.append(Child([*pinned(core), py, "-m", "kpexporter", "serve",
                                    "--config", str(cfg), "--listen", f"127.0.0.1:{ports[i]}",
                                    *shard], stdout=None, log=work / f"exporter-{i}.log"))

        def ready(port: int) -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
                return bool(r.status == 200)

        for port in ports:
            wait_for(lambda port=port: ready(port), 3 * interval + 60, "exporter /readyz")
        if verbose:
            print(f"  simulator up in {started:.1f}s; {shards} exporter(s) ready (every node "
                  "polled once)")
        time.sleep(interval)  # one more interval: memos warm, /proxyMode read everywhere
        if node_scrapes:
            scrapes = NodeScrapes({f"node-{i}": ports[shard_of(f"node-{i}", shards)]
                                   if shards > 1 else ports[0] for i in range(nodes)},
                                  scrape_interval or 0.9 * interval)
            scrapes.start()
            time.sleep(interval)  # the scrapes at their pace first
            scrapes.take()
        rows: list[dict[str, float]] = []
        for r in range(rounds):
            cpu0 = sum(process_cpu(e.pid) for e in exporters)
            sim0, t_start = sum(process_cpu(x.pid) for x in sims), time.monotonic()
            time.sleep(interval)
            cpu = sum(process_cpu(e.pid) for e in exporters) - cpu0
            sim_cpu = sum(process_cpu(x.pid) for x in sims) - sim0
            span = time.monotonic() - t_start
            per_node = scrapes.take() if scrapes else []
            stale = {n for n, _, _, _, age in per_node if age > interval + 1.0}
            fresh = {n for n, _, _, _, _ in per_node} - stale
            row = {"cpu": cpu, "sim_cpu": sim_cpu, "span": span,
                   "rss": sum(process_rss_mb(e.pid) for e in exporters),
                   "node_scrapes": len(per_node), "node_fresh": len(fresh),
                   "node_late": sum(1 for x in per_node if x[4] > interval + 1.0),
                   "node_p50": _pct([x[2] for x in per_node], 0.5),
                   "node_p99": _pct([x[2] for x in per_node], 0.99),
                   "node_max_age": max((x[4] for x in per_node), default=float("nan")),
                   "node_bytes": _pct([float(x[3]) for x in per_node], 0.5)}
            rows.append(row)
            if verbose:
                print(f"  round {r + 1}: exporter CPU {cpu:.2f}s of {span:.1f}s "
                      f"({cpu / span:.0%}), RSS {row['rss']:.0f} MB; simulator CPU "
                      f"{sim_cpu / span:.0%}; {len(per_node)} per-node scrapes: "
                      f"{len(fresh)}/{nodes} nodes answered with a poll at most one interval "
                      f"old, {row['node_late']:.0f} older (max {row['node_max_age']:.1f}s); "
                      f"median {row['node_p50'] * 1e3:.1f} ms, p99 {row['node_p99'] * 1e3:.1f}"
                      f" ms, {row['node_bytes'] / 1e3:.1f} kB gzip")
        # Last, the whole page of each exporter once, as a Prometheus scraping /metrics would:
        # every node on exactly one page, its last poll at most one interval old.
        now = time.time()
        timed = [scrape(port) for port in ports]
        pages = [gzip.decompress(z) for _, z in timed]
        seen: dict[str, int] = {}
        lag = []
        for page in pages:
            for node, v in _LAST.findall(page):
                seen[node.decode()] = seen.get(node.decode(), 0) + 1
                lag.append(now - float(v))
        full = {"polled": len(seen) - sum(1 for x in lag if x > interval + 1.0),
                "max_lag": max(lag, default=float("nan")),
                "twice": sum(1 for c in seen.values() if c > 1),
                "up": sum(len(_UP.findall(p)) for p in pages),
                "scrape": max(t for t, _ in timed), "bytes": sum(map(len, pages)),
                "gzip": sum(len(z) for _, z in timed)}
        if verbose:
            print(f"  whole page{'s' if shards > 1 else ''}: {full['polled']:.0f}/{nodes} nodes "
                  f"polled within the interval (max {full['max_lag']:.1f}s ago), "
                  f"{full['twice']:.0f} on two pages, up {full['up']:.0f}; scrape "
                  f"{full['scrape'] * 1e3:.0f} ms ({full['bytes'] / 1e6:.1f} MB, "
                  f"{full['gzip'] / 1e6:.1f} MB gzip)")
        med = {k: sorted(r[k] for r in rows)[len(rows) // 2] for k in rows[0]}
        med["nodes"] = nodes
        med["interval"] = interval
        med["shards"] = shards
        med["cpu_share"] = med["cpu"] / med["span"]
        med["min_polled"] = min(r["node_fresh"] for r in rows) if scrapes else full["polled"]
        med["max_node_late"] = max(r["node_late"] for r in rows)
        med["node_errors"] = scrapes.errors if scrapes else 0
        med.update({f"full_{k}": v for k, v in full.items()})
        med["max_twice"] = full["twice"]
        return med
    finally:
        if scrapes is not None:
            scrapes.close()
        for e in exporters:
            e.stop()
        for sim in sims:
            sim.stop()
        with contextlib.suppress(OSError):
            for p in work.iterdir():
                p.unlink()
            work.rmdir()


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--interval", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scenario", default="churn", help="simulator scenario (churn: new "
                        "observations in every histogram between two polls)")
    parser.add_argument("--shards", type=int, default=1, help="exporter processes, "
                        "--shard I/N each")
    parser.add_argument("--scrape-interval", type=float, default=None,
                        help="per-node scrapes: each node's /metrics?node= this often "
                        "(default: 0.9 x the poll interval)")
    parser.add_argument("--no-node-scrapes", action="store_true")
    parser.add_argument("--concurrency", type=int, default=64, help="the exporter's polls in "
                        "flight at most (config concurrency:)")
    args = parser.parse_args()
    m = run(args.nodes, args.interval, args.rounds, args.scenario, shards=args.shards,
            node_scrapes=not args.no_node_scrapes, scrape_interval=args.scrape_interval,
            concurrency=args.concurrency)
    print(f"{args.nodes} nodes at {args.interval:g}s over {args.shards} shard(s): "
          f"{m['min_polled']:.0f} polled every interval (goal: all), {m['max_twice']:.0f} on "
          f"two shards, exporter CPU {m['cpu_share']:.0%} of one core, /metrics "
          f"{m['full_scrape']:.2f}s, {m['nodes'] / m['cpu_share']:.0f} targets per core "
          f"(extrapolated), RSS {m['rss']:.0f} MB; per-node scrapes {m['node_scrapes']:.0f} a "
          f"round, median {m['node_p50'] * 1e3:.1f} ms, {m['max_node_late']:.0f} older than "
          f"the interval, {m['node_errors']:.0f} errors")


if __name__ == "__main__":
    main()
