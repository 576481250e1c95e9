"""How much faster read_exposition is than prometheus_client's full parse, per page.

Run from the repository root::

    python benchmarks/bench_read.py [--runs N]

For every captured kube-proxy page and a synthetic 1 MB page (a real kube-proxy page padded
with thousands of ``apiserver_``/``go_``/``rest_client_``/``workqueue_`` series, families in
client_golang's sorted order), prints the median of N runs of:

- ``prometheus_client``: ``text_string_to_metric_families`` over the whole page (given the
  decoded text; its decoding is not timed),
- ``read warm``: ``read_exposition(bytes)`` as the poller calls it every interval (the memos of
  line pieces already seen are warm: the steady state),
- ``read cold``: the same right after ``reset_memos()`` (the first poll of a target),
- ``read+extract``: warm read plus ``extract``,
- ``+passthrough``: the same with the default ``passthrough:`` patterns (what ``serve`` does),

and the ratios. Runs of the four are interleaved in rotating order, so a busy machine (and the
cache churn of a full parse) hits them alike; the cyclic GC is off inside each timed call, as
``timeit`` does.
Stdlib only besides the project.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # runnable from a checkout without installing

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from kpexporter.config.schema import DEFAULT_PASSTHROUGH as PT  # noqa: E402
from kpexporter.kubeproxy.families import extract  # noqa: E402
from kpexporter.kubeproxy.passthrough import reader_prefixes  # noqa: E402
from kpexporter.promtext.exposition import read_exposition, reset_memos  # noqa: E402

FIXTURES = Path(
    os.environ.get("KPX_FIXTURES") or REPO / "tests" / "data" / "kube-proxy"
)
BASE_PAGE = "beats-metricbeat-v1.30.0-iptables-minikube.txt"
PT_PREFIXES = reader_prefixes(PT)


def synthetic_page(base: str, size: int = 1_000_000) -> str:
    """``base`` plus generated families until ``size`` bytes, all families sorted by name."""
    blocks = {}
    for block in ("\n" + base.strip("\n")).split("\n# HELP ")[1:]:
        blocks[block.split(" ", 1)[0]] = "# HELP " + block + "\n"
    total = sum(map(len, blocks.values()))
    les = ("0.005", "0.025", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf")
    i = 0
    while total < size:
        fams = {
            f"apiserver_synthetic_{i:04d}_duration_seconds": _histogram(
                f"apiserver_synthetic_{i:04d}_duration_seconds", les, i
            ),
            f"go_synthetic_{i:04d}_bytes": (
                f"# HELP go_synthetic_{i:04d}_bytes Synthetic.\n"
                f"# TYPE go_synthetic_{i:04d}_bytes gauge\n"
                f"go_synthetic_{i:04d}_bytes {i * 4096 + 17}\n"
            ),
            f"rest_client_synthetic_{i:04d}_total": "".join(
                [
                    f"# HELP rest_client_synthetic_{i:04d}_total Synthetic.\n",
                    f"# TYPE rest_client_synthetic_{i:04d}_total counter\n",
                    *(
                        f'rest_client_synthetic_{i:04d}_total{{code="{code}",'
                        f'host="10.96.0.1:443",method="{m}"}} {i * 7 + len(m)}\n'
                        for code in ("200", "404", "500")
                        for m in ("GET", "PATCH", "PUT", "WATCH")
                    ),
                ]
            ),
            f"workqueue_synthetic_{i:04d}_depth": (
                f"# HELP workqueue_synthetic_{i:04d}_depth Synthetic.\n"
                f"# TYPE workqueue_synthetic_{i:04d}_depth gauge\n"
                + "".join(
                    f'workqueue_synthetic_{i:04d}_depth{{name="queue-{q}"}} {q}\n' for q in range(5)
                )
            ),
        }
        blocks.update(fams)
        total += sum(map(len, fams.values()))
        i += 1
    return "".join(blocks[name] for name in sorted(blocks))


def _histogram(name: str, les: tuple[str, ...], i: int) -> str:
    lines = [f"# HELP {name} Synthetic.\n", f"# TYPE {name} histogram\n"]
    for verb in ("GET", "LIST"):
        for n, le in enumerate(les):
            lines.append(f'{name}_bucket{{resource="pods",verb="{verb}",le="{le}"}} {i + n}\n')
        lines.append(f'{name}_sum{{resource="pods",verb="{verb}"}} {i * 0.5}\n')
        lines.append(f'{name}_count{{resource="pods",verb="{verb}"}} {i + len(les)}\n')
    return "".join(lines)


def _timed(fn: Callable[[], object]) -> float:
    """Seconds for one call, with the cyclic GC off as timeit does (fair to both sides)."""
    gc.disable()
    try:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    finally:
        gc.enable()


def measure(data: bytes, runs: int) -> dict[str, float]:
    """Median seconds of each contender, runs interleaved."""
    text = data.decode("utf-8")
    if not text.endswith("\n"):
        text += "\n"  # prometheus_client wants the final newline; read_exposition does not

    def full() -> object:
        return [s for family in text_string_to_metric_families(text) for s in family.samples]

    def nothing() -> None:
        return None

    def read() -> object:
        return read_exposition(data)

    # name -> (untimed setup, timed call)
    contenders: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
        "prometheus_client": (nothing, full),
        "read warm": (nothing, read),
        "read cold": (reset_memos, read),
        "read+extract": (nothing, lambda: extract(read_exposition(data))),
        "+passthrough": (nothing, lambda: extract(read_exposition(data, PT_PREFIXES), PT)),
    }
    for _, fn in contenders.values():
        fn()  # warm-up: imports, regex compilation, memos
    times: dict[str, list[float]] = {name: [] for name in contenders}
    order = list(contenders)
    for run in range(runs):
        for name in order[run % len(order) :] + order[: run % len(order)]:  # rotate: each
            setup, fn = contenders[name]  # contender follows each other one equally often
            setup()
            times[name].append(_timed(fn))
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=31, help="runs per page (default 31)")
    args = parser.parse_args()
    pages: list[tuple[str, bytes, int]] = [
        (path.name, path.read_bytes(), args.runs) for path in sorted(FIXTURES.glob("*.txt"))
    ]
    if not pages:
        sys.exit(f"no fixtures under {FIXTURES} (set KPX_FIXTURES)")
    base = FIXTURES / BASE_PAGE
    base_text = base.read_text() if base.is_file() else pages[0][1].decode()
    big = synthetic_page(base_text).encode()
    pages.append((f"synthetic {len(big) / 1e6:.2f} MB (padded {BASE_PAGE[:28]}…)", big, 9))

    print(f"{'page':58} {'prom_client':>11} {'warm':>8} {'cold':>8} {'+extract':>9}"
          f" {'x warm':>7} {'x cold':>7} {'x +extr':>7} {'+passthru':>9}")  # fmt: skip
    for name, data, runs in pages:
        m = measure(data, max(3, min(runs, args.runs)))
        full = m["prometheus_client"]
        print(
            f"{name[:58]:58} {full * 1e3:9.2f}ms {m['read warm'] * 1e6:6.0f}us"
            f" {m['read cold'] * 1e6:6.0f}us {m['read+extract'] * 1e6:7.0f}us"
            f" {full / m['read warm']:7.0f} {full / m['read cold']:7.0f}"
            f" {full / m['read+extract']:7.0f} {m['+passthrough'] * 1e6:7.0f}us"
        )


if __name__ == "__main__":
    main()
