"""Many targets on one core: the simulator's N nodes against one exporter process, on loopback.

Run from the repository root::

    python benchmarks/bench_many.py [--nodes 5000] [--interval 15] [--rounds 3]
                                    [--scenario churn]

- ``kpexporter simulate --nodes N --spread addresses`` in its own process: N simulated
  kube-proxies on consecutive loopback addresses 127.X.0.1, 127.X.0.2, ... (X picked free),
  pinned to the second core when there is one.
- ``kpexporter serve`` with a config file listing the N targets, pinned to the first core.
- After the first round of polls and one more interval, every interval for ``--rounds``
  intervals: the exporter's CPU over that interval (/proc, user+system, including one scrape),
  then one scrape of ``/metrics`` as Prometheus does it (``Accept-Encoding: gzip``), timed.
  From the page: each node's ``kpexporter_last_success_timestamp_seconds`` (the start of its
  last good poll; a node polled every interval is never more than one interval behind) and the
  polls counted since the previous scrape.

The baseline beside each figure is the goal: every node polled each interval, ``/metrics`` in
under 1 s, one core. ``targets per core`` extrapolates the measured CPU share linearly.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import ipaddress
import random
import re
import socket
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import Child, cores, pin_self, pinned, process_cpu, process_rss_mb, wait_for

_LAST = re.compile(rb'^kpexporter_last_success_timestamp_seconds\{node="([^"]+)"\} (\S+)$', re.M)
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
                                 headers={"Accept-Encoding": "gzip"})
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as r:
        data = r.read()
        assert r.headers.get("Content-Encoding", "") == "gzip"
    return time.perf_counter() - t, data


def run(nodes: int = 5000, interval: float = 15.0, rounds: int = 3,
        scenario: str = "churn", verbose: bool = True) -> dict[str, float]:
    cs = cores()
    exporter_core, sim_core = (cs[0], cs[1]) if len(cs) > 1 else (None, None)
    pin_self(sim_core)  # this process (scrapes, regexes) stays off the exporter's core
    first = free_block(nodes)
    py = __import__("sys").executable
    work = Path(tempfile.mkdtemp(prefix="kpx-bench-many-"))
    sim = Child([*pinned(sim_core), py, "-m", "kpexporter", "simulate", "--nodes", str(nodes),
                 "--spread", "addresses", "--host", str(first), "--scenario", scenario],
                log=work / "simulator.log")
    exporter: Child | None = None
    try:
        t0 = time.monotonic()
        while not sim.line(300).startswith("metrics:"):
            pass
        started = time.monotonic() - t0
        cfg = work / "targets.yaml"
        with cfg.open("w") as f:
            f.write(f"interval: {interval}\nlog_level: warning\ntargets:\n")
            for i in range(nodes):
                h = first + i
                f.write(f"  - {{node: node-{i}, healthz_url: 'http://{h}:10256/healthz', "
                        f"metrics_url: 'http://{h}:10249/metrics'}}\n")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        exporter = Child([*pinned(exporter_core), py, "-m", "kpexporter", "serve", "--config",
                          str(cfg), "--listen", f"127.0.0.1:{port}"], stdout=None,
                         log=work / "exporter.log")

        def ready() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
                return bool(r.status == 200)

        wait_for(ready, 3 * interval + 60, "exporter /readyz")
        if verbose:
            print(f"  simulator up in {started:.1f}s; exporter ready (every node polled once)")
        time.sleep(interval)  # one more interval: memos warm, /proxyMode read everywhere
        scraped: list[tuple[float, float, float, float, float, float, bytes]] = []
        for _ in range(rounds):  # measure now, read the pages afterwards (not on the sim's core)
            cpu0, sim0, t_start = process_cpu(exporter.pid), process_cpu(sim.pid), \
                time.monotonic()
            time.sleep(max(0.0, interval - 0.05))
            now = time.time()  # the page shows the polls that started before this
            seconds, zipped = scrape(port)
            cpu, sim_cpu = process_cpu(exporter.pid) - cpu0, process_cpu(sim.pid) - sim0
            scraped.append((now, cpu, sim_cpu, time.monotonic() - t_start, seconds,
                            process_rss_mb(exporter.pid), zipped))
        rows: list[dict[str, float]] = []
        for r, (now, cpu, sim_cpu, span, seconds, rss, zipped) in enumerate(scraped):
            page = gzip.decompress(zipped)
            lag = [now - float(v) for _, v in _LAST.findall(page)]
            behind = sum(1 for x in lag if x > interval + 1.0)
            row = {"polled": nodes - behind, "max_lag": max(lag, default=float("nan")),
                   "up": len(_UP.findall(page)), "cpu": cpu, "sim_cpu": sim_cpu, "span": span,
                   "scrape": seconds, "bytes": len(page), "gzip": len(zipped), "rss": rss}
            rows.append(row)
            if verbose:
                print(f"  round {r + 1}: {row['polled']:.0f}/{nodes} nodes polled within the "
                      f"interval (max {row['max_lag']:.1f}s ago), up {row['up']:.0f}, "
                      f"exporter CPU {cpu:.2f}s of {span:.1f}s ({cpu / span:.0%}), scrape "
                      f"{seconds * 1e3:.0f} ms ({len(page) / 1e6:.1f} MB, "
                      f"{len(zipped) / 1e6:.1f} MB gzip), RSS {rss:.0f} MB; simulator CPU "
                      f"{sim_cpu / span:.0%}")
        med = {k: sorted(r[k] for r in rows)[len(rows) // 2] for k in rows[0]}
        med["nodes"] = nodes
        med["interval"] = interval
        med["cpu_share"] = med["cpu"] / med["span"]
        med["min_polled"] = min(r["polled"] for r in rows)
        return med
    finally:
        if exporter is not None:
            exporter.stop()
        sim.stop()
        with contextlib.suppress(OSError):
            for p in work.iterdir():
                p.unlink()
            work.rmdir()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--interval", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scenario", default="churn", help="simulator scenario (churn: new "
                        "observations in every histogram between two polls)")
    args = parser.parse_args()
    m = run(args.nodes, args.interval, args.rounds, args.scenario)
    print(f"{args.nodes} nodes at {args.interval:g}s: {m['min_polled']:.0f} polled every "
          f"interval (goal: all), exporter CPU {m['cpu_share']:.0%} of one core, /metrics "
          f"{m['scrape']:.2f}s (goal < 1 s), {m['nodes'] / m['cpu_share']:.0f} targets per core "
          f"(extrapolated), RSS {m['rss']:.0f} MB")


if __name__ == "__main__":
    main()
