"""What the benchmarks share: pages, a fake kube-proxy process, process CPU and RSS, medians.

Stdlib only besides the project. Every wait is bounded; every child process is ended by its
own handle (``Child.stop``), never by name.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # runnable from a checkout without installing

FIXTURES = Path(
    os.environ.get("KPX_FIXTURES") or REPO / "tests" / "data" / "kube-proxy"
)
V1_30 = "beats-metricbeat-v1.30.0-iptables-minikube.txt"
HEALTHZ_1_28 = (
    b'{"lastUpdated": "2024-06-21 11:08:45.074765635 +0000 UTC m=+80.277574766",'
    b'"currentTime": "2024-06-21 11:08:45.074765635 +0000 UTC m=+80.277574766", '
    b'"nodeEligible": true}'
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                     "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
"""The Accept header of every Prometheus 2.x scrape (scrape/scrape.go): OpenMetrics first."""


def fixture(name: str = V1_30) -> bytes:
    path = FIXTURES / name
    if not path.is_file():
        sys.exit(f"fixture {name} not found under {FIXTURES} (set KPX_FIXTURES)")
    return path.read_bytes()


_BUCKET = re.compile(rb'^(kubeproxy_\w+_bucket\{(?:[^}]*,)?le="([^"]+)"\}) (\d+)$', re.M)
_COUNT = re.compile(rb"^(kubeproxy_\w+_count(?:\{[^}]*\})?) (\d+)$", re.M)
_SUM = re.compile(rb"^(kubeproxy_\w+_sum(?:\{[^}]*\})?) (\S+)$", re.M)


def busy_page(page: bytes, k: int) -> bytes:
    """``page`` after ``k`` more observations in every kube-proxy histogram (worst case).

    Each observation lands in the bucket of 0.1 s (or the next one up): buckets from there
    on, ``_count`` and ``_sum`` grow, so every lifetime and window summary changes each poll.
    """
    if k == 0:
        return page

    def bucket(m: re.Match[bytes]) -> bytes:
        le = float(m.group(2))
        return m.group(1) + b" " + str(int(m.group(3)) + (k if le >= 0.1 else 0)).encode()

    page = _BUCKET.sub(bucket, page)
    page = _COUNT.sub(lambda m: m.group(1) + b" " + str(int(m.group(2)) + k).encode(), page)
    return _SUM.sub(lambda m: m.group(1) + b" " + repr(float(m.group(2)) + 0.1 * k).encode(),
                    page)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_rss_mb(pid: int | None = None) -> float:
    for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


_CORES = sorted(os.sched_getaffinity(0))
"""The cores this run may use, read once at import: ``pin_self`` narrows the process's own
affinity, and a ``cores()`` read after it saw only that core, so every later ``pinned(other)``
silently ran its child on the pinned core too (bench_many ran the exporter, the simulator and
the scraping client on one core)."""


def cores() -> list[int]:
    return list(_CORES)


def pinned(core: int | None) -> list[str]:
    """A ``taskset`` prefix for a command, when taskset exists and the core is ours."""
    if core is None or shutil.which("taskset") is None or core not in _CORES:
        return []
    return ["taskset", "-c", str(core)]


def pin_self(core: int | None) -> None:
    """Run this process (and the children it starts unpinned) on ``core``; ``None``: on every
    core again (run_all's earlier steps may have pinned it)."""
    if core is None:
        os.sched_setaffinity(0, set(_CORES))
    elif core in _CORES:
        os.sched_setaffinity(0, {core})


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if check():
                return
        time.sleep(0.1)
    raise TimeoutError(f"{what}: not ready within {timeout:g}s")


class Child:
    """A child process we started, stopped by its own handle (terminate, then kill)."""

    def __init__(self, argv: list[str], *, stdout: int | None = subprocess.PIPE,
                 log: Path | None = None) -> None:
        self.log = open(log, "w") if log is not None else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(argv, stdout=stdout, stderr=self.log, cwd=REPO)
        self._buf = b""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def line(self, timeout: float = 120.0) -> str:
        """The next line of its stdout (bounded wait; our own buffer, so select() is honest)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            if time.monotonic() > deadline:
                raise TimeoutError("no output from child")
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError(f"{self.proc.args[:6]} closed its output "
                                       f"(exit {self.proc.poll()})")
                self._buf += chunk
            elif self.proc.poll() is not None:
                raise RuntimeError(f"{self.proc.args[:6]} exited with {self.proc.returncode}")
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode().strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.log is not subprocess.DEVNULL:
            self.log.close()


@contextlib.contextmanager
def static_kube_proxy(page: str = V1_30, *, busy: bool = False,
                      core: int | None = None) -> Iterator[tuple[str, str]]:
    """A fake kube-proxy in its own process serving a captured page; yields the two URLs.

    ``busy``: every ``/metrics`` answer has one more observation in every histogram.
    """
    argv = [*pinned(core), sys.executable, str(REPO / "benchmarks" / "_static_server.py"),
            str(FIXTURES / page)] + (["--busy"] if busy else [])
    child = Child(argv)
    try:
        hp, mp = child.line(30).split()
        yield f"http://127.0.0.1:{hp}/healthz", f"http://127.0.0.1:{mp}/metrics"
    finally:
        child.stop()


def table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    """A Markdown table."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
            for r in rows]
    return "\n".join([line, rule, *body])
