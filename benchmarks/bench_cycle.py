"""CPU of one whole poll cycle against prometheus_client's parse alone of the same page.

Run from the repository root::

    python benchmarks/bench_cycle.py [--polls N] [--batches B]

A fake kube-proxy (``_static_server.py``) serves the captured v1.30 page from its own process
(pinned to another core when there is one); this process runs the real ``Poller.poll_once``
(both requests over loopback, read, extract, derive, state update) back to back and measures
``time.process_time`` per batch of polls. Two pages:

- ``idle``: the same page every poll (an idle kube-proxy: summaries come from derive's memo),
- ``busy``: one more observation in every histogram every poll (every summary recomputed).

The baseline, timed in the same process between the batches: prometheus_client's
``text_string_to_metric_families`` over the same page (median). Prints medians and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time

from prometheus_client.parser import text_string_to_metric_families

from _common import busy_page, cores, fixture, median, pin_self, static_kube_proxy
from kpexporter.config.schema import build_config
from kpexporter.service.poller import Poller


def parse_once(text: str) -> float:
    gc.disable()
    try:
        t = time.process_time()
        for family in text_string_to_metric_families(text):
            for _ in family.samples:
                pass
        return time.process_time() - t
    finally:
        gc.enable()


async def _cycles(healthz: str, metrics: str, polls: int, batches: int,
                  text: str) -> tuple[list[float], list[float]]:
    cfg = build_config(None, {}, {"node": "bench", "healthz_url": healthz, "metrics_url": metrics,
                                  "log_level": "error"})
    poller = Poller(cfg)
    await poller.open()
    st = poller.states[0]
    per_poll: list[float] = []
    parses: list[float] = []
    try:
        for _ in range(20):  # warm-up: imports, memos, the first /proxyMode
            await poller.poll_once(st)
        for _ in range(batches):
            t = time.process_time()
            for _ in range(polls):
                await poller.poll_once(st)
            per_poll.append((time.process_time() - t) / polls)
            parses += [parse_once(text) for _ in range(3)]
        assert st.derived is not None and st.derived.up, st.last
    finally:
        await poller.stop()
    return per_poll, parses


def measure(busy: bool, polls: int = 200, batches: int = 7) -> dict[str, float]:
    """Median CPU seconds of one poll cycle and of one prometheus_client parse of the page."""
    cs = cores()
    here: int | None
    other: int | None
    here, other = (cs[0], cs[1]) if len(cs) > 1 else (None, None)
    pin_self(here)
    page = fixture()
    text = busy_page(page, 1).decode() if busy else page.decode()
    text = text if text.endswith("\n") else text + "\n"
    with static_kube_proxy(busy=busy, core=other) as (healthz, metrics):
        per_poll, parses = asyncio.run(_cycles(healthz, metrics, polls, batches, text))
    return {"cycle": median(per_poll), "parse": median(parses), "bytes": len(page)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--polls", type=int, default=200, help="polls per batch")
    parser.add_argument("--batches", type=int, default=7)
    args = parser.parse_args()
    for busy in (False, True):
        m = measure(busy, args.polls, args.batches)
        print(f"{'busy' if busy else 'idle'} v1.30 page ({m['bytes'] / 1e3:.0f} KB): poll cycle "
              f"{m['cycle'] * 1e3:.2f} ms CPU, prometheus_client parse {m['parse'] * 1e3:.2f} ms"
              f"  -> cycle is {m['parse'] / m['cycle']:.1f}x cheaper")


if __name__ == "__main__":
    main()
