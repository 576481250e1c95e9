"""Run every atheris fuzz target for a while; exit non-zero when one of them found something.

    python tests/fuzz/run_fuzz.py --seconds 600 [--jobs 2] [--only healthz,exposition]

Each target runs in its own subprocess (libFuzzer owns its process: it exits on the first
finding) with a seed corpus made from the real kube-proxy fixtures and the test data, a
per-input time limit (a slow input is a finding too) and a memory limit. The summary gives
executions, corpus growth and findings per target; a finding's input is kept in
``--artifacts`` (default: beside the logs in a temporary folder), ready to replay with
``PYTHONPATH=. python tests/fuzz/fuzz_<target>.py <file>``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FIXTURES = ROOT / "tests" / "data" / "kube-proxy"

HEALTHZ_SEEDS = [
    b'{"lastUpdated": "2024-06-21 11:08:45.074765635 +0000 UTC m=+80.277574766",'
    b'"currentTime": "2024-06-21 11:08:45.074765635 +0000 UTC m=+80.277574766", '
    b'"nodeEligible": true}',
    b'{"lastUpdated": "0001-01-01 00:00:00 +0000 UTC","currentTime": '
    b'"2019-09-12 09:58:12.6419133 -0700 PDT m=+1234.5"}',
    b'{"lastUpdated":"2025-05-01T10:00:00.5Z","currentTime":"2025-05-01T10:00:01Z",'
    b'"nodeEligible":true,"healthy":true,"status":{"IPv4":{"lastUpdated":'
    b'"2025-05-01T10:00:00.5Z","healthy":true},"IPv6":{"lastUpdated":'
    b'"0001-01-01T00:00:00Z","healthy":false}}}',
    b"ok",
]
EXPOSITION_SEEDS = [
    b'# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram\n'
    b'kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="0.001"} 1\n'
    b'kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="1.0"} 2\n'
    b'kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="+Inf"} 3\n'
    b'kubeproxy_sync_proxy_rules_duration_seconds_sum 0.5\n'
    b'kubeproxy_sync_proxy_rules_duration_seconds_count 3\n'
    b'kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv4"} 1.7e+09\n'
    b'process_start_time_seconds 1.7e9 1700000000000\n',
    b'kubeproxy_sync_proxy_rules_latency_microseconds_bucket{le="1000"} NaN\n'
    b'kubeproxy_network_programming_duration_seconds_bucket{le="0.25",a="\\"\\n\\\\"} -Inf\n',
]

HTTP1_SEEDS = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n"
    b"0\r\nTrailer: 1\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Length: 20\r\nContent-Encoding: gzip\r\n\r\n"
    b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff\xcbH\xcd\xc9\xc9\x07\x00",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    # the hostile peer's floods, cut short: interim answers, trailers, 1-byte chunks
    b"HTTP/1.1 100 Continue\r\n\r\n" * 8 + b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n# \r\n0\r\n"
    + b"X-Trailer: 1\r\n" * 8 + b"\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1\r\n#\r\n" * 16
    + b"0\r\n\r\n",
]


@dataclass(frozen=True)
class Target:
    name: str
    script: str
    max_len: int
    seeds: tuple[bytes, ...]
    seed_files: tuple[Path, ...]


def _kube_proxy_lines(page: Path) -> bytes:
    """The lines of a real page the reader looks at (the rest only costs the fuzzer time)."""
    keep = re.compile(rb"^(?:# (?:HELP|TYPE) )?(?:kubeproxy_|process_start_time_seconds)")
    return b"\n".join(ln for ln in page.read_bytes().split(b"\n") if keep.match(ln)) + b"\n"


def targets() -> list[Target]:
    pages = tuple(sorted(FIXTURES.glob("*.txt"))) if FIXTURES.is_dir() else ()
    excerpts = tuple(_kube_proxy_lines(p) for p in pages)
    web = tuple(sorted((ROOT / "tests" / "data" / "web-config").glob("*.yml")))
    return [
        Target("healthz", "fuzz_healthz.py", 4096, tuple(HEALTHZ_SEEDS), ()),
        Target("exposition", "fuzz_exposition.py", 16384, (*EXPOSITION_SEEDS, *excerpts), ()),
        Target("webconfig", "fuzz_webconfig.py", 8192, (), web),
        Target("http1", "fuzz_http1.py", 8192, tuple(HTTP1_SEEDS), ()),
    ]


@dataclass
class Outcome:
    target: str
    returncode: int
    executions: int | None
    seconds: float
    corpus: int
    finding: str | None
    artifacts: list[str]


_DONE = re.compile(r"Done (\d+) runs in (\d+) second")
_STAT = re.compile(r"stat::number_of_executed_units:\s*(\d+)")
_PROGRESS = re.compile(r"#(\d+)\s+(?:pulse|NEW|REDUCE|DONE|INITED)")


def _executions(log: str) -> int | None:
    for pattern in (_STAT, _DONE):
        hits = pattern.findall(log)
        if hits:
            return int(hits[-1] if isinstance(hits[-1], str) else hits[-1][0])
    hits = _PROGRESS.findall(log)
    return int(hits[-1]) if hits else None


def _finding(log: str) -> str | None:
    for marker in ("=== Uncaught Python exception", "ERROR: libFuzzer", "==ERROR",
                   "Traceback (most recent call last)"):
        at = log.find(marker)
        if at >= 0:
            return log[at: at + 3000]
    return None


def start(t: Target, seconds: int, work: Path, artifacts: Path) -> tuple[subprocess.Popen[bytes],
                                                                          Path, Path]:
    corpus = work / f"corpus-{t.name}"
    corpus.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(t.seeds):
        (corpus / f"seed-{i}").write_bytes(seed)
    for f in t.seed_files:
        shutil.copy(f, corpus / f"file-{f.name}")
    prefix = artifacts / f"{t.name}-"
    log = work / f"{t.name}.log"
    cmd = [sys.executable, str(HERE / t.script), str(corpus),
           f"-max_total_time={seconds}", f"-max_len={t.max_len}", "-timeout=10",
           "-rss_limit_mb=2048", "-print_final_stats=1", f"-artifact_prefix={prefix}"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    return proc, log, corpus


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=int, default=600, help="per target (default 600)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="targets run at once (default: the CPU count)")
    p.add_argument("--only", default="", help="comma-separated target names")
    p.add_argument("--artifacts", default=None,
                   help="where a finding's input is written (default: a new temporary folder)")
    args = p.parse_args(argv)
    try:
        import atheris  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        print("atheris is not installed: pip install atheris", file=sys.stderr)
        return 2
    chosen = [t for t in targets() if not args.only or t.name in args.only.split(",")]
    if not chosen:
        print(f"no target matches {args.only!r}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="kpx-fuzz-"))
    artifacts = Path(args.artifacts) if args.artifacts else work / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    outcomes: list[Outcome] = []
    queue = list(chosen)
    running: list[tuple[Target, subprocess.Popen[bytes], Path, Path, float]] = []
    grace = args.seconds + 120  # libFuzzer stops itself at max_total_time; this is the backstop
    print(f"fuzzing {', '.join(t.name for t in chosen)} for {args.seconds}s each, "
          f"{max(1, args.jobs)} at a time (logs in {work})", flush=True)
    while queue or running:
        while queue and len(running) < max(1, args.jobs):
            t = queue.pop(0)
            proc, log, corpus = start(t, args.seconds, work, artifacts)
            running.append((t, proc, log, corpus, time.monotonic()))
        time.sleep(1)
        for item in list(running):
            t, proc, log, corpus, t0 = item
            elapsed = time.monotonic() - t0
            if proc.poll() is None and elapsed > grace:
                proc.kill()
            if proc.poll() is None:
                continue
            running.remove(item)
            text = log.read_text("utf-8", "replace")
            found = [str(f) for f in artifacts.glob(f"{t.name}-*")
                     if f.stat().st_mtime >= time.time() - elapsed - 5]
            finding = _finding(text) if proc.returncode != 0 or found else None
            if proc.returncode != 0 and finding is None:
                finding = f"exit code {proc.returncode}; see {log}\n" + text[-2000:]
            outcomes.append(Outcome(t.name, proc.returncode, _executions(text), elapsed,
                                    len(list(corpus.iterdir())), finding, found))
            status = "FINDING" if finding else "clean"
            print(f"  {t.name}: {status} after {elapsed:.0f}s, "
                  f"{_executions(text)} executions", flush=True)
    print()
    print(f"{'target':<12} {'executions':>12} {'exec/s':>8} {'corpus':>7}  result")
    for o in outcomes:
        rate = f"{o.executions / o.seconds:.0f}" if o.executions and o.seconds else "-"
        print(f"{o.target:<12} {o.executions if o.executions is not None else '?':>12} "
              f"{rate:>8} {o.corpus:>7}  {'FINDING' if o.finding else 'clean'}")
    bad = [o for o in outcomes if o.finding]
    for o in bad:
        print(f"\n--- {o.target}: {', '.join(o.artifacts) or 'no artifact'}\n{o.finding}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
