"""Soak: time-compressed hours of a flapping and a restarting kube-proxy; memory and fds flat.

    python benchmarks/soak.py [--time-scale 60] [--hours 3] [--interval 0.1]

Two simulated kube-proxies run as ``kpexporter simulate`` subprocesses, one in the
``flapping`` scenario (2 min healthy / 2 min stuck, so ~1 min of 503 every 4 min) and one in
``restart`` (a new process every 5 min: counters and histograms reset). ``--time-scale K``
runs their behaviour K times faster, so one simulated hour takes 3600/K seconds. The exporter
runs in this process (a real ``Poller`` and the real app, scraped through ASGI every
``--scrape-interval`` compressed like the rest),
polling both every ``--interval`` seconds with its windows compressed by the same factor
(``5m,1h`` become ``5s,1m`` at K=60), so that its histories fill and reach their steady
state within the first simulated hour, as they would in a real hour.

Every ``--sample-every`` polls it records this process's RSS (``VmRSS`` in
``/proc/self/status``), its open file descriptors (``/proc/self/fd``), the snapshots held in
the window histories and the size of the ``/metrics`` page. The first simulated hour is the
warm-up; growth is measured from its end to the end of the run, and the run fails (exit 1)
when RSS grows by more than ``--max-rss-growth-mib`` or fds by more than ``--max-fd-growth``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from kpexporter.config.durations import format_duration
from kpexporter.config.schema import build_config
from kpexporter.service.app import create_app
from kpexporter.service.poller import Poller

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Sample:
    wall_s: float
    sim_min: float
    polls: int
    rss_mib: float
    fds: int
    snapshots: int
    page_kib: float
    restarts_seen: int
    healthy_ratio: float


class EventCounter(logging.Handler):
    """Counts the exporter's log events by name (and any that carry a traceback)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()
        self.tracebacks = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.getMessage()] += 1
        self.tracebacks += record.exc_info is not None


def rss_mib() -> float:
    text = Path("/proc/self/status").read_text()
    m = re.search(r"^VmRSS:\s+(\d+)\s+kB", text, re.M)
    return int(m.group(1)) / 1024 if m else float("nan")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Simulator:
    """``kpexporter simulate`` in a subprocess (its memory is not ours to measure)."""

    def __init__(self, scenario: str, time_scale: float, seed: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kpexporter", "simulate", "--healthz-port", "0",
             "--metrics-port", "0", "--scenario", scenario, "--time-scale", str(time_scale),
             "--seed", str(seed)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
        self.urls: dict[str, str] = {}
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 30
        while len(self.urls) < 2 and time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            key, _, url = line.partition(": ")
            if key in ("healthz", "metrics"):
                self.urls[key] = url.strip()
        if len(self.urls) < 2:
            self.stop()
            raise SystemExit(f"simulator ({scenario}) did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def soak(args: argparse.Namespace) -> tuple[list[Sample], dict[str, Any]]:
    k = args.time_scale
    sims = {"flapping": Simulator("flapping", k, 1), "restart": Simulator("restart", k, 2)}
    try:
        targets = [{"node": f"node-{name}", "healthz_url": s.urls["healthz"],
                    "metrics_url": s.urls["metrics"]} for name, s in sims.items()]
        windows = f"{format_duration(300 / k)},{format_duration(3600 / k)}"
        cfg = build_config(None, {}, {"node": "soak", "targets": targets,
                                      "interval": str(args.interval), "timeout": "2",
                                      "windows": windows, "listen": "127.0.0.1:0"})
        poller = Poller(cfg)
        app = create_app(poller, manage_poller=False)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x")
        samples: list[Sample] = []
        total_s = args.hours * 3600 / k
        start = time.monotonic()
        await poller.start()
        restarts = 0
        last_start: dict[str, float | None] = {}
        up_checks = up_count = 0
        try:
            next_sample = 0
            next_scrape = 0.0
            scrapes = 0
            r: httpx.Response | None = None
            for _ in range(10_000_000):  # bounded by total_s
                elapsed = time.monotonic() - start
                if elapsed >= total_s:
                    break
                for st in poller.states:  # what the exporter saw: restarts, up
                    if st.process_start != last_start.get(st.node, st.process_start):
                        restarts += 1
                    last_start[st.node] = st.process_start
                    if st.derived is not None:  # /healthz 200, per poll of any target so far
                        up_checks += 1
                        up_count += st.derived.healthz_healthy
                if elapsed >= next_scrape:  # Prometheus, its interval compressed too
                    next_scrape = elapsed + args.scrape_interval / k
                    r = await client.get("/metrics")
                    if r.status_code != 200:
                        raise SystemExit(f"/metrics answered {r.status_code}")
                    scrapes += 1
                polls = poller.states[0].polls
                if polls >= next_sample and r is not None:
                    next_sample = polls + args.sample_every
                    samples.append(Sample(
                        wall_s=round(elapsed, 1), sim_min=round(elapsed * k / 60, 1),
                        polls=polls, rss_mib=round(rss_mib(), 2), fds=open_fds(),
                        snapshots=sum(len(h) for st in poller.states
                                      for h in st.histories.values()),
                        page_kib=round(len(r.content) / 1024, 1), restarts_seen=restarts,
                        healthy_ratio=round(up_count / max(up_checks, 1), 3)))
                await asyncio.sleep(0.05)
        finally:
            await poller.stop()
            await client.aclose()
        errors = {f"{st.node}/{e}/{r}": n for st in poller.states
                  for (e, r), n in st.errors.items() if n}
        info = {"time_scale": k, "windows": windows, "interval": args.interval,
                "polls_per_target": [st.polls for st in poller.states],
                "restarts_seen": restarts, "errors": errors, "scrapes": scrapes}
        return samples, info
    finally:
        for s in sims.values():
            s.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--time-scale", type=float, default=60.0,
                   help="simulated seconds per wall second (default 60: an hour a minute)")
    p.add_argument("--hours", type=float, default=3.0,
                   help="simulated hours to run; the first is the warm-up (default 3)")
    p.add_argument("--interval", type=float, default=0.1, help="poll interval (default 0.1 s)")
    p.add_argument("--sample-every", type=int, default=50, help="polls between samples")
    p.add_argument("--scrape-interval", type=float, default=15.0,
                   help="Prometheus's scrape interval before compression (default 15 s: at "
                   "--time-scale 60, a scrape every 0.25 s)")
    p.add_argument("--max-rss-growth-mib", type=float, default=4.0,
                   help="allowed RSS growth after the warm-up (default 4 MiB)")
    p.add_argument("--max-fd-growth", type=int, default=4,
                   help="allowed growth of open fds after the warm-up (default 4: in-flight "
                   "keep-alive connections)")
    p.add_argument("--json", metavar="FILE", help="also write the samples and verdict as JSON")
    args = p.parse_args(argv)
    if args.hours <= 1:
        p.error("--hours must be more than 1 (the first hour is the warm-up)")
    events = EventCounter()
    logger = logging.getLogger("kpexporter")
    logger.handlers[:] = [events]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    samples, info = asyncio.run(soak(args))
    warm_s = 3600 / args.time_scale
    print(f"soak: flapping + restart kube-proxies, time scale {args.time_scale:g} "
          f"({args.hours:g} simulated h in {args.hours * warm_s:.0f} s), windows "
          f"{info['windows']}, interval {args.interval:g} s, "
          f"polls per target {info['polls_per_target']}, {info['scrapes']} scrapes, kube-proxy "
          f"restarts seen {info['restarts_seen']}")
    print(f"{'wall s':>7} {'sim min':>8} {'polls':>6} {'RSS MiB':>8} {'fds':>4} "
          f"{'snapshots':>9} {'page KiB':>8} {'restarts':>8} {'healthy':>7}")
    for s in samples:
        print(f"{s.wall_s:>7.1f} {s.sim_min:>8.1f} {s.polls:>6} {s.rss_mib:>8.2f} {s.fds:>4} "
              f"{s.snapshots:>9} {s.page_kib:>8.1f} {s.restarts_seen:>8} {s.healthy_ratio:>7.3f}")
    after = [s for s in samples if s.wall_s >= warm_s]
    if len(after) < 2:
        print("not enough samples after the warm-up", file=sys.stderr)
        return 2
    base, last = after[0], after[-1]
    rss_growth = last.rss_mib - base.rss_mib
    rss_max = max(s.rss_mib for s in after) - base.rss_mib
    fd_growth = last.fds - base.fds
    snap_max_growth = max(s.snapshots for s in after) - base.snapshots
    ok = rss_growth <= args.max_rss_growth_mib and fd_growth <= args.max_fd_growth
    print(f"after the warm-up ({base.sim_min:.0f} -> {last.sim_min:.0f} simulated min): "
          f"RSS {base.rss_mib:.2f} -> {last.rss_mib:.2f} MiB ({rss_growth:+.2f}, max "
          f"{rss_max:+.2f}; bound {args.max_rss_growth_mib:g}), fds {base.fds} -> {last.fds} "
          f"({fd_growth:+d}; bound {args.max_fd_growth}), window snapshots {base.snapshots} -> "
          f"{last.snapshots} (max {snap_max_growth:+d})")
    print(f"poll errors: {info['errors'] or 'none'}")
    print(f"log events: {dict(sorted(events.counts.items())) or 'none'}")
    if events.tracebacks:
        print(f"{events.tracebacks} log record(s) carried a traceback", file=sys.stderr)
        ok = False
    print("FLAT" if ok else "GROWTH beyond the bound")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"info": info, "samples": [asdict(s) for s in samples], "rss_growth_mib": rss_growth,
             "fd_growth": fd_growth, "ok": ok}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
