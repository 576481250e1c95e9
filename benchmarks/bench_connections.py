"""Memory per idle connection on the exporter's own port: plain HTTP and TLS.

Run from the repository root::

    python benchmarks/bench_connections.py [--connections 400]

``kpexporter serve`` (no kube-proxy needed: it polls a closed port) is started three ways and
``--connections`` silent connections are opened against it: plain TCP on the plain port; plain
TCP on the TLS port (no ClientHello: what an attacker's half-open connection costs); a
completed TLS 1.3 handshake, then silence. RSS is read from /proc before, with the connections
held (within the 5 s idle and handshake timeouts), and after the server closed them.
``run_all.py`` (``make bench``) runs it too, through ``run``.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CERTS = ROOT / "tests" / "data" / "web-config"
KINDS = (("plain", "plain HTTP, silent"),
         ("tls-silent", "TLS port, no ClientHello"),
         ("tls-handshaken", "TLS 1.3 handshake, then silent"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the exporter did not start")


def measure(kind: str, connections: int, workdir: Path) -> tuple[float, float, float]:
    port, nowhere = _free_port(), _free_port()
    argv = [sys.executable, "-m", "kpexporter", "serve", "--listen", f"127.0.0.1:{port}",
            "--healthz-url", f"http://127.0.0.1:{nowhere}/healthz",
            "--metrics-url", f"http://127.0.0.1:{nowhere}/metrics", "--node", "bench"]
    if kind != "plain":
        web = workdir / "web.yml"
        web.write_text(f"tls_server_config:\n  cert_file: {CERTS / 'testonly-selfsigned.crt'}\n"
                       f"  key_file: {CERTS / 'testonly-selfsigned.key'}\n")
        argv += ["--web-config-file", str(web)]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    held: list[socket.socket] = []
    try:
        _wait_listening(port)
        time.sleep(1.0)  # a few polls: let start-up allocations settle
        before = _rss_mb(proc.pid)
        ctx = ssl.create_default_context(cafile=CERTS / "testonly-selfsigned.crt")
        for _ in range(connections):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            if kind == "tls-handshaken":
                sock = ctx.wrap_socket(sock, server_hostname="localhost")
            held.append(sock)
        time.sleep(0.5)
        during = _rss_mb(proc.pid)
        for sock in held:
            sock.close()
        held.clear()
        time.sleep(1.0)
        after = _rss_mb(proc.pid)
        return before, during, after
    finally:
        for sock in held:
            sock.close()
        proc.terminate()
        proc.wait(30)


def run(connections: int) -> list[tuple[str, float, float, float, float]]:
    """Each of ``KINDS``: (label, RSS before, held, after close in MB, KiB a connection)."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, label in KINDS:
            before, during, after = measure(kind, connections, Path(tmp))
            out.append((label, before, during, after, (during - before) * 1024 / connections))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=400)
    args = parser.parse_args()
    n = args.connections
    print(f"{'connections':<36} {'RSS before':>10} {'held':>8} {'closed':>8} {'KiB/conn':>9}")
    for label, before, during, after, per in run(n):
        print(f"{n} x {label:<30} {before:8.1f} MB {during:6.1f} MB {after:6.1f} MB "
              f"{per:8.0f}")


if __name__ == "__main__":
    main()
